//! Symbolic Knowledge Distillation's mechanics on the scripted backend: generated events fan out
//! over the ATOMIC relations, sampled inferences become (head, relation, tail) triples, and the
//! critic removes the triples it scores under the threshold.

use crate::common;

use serde_json::json;

const RULES: &str = r#####"
- {when: "(?s)list of everyday events", reply: "PersonX plants a tree\n7. PersonX calls PersonY\n8. a cat sleeps\n9. PersonX plants a tree"}
- {when: "(?s)complete the sentence.*\nAs a result, PersonX feels:$", reply: "banana"}
- {when: "(?s)complete the sentence", reply: "a sensible inference"}
- {when: "(?s)You check commonsense.*PersonX feels: banana", reply: "Nonsense. Score: 1"}
- {when: "(?s)You check commonsense", reply: "Plausible. Score: 5"}
"#####;

#[test]
fn events_fan_out_over_relations_and_the_critic_filters_triples() {
    let ran = common::run_builtin("symbolic-knowledge-distillation", RULES, &[], Some(1));
    let records = ran.rows("records");
    // Two valid, distinct events × the six relations whose inferences the critic accepts.
    assert_eq!(records.len(), 12, "{records:?}");
    let heads: std::collections::BTreeSet<_> = records.iter().map(|row| row["head"].as_str().unwrap().to_string()).collect();
    assert_eq!(heads.into_iter().collect::<Vec<_>>(), vec!["PersonX calls PersonY", "PersonX plants a tree"]);
    let relations: std::collections::BTreeSet<_> = records.iter().map(|row| row["relation"].as_str().unwrap().to_string()).collect();
    assert_eq!(relations.into_iter().collect::<Vec<_>>(), vec!["HinderedBy", "xAttr", "xEffect", "xIntent", "xNeed", "xWant"]);
    assert!(records.iter().all(|row| row["tail"] == json!("a sensible inference") && row["critic_score"] == json!(5.0)));
    // The critic dropped the xReact triples; identical samples and events were deduplicated;
    // the event without PersonX was filtered.
    let dropped = ran.dropped();
    let reasons: Vec<&str> = dropped.iter().map(|row| row["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons.iter().filter(|reason| reason.contains("critic_score")).count(), 2, "{reasons:?}");
    assert!(dropped
        .iter()
        .filter(|row| row["reason"].as_str().unwrap().contains("critic_score"))
        .all(|row| row["record"]["relation"] == json!("xReact")));
    assert_eq!(reasons.iter().filter(|reason| reason.starts_with("dedup")).count(), 1 + 14, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|reason| reason.contains("'PersonX' in event")).count(), 1);
    assert!(ran.failed().is_empty());
    // The student's SFT data: event and relation phrase → inference.
    let data = ran.data();
    assert_eq!(data.len(), 12);
    assert!(data.iter().any(|row| row["messages"][0]["content"] == json!("PersonX plants a tree. Before this, PersonX needed:")));
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
