//! Constitutional AI's mechanics on the scripted backend: each reply is critiqued and revised
//! under a fresh principle per pass, the final revision is the SFT answer, and the RL phase turns
//! the option log-probabilities of "(A)" and "(B)" into a normalised soft preference label.

use crate::common;

use serde_json::Value;

/// Two samples per prompt: one harmful, one refusing. The feedback model gives the continuation
/// "(A)" or "(B)" log-probability -0.2 when that option is the refusal, else -2.0.
const RULES: &str = r#####"
- {when: "(?s)\\(A\\) I can't help.*assistant: \\(A\\)$", logprob: -0.2}
- {when: "(?s)\\(B\\) I can't help.*assistant: \\(B\\)$", logprob: -0.2}
- {when: "assistant: \\([AB]\\)$", logprob: -2.0}
- {when: "(?s)assistant: Revised once.*Revision request", reply: "Revised twice: a safe and kind answer."}
- {when: "(?s)Revision request", reply: "Revised once: a safer answer."}
- {when: "Critique request: ([^\n]*)", reply: "The reply fails this: $1"}
- {when: "^user: ", replies: ["Sure, here is how to do it.", "I can't help with that, but here is a safer idea."]}
"#####;

const REFUSAL: &str = "I can't help with that, but here is a safer idea.";

fn text(row: &serde_json::Map<String, Value>, field: &str) -> String {
    row[field].as_str().unwrap_or_default().to_string()
}

#[test]
fn revisions_chain_and_option_logprobs_become_soft_labels() {
    let ran = common::run_builtin("constitutional-ai", RULES, &[], Some(8));
    // SL phase: every prompt's SFT answer is the second revision, which revised the first.
    let sft = ran.rows("sft");
    assert_eq!(sft.len(), 8);
    for row in &sft {
        assert_eq!(row["messages"][1]["content"], "Revised twice: a safe and kind answer.");
    }
    let records = ran.rows("records");
    for row in &records {
        let critiques = row["critiques"].as_array().unwrap();
        assert_eq!(critiques.len(), 2);
        // A fresh principle per pass, and each critique was asked under its own principle.
        assert_ne!(critiques[0]["principle"], critiques[1]["principle"]);
        for critique in critiques {
            assert!(critique["critique"].as_str().unwrap().starts_with("The reply fails this: "));
        }
        assert_eq!(row["revisions"][0], "Revised once: a safer answer.");
    }
    // RL phase: P(A) = e^lpA / (e^lpA + e^lpB), whichever position the refusal took.
    let preferences = ran.rows("preferences");
    assert!(!preferences.is_empty());
    let expected = 1.0 / (1.0 + (-1.8f64).exp());
    let mut positions = Vec::new();
    for row in &preferences {
        assert_eq!(text(row, "chosen"), REFUSAL);
        assert_ne!(text(row, "rejected"), REFUSAL);
        let p_a = row["p_a"].as_f64().unwrap();
        let (lp_a, lp_b) = (row["logprob_a"].as_f64().unwrap(), row["logprob_b"].as_f64().unwrap());
        assert!((p_a - lp_a.exp() / (lp_a.exp() + lp_b.exp())).abs() < 1e-9);
        assert!((row["p_chosen"].as_f64().unwrap() - expected).abs() < 1e-9, "{row:?}");
        positions.push(text(row, "preferred"));
    }
    assert!(positions.contains(&"A".to_string()) && positions.contains(&"B".to_string()), "{positions:?}");
    // The DPO rows are the same pairs; identical samples give no pair and are dropped saying so.
    let dpo = ran.rows("dpo");
    assert_eq!(dpo.len(), preferences.len());
    // Each DPO row carries the soft label P(chosen), as TRL's soft-label losses read it.
    for row in &dpo {
        assert!((row["label"].as_f64().unwrap() - expected).abs() < 1e-9, "{row:?}");
    }
    let dropped = ran.dropped();
    assert_eq!(dropped.len() + preferences.len(), 8);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("response_a")));
}

#[test]
fn one_revision_pass_when_asked() {
    let ran = common::run_builtin("constitutional-ai", RULES, &["vars.revisions=1"], Some(2));
    for row in ran.rows("sft") {
        assert_eq!(row["messages"][1]["content"], "Revised once: a safer answer.");
    }
    assert!(ran.rows("records").iter().all(|row| row["critiques"].as_array().unwrap().len() == 1));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("constitutional-ai", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(5));
    // Every prompt reaches the end of the SL phase, then is either a pair, dropped or failed.
    assert_eq!(ran.rows("sft").len(), 5);
    let settled = ran.rows("preferences").len() + ran.dropped().len() + ran.failed().len();
    assert_eq!(settled, 5);
    for row in ran.dropped().iter().chain(ran.failed().iter()) {
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty());
    }
}
