//! A run against a hostile server and an impatient user: each test names the defect it guards
//! against (issue 11). The mock server injects the faults deterministically.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{lines, quickstart_dir, retort, run_args, Mock, RETORT};
use retort_backends::ScriptRule;
use retort_mock::{Faults, MockConfig};

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn wait_for(what: &str, deadline: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Regression: `retort run NAME --base-url URL --model M` failed for every built-in recipe
/// (`llm.base_url: unknown key`), because the recipes say `backend: local` and the flag did
/// not switch the backend. Every built-in now runs against a server this way, and the summary
/// says which backend and model answered.
#[test]
fn every_builtin_recipe_runs_against_a_server_by_base_url() {
    let mock = Mock::start(0);
    let url = mock.server().url();
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = String::from_utf8(retort(dir.path(), &["recipes"]).stdout)
        .unwrap()
        .lines()
        .map(|line| line.split('\t').next().unwrap().to_string())
        .collect();
    assert!(names.len() >= 24, "{names:?}");
    let mut problems = Vec::new();
    for name in &names {
        let before = mock.server().count();
        let out = format!("runs/{name}");
        let output =
            retort(dir.path(), &["run", name, "--out", &out, "--base-url", &url, "--model", "served-model", "--limit", "2", "--quiet"]);
        let text = stderr(&output);
        // 3: every record of some step failed, which a hash-answering server may well cause.
        if !matches!(output.status.code(), Some(0 | 3)) {
            problems.push(format!("{name}: exit {:?}: {text}", output.status.code()));
            continue;
        }
        if !text.contains(&format!("answered by default: openai `served-model` at {url}")) {
            problems.push(format!("{name}: the summary does not say who answered: {text}"));
        }
        if mock.server().count() == before {
            // A recipe that starts by scoring text (Toolformer) cannot run on a chat server: each
            // record must fail saying so, and nothing is sent.
            let failed = std::fs::read_to_string(dir.path().join(&out).join("failed.jsonl")).unwrap_or_default();
            if !failed.contains("cannot score") {
                problems.push(format!("{name}: sent nothing to the server"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Regression: two `retort run` on one `--out` at once both paid for every request and wrote
/// broken lines into one `data.jsonl`. The second now refuses, naming the first.
#[test]
fn a_second_run_on_the_same_directory_refuses_and_names_the_first() {
    let mock = Mock::start(100);
    let url = mock.server().url();
    let dir = quickstart_dir(30);
    let mut args = run_args(&url, &[]);
    args.extend_from_slice(&["--set", "llm.max_concurrency=4"]);
    let mut first = Command::new(RETORT).args(&args).current_dir(dir.path()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("the first run's requests", Duration::from_secs(20), || mock.server().count() > 0);
    let second = retort(dir.path(), &args);
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    let text = stderr(&second);
    assert!(text.contains("is in use by another retort run (pid ") && text.contains(&first.id().to_string()), "{text}");
    let status = retort(dir.path(), &["status", "out"]);
    assert!(String::from_utf8_lossy(&status.stdout).contains(&format!("running (pid {}", first.id())), "{status:?}");
    assert!(first.wait().unwrap().success());
    assert_eq!(lines(&dir.path().join("out/data.jsonl")).len(), 30);
    assert_eq!(mock.server().count(), 60, "every request was paid for once");
}

/// Regression: `retort status` said "running" forever after a `kill -9`; and a stale lock of a
/// killed run must not block the next run.
#[test]
fn status_tells_a_killed_run_and_the_next_run_is_not_blocked() {
    let mock = Mock::start(200);
    let url = mock.server().url();
    let dir = quickstart_dir(40);
    let mut child = Command::new(RETORT).args(run_args(&url, &[])).current_dir(dir.path()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("some answers", Duration::from_secs(20), || mock.server().count() > 5);
    child.kill().unwrap();
    child.wait().unwrap();
    let status = retort(dir.path(), &["status", "out"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("dead: stopped without finishing"), "{text}");
    let resumed = retort(dir.path(), &run_args(&url, &[]));
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(String::from_utf8_lossy(&retort(dir.path(), &["status", "out"]).stdout).contains(": completed"));
}

/// Regression: a second Ctrl-C printed "answers received so far are kept" and exited, losing
/// the answers not yet committed. Now it stops at once and still commits every answer.
#[test]
fn a_second_ctrl_c_stops_at_once_and_keeps_every_answer() {
    let mock = Mock::start(300);
    let url = mock.server().url();
    let dir = quickstart_dir(200);
    let mut args = run_args(&url, &[]);
    args.extend_from_slice(&["--grace", "60", "--set", "llm.hedge=false"]);
    let mut child = Command::new(RETORT).args(&args).current_dir(dir.path()).stderr(Stdio::null()).spawn().unwrap();
    wait_for("answers", Duration::from_secs(20), || mock.server().count() > 80);
    // The mock logs an answer when it starts its 300 ms wait: these have all reached retort
    // 400 ms later.
    let answered: HashSet<String> =
        mock.server().requests().iter().filter(|request| request.status == 200).map(|request| request.key.clone()).collect();
    std::thread::sleep(Duration::from_millis(400));
    let pid = child.id().to_string();
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let stopped = Instant::now();
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(stopped.elapsed() < Duration::from_secs(10), "stopped at once, not after the 60 s grace");
    let resume_from = mock.server().requests().len();
    let resumed = retort(dir.path(), &args);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let again = mock.server().requests()[resume_from..].iter().filter(|request| answered.contains(&request.key)).count();
    assert_eq!(again, 0, "answers that arrived before the second Ctrl-C were asked for again");
}

/// Regression: a run in which every record failed ended with exit status 0.
#[test]
fn a_run_where_every_record_failed_exits_3_and_says_so() {
    let rule = ScriptRule { when: "(?s).".into(), error: Some("bad_request".into()), ..ScriptRule::default() };
    let mock = Mock::with(MockConfig { rules: vec![rule], ..MockConfig::default() });
    let url = mock.server().url();
    let dir = quickstart_dir(3);
    let output = retort(dir.path(), &run_args(&url, &[]));
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert!(stderr(&output).contains("every record failed in steps[1].generate: 3 of 3 records failed"), "{}", stderr(&output));
    // A threshold the user sets: a run with no failures passes it.
    let clean = Mock::start(0);
    let url = clean.server().url();
    let dir = quickstart_dir(3);
    let output = retort(dir.path(), &run_args(&url, &["--max-failed", "0"]));
    assert!(output.status.success(), "{}", stderr(&output));
}

/// Regression: a key in `--base-url` (`https://user:KEY@host/...`, `?api-key=KEY`) was written to
/// failed.jsonl, the dataset card, run.sqlite and stderr.
#[test]
fn credentials_in_the_base_url_never_reach_outputs_or_logs() {
    let rule = ScriptRule { when: "topic 1\\b".into(), error: Some("bad_request".into()), ..ScriptRule::default() };
    let mock = Mock::with(MockConfig { rules: vec![rule], ..MockConfig::default() });
    let address = mock.server().addr();
    let url = format!("http://user:sk-USERINFO-SECRET@{address}/v1?api-key=sk-QUERY-SECRET");
    let dir = quickstart_dir(3);
    let output = retort(dir.path(), &run_args(&url, &[]));
    assert!(output.status.success(), "{}", stderr(&output));
    let failed = lines(&dir.path().join("out/failed.jsonl"));
    assert_eq!(failed.len(), 1, "the failure is reported, with its URL redacted: {failed:?}");
    assert!(failed[0].contains("[redacted]@"), "{}", failed[0]);
    let logs = stderr(&output);
    for secret in ["sk-USERINFO-SECRET", "sk-QUERY-SECRET"] {
        assert!(!logs.contains(secret), "stderr shows {secret}: {logs}");
        for entry in walk(&dir.path().join("out")) {
            let bytes = std::fs::read(&entry).unwrap();
            assert!(!bytes.windows(secret.len()).any(|window| window == secret.as_bytes()), "{secret} is in {}", entry.display());
        }
    }
    assert!(logs.contains("at http://[redacted]@"), "{logs}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Regression: a record failed by a transient fault was never retried: the next run said
/// "up to date". `--retry-failed` sends again only what failed.
#[test]
fn retry_failed_sends_again_only_what_failed() {
    let rule = ScriptRule { when: "topic 2\\b".into(), error: Some("server".into()), times: Some(1), ..ScriptRule::default() };
    let mock = Mock::with(MockConfig { rules: vec![rule], ..MockConfig::default() });
    let url = mock.server().url();
    let dir = quickstart_dir(5);
    let args = run_args(&url, &["--set", "llm.max_retries=0"]);
    let first = retort(dir.path(), &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(lines(&dir.path().join("out/data.jsonl")).len(), 4);
    let sent = mock.server().count();
    let again = retort(dir.path(), &args);
    assert!(
        stderr(&again).contains("up to date") && stderr(&again).contains("1 records failed there; --retry-failed"),
        "{}",
        stderr(&again)
    );
    assert_eq!(mock.server().count(), sent);
    let mut retry = args.clone();
    retry.push("--retry-failed");
    let retried = retort(dir.path(), &retry);
    assert!(retried.status.success(), "{}", stderr(&retried));
    // The failed question, then its answer: nothing else is sent.
    assert_eq!(mock.server().count(), sent + 2);
    let rows = lines(&dir.path().join("out/data.jsonl"));
    assert_eq!(rows.len(), 5);
    assert!(rows[2].contains("\"topic\":\"topic 2\""), "order is kept: {rows:?}");
}

/// Regression: empty answers and answers cut by `max_tokens` were accepted, cached and flowed
/// downstream; `finish_reason` was recorded nowhere.
#[test]
fn empty_and_cut_answers_fail_with_their_reason_and_lineage_has_the_finish_reason() {
    let rules = vec![
        ScriptRule { when: "topic 1\\b".into(), reply: Some(String::new()), ..ScriptRule::default() },
        ScriptRule {
            when: "topic 2\\b".into(),
            reply: Some("one two three four five six seven eight nine ten".into()),
            ..ScriptRule::default()
        },
        ScriptRule { when: "(?s).".into(), reply: Some("a short enough answer".into()), ..ScriptRule::default() },
    ];
    let mock = Mock::with(MockConfig { rules, ..MockConfig::default() });
    let url = mock.server().url();
    let dir = quickstart_dir(4);
    let output = retort(dir.path(), &run_args(&url, &["--set", "steps[1].generate.max_tokens=8"]));
    assert!(output.status.success(), "{}", stderr(&output));
    let failed = lines(&dir.path().join("out/failed.jsonl")).join("\n");
    assert!(failed.contains("the model answered with an empty text"), "{failed}");
    assert!(failed.contains("the answer was cut by max_tokens at 8 tokens (finish_reason: length)"), "{failed}");
    assert!(failed.contains("\"raw\":\"one two three four five six seven eight\""), "the cut answer is kept for inspection: {failed}");
    let lineage = lines(&dir.path().join("out/data.lineage.jsonl")).join("\n");
    assert!(lineage.contains("\"finish_reason\":\"stop\""), "{lineage}");
    // The empty answer was not cached: a retry asks again; the cut one was.
    let sent = mock.server().count();
    let retried = retort(dir.path(), &run_args(&url, &["--set", "steps[1].generate.max_tokens=8", "--retry-failed"]));
    assert!(retried.status.success(), "{}", stderr(&retried));
    // Only the empty answer is asked for again (twice: the backend asks once more by itself).
    assert_eq!(mock.server().count(), sent + 2);
}

/// Regression: one request hanging until its timeout stalled the whole run, because output
/// order was kept inside a bounded window. Records now overtake it; the order is restored
/// before the files are written.
#[test]
fn a_hung_request_holds_back_no_other_record() {
    let mock = Mock::with(MockConfig { faults: Faults { hang_first: 1, hang_s: 3.0, ..Faults::default() }, ..MockConfig::default() });
    let url = mock.server().url();
    let dir = quickstart_dir(30);
    let output = retort(dir.path(), &run_args(&url, &["--set", "llm.hedge=false"]));
    assert!(output.status.success(), "{}", stderr(&output));
    // The mock logs a request when it answers: the hung one (the first to arrive) comes after
    // the other 29 records' questions and answers.
    let position = mock.server().requests().iter().position(|request| request.seq == 1).unwrap();
    assert_eq!(position, 58, "58 answers came while the first request hung");
    let topics: Vec<String> = lines(&dir.path().join("out/data.jsonl"))
        .iter()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["topic"].as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..30).map(|index| format!("topic {index}")).collect();
    assert_eq!(topics, expected, "the files keep the input order");
}

/// Regression: a read-only run directory said "unable to open database file", twice.
#[test]
fn an_unwritable_run_directory_says_so_once() {
    let mock = Mock::start(0);
    let url = mock.server().url();
    let dir = quickstart_dir(1);
    std::fs::write(dir.path().join("a-file"), "not a directory").unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o555)).unwrap();
    let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout).unwrap().trim() == "0";
    // Root may write into a read-only directory; a path under a file fails for everyone.
    let outs: Vec<&str> = if root { vec!["a-file/out"] } else { vec!["a-file/out", "locked/out"] };
    for out in outs {
        let mut args = run_args(&url, &[]);
        args[3] = out;
        let output = retort(dir.path(), &args);
        let text = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{out}: {text}");
        assert!(text.contains("cannot") && text.contains(out.split('/').next().unwrap()), "{out}: {text}");
        assert_eq!(text.matches("retort:").count(), 1, "{out}: said once: {text}");
    }
}
