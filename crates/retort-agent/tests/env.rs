//! Environments (SQLite, DBBench, OS shell, Python REPL) and the Python tool, in the real sandbox.

mod common;

use std::collections::BTreeMap;

use retort_agent::tools::python::{PythonConfig, PythonTool};
use retort_agent::{
    answers_match, read_os_action, CallStatus, DbEnv, DbTable, DbTask, Environment, OsAction, OsActions, OsEnv, OsTask, ReplEnv, ReplTask,
    SqliteEnv, SqliteTask, ToolRegistry,
};
use serde_json::json;

#[test]
fn answer_normalisation() {
    let cases = [
        ("Paris", "paris", true),
        ("  \"Paris.\" ", "Paris", true),
        ("1,000", "1000.0", true),
        ("3.25", "3.250", true),
        ("melon, apple", "apple,melon", true),
        ("apple\nmelon", "melon, apple", true),
        ("apple", "apple, melon", false),
        ("41", "42", false),
        ("New  York", "new york", true),
    ];
    for (answer, gold, want) in cases {
        assert_eq!(answers_match(answer, gold), want, "{answer:?} vs {gold:?}");
    }
}

#[tokio::test]
async fn sqlite_env_rewards_the_gold_answer() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::shop_db(dir.path());
    let task = SqliteTask {
        database: db.clone(),
        question: "Which product has the most units ordered?".into(),
        answer: "apple".into(),
        max_steps: 3,
        max_rows: 20,
    };
    let mut env = SqliteEnv::new(task.clone());
    let first = env.reset().await.unwrap();
    assert!(first.contains("CREATE TABLE orders") && first.contains("most units ordered"), "{first}");
    let step =
        env.step("```sql\nSELECT product_id, SUM(quantity) FROM orders GROUP BY product_id ORDER BY 2 DESC LIMIT 1\n```").await.unwrap();
    assert_eq!((step.observation.as_str(), step.reward, step.done), ("product_id | SUM(quantity)\n1 | 15", 0.0, false));
    let write = env.step("DELETE FROM orders").await.unwrap();
    assert!(write.observation.contains("readonly") || write.observation.contains("read-only"), "{}", write.observation);
    let right = env.step("Answer: Apple.").await.unwrap();
    assert_eq!((right.reward, right.done), (1.0, true));
    assert!(env.step("SELECT 1").await.is_err(), "no steps after the end");

    env.reset().await.unwrap();
    let wrong = env.step("answer: melon").await.unwrap();
    assert_eq!((wrong.reward, wrong.done), (0.0, true));

    env.reset().await.unwrap();
    for _ in 0..2 {
        assert!(!env.step("SELECT 1").await.unwrap().done);
    }
    let last = env.step("SELECT 1").await.unwrap();
    assert_eq!((last.reward, last.done), (0.0, true));
}

#[tokio::test]
async fn os_env_runs_commands_and_rewards_by_the_check() {
    let sandbox = common::sandbox();
    let task = OsTask {
        instruction: "Create backup/notes.txt holding the lines of notes.txt that mention TODO, then say how many there are.".into(),
        files: BTreeMap::from([("notes.txt".to_string(), "TODO buy milk\ndone: laundry\nTODO call mum\n".to_string())]),
        setup: vec!["mkdir -p archive && echo old > archive/a.txt".into()],
        check: Some("test -f backup/notes.txt && grep -c TODO backup/notes.txt | grep -q '^2$' && test \"$ANSWER\" = 2".into()),
        expected_answer: Some("2".into()),
        max_steps: 10,
        max_output_chars: 1000,
        actions: OsActions::Plain,
    };
    let mut env = OsEnv::new(sandbox.clone(), task.clone());
    let first = env.reset().await.unwrap();
    assert!(first.contains("backup/notes.txt"), "{first}");
    let ls = env.step("ls").await.unwrap();
    assert_eq!(ls.observation, "archive\nnotes.txt");
    let missing = env.step("cat nothing.txt").await.unwrap();
    assert!(missing.observation.contains("No such file") && missing.observation.contains("[exit status 1]"), "{}", missing.observation);
    let unknown = env.step("apt-get install vim").await.unwrap();
    assert!(unknown.observation.contains("command not found"), "{}", unknown.observation);
    let made = env.step("mkdir backup && grep TODO notes.txt > backup/notes.txt && cat backup/notes.txt | wc -l").await.unwrap();
    assert_eq!((made.observation.as_str(), made.done), ("2", false));
    // State persists between actions: the working directory and variables.
    env.step("cd backup; export N=7").await.unwrap();
    assert_eq!(env.step("pwd | grep -c backup; echo $N").await.unwrap().observation, "1\n7");
    let done = env.step("answer: 2").await.unwrap();
    assert_eq!((done.reward, done.done), (1.0, true), "{}", done.observation);

    // Without the file the check fails.
    let mut env = OsEnv::new(sandbox, task);
    env.reset().await.unwrap();
    let fail = env.step("answer: 2").await.unwrap();
    assert_eq!((fail.reward, fail.done), (0.0, true), "{}", fail.observation);
    assert!(fail.observation.contains("the check failed"));
}

