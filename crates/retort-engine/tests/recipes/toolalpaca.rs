//! ToolAlpaca's mechanics on the scripted backend: documentation and an OpenAPI spec written
//! from a one-line listing (a spec that misses a function dropped), requests, then the three
//! agents (the ReAct assistant, the executor answering from the spec, the user answering
//! getDetails), build_dataset's filters (no step, user only), and the training rows with their
//! trainable flags.

use crate::common;

use serde_json::{json, Value};

fn rules(spec_has_both: bool) -> String {
    let second = if spec_has_both {
        r#", "/pets/{id}": {"get": {"operationId": "getPet", "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}], "responses": {"200": {"description": "ok"}}}}"#
    } else {
        ""
    };
    format!(
        r#"
- when: 'You are documenting a web API'
  reply: '{{"introduction": "AdoptAPet lists pets waiting for adoption in shelters.", "functions": [{{"name": "searchPets", "description": "Search adoptable pets.", "parameters": {{"species": "Required. String. dog or cat", "city": "Optional. String. Where"}}, "output": "A list of pets with ids and names."}}, {{"name": "getPet", "description": "Details of one pet.", "parameters": {{"id": "Required. String. The pet id"}}, "output": "The pet."}}]}}'
- when: 'Turn this API documentation into an OpenAPI'
  reply: '{{"openapi": "3.0.0", "info": {{"title": "AdoptAPet", "version": "1"}}, "paths": {{"/pets": {{"get": {{"operationId": "searchPets", "responses": {{"200": {{"description": "ok"}}}}}}}}{second}}}}}'
- when: 'Write 5 requests that users'
  reply: '["I would like to adopt a dog. What dogs are available?", "Tell me about the pet I saw.", "Please say hello."]'
- when: 'You are simulating the API `searchPets`'
  reply: '{{"pets": [{{"id": "p1", "name": "Rex"}}]}}'
- when: 'You are the person who asked an AI assistant'
  reply: '[User]: It was the pet with id p1. [AI]: thanks'
- when: '(?s)USER_ASKED|Observation: It was the pet'
  reply: "Thought: I have what they meant.\nFinal Answer: I could only find its id, p1."
- when: '(?s)Observation: \{{"pets"'
  reply: "Thought: Found one.\nFinal Answer: Rex (id p1) is a dog available for adoption."
- when: '(?s)user: I would like to adopt a dog'
  reply: "Thought: Search dogs.\nAction: searchPets\nAction Input: {{\"species\": \"dog\"}}"
- when: '(?s)user: Tell me about the pet I saw'
  reply: "Thought: Which pet?\nAction: getDetails\nAction Input: {{\"Question\": \"Which pet do you mean?\"}}"
- when: '(?s)user: Please say hello'
  reply: "Thought: No tool needed.\nFinal Answer: Hello!"
"#
    )
}

#[test]
fn the_three_agents_make_instances_and_build_datasets_filters_apply() {
    let ran = common::run_recipe("toolalpaca", &rules(true), &["executor", "user"], &[], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{:?} {:?}", ran.dropped(), ran.failed());
    assert_eq!(records[0]["request"], "I would like to adopt a dog. What dogs are available?");
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    // The user-only instance (getDetails alone) and the 0-step one are dropped.
    assert_eq!(reasons.iter().filter(|r| r.contains("api_steps >= 1")).count(), 2, "{reasons:?}");
    let data = ran.data();
    assert_eq!(data[0]["trainable"], json!([false, true, false, true]));
    let process: Vec<&str> = data[0]["process"].as_array().unwrap().iter().map(|p| p.as_str().unwrap()).collect();
    assert!(process[0].contains("USER: I would like to adopt a dog") && process[0].ends_with("ASSISTANT Thought: "), "{}", process[0]);
    assert!(process[1].contains("ASSISTANT Action: searchPets") && process[1].contains(r#""species":"dog""#), "{}", process[1]);
    assert!(process[2].starts_with(r#"{"pets":"#), "{}", process[2]);
    assert!(process[3].ends_with("ASSISTANT Response: Rex (id p1) is a dog available for adoption."));
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 1);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 1);
    assert_eq!(common::rows_by_datasets(&ran.out().join("sft.jsonl")), 1);
    // The tool's schema comes from the Required/Optional marks.
    let trajectory = &records[0]["trajectory"];
    let system = trajectory["messages"][0]["content"].as_str().unwrap();
    assert!(system.contains(r#""required":["species"]"#), "{system}");
    // The user agent answered getDetails with the user's part only.
    let user_only = ran.dropped().into_iter().find(|row| row["record"]["request"] == "Tell me about the pet I saw.").unwrap();
    let observation = user_only["record"]["trajectory"]["steps"][0]["observation"].clone();
    assert_eq!(observation, Value::from("It was the pet with id p1."));
}

#[test]
fn a_spec_missing_a_function_is_dropped() {
    let ran = common::run_recipe("toolalpaca", &rules(false), &["executor", "user"], &[], Some(1));
    assert!(ran.rows("records").is_empty());
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("missing_operations")), "{reasons:?}");
}

const EVAL_RULES: &str = r#"
- when: 'You grade how an AI assistant'
  reply: "It answers with the image.\nFinal Response Correctness: Yes"
- when: 'You are simulating the API `getRandomAxolotlImage`'
  reply: '{"url": "https://example.org/axolotl.jpg", "source": "wiki", "description": "A wild axolotl"}'
- when: 'You are simulating the API `searchAxolotlImages`'
  reply: '{"images": []}'
- when: '(?s)Observation: \{"url"'
  reply: "Thought: Done.\nFinal Answer: Here is one: https://example.org/axolotl.jpg"
- when: '(?s)Observation: \{"images"'
  reply: "Thought: Nothing found.\nFinal Answer: I found no pictures."
- when: '(?s)user: Hey, can you show me a random picture'
  reply: "Thought: random image\nAction: getRandomAxolotlImage\nAction Input: {}"
- when: '(?s)user: I.m looking for an axolotl that is wild'
  reply: "Thought: search\nAction: searchAxolotlImages\nAction Input: {\"color\": \"wild\"}"
"#;

#[test]
fn the_simulated_evaluation_checks_golden_actions_and_judges_the_response() {
    let path = common::checkout("evals/toolalpaca/simulated.yaml");
    let ran = common::run_file_with(&path, EVAL_RULES, &["executor", "user", "judge"], &[], Some(2));
    let records = ran.rows("records");
    assert_eq!(records.len(), 2, "{:?}", ran.failed());
    assert_eq!(records[0]["procedure"], true);
    assert_eq!(records[0]["response"], true);
    // searchAxolotlImages has no required parameters in its spec: the call is enough.
    assert_eq!(records[1]["procedure"], true, "{:?}", records[1]["missed"]);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["procedure"], 1.0, "{metrics}");
    assert_eq!(metrics["overall"]["both"], 1.0, "{metrics}");
}
