//! SuperGen's mechanics on the scripted backend: class-conditioned samples are ranked by their
//! mean generation log-probability; per label only the most probable survive (threshold), after
//! length filtering and dedup; the kept texts carry their prompt's label.

use crate::common;

use serde_json::json;

// Each rule answers one request (`times: 1`) with a fixed log-probability per token.
const RULES: &str = r#"
- {when: 'positive movie review', times: 1, logprob: -0.3, reply: 'A joyful, moving film with a great cast.'}
- {when: 'positive movie review', times: 1, logprob: -0.5, reply: 'I loved every minute of this charming story.'}
- {when: 'positive movie review', times: 1, logprob: -3.0, reply: 'film film good good the the of'}
- {when: 'positive movie review', times: 1, logprob: -0.4, reply: 'A joyful, moving film with a great cast.'}
- {when: 'negative movie review', times: 1, logprob: -0.6, reply: '"A dull, lifeless plot that drags on forever."'}
- {when: 'negative movie review', times: 1, logprob: -2.8, reply: 'bad bad movie movie no no'}
- {when: 'negative movie review', times: 1, logprob: -0.1, reply: 'Bad.'}
- {when: 'negative movie review', times: 1, logprob: -0.7, reply: 'The acting was wooden and the jokes fell flat.'}
"#;

#[test]
fn the_most_probable_samples_per_label_are_kept() {
    let ran = common::run_recipe("supergen", RULES, &[], &["steps[1].generate.n=4"], None);
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
    // The ranking: every kept text is more probable than every text cut by the log-probability filter.
    let dropped = ran.dropped();
    let cut: Vec<f64> = dropped
        .iter()
        .filter(|row| row["reason"].as_str().unwrap().contains("avg_logprob"))
        .map(|row| row["record"]["avg_logprob"].as_f64().unwrap())
        .collect();
    assert_eq!(cut.len(), 2, "{dropped:?}");
    let worst_kept = ran.rows("records").iter().map(|row| row["avg_logprob"].as_f64().unwrap()).fold(f64::MAX, f64::min);
    assert!(cut.iter().all(|score| *score < worst_kept), "{cut:?} vs {worst_kept}");
    // Also dropped: the repeat and the too-short text (more probable, but not usable).
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    // SFT: the classification prompt holds the text, the answer is the label it was generated for.
    for row in ran.data() {
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        let label = row["messages"][1]["content"].clone();
        let expected = if prompt.contains("joyful") || prompt.contains("loved") { json!("positive") } else { json!("negative") };
        assert_eq!(label, expected, "{prompt}");
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("supergen", "- {when: '.', reply: 'qwerty'}\n", &[], &[], None);
    assert_eq!(ran.data().len(), 0);
    // 2 labels x 8 samples: one-word texts fail the length filter (or are repeats), each with its reason.
    let dropped = ran.dropped();
    assert_eq!(dropped.len() + ran.failed().len(), 16);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep")), "{dropped:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
}