#[tokio::test]
async fn codeact_actions_run_tagged_code_recover_from_an_error_and_end_with_a_solution() {
    let sandbox = common::sandbox();
    let task = ReplTask {
        instruction: "How many apples are left from 20 after eating 3 a day for 4 days?".into(),
        setup_code: Some("def eaten(per_day, days):\n    return per_day * days".into()),
        expected_answer: Some("8".into()),
        check_code: None,
        max_steps: 5,
        max_output_chars: 1000,
        actions: retort_agent::ReplActions::Codeact,
    };
    let mut env = ReplEnv::new(sandbox, task);
    let first = env.reset().await.unwrap();
    assert!(first.starts_with("How many apples"), "{first}");
    let error = env.step("<execute>\nleft = 20 - eatn(3, 4)\n</execute>").await.unwrap();
    assert!(error.observation.starts_with("Observation:\n") && error.observation.contains("NameError"), "{}", error.observation);
    let fixed = env.step("A typo. <execute>left = 20 - eaten(3, 4)\nprint(left)").await.unwrap();
    assert_eq!(
        (fixed.observation.as_str(), fixed.done),
        ("Observation:\n8", false),
        "an unclosed tag (stopped at </execute>) is still code; the tool function was preloaded"
    );
    let confused = env.step("It is eight.").await.unwrap();
    assert_eq!((confused.observation.as_str(), confused.done), (retort_agent::env::repl::CODEACT_REMINDER, false));
    let solved = env.step("<solution>8</solution>").await.unwrap();
    assert_eq!((solved.reward, solved.done), (1.0, true), "{}", solved.observation);
}

#[tokio::test]
async fn repl_env_keeps_state_and_checks_the_answer() {
    let sandbox = common::sandbox();
    let task = ReplTask {
        instruction: "Define square(n) and report square(12).".into(),
        setup_code: Some("OFFSET = 0".into()),
        expected_answer: Some("144".into()),
        check_code: Some("assert square(3) == 9 + OFFSET and ANSWER == '144'".into()),
        max_steps: 5,
        max_output_chars: 1000,
        actions: retort_agent::ReplActions::Plain,
    };
    let mut env = ReplEnv::new(sandbox.clone(), task.clone());
    env.reset().await.unwrap();
    let defined = env.step("I will define it.\n```python\ndef square(n):\n    return n * n\n```").await.unwrap();
    assert_eq!((defined.observation.as_str(), defined.done), ("(no output)", false));
    let used = env.step("square(12)").await.unwrap();
    assert_eq!(used.observation, "144");
    let error = env.step("print('before'); 1 / 0").await.unwrap();
    assert!(error.observation.starts_with("before") && error.observation.contains("ZeroDivisionError"), "{}", error.observation);
    let end = env.step("answer: 144").await.unwrap();
    assert_eq!((end.reward, end.done), (1.0, true), "{}", end.observation);

    // A right answer without the function fails the check.
    let mut env = ReplEnv::new(sandbox.clone(), task.clone());
    env.reset().await.unwrap();
    let end = env.step("answer: 144").await.unwrap();
    assert_eq!(end.reward, 0.0);
    assert!(end.observation.contains("the check failed"), "{}", end.observation);

    let mut none = ReplEnv::new(sandbox, ReplTask { expected_answer: None, check_code: None, ..task });
    assert!(none.reset().await.is_err());
}

