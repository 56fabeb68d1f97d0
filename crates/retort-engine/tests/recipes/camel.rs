//! CAMEL's mechanics on the scripted backend: role pairs from the role lists, ideas made specific
//! by the task specifier, then the AI user and AI assistant alternate under their inception
//! prompts until `<CAMEL_TASK_DONE>` or the turn limit; an assistant that flips roles is dropped.

use crate::common;

use serde_json::json;

const RULES: &str = r#####"
- {when: "(?s)List 3 different tasks", reply: "Prepare a budget\n2. Plan taxes\n3. Audit expenses\n4. Hire staff"}
- {when: "(?s)You turn rough task ideas.*complete: (.*?)\\.\nMake the task", reply: "Specified: $1 for a small bakery, as a one-page report"}
# The AI user: done once the budget task got an answer, else one more instruction.
- {when: "(?s)you always instruct me.*Here is the task: Specified: Prepare a budget.*Next request\\.", reply: "<CAMEL_TASK_DONE>"}
- {when: "(?s)you always instruct me", reply: "Instruction: List the next item.\nInput: None"}
# The AI assistant: flips roles on the audit task, else answers.
- {when: "(?s)never give me instructions.*Here is the task: Specified: Audit expenses", reply: "Instruction: Check the receipts yourself."}
- {when: "(?s)never give me instructions", reply: "Solution: Here is the item. Next request."}
"#####;

#[test]
fn agents_role_play_until_done_or_the_turn_limit() {
    let ran = common::run_builtin("camel", RULES, &[], Some(1));
    let records = ran.rows("records");
    // One assistant role × two drawn user roles × the first three ideas, less the two role flips.
    assert_eq!(records.len(), 4, "{records:?}");
    let users: std::collections::BTreeSet<_> = records.iter().map(|row| row["user_role"].as_str().unwrap().to_string()).collect();
    assert_eq!(users.len(), 2);
    for row in &records {
        assert_eq!(row["assistant_role"], json!("Accountant"));
        let roles: Vec<&str> = row["dialogue"].as_array().unwrap().iter().map(|turn| turn["role"].as_str().unwrap()).collect();
        // The AI user speaks first, then they alternate.
        assert!(roles.iter().enumerate().all(|(index, role)| *role == if index % 2 == 0 { "user" } else { "assistant" }), "{roles:?}");
        match row["idea"].as_str().unwrap() {
            "Prepare a budget" => {
                assert_eq!(row["specified_task"], json!("Specified: Prepare a budget for a small bakery, as a one-page report"));
                assert_eq!(row["turns"], json!(3));
                assert_eq!(row["stopped_by"], json!("<CAMEL_TASK_DONE>"));
            }
            "Plan taxes" => {
                assert_eq!(row["turns"], json!(10));
                assert!(row["stopped_by"].is_null());
            }
            other => panic!("unexpected idea {other}"),
        }
    }
    // The role-flipped dialogues are dropped with the reason; the fourth idea was never used.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 2);
    assert!(dropped
        .iter()
        .all(|row| row["reason"].as_str().unwrap().contains("role_flipped") && row["record"]["idea"] == json!("Audit expenses")));
    assert!(ran.failed().is_empty());
    // SFT: the assistant's side, its inception prompt first, ending on its own turn.
    let data = ran.data();
    assert_eq!(data.len(), 4);
    for row in &data {
        let messages = row["messages"].as_array().unwrap();
        assert_eq!(messages[0]["role"], json!("system"));
        let system = messages[0]["content"].as_str().unwrap();
        assert!(system.contains("you are a Accountant and I am a ") && system.contains("Here is the task: Specified: "), "{system}");
        assert_eq!(messages[1], json!({"role": "user", "content": "Instruction: List the next item.\nInput: None"}));
        assert_eq!(messages.last().unwrap()["role"], json!("assistant"));
        assert!(messages.iter().all(|message| !message["content"].as_str().unwrap().contains("<CAMEL_TASK_DONE>")));
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("camel", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(2));
    assert!(ran.data().is_empty());
    // Two assistant roles × two user roles, one "idea" each; a one-word task is not a task.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 4);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("word_count")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
