//! Self-Rewarding's mechanics on the scripted backend: the model's own 5-point judgments pick
//! the pair, best against worst by the parsed score, and a prompt whose responses all score
//! the same gives no pair.

use crate::common;

use std::collections::HashMap;

/// Rules: new prompts come from a small set; "Say hello." is always answered the same way, any
/// other prompt gets one of four answers whose judged score is fixed by the answer.
const RULES: &str = r#####"
- {when: "(?s)5-point.*Response:\nHello\\.", reply: "It is on topic.\nScore: 2"}
- {when: "(?s)5-point.*Response:\nAnswer A", reply: "Barely relevant.\nScore: 1"}
- {when: "(?s)5-point.*Response:\nAnswer B", reply: "Partly useful.\nScore: 3"}
- {when: "(?s)5-point.*Response:\nAnswer C", reply: "Excellent.\nScore: 5"}
- {when: "(?s)5-point.*Response:\nAnswer D", reply: "Good.\nScore: 4"}
- {when: "(?s)Task \\d+:$", replies: ["Say hello.", "Name three colours of the rainbow.", "Describe rain to a child."]}
- {when: "user: Say hello\\.$", reply: "Hello."}
- {when: "user: ", replies: ["Answer A: no.", "Answer B: red and blue.", "Answer C: red, orange and yellow.", "Answer D: red, green, blue."]}
"#####;

fn score_of(response: &str) -> f64 {
    match &response[..8.min(response.len())] {
        "Answer A" => 1.0,
        "Answer B" => 3.0,
        "Answer C" => 5.0,
        "Answer D" => 4.0,
        _ => 2.0,
    }
}

#[test]
fn pairs_are_best_against_worst_by_the_judged_score() {
    let ran = common::run_builtin("self-rewarding", RULES, &[], Some(12));
    let records = ran.rows("records");
    assert!(!records.is_empty(), "no pairs; dropped: {:?}", ran.dropped());
    // Every candidate that did not make it into a pair, by prompt, with its score.
    let mut others: HashMap<String, Vec<f64>> = HashMap::new();
    let mut no_pair = Vec::new();
    for row in ran.dropped() {
        let reason = row["reason"].as_str().unwrap();
        let record = &row["record"];
        if reason.starts_with("pair: not part of the chosen pair") {
            others.entry(record["new_prompt"].as_str().unwrap().to_string()).or_default().push(record["score"].as_f64().unwrap());
        } else if reason.starts_with("pair: no two candidates differ") {
            no_pair.push(record["new_prompt"].as_str().unwrap().to_string());
        }
    }
    for row in &records {
        let prompt = row["prompt"].as_str().unwrap();
        let (chosen, rejected) = (row["chosen"].as_str().unwrap(), row["rejected"].as_str().unwrap());
        let (best, worst) = (row["chosen_score"].as_f64().unwrap(), row["rejected_score"].as_f64().unwrap());
        // The scores are the parsed judgments of these very responses...
        assert_eq!(best, score_of(chosen), "{row:?}");
        assert_eq!(worst, score_of(rejected), "{row:?}");
        assert!(best > worst, "{row:?}");
        // ...and they are the highest and the lowest among the prompt's four candidates.
        let rest = others.get(prompt).cloned().unwrap_or_default();
        assert_eq!(rest.len(), 2, "four candidates per prompt: {prompt}");
        assert!(rest.iter().all(|score| *score <= best && *score >= worst), "{prompt}: {best} {worst} {rest:?}");
        assert_ne!(prompt, "Say hello.");
    }
    // A prompt whose four answers all scored 2 gives no pair, and says why.
    if records.len() < 3 {
        assert!(no_pair.iter().all(|prompt| prompt == "Say hello."), "{no_pair:?}");
    }
    // The DPO export holds the same pairs.
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    assert_eq!(data[0]["chosen"], records[0]["chosen"]);
    // No trainer: one iteration, and the run says so.
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("self-rewarding", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(4));
    assert_eq!(ran.data().len(), 0);
    let rejected: Vec<_> = ran.dropped().into_iter().chain(ran.failed()).collect();
    assert_eq!(rejected.len() as u64, ran.report.dropped + ran.report.failed);
    assert!(rejected.iter().all(|row| !row["reason"].as_str().unwrap_or_default().is_empty()));
    // Each of the four seeds left with a reason (here: a one-word "task" is not a prompt).
    let mut ids: Vec<String> = rejected.iter().map(|row| row["id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert!(rejected.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep")), "{rejected:?}");
}
