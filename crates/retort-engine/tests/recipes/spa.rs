//! SPA's mechanics on the scripted backend: the preference between two samples is the implicit
//! reward beta * (log pi - log pi_ref) from two scorings (policy and reference), its confidence is
//! the sigmoid of the extrapolated margin, near-ties are dropped and low-confidence labels smoothed;
//! before the loop, a seed stage trains the policy by DPO on the labelled rows.

use crate::common;

use std::collections::HashMap;

/// Three possible samples. Per-word log-probabilities, policy / reference:
/// "Short answer." -0.5 / -1.0 (totals -1 / -2), "A long and detailed answer here." -0.5 / -1.0
/// (-3 / -6), "Bad answer." -4.0 / -1.0 (-8 / -2), "Fine answer." -0.45 / -1.0 (-0.9 / -2).
/// Implicit rewards (beta 0.1): short 0.1, long 0.3, bad -0.6, fine 0.11. The policy alone
/// prefers "Short answer." to the long one; relative to the reference, the long one wins.
const POLICY: &str = r#####"
- {when: "(?s)assistant: Short answer\\.$", logprob: -0.5}
- {when: "(?s)assistant: A long and detailed answer here\\.$", logprob: -0.5}
- {when: "(?s)assistant: Bad answer\\.$", logprob: -4.0}
- {when: "(?s)assistant: Fine answer\\.$", logprob: -0.45}
- {when: "^user: ", replies: ["Short answer.", "A long and detailed answer here.", "Bad answer.", "Fine answer."]}
"#####;

const REFERENCE: &str = r#####"
- {when: "(?s)assistant: ", logprob: -1.0}
"#####;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn implicit_rewards_decide_and_low_margins_are_dropped_or_smoothed() {
    let dir = tempfile::tempdir().unwrap();
    let set = common::scripted_role(dir.path(), "reference", REFERENCE);
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let ran = common::run_builtin("spa", POLICY, &set, Some(20));
    let reward: HashMap<&str, f64> =
        [("Short answer.", 0.1), ("A long and detailed answer here.", 0.3), ("Bad answer.", -0.6), ("Fine answer.", 0.11)]
            .into_iter()
            .collect();
    let preferences = ran.rows("preferences");
    assert!(!preferences.is_empty());
    let mut labels = Vec::new();
    for row in &preferences {
        let chosen = reward[row["chosen"].as_str().unwrap()];
        let rejected = reward[row["rejected"].as_str().unwrap()];
        assert!(chosen > rejected, "{row:?}");
        let confidence = sigmoid(1.5 * (chosen - rejected));
        assert!((row["confidence"].as_f64().unwrap() - confidence).abs() < 1e-9, "{row:?}");
        assert!(confidence >= 0.55);
        let label = row["label"].as_f64().unwrap();
        assert_eq!(label, if confidence < 0.75 { 0.9 } else { 1.0 });
        labels.push(label);
        // The policy's own log-probability alone would have picked the other answer here.
        if row["rejected"] == "Short answer." {
            assert_eq!(row["chosen"], "A long and detailed answer here.");
        }
    }
    assert!(labels.contains(&0.9) && labels.contains(&1.0), "{labels:?}");
    assert_eq!(ran.data().len(), preferences.len());
    // The labelled rows served the seed stage and left the loop; of the others, identical
    // samples and near-ties (short against fine: margin 0.01) are dropped, with the reason.
    let dropped = ran.dropped();
    let (labelled, dropped): (Vec<_>, Vec<_>) = dropped.iter().partition(|row| row["reason"].as_str().unwrap().contains("labelled"));
    assert_eq!(labelled.len(), LABELLED);
    assert_eq!(dropped.len() + preferences.len(), 20 - LABELLED);
    for row in &dropped {
        let reason = row["reason"].as_str().unwrap();
        assert!(reason.contains("response_a") || reason.contains("confidence >= vars.min_confidence"), "{reason}");
    }
}

/// The labelled rows at the head of `data/prompts.jsonl`.
const LABELLED: usize = 8;

#[test]
fn the_seed_stage_trains_the_policy_on_the_labelled_pairs_before_the_loop_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = common::scripted_role(dir.path(), "reference", REFERENCE);
    set.push("vars.trainer=echo next-model".to_string());
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let ran = common::run_builtin("spa", POLICY, &set, Some(20));
    // The seed pairs: each labelled prompt's human answer over the initial model's own answer.
    let prompts = common::read_jsonl(&common::checkout("recipes").join("spa/data/prompts.jsonl"));
    let seed = common::read_jsonl(&ran.out().join("rounds/train-round-1-seed.jsonl"));
    assert_eq!(seed.len(), LABELLED);
    for (row, source) in seed.iter().zip(&prompts) {
        assert_eq!(source["labelled"], true);
        assert_eq!(row["prompt"], source["prompt"]);
        assert_eq!(row["chosen"], source["gold"]);
        assert!(
            ["Short answer.", "A long and detailed answer here.", "Bad answer.", "Fine answer."]
                .contains(&row["rejected"].as_str().unwrap()),
            "{row:?}"
        );
    }
    assert!(prompts[LABELLED..].iter().all(|row| row["labelled"] == false));
    // The seed stage trained first, so even round 1's samples come from the trained policy.
    let notes = &ran.report.notes;
    assert!(notes[0].starts_with("steps[1].repeat") && notes[0].contains("round 1 trained on 8 rows"), "{notes:?}");
    let records = ran.rows("records");
    let lineage = common::read_jsonl(&ran.out().join("records.lineage.jsonl"));
    assert_eq!(lineage.len(), records.len());
    assert!(records.iter().any(|row| row["round"] == 1));
    for line in &lineage {
        for field in ["response_a", "response_b"] {
            let entry = line["lineage"]
                .as_array()
                .unwrap()
                .iter()
                .find(|entry| entry["field"] == field)
                .unwrap_or_else(|| panic!("{field}: {line:?}"));
            assert_eq!(entry["model"], "next-model", "{field}: {line:?}");
        }
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let dir = tempfile::tempdir().unwrap();
    let set = common::scripted_role(dir.path(), "reference", r#"- {when: ".", reply: "qwerty"}"#);
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let ran = common::run_builtin("spa", r#"- {when: ".", reply: "qwerty"}"#, &set, Some(4));
    // Two identical samples carry no preference: every prompt is dropped, saying why.
    assert!(ran.data().is_empty());
    assert_eq!(ran.dropped().len() + ran.failed().len(), 4);
    for row in ran.dropped().iter().chain(ran.failed().iter()) {
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty());
    }
}
