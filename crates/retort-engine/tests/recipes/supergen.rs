//! SuperGen's mechanics on the scripted backend: class-conditioned samples are ranked by their
//! mean generation log-probability; per label only the k most probable survive, after length
//! filtering and dedup; the kept texts carry their prompt's label, and a classifier trained on
//! them is scored on the real SST-2 dev set.

use crate::common;

use serde_json::{json, Value};

// Each rule answers one request (`times: 1`) with a fixed log-probability per token. The
// negative texts are all less probable than the positive junk: a global ranking would keep the
// junk and lose a negative text; SuperGen's per-label top-k does not.
const RULES: &str = r#"
- {when: 'positive movie review', times: 1, logprob: -0.3, reply: 'A joyful, moving film with a great cast.'}
- {when: 'positive movie review', times: 1, logprob: -0.5, reply: 'I loved every minute of this charming story.'}
- {when: 'positive movie review', times: 1, logprob: -1.0, reply: 'film film good good the the of'}
- {when: 'positive movie review', times: 1, logprob: -0.4, reply: 'A joyful, moving film with a great cast.'}
- {when: 'negative movie review', times: 1, logprob: -1.6, reply: '"A dull, lifeless plot that drags on forever."'}
- {when: 'negative movie review', times: 1, logprob: -2.8, reply: 'bad bad movie movie no no'}
- {when: 'negative movie review', times: 1, logprob: -0.1, reply: 'Bad.'}
- {when: 'negative movie review', times: 1, logprob: -1.7, reply: 'The acting was wooden and the jokes fell flat.'}
"#;

#[test]
fn the_most_probable_samples_per_label_are_kept() {
    let ran = common::run_recipe("supergen", RULES, &[], &["steps[1].generate.n=4", "steps[5].top.k=2"], None);
    let mut kept: Vec<(String, String)> = ran
        .rows("records")
        .iter()
        .map(|row| (row["label"].as_str().unwrap().to_string(), row["text"].as_str().unwrap().to_string()))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        vec![
            ("negative".to_string(), "A dull, lifeless plot that drags on forever.".to_string()),
            ("negative".to_string(), "The acting was wooden and the jokes fell flat.".to_string()),
            ("positive".to_string(), "A joyful, moving film with a great cast.".to_string()),
            ("positive".to_string(), "I loved every minute of this charming story.".to_string()),
        ]
    );
    // The ranking, per label: every kept text is more probable than every text of its label
    // cut by the top-k, and each carries its rank.
    let dropped = ran.dropped();
    let cut: Vec<(String, f64)> = dropped
        .iter()
        .filter(|row| row["reason"].as_str().unwrap().starts_with("top: avg_logprob"))
        .map(|row| (row["record"]["label"].as_str().unwrap().to_string(), row["record"]["avg_logprob"].as_f64().unwrap()))
        .collect();
    let cut_labels: Vec<(&str, i64)> = cut.iter().map(|(label, score)| (label.as_str(), (score * 10.0).round() as i64)).collect();
    assert_eq!(cut_labels, vec![("positive", -10), ("negative", -28)], "{dropped:?}");
    assert!(
        dropped.iter().any(|row| row["reason"] == json!("top: avg_logprob = -2.8 is not among the 2 highest of group \"negative\"")),
        "{dropped:?}"
    );
    for (label, score) in &cut {
        let kept = ran.rows("records");
        let worst_kept =
            kept.iter().filter(|row| row["label"] == json!(label)).map(|row| row["avg_logprob"].as_f64().unwrap()).fold(f64::MAX, f64::min);
        assert!(*score < worst_kept, "{label}: {score} vs {worst_kept}");
    }
    let ranks: Vec<Value> = ran.rows("records").iter().map(|row| row["rank"].clone()).collect();
    assert_eq!(ranks, vec![json!(1), json!(2), json!(1), json!(2)]);
    // Also dropped: the repeat and the too-short text (more probable, but not usable).
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    // SFT: the classification prompt holds the text, the answer is the label it was generated for.
    for row in ran.data() {
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        let label = row["messages"][1]["content"].clone();
        let expected = if prompt.contains("joyful") || prompt.contains("loved") { json!("positive") } else { json!("negative") };
        assert_eq!(label, expected, "{prompt}");
    }
    // The classifier trained on the 4 selected texts, scored on the 872 real dev sentences.
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["train_examples"], 4);
    assert_eq!(metrics["eval_examples"], 872);
    assert!(metrics["accuracy"].as_f64().unwrap() > 0.0);
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("supergen", "- {when: '.', reply: 'qwerty'}\n", &[], &[], None);
    assert_eq!(ran.data().len(), 0);
    // 2 labels x 32 samples: one-word texts fail the length filter (or are repeats), each with its reason.
    let dropped = ran.dropped();
    assert_eq!(dropped.len() + ran.failed().len(), 64);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep")), "{dropped:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
}
