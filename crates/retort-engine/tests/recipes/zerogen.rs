//! ZeroGen's mechanics on the scripted backend: label-conditioned samples, lightly filtered,
//! train a tiny classifier on the synthetic data alone, scored on the real SST-2 dev set.

use crate::common;

use serde_json::Value;

const RULES: &str = r#"
- when: 'short positive review'
  replies:
    - 'A wonderful, moving and funny film with a great cast.'
    - 'Beautiful, warm and charming; I loved every minute.'
    - 'The best film of the year: smart, funny and touching.'
    - 'A delightful story with brilliant acting and a beautiful score.'
    - 'Great fun, full of heart, and wonderfully acted.'
    - 'An enjoyable, clever and rewarding movie.'
    - 'Good.'
- when: 'short negative review'
  replies:
    - 'A dull, boring and lifeless mess of a movie.'
    - 'Bad acting, a stupid plot and awful dialogue.'
    - 'The worst film I have seen; tedious and pointless.'
    - 'Boring, predictable and far too long.'
    - 'A lazy, ugly and unfunny waste of time.'
    - 'Nothing works: the jokes are flat and the story is dull.'
    - 'Bad.'
"#;

#[test]
fn a_tiny_model_trained_on_synthetic_data_beats_the_majority_class() {
    let ran = common::run_recipe("zerogen", RULES, &[], &[], None);
    let records = ran.rows("records");
    // Labels come from the prompt each text was generated under.
    for row in &records {
        let text = row["text"].as_str().unwrap().to_lowercase();
        let positive = ["wonderful", "beautiful", "best", "delightful", "great", "enjoyable"].iter().any(|word| text.contains(word));
        assert_eq!(row["label"].as_str().unwrap(), if positive { "positive" } else { "negative" }, "{text}");
    }
    // Light filtering: one-word texts and repeats are gone (16 samples per label, at most 6 distinct usable ones).
    assert!(records.len() <= 12 && records.len() >= 4, "{}", records.len());
    let mut texts: Vec<_> = records.iter().map(|row| row["text"].as_str().unwrap().to_string()).collect();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), records.len());
    assert_eq!(ran.dropped().len(), 32 - records.len());
    // The tiny model, trained only on the synthetic rows, is scored on the 872 real dev sentences.
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["train_examples"].as_u64().unwrap() as usize, records.len());
    assert_eq!(metrics["eval_examples"], 872);
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    let baseline = metrics["majority_baseline"].as_f64().unwrap();
    assert!(accuracy > baseline, "accuracy {accuracy} vs majority {baseline}");
    assert!(ran.report.notes.iter().any(|note| note.contains("872 real examples")), "{:?}", ran.report.notes);
}

#[test]
fn the_tiny_model_can_read_minilm_embeddings_instead_of_ngrams() {
    let ran = common::run_recipe("zerogen", RULES, &[], &["steps[6].fit.features=minilm"], None);
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert!(metrics["model"].as_str().unwrap().contains("MiniLM"), "{metrics}");
    assert_eq!(metrics["eval_examples"], 872);
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    let baseline = metrics["majority_baseline"].as_f64().unwrap();
    assert!(accuracy > baseline, "accuracy {accuracy} vs majority {baseline}");
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("zerogen", "- {when: '.', reply: 'qwerty'}\n", &[], &[], None);
    assert_eq!(ran.data().len(), 0);
    let dropped = ran.dropped();
    assert_eq!(dropped.len() + ran.failed().len(), 32);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().starts_with("filter keep")), "{dropped:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
    // Nothing to train on: the run says so instead of reporting an accuracy.
    assert!(ran.report.notes.iter().any(|note| note.contains("no classifier trained")), "{:?}", ran.report.notes);
}
