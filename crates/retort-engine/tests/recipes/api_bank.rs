//! API-Bank's level-1 evaluation on the scripted backend: the call the model writes at each
//! API point of a dialogue, scored by exact API name and parameters.

use crate::common;

use serde_json::Value;

const ANSWERS: &str = r#"
- when: 'my username is foo and my password is bar\s*The AI now calls'
  reply: "API-Request: [GetUserToken(username='foo', password='bar')]"
- when: 'let me add the agenda for you'
  reply: "API-Request: [AddAgenda(token='z9x8c7v6b5n4m3q2w1', content='Meeting with the marketing team', time='2021-09-28 14:00', location='Conference room')]"
- when: '.'
  reply: 'Sure, I can help with that.'
"#;

#[test]
fn level_one_calls_are_scored_by_exact_name_and_parameters() {
    let ran = common::run_file(&common::checkout("evals/api-bank/level1.yaml"), ANSWERS, &[], Some(2));
    assert_eq!(ran.column("verdict"), ["correct", "wrong_parameters"], "{:?}", ran.column("why"));
    assert!(ran.column("why")[1].as_str().unwrap().contains("`time` should be"), "{:?}", ran.column("why"));
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["accuracy"], 0.5, "{metrics}");
    assert_eq!(metrics["by"]["correct"]["records"], 1, "{metrics}");
}

const GENERATOR: &str = r#"
- when: 'List 10 different domains'
  reply: '["Banking", "banking", "Library"]'
- when: 'You are designing the APIs'
  reply: '[{"name": "GetUserToken", "description": "Get a token.", "input_parameters": {"username": {"type": "str", "description": "user"}, "password": {"type": "str", "description": "pw"}}, "output_parameters": {"token": {"type": "str", "description": "t"}}}, {"name": "QueryBalance", "description": "The balance.", "input_parameters": {"token": {"type": "str", "description": "t"}}, "output_parameters": {"balance": {"type": "float", "description": "b"}}}]'
- when: 'Write one request from a user'
  reply: 'What is my balance? I am alice and my password is 123.'
- when: 'You test conversations'
  reply: '{"reason": "consistent", "verdict": "pass"}'
- when: '(?s)knows the API it needs:\n- GetUserToken'
  reply: '[{"role": "User", "text": "Log me in: alice, 123."}, {"role": "API", "api_name": "GetUserToken", "param_dict": {"username": "alice", "password": "123"}, "result": {"token": "t1"}}, {"role": "AI", "text": "You are logged in."}]'
- when: '(?s)knows the API it needs:\n- QueryBalance'
  reply: '[{"role": "User", "text": "My balance?"}, {"role": "API", "param_dict": {"token": "t1"}}, {"role": "API", "api_name": "QueryBalance", "param_dict": {"token": "t1", "pin": "0000"}, "result": {"balance": 10.5}}, {"role": "AI", "text": "10.5"}]'
- when: 'plans the steps'
  reply: '[{"role": "User", "text": "My balance? alice, 123."}, {"role": "API", "api_name": "ToolSearcher", "param_dict": {"keywords": "token"}, "result": {"name": "GetUserToken"}}, {"role": "API", "api_name": "GetUserToken", "param_dict": {"username": "alice", "password": "123"}, "result": {"token": "t1"}}, {"role": "API", "api_name": "ToolSearcher", "param_dict": {"keywords": "balance"}, "result": {"name": "QueryBalance"}}, {"role": "API", "api_name": "QueryBalance", "param_dict": {"token": "t1"}, "result": {"balance": 10.5}}, {"role": "AI", "text": "You have 10.5."}]'
"#;

#[test]
fn the_generator_keeps_dialogues_whose_calls_fit_the_apis_and_pass_the_tester() {
    let ran = common::run_recipe("api-bank", GENERATOR, &[], &["steps[7].sample.items=[call]"], Some(1));
    let records = ran.rows("records");
    // Two domains (the repeated one removed), one dialogue each kept: QueryBalance's has a parameter it does not take.
    assert_eq!(records.len(), 2, "{:?}", ran.dropped());
    assert!(records.iter().all(|r| r["api"]["name"] == "GetUserToken"));
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("duplicate")), "{reasons:?}");
    let dropped: Vec<_> = ran
        .dropped()
        .into_iter()
        .filter(|row| row["record"]["call_problems"] == "unknown API (none); QueryBalance takes no pin;")
        .collect();
    assert_eq!(dropped.len(), 2, "{reasons:?}");
    assert_eq!(records[0]["dialogue_text"], "User: Log me in: alice, 123.\nAPI-Request: [GetUserToken(password='123', username='alice')] -> {\"token\":\"t1\"}\nAI: You are logged in.");
    let messages = ran.data()[0]["messages"].as_array().unwrap().clone();
    assert_eq!(messages[2]["content"], "API-Request: [GetUserToken(password='123', username='alice')]");
    assert_eq!(messages[3]["role"], "user");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}

#[test]
fn plan_retrieve_call_dialogues_search_before_each_api() {
    let ran = common::run_recipe("api-bank", GENERATOR, &[], &["steps[7].sample.items=[plan_retrieve_call]"], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 4, "{:?}", ran.dropped());
    let text = records[0]["dialogue_text"].as_str().unwrap();
    assert!(text.contains("API-Request: [ToolSearcher(keywords='token')]"), "{text}");
}
