//! ToolGrad's mechanics on the scripted backend: proposals executed, the selector's pick
//! extending the workflow (a new chain, then the same chain), an iteration whose calls all
//! fail skipped, the query and response written answer-first, ToolEval's judgment, and the
//! model calls counted.

use crate::common;

const RULES: &str = r#"
- when: 'You check whether an assistant solved'
  reply: '{"reason": "It answers from the calls.", "answer_status": "Solved"}'
- when: 'You are simulating the API `get_a_list_of_domains_for_url_link_shortener`'
  reply: '{"domains": [{"fullName": "rebrand.ly", "active": true}]}'
- when: '(?s)You build a workflow.*The workflow so far.*  2\. '
  reply: '[{"function": "no_such_api", "arguments": {}}]'
- when: '(?s)You build a workflow.*The workflow so far'
  reply: '[{"function": "get_a_list_of_domains_for_url_link_shortener", "arguments": {"active": true}, "reason": "only active ones"}]'
- when: '(?s)You build a workflow.*The workflow is empty'
  reply: '[{"function": "no_such_api", "arguments": {}}, {"function": "get_a_list_of_domains_for_url_link_shortener", "arguments": {}, "reason": "start"}]'
- when: '(?s)You improve a workflow.*The workflow is empty'
  reply: '{"critique": "The second call worked.", "id": 0, "which_chain": -1}'
- when: 'You improve a workflow'
  reply: '{"critique": "Narrows the list.", "id": 0, "which_chain": 0}'
- when: 'Write the request a user would have made'
  reply: '{"query": "Which of my branded domains are active for short links?", "response": "rebrand.ly is active."}'
"#;

#[test]
fn the_workflow_grows_by_the_selected_calls_and_the_query_is_written_last() {
    let ran = common::run_recipe("toolgrad", RULES, &["simulator", "evaluator"], &[], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{:?} {:?}", ran.dropped(), ran.failed());
    let chains = records[0]["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 1, "the second pick extends chain 0: {chains:?}");
    let chain = chains[0].as_array().unwrap();
    assert_eq!(chain.len(), 2, "the third iteration's only call failed and was skipped");
    assert_eq!(chain[1]["arguments"]["active"], true);
    assert_eq!(records[0]["query"], "Which of my branded domains are active for short links?");
    // Iterations 1 and 2: proposer, one simulated call, selector, updater; iteration 3: the proposer alone.
    assert_eq!(records[0]["model_calls"], 9);
    assert_eq!(records[0]["passed"], true);
    let turns = ran.data()[0]["conversations"].as_array().unwrap().clone();
    let froms: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
    assert_eq!(froms, ["human", "function_call", "observation", "function_call", "observation", "gpt"]);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 1);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 1);
}
