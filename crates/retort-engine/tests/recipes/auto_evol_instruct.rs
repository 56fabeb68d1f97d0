//! Auto Evol-Instruct's mechanics on the scripted backend: the method's visible steps are
//! parsed for the final rewrite; each instruction of a mini-batch is evolved three times in a
//! row and every rewrite answered; the method text is rewritten from those trajectories, two
//! candidates are compared by their failure rate on dev instructions (failures judged from the
//! rewrites and their answers), the lower one becomes the method, its history is kept, and the
//! final method evolves the whole seed set.

use crate::common;

use serde_json::{json, Value};

const RULES: &str = r#####"
- {when: "(?s)You are an Instruction Rewriter.*Method:\nMethod BAD", reply: "BAD rewrite"}
- {when: "(?s)You are an Instruction Rewriter.*#Instruction#: ([^\n]*)\n", reply: "Step 1 #Methods List#: add a limit\nStep 2 #Plan#: add a word limit\nStep 3 #Rewritten Instruction#: $1 Briefly.\nStep 4 #Finally Rewritten Instruction#: $1 Answer within 50 words."}
- {when: "(?s)list the problems", reply: "Rewrite 3 is not a task: step 3 piles up limits."}
- {when: "(?s)You improve a method", replies: ["Method GOOD: add one constraint.", "Method BAD: copy the instruction."]}
- {when: "(?s)Answer within 50 words\\. Answer within 50 words\\. Answer within 50 words\\.$", reply: "Understood, thank you."}
- {when: ".", reply: "A complete answer to the harder instruction."}
"#####;

#[test]
fn the_method_is_optimized_by_failure_rate_and_then_evolves_the_set() {
    let ran = common::run_builtin("auto-evol-instruct", RULES, &[], None);
    let method = ran.rows("method");
    assert_eq!(method.len(), 1);
    let history = method[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    let mut current = history[0]["method"].as_str().unwrap().to_string();
    assert!(current.starts_with("1. Read the instruction"));
    let (mut compared, mut kept) = (false, false);
    for (index, entry) in history.iter().enumerate() {
        assert_eq!(entry["round"], json!(index + 1));
        // Each round starts from the method the previous round chose.
        assert_eq!(entry["method"], json!(current));
        assert_eq!(entry["feedback"], json!("Rewrite 3 is not a task: step 3 piles up limits."));
        // The trajectories: 4 instructions evolved 3 times in a row, each rewrite answered; a
        // rewrite whose answer only acknowledges is a failure (judged from the response), and a
        // method that skips its steps fails every rewrite.
        let trajectory = entry["trajectory"].as_array().unwrap();
        assert_eq!(trajectory.len(), 12, "{entry}");
        let bad_method = entry["method"].as_str().unwrap().contains("BAD");
        for (position, step) in trajectory.iter().enumerate() {
            assert_eq!(step["item"], json!(position / 3));
            assert_eq!(step["step"], json!(position % 3));
            if position % 3 > 0 {
                assert_eq!(step["instruction"], trajectory[position - 1]["evolved"]);
            }
            let expected = if bad_method {
                json!("the method steps were not shown")
            } else if position % 3 == 2 {
                json!("the answer acknowledges, thanks or refuses instead of doing a task")
            } else {
                Value::Null
            };
            assert_eq!(step["failure"], expected, "{step}");
            if !bad_method {
                assert!(step["steps"].as_str().unwrap().starts_with("Step 1 #Methods List#"));
                assert_eq!(step["evolved"], json!(format!("{} Answer within 50 words.", step["instruction"].as_str().unwrap())));
            }
        }
        let candidates: Vec<&str> = entry["candidates"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        let rates: Vec<f64> = entry["failure_rates"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
        for (candidate, rate) in candidates.iter().zip(&rates) {
            assert_eq!(*rate, if candidate.contains("BAD") { 1.0 } else { 0.0 }, "{entry}");
        }
        // The candidate with the lower failure rate wins (ties keep the first); when both failed
        // on every dev rewrite, the current method stays.
        if rates.iter().all(|rate| *rate >= 1.0) {
            assert_eq!(entry["chosen"], json!("kept"), "{entry}");
            kept = true;
            continue;
        }
        let chosen = if rates[0] <= rates[1] { 0 } else { 1 };
        assert_eq!(entry["chosen"], json!(["a", "b"][chosen]));
        compared |= candidates[0] != candidates[1];
        current = candidates[chosen].to_string();
    }
    assert!(kept, "at least one round had two failing candidates: {history:?}");
    assert!(compared, "at least one round compared two different candidates: {history:?}");
    assert_eq!(method[0]["method"], json!(current));
    assert_eq!(current, "Method GOOD: add one constraint.");
    // The final method evolved every seed instruction (40) with its visible steps, each then
    // answered.
    let records = ran.rows("records");
    assert_eq!(records.len(), 40);
    assert!(records.iter().all(|row| row["method"] == json!(current)
        && row["evolution_steps"].as_str().unwrap().contains("Step 2 #Plan#: add a word limit")
        && row["evolved"] == Value::String(format!("{} Answer within 50 words.", row["instruction"].as_str().unwrap()))));
    assert_eq!(ran.data().len(), 40);
    assert!(ran.failed().is_empty());
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("auto-evol-instruct", r#"- {when: ".", reply: "qwerty"}"#, &[], None);
    // An answer without the method's steps is a failed rewrite: the optimizer's one record
    // survives the rounds instead of failing the whole method search.
    let method = ran.rows("method");
    assert_eq!(method.len(), 1);
    let history = method[0]["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert!(history.iter().all(|entry| entry["failure_rates"] == json!([1.0, 1.0])), "{history:?}");
    // Neither candidate showed anything, so the starting method stays.
    assert!(history.iter().all(|entry| entry["chosen"] == json!("kept")), "{history:?}");
    assert_eq!(method[0]["method"], history[0]["method"]);
    assert!(method[0]["method"].as_str().unwrap().starts_with("1. Read the instruction"));
    // Every evolution of the seed set lacks the steps too: each dropped with the reason.
    assert!(ran.data().is_empty());
    assert!(ran.failed().is_empty());
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 40);
    assert!(
        dropped.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep: `failure is none`")
            && row["record"]["failure"] == json!("the method steps were not shown")),
        "{dropped:?}"
    );
}
