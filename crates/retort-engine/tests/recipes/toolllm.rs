//! ToolLLM's mechanics on the scripted backend: queries written over sampled APIs, those naming
//! an API that was not sampled dropped, DFSDT backing up after ToolBench's give_up_and_restart
//! and finishing on the sibling told what was tried, the APIs played by a simulator from their
//! documentation, ToolEval's judgments, and rows in ToolBench's `conversations` format. The
//! same queries with one ReAct chain give up and fail.

use crate::common;

use serde_json::Value;

const RULES: &str = r#"
- when: 'You write user requests for an assistant'
  reply: |
    [{"query": "I run a newsletter and want to share a long article link. Which domains can I use for short links, and can you make a short link for https://example.com/articles/2024/long-title?", "related_apis": [["URL Link Shortener", "Get a list of domains"], ["URL Link Shortener", "Create a new link"]]},
     {"query": "I run a newsletter and want to share a long article link. Which domains can I use for short links, and can you make a short link for https://example.com/articles/2024/long-title?", "related_apis": [["URL Link Shortener", "Get a list of domains"], ["URL Link Shortener", "Create a new link"]]},
     {"query": "Please find the weather forecast in Paris and shorten the link to it for me.", "related_apis": [["Weather Tool", "Forecast"], ["URL Link Shortener", "Create a new link"]]},
     {"query": "Shorten it", "related_apis": [["URL Link Shortener", "Create a new link"], ["URL Link Shortener", "Get a list of domains"]]}]
- when: 'You check whether an assistant solved'
  reply: '{"reason": "Both parts are answered from the results.", "answer_status": "Solved"}'
- when: 'You are simulating the API `get_a_list_of_domains_for_url_link_shortener`'
  reply: '{"domains": [{"fullName": "rebrand.ly"}]}'
- when: 'You are simulating the API `create_a_new_link_for_url_link_shortener`'
  reply: '{"shortUrl": "rebrand.ly/nl24"}'
- when: '(?s)Observation: \{"shortUrl"'
  reply: "Thought: I have both results.\nAction: Finish\nAction Input: {\"return_type\": \"give_answer\", \"final_answer\": \"You can use rebrand.ly; your short link is rebrand.ly/nl24.\"}"
- when: '(?s)Observation: \{"domains"'
  reply: "Thought: Now make the link.\nAction: create_a_new_link_for_url_link_shortener\nAction Input: {\"destination\": \"https://example.com/articles/2024/long-title\"}"
- when: '(?s)already tried'
  reply: "Thought: First the domains.\nAction: get_a_list_of_domains_for_url_link_shortener\nAction Input: {}"
- when: "(?s)You are an assistant that solves a user's task"
  reply: "Thought: This looks hard.\nAction: Finish\nAction Input: {\"return_type\": \"give_up_and_restart\"}"
"#;

#[test]
fn dfsdt_backs_up_after_a_give_up_and_the_passing_path_becomes_a_toolbench_conversation() {
    let ran = common::run_recipe("toolllm", RULES, &["simulator", "evaluator"], &[], Some(1));
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|r| r.starts_with("filter keep")), "the unsampled API and the short query are dropped: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("duplicate")), "{reasons:?}");
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{records:?} {reasons:?} {:?}", ran.failed());
    let trajectory = &records[0]["trajectory"];
    let search = &trajectory["search"];
    assert_eq!(search["gave_up"], 1, "{search}");
    let actions: Vec<&str> = trajectory["steps"].as_array().unwrap().iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["get_a_list_of_domains_for_url_link_shortener", "create_a_new_link_for_url_link_shortener", "Finish"]);
    assert_eq!(trajectory["final_answer"], "You can use rebrand.ly; your short link is rebrand.ly/nl24.");
    assert_eq!(records[0]["labels"], "passed passed passed");
    // ToolBench's conversations: system, user, assistant, function, assistant, function, assistant.
    let data = ran.data();
    let turns = data[0]["conversations"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "function", "assistant", "function", "assistant"]);
    let system = turns[0]["value"].as_str().unwrap();
    assert!(system.contains("create_a_new_link_for_url_link_shortener") && system.contains("Finish"), "{system}");
    assert_eq!(turns[3]["value"], r#"{"domains":[{"fullName":"rebrand.ly"}]}"#);
    assert!(turns[6]["value"].as_str().unwrap().contains("give_answer"));
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["pass_rate"], 1.0, "{metrics}");
    assert_eq!(metrics["overall"]["relevant_called"], 1.0, "{metrics}");
    // ToolBench's `conversations` rows load with Hugging Face `datasets`, JSONL and Parquet.
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 1);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 1);
}

#[test]
fn one_react_chain_at_the_same_budget_gives_up_and_fails() {
    let ran = common::run_recipe("toolllm", RULES, &["simulator", "evaluator"], &["vars.search=react"], Some(1));
    assert!(ran.data().is_empty());
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["pass_rate"], 0.0, "{metrics}");
    assert_eq!(metrics["overall"]["answered"], 0.0, "{metrics}");
}

const G2_RULES: &str = r#"
- when: 'You check whether an assistant solved'
  reply: '{"reason": "The postal codes are given but not the transit agencies.", "answer_status": "Unsolved"}'
- when: 'You decide whether a user.s task can be solved'
  reply: '{"reason": "Both tools are there.", "task_status": "Solvable"}'
- when: 'You are simulating the API `il_for_turkey_postal_codes`'
  reply: '{"success": true, "postakodu": [{"plaka": 34, "il": "Istanbul", "ilce": "Adalar", "pk": "34970"}]}'
- when: '(?s)Observation: \{"postakodu"|Observation: \{"success"'
  reply: "Thought: I have the codes.\nAction: Finish\nAction Input: {\"return_type\": \"give_answer\", \"final_answer\": \"Adalar, Istanbul has the postal code 34970.\"}"
- when: "(?s)You are an assistant that solves a user's task"
  reply: "Thought: Postal codes first.\nAction: il_for_turkey_postal_codes\nAction Input: {\"il\": 34}"
"#;

#[test]
fn the_g2_evaluation_scores_pass_rate_and_relevant_api_coverage() {
    let path = common::checkout("evals/toolllm/g2.yaml");
    let ran = common::run_file_with(&path, G2_RULES, &["simulator", "evaluator"], &["vars.search=react"], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{:?}", ran.failed());
    // Solved by none of 3 judgments, and solvable: failed; one of the two relevant APIs called.
    assert_eq!(records[0]["labels"], "failed failed failed");
    assert_eq!(records[0]["passed"], false);
    assert_eq!(records[0]["relevant_called"], false);
    assert_eq!(records[0]["called"], serde_json::json!(["il_for_turkey_postal_codes", "Finish"]));
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["by"]["react, original docs"]["pass_rate"], 0.0, "{metrics}");
    assert_eq!(metrics["overall"]["model_calls"], 2.0, "{metrics}");
    // DRAFT's revised descriptions reach the agent's prompt.
    let ran = common::run_file_with(&path, G2_RULES, &["simulator", "evaluator"], &["vars.search=react", "vars.docs=draft"], Some(1));
    let trajectory = &ran.rows("records")[0]["trajectory"];
    let system = trajectory["messages"][0]["content"].as_str().unwrap();
    let original = "Turkish plates. 1 to 81";
    assert!(!system.contains(original), "{system}");
}