#[tokio::test]
async fn python_tool_runs_in_the_sandbox() {
    let tool = PythonTool::new(&PythonConfig { max_output_chars: 50, ..PythonConfig::default() }, common::sandbox());
    let registry = ToolRegistry::new().with(std::sync::Arc::new(tool)).unwrap();
    let ok = registry.call("python", &json!({"code": "print(sum(range(10)))"})).await;
    assert_eq!((ok.observation.as_str(), ok.status), ("status: ok\nstdout:\n45", CallStatus::Ok));
    let err = registry.call("python", &json!({"code": "raise ValueError('nope')"})).await;
    assert!(err.observation.starts_with("status: error") && err.observation.contains("ValueError: nope"), "{}", err.observation);
    let denied = registry.call("python", &json!({"code": "open('/etc/shadow').read()"})).await;
    assert!(denied.observation.starts_with("status: denied"), "{}", denied.observation);
    let long = registry.call("python", &json!({"code": "print('x' * 500)"})).await;
    assert!(long.observation.contains("450 more characters cut"), "{}", long.observation);
    let silent = registry.call("python", &json!({"code": "x = 1"})).await;
    assert!(silent.observation.contains("use print()"), "{}", silent.observation);
}

#[tokio::test]
async fn a_model_plays_the_sqlite_environment() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::shop_db(dir.path());
    let task =
        SqliteTask { database: db, question: "How many melons are in stock?".into(), answer: "7".into(), max_steps: 5, max_rows: 20 };
    let backend = common::scripted(vec![
        common::say(r"stock\n7\z", "answer: 7"),
        common::say(r"Question: How many melons", "SELECT stock FROM products WHERE name = 'melon'"),
    ]);
    let mut env = SqliteEnv::new(task);
    let config = retort_agent::EpisodeConfig { system_prompt: Some("You query databases.".into()), ..Default::default() };
    let trajectory = retort_agent::run_episode(&backend, &mut env, &config).await.unwrap();
    assert_eq!(trajectory.stop_reason, retort_agent::StopReason::FinalAnswer);
    assert_eq!(trajectory.final_answer.as_deref(), Some("7"));
    let rewards: Vec<Option<f64>> = trajectory.steps.iter().map(|s| s.reward).collect();
    assert_eq!(rewards, [Some(0.0), Some(1.0)]);
    // system, question, query, its rows, the answer: the verdict is the last step's
    // observation, not a turn of the conversation.
    assert_eq!(trajectory.messages.len(), 5);
    assert_eq!(trajectory.messages.last().unwrap().content, "answer: 7");
    assert_eq!(trajectory.steps[1].observation, "Correct.");
}

fn dbbench_tasks() -> Vec<serde_json::Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/agenttuning/data/tasks.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|t| t["kind"] == "db").collect()
}

fn db_task(task: &serde_json::Value) -> DbTask {
    let tables: Vec<DbTable> = match &task["table"] {
        serde_json::Value::Array(items) => items.iter().map(|t| serde_json::from_value(t.clone()).unwrap()).collect(),
        one => vec![serde_json::from_value(one.clone()).unwrap()],
    };
    DbTask {
        instruction: task["description"].as_str().unwrap().to_string(),
        tables,
        kind: task["type"][0].as_str().unwrap().to_string(),
        label: task["label"].as_array().unwrap().iter().map(|l| l.as_str().unwrap().to_string()).collect(),
        max_steps: 15,
    }
}

/// Every one of AgentBench's 60 DBBench dev tasks: the gold statement (mutations) or the
/// label (questions) earns reward 1, and doing nothing or a wrong answer earns 0.
#[tokio::test]
async fn dbbench_env_scores_every_dev_task_by_agentbench_s_rules() {
    let tasks = dbbench_tasks();
    assert_eq!(tasks.len(), 60);
    let (mut mutations, mut questions) = (0, 0);
    for task in &tasks {
        let task = db_task(task);
        let mut env = DbEnv::new(task.clone());
        assert_eq!(env.reset().await.unwrap(), task.instruction);
        if task.is_mutation() {
            mutations += 1;
            let run = env.step(&format!("I will insert the row.\nAction: Operation\n```sql\n{}\n```", task.label[0])).await.unwrap();
            assert!(!run.done && run.observation == "[]", "{}: {}", task.label[0], run.observation);
            let done = env.step("Action: Answer\nFinal Answer: [\"done\"]").await.unwrap();
            assert_eq!((done.reward, done.done), (1.0, true), "{}", task.label[0]);
            env.reset().await.unwrap();
            let idle = env.step("Action: Answer\nFinal Answer: [\"done\"]").await.unwrap();
            assert_eq!(idle.reward, 0.0, "an untouched table is not the gold one: {}", task.label[0]);
        } else {
            questions += 1;
            let answer = serde_json::to_string(&task.label).unwrap();
            let right = env.step(&format!("Action: Answer\nFinal Answer: {answer}")).await.unwrap();
            assert_eq!(right.reward, 1.0, "{answer}");
            env.reset().await.unwrap();
            let wrong = env.step("Action: Answer\nFinal Answer: [\"no such value\"]").await.unwrap();
            assert_eq!(wrong.reward, 0.0);
        }
    }
    assert_eq!((mutations, questions), (40, 20));
}

