//! Agent-FLAN's mechanics on the scripted backend: a ToolBench trajectory aligned to a natural
//! conversation (written reasoning), decomposed into reasoning, retrieval and understanding
//! turns with per-turn loss, and a no-call negative checked by BFCL's irrelevance rule (a
//! negative whose answer calls a function is dropped).

use crate::common;

use serde_json::Value;

fn rules(negative_answer: &str) -> String {
    format!(
        r#"
- when: 'Write the reasoning for each step'
  reply: '["First I list every transit agency.", "Then I look up Gondrand by its id.", "I have all the details now."]'
- when: 'that none of these functions can help with'
  reply: '{{"question": "What is the capital of Australia?", "answer": "{negative_answer}"}}'
"#
    )
}

#[test]
fn a_trajectory_becomes_decomposed_turns_and_a_no_call_negative() {
    let ran = common::run_recipe("agent-flan", &rules("Canberra is the capital of Australia."), &[], &[], Some(1));
    let data = ran.data();
    assert_eq!(data.len(), 2, "{:?} {:?}", ran.dropped(), ran.failed());
    let turns = data[0]["conversations"].as_array().unwrap();
    let froms: Vec<&str> = turns.iter().map(|t| t["from"].as_str().unwrap()).collect();
    assert_eq!(
        froms,
        ["system", "human", "gpt", "gpt", "function_call", "observation", "gpt", "gpt", "function_call", "observation", "gpt", "gpt"]
    );
    assert_eq!(turns[2]["value"], "First I list every transit agency.");
    assert_eq!(turns[3]["value"], "I'll use transitaires_for_transitaires.");
    let call: Value = serde_json::from_str(turns[4]["value"].as_str().unwrap()).unwrap();
    assert_eq!(call["name"], "transitaires_for_transitaires");
    assert_eq!(turns[5]["loss"], false, "observations are context");
    assert_eq!(turns[2]["loss"], true, "reasoning turns are always trained");
    assert_eq!(turns.last().unwrap()["loss"], true);
    assert!(data[0]["tools"].to_string().contains("transitaire_for_transitaires"));
    // The negative: the same functions offered, a plain answer.
    let negative = data[1]["conversations"].as_array().unwrap();
    let froms: Vec<&str> = negative.iter().map(|t| t["from"].as_str().unwrap()).collect();
    assert_eq!(froms, ["system", "human", "gpt"]);
    assert_eq!(negative[1]["value"], "What is the capital of Australia?");
    assert_eq!(ran.rows("negatives")[0]["functions"][0]["name"], "transitaire_for_transitaires");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}

#[test]
fn a_negative_whose_answer_calls_a_function_is_dropped() {
    let ran = common::run_recipe("agent-flan", &rules("transitaires_for_transitaires()"), &[], &[], Some(1));
    assert_eq!(ran.data().len(), 1);
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert!(reasons.iter().any(|r| r.contains("verify")), "{reasons:?}");
}

const IRRELEVANT: &str = r#"
- when: 'area of a triangle'
  reply: 'determine_body_mass_index(weight=10, height=5)'
- when: '(?s)New input: Solve the quadratic'
  reply: "Thought: Do I need to use a tool? No\nAI: The roots are complex."
- when: '.'
  reply: 'None of these functions can do that; the answer is 42.'
"#;

#[test]
fn the_irrelevance_evaluation_counts_answers_without_a_call() {
    let path = common::checkout("evals/irrelevance/bfcl.yaml");
    let ran = common::run_file(&path, IRRELEVANT, &[], Some(3));
    assert_eq!(ran.column("correct"), [Value::from(false), Value::from(true), Value::from(true)]);
    let ran = common::run_file(&path, IRRELEVANT, &["vars.format=gpt4tools", "vars.examples=true"], Some(2));
    assert_eq!(ran.column("correct"), [Value::from(false), Value::from(true)]);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["by"]["gpt4tools, with negatives as examples"]["no_call_accuracy"], 0.5, "{metrics}");
}
