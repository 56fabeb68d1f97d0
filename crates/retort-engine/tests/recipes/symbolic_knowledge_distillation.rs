//! Symbolic Knowledge Distillation's mechanics on the scripted backend: generated events fan out
//! over the ATOMIC relations, sampled inferences become (head, relation, tail) triples, and the
//! critic, a classifier trained on labelled triples, removes those it finds unlikely acceptable.

use crate::common;

use serde_json::json;

/// Two valid events; every inference is sensible except xReact's, which is word salad.
const RULES: &str = r#####"
- {when: "(?s)list of everyday events", reply: "PersonX plants a tree\n7. PersonX calls PersonY\n8. a cat sleeps\n9. PersonX plants a tree"}
- {when: "(?s)complete the sentence.*\nAs a result, PersonX feels:$", reply: "the the and"}
- {when: "(?s)complete the sentence.*\nBecause of this, PersonX wanted:$", reply: "to be kind"}
- {when: "(?s)complete the sentence.*\nBefore this, PersonX needed:$", reply: "to buy seeds"}
- {when: "(?s)complete the sentence.*\nPersonX is seen as:$", reply: "helpful"}
- {when: "(?s)complete the sentence.*\nAs a result, PersonX:$", reply: "gets dirty hands"}
- {when: "(?s)complete the sentence.*\nAfter this, PersonX wants:$", reply: "to rest"}
- {when: "(?s)complete the sentence", reply: "it rains all day"}
"#####;

#[test]
fn events_fan_out_over_relations_and_a_trained_critic_filters_triples() {
    let ran = common::run_builtin("symbolic-knowledge-distillation", RULES, &[], Some(1));
    // The critic learned from the labelled file and was scored on the held-out one.
    let critic: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("critic.json")).unwrap()).unwrap();
    assert_eq!(critic["train_file"], json!("critic_train.jsonl"));
    assert_eq!((critic["train_examples"].as_u64(), critic["eval_examples"].as_u64()), (Some(336), Some(84)));
    let accuracy = critic["accuracy"].as_f64().unwrap();
    assert!(accuracy > critic["majority_baseline"].as_f64().unwrap(), "{critic}");
    assert!(ran.report.notes.iter().any(|note| note.contains("336 labelled examples of critic_train.jsonl")), "{:?}", ran.report.notes);
    // Two valid, distinct events × seven relations, each triple with the critic's probability.
    let records = ran.rows("records");
    let dropped = ran.dropped();
    let by_critic: Vec<_> = dropped.iter().filter(|row| row["reason"].as_str().unwrap().contains("critic_score")).collect();
    assert_eq!(records.len() + by_critic.len(), 14, "{records:?}");
    let heads: std::collections::BTreeSet<_> = records.iter().map(|row| row["head"].as_str().unwrap().to_string()).collect();
    assert_eq!(heads.into_iter().collect::<Vec<_>>(), vec!["PersonX calls PersonY", "PersonX plants a tree"]);
    for row in &records {
        assert!(row["critic_score"].as_f64().unwrap() >= 0.5, "{row:?}");
        assert_eq!(row["critic_label"], "accept");
    }
    for row in &by_critic {
        assert!(row["record"]["critic_score"].as_f64().unwrap() < 0.5, "{row:?}");
    }
    // The word salad is what the critic learned to reject; most sensible inferences pass.
    assert!(by_critic.iter().any(|row| row["record"]["relation"] == json!("xReact")), "{by_critic:?}");
    assert!(records.iter().all(|row| row["relation"] != json!("xReact")), "{records:?}");
    assert!(records.len() >= 8, "{} of 12 sensible triples kept", records.len());
    // Identical samples and events were deduplicated; the event without PersonX was filtered.
    let reasons: Vec<&str> = dropped.iter().map(|row| row["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.iter().filter(|reason| reason.starts_with("dedup")).count(), 1 + 14, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|reason| reason.contains("'PersonX' in event")).count(), 1);
    assert!(ran.failed().is_empty());
    // The student's SFT data: event and relation phrase → inference.
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    assert!(data.iter().all(|row| row["messages"][0]["content"].as_str().unwrap().starts_with("PersonX ")));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("symbolic-knowledge-distillation", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(2));
    assert!(ran.data().is_empty());
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("'PersonX' in event")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
