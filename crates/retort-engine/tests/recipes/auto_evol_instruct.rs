//! Auto Evol-Instruct's mechanics on the scripted backend: the method text is rewritten from the
//! failures on a mini-batch, two candidates are compared by their failure rate on dev
//! instructions, the lower one becomes the method, its history is kept, and the final method
//! evolves the whole seed set.

use crate::common;

use serde_json::{json, Value};

const RULES: &str = r#####"
- {when: "(?s)Count the rewrites that failed.*BAD rewrite", reply: "All of them failed. Score: 4"}
- {when: "(?s)Count the rewrites that failed", reply: "None failed. Score: 0"}
- {when: "(?s)Method:\nMethod BAD.*Apply the method", reply: "BAD rewrite\n2. BAD rewrite\n3. BAD rewrite\n4. BAD rewrite"}
- {when: "(?s)Apply the method.*Instructions:\n1\\. ([^\n]*)$", reply: "Harder: $1 Answer within 50 words."}
- {when: "(?s)Apply the method", reply: "Harder one\n2. Harder two\n3. Harder three\n4. Harder four"}
- {when: "(?s)list the failures", reply: "Rewrite 2 barely changed: step 3 is vague."}
- {when: "(?s)You improve a method", replies: ["Method GOOD: add one constraint.", "Method BAD: copy the instruction."]}
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
        assert_eq!(entry["feedback"], json!("Rewrite 2 barely changed: step 3 is vague."));
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
    // The final method evolved every seed instruction (40), each then answered.
    let records = ran.rows("records");
    assert_eq!(records.len(), 40);
    assert!(records.iter().all(|row| row["method"] == json!(current)
        && row["evolved"] == Value::String(format!("Harder: {} Answer within 50 words.", row["instruction"].as_str().unwrap()))));
    assert_eq!(ran.data().len(), 40);
    assert!(ran.failed().is_empty());
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("auto-evol-instruct", r#"- {when: ".", reply: "qwerty"}"#, &[], None);
    // A judgment without a count reads as every rewrite failed: the optimizer's one record
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
    // Every evolved instruction is "qwerty", too short to keep: each dropped with the reason.
    assert!(ran.data().is_empty());
    assert!(ran.failed().is_empty());
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 40);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep")), "{dropped:?}");
}