#[tokio::test]
async fn dbbench_env_shows_raw_results_and_refuses_files_and_pragmas() {
    let task = db_task(&dbbench_tasks()[0]);
    let mut env = DbEnv::new(task);
    env.reset().await.unwrap();
    let query = "Action: Operation\n```sql\nSELECT Representative, Title FROM `US Ambassadors and Envoy Extraordinary to Colombia` WHERE `Termination of Mission` = 'June 22, 1889';\n```";
    let seen = env.step(query).await.unwrap();
    assert_eq!(seen.observation, "[('Dabney H. Maury', 'Envoy Extraordinary and Minister Plenipotentiary')]");
    let count = env
        .step("Action: Operation\n```sql\nSELECT COUNT(*) FROM `US Ambassadors and Envoy Extraordinary to Colombia`\n```")
        .await
        .unwrap();
    assert!(count.observation.starts_with("[(") && count.observation.ends_with(",)]"), "{}", count.observation);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("leak.db");
    for sql in [
        format!("ATTACH DATABASE '{}' AS x", file.display()),
        format!("VACUUM INTO '{}'", file.display()),
        "PRAGMA writable_schema = ON".to_string(),
    ] {
        let out = env.step(&format!("Action: Operation\n```sql\n{sql}\n```")).await.unwrap();
        assert!(out.observation.starts_with("Error:"), "{sql}: {}", out.observation);
    }
    assert!(!file.exists(), "no statement may write a file");
    let invalid = env.step("I am not sure what to do.").await.unwrap();
    assert_eq!((invalid.reward, invalid.done), (0.0, true));
    assert!(invalid.observation.contains("no `Action:` line"), "{}", invalid.observation);
}

/// AgentBench's OS convention: `Act: bash` with a block of lines, `Act: answer(...)`.
#[tokio::test]
async fn os_env_reads_agentbench_s_actions() {
    let sandbox = common::sandbox();
    let task = OsTask {
        instruction: "How many lines of server.log contain ERROR?".into(),
        files: BTreeMap::from([("server.log".to_string(), "INFO up\nERROR disk\nERROR net\n".to_string())]),
        setup: Vec::new(),
        check: None,
        expected_answer: Some("2".into()),
        max_steps: 4,
        max_output_chars: 1000,
        actions: OsActions::Agentbench,
    };
    let mut env = OsEnv::new(sandbox.clone(), task.clone());
    assert_eq!(env.reset().await.unwrap(), task.instruction, "the convention is the recipe's system prompt");
    let step = env.step("Think: count them.\n\nAct: bash\n\n```bash\ncd .\ngrep -c ERROR server.log\n```").await.unwrap();
    assert_eq!((step.observation.as_str(), step.done), ("The output of the OS:\n\n2", false));
    let done = env.step("Think: it is 2.\n\nAct: answer(2)").await.unwrap();
    assert_eq!((done.reward, done.done), (1.0, true));
    env.reset().await.unwrap();
    let invalid = env.step("I would count the lines.").await.unwrap();
    assert_eq!((invalid.reward, invalid.done), (0.0, true));
    let cases = [
        ("Act: finish", OsAction::Finish),
        ("Think: x\nAct: answer(the answer)", OsAction::Answer("the answer".into())),
        ("Act: bash\n```bash\nls\n# a comment\nwc -l a\n```", OsAction::Commands(vec!["ls".into(), "wc -l a".into()])),
    ];
    for (reply, want) in cases {
        assert_eq!(read_os_action(reply, OsActions::Agentbench), want, "{reply}");
    }
}
