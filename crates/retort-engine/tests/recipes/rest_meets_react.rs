//! ReST meets ReAct's mechanics on the scripted backend: the Search Agent's state machine
//! (decide → search the local corpus → summarise → decide → answer → relevance and grounding
//! self-checks), where every step's samples are ranked by the ranker and the trajectory goes on
//! with the one it picks; each step becomes a training row (its prompt → the ranked-best output).

use crate::common;

const RULES: &str = r#"
- {when: '(?s)^user: You are rating[^\n]*step \(grounding self-check\)', reply: 'The first is fine.'}
- {when: '(?s)^user: You are rating.*\((\d)\) Search: ftplib RFC', reply: '$1'}
- {when: '(?s)^user: You are rating.*\((\d)\) It is based on RFC 959 \[1\]\.', reply: '$1'}
- {when: '(?s)^user: You are rating', reply: '1'}
- {when: '(?s)^user: You are a search agent answering a question with a search engine.*ftplib.*searches found so far:\n- search "ftplib RFC"', reply: 'Answer'}
- {when: '(?s)^user: You are a search agent answering a question with a search engine.*ftplib', replies: ['I think I know it.', 'Search: ftplib RFC', 'Answer', 'Search: ftp']}
- {when: '(?s)^user: You are a search agent answering a question with a search engine', reply: 'Answer'}
- {when: '(?s)^user: You are a search agent answering a question. Summarise.*Search: ftplib RFC.*\] Python.s ftplib module: An FTP client class', reply: 'ftplib follows RFC 959 by J. Postel and J. Reynolds.'}
- {when: '(?s)^user: You are a search agent. Answer the question.*\[1\] search "ftplib RFC": ftplib follows RFC 959', reply: 'It is based on RFC 959 [1].'}
- {when: '(?s)^user: You are a search agent. Answer the question', reply: 'I do not know.'}
- {when: '(?s)^user: You check a search agent.s answer. Is every fact.*Answer: (.*?)\n', reply: '$1'}
- {when: '(?s)^user: You check a search agent.s answer.*Answer: It is based on RFC 959', replies: ['RFC 854.', 'It is based on RFC 959 [1].']}
- {when: '(?s)^user: You check a search agent.s answer.*Answer: (.*?)\n', reply: '$1'}
- {when: '(?s).*', reply: 'Nothing.'}
"#;

#[test]
fn every_step_continues_with_the_ranked_best_sample_and_becomes_a_training_row() {
    let ran = common::run_recipe("rest-meets-react", RULES, &["ranker"], &[], Some(2));
    let trajectories = ran.rows("trajectories");
    assert_eq!(trajectories.len(), 2, "failed {:?}", ran.failed());
    let ftp = trajectories.iter().find(|t| t["question"].as_str().unwrap().contains("ftplib")).unwrap();
    assert_eq!(ftp["queries"], serde_json::json!(["ftplib RFC"]), "{ftp:?}");
    assert_eq!(ftp["notes"][0]["summary"], "ftplib follows RFC 959 by J. Postel and J. Reynolds.");
    assert_eq!(ftp["answer"], "It is based on RFC 959 [1].", "the ranker kept the grounded answer through both self-checks");
    // A ranker reply with no number keeps the first sample instead of failing the question.
    assert!(ran.failed().is_empty(), "{:?}", ran.failed());
    let stages: Vec<&str> = ftp["steps_log"].as_array().unwrap().iter().map(|s| s["stage"].as_str().unwrap()).collect();
    assert_eq!(stages, ["decide", "summarize", "decide", "answer", "relevance self-check", "grounding self-check"]);
    assert!(ftp["steps_log"].as_array().unwrap().iter().all(|s| s["candidates"] == 4), "4 samples a step");
    // The telnet question is answered without a search: no notes, no summary step.
    let telnet = trajectories.iter().find(|t| t["question"].as_str().unwrap().contains("telnetlib")).unwrap();
    assert_eq!(telnet["searches"], 0);
    assert_eq!(telnet["answer"], "I do not know.");
    // One SFT row per step: 6 + 4, each its step's prompt with the ranked output.
    let data = ran.data();
    assert_eq!(data.len(), 10);
    let records = ran.rows("records");
    let decide = records.iter().find(|r| r["stage"] == "decide" && r["question"].as_str().unwrap().contains("ftplib")).unwrap();
    assert_eq!(decide["response"], "Search: ftplib RFC", "the ranker's pick, not the first sample");
    assert!(decide["prompt"].as_str().unwrap().contains("You have not searched yet."));
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 10);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 10);
}

#[test]
fn the_evaluation_runs_the_same_agent_greedily_on_the_held_out_questions() {
    let rules = r#"
- {when: '(?s)^user: You are a search agent answering a question with a search engine.*searches found so far', reply: 'Answer'}
- {when: '(?s)^user: You are a search agent answering a question with a search engine.*FTP client class', reply: 'Search: ftplib RFC authors'}
- {when: '(?s)^user: You are a search agent answering a question with a search engine', reply: 'Answer'}
- {when: '(?s)^user: You are a search agent answering a question. Summarise', reply: 'RFC 959 is by J. Postel and J. Reynolds.'}
- {when: '(?s)^user: You are a search agent. Answer the question.*RFC 959 is by', reply: 'J. Postel and J. Reynolds [1].'}
- {when: '(?s)^user: You are a search agent. Answer the question', reply: 'I do not know.'}
- {when: '(?s)^user: You check a search agent.s answer.*Answer: (.*?)\n', reply: '$1'}
- {when: '(?s).*', reply: 'Nothing.'}
"#;
    let ran = common::run_file(&common::checkout("evals/rest-meets-react/agent.yaml"), rules, &[], None);
    let records = ran.rows("records");
    assert_eq!(records.len(), 12, "failed {:?}", ran.failed());
    let first = &records[0];
    assert_eq!(first["gold"], "Postel");
    assert_eq!(first["queries"], serde_json::json!(["ftplib RFC authors"]));
    assert_eq!(first["answer"], "J. Postel and J. Reynolds [1].");
    assert!(records[1..].iter().all(|r| r["searches"] == 0 && r["answer"] == "I do not know."));
}
