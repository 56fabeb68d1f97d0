//! I-SHEEP's mechanics on the scripted backend: new tasks written in context, answered
//! zero-shot, kept only when the model's own assessment reaches the threshold; the kept pairs
//! train the next model and join the pool that seeds the next iteration.

use crate::common;

const RULES: &str = r#####"
- {when: "(?s)Assess your own work.*Answer:\nApple\\.", reply: "Clear task, right answer.\nScore: 9"}
- {when: "(?s)Assess your own work.*Answer:\nMars and Venus\\.", reply: "Correct.\nScore: 8"}
- {when: "(?s)Assess your own work", reply: "Not a haiku.\nScore: 3"}
- {when: "(?s)Task:$", replies: ["Name a fruit.", "List two planets.", "Write a haiku about snow."]}
- {when: "user: Name a fruit\\.$", reply: "Apple."}
- {when: "user: List two planets\\.$", reply: "Mars and Venus."}
- {when: "user: ", reply: "Snow."}
"#####;

#[test]
fn only_self_assessed_pairs_above_the_threshold_are_kept_and_join_the_pool() {
    let limit = 6;
    let ran = common::run_builtin("i-sheep", RULES, &["vars.trainer=echo next-model"], Some(limit));
    let records = ran.rows("records");
    assert!(!records.is_empty());
    for row in &records {
        assert!(row["assessment"].as_f64().unwrap() >= 8.0, "{row:?}");
        let pair = (row["instruction"].as_str().unwrap(), row["output"].as_str().unwrap());
        assert!(matches!(pair, ("Name a fruit.", "Apple.") | ("List two planets.", "Mars and Venus.")), "{pair:?}");
    }
    // The haiku was answered badly, assessed 3, and dropped by the threshold.
    let below: Vec<_> =
        ran.dropped().into_iter().filter(|row| row["reason"].as_str().unwrap().starts_with("filter keep: `assessment")).collect();
    assert!(!below.is_empty());
    assert!(below.iter().all(|row| row["record"]["assessment"] == 3.0 && row["record"]["new_output"] == "Snow."));
    // The SFT export is the kept pairs.
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    assert_eq!(data[0]["messages"][0]["content"], records[0]["instruction"]);
    // Three iterations ran, each trained, and each pool held the seeds plus every pair kept so far.
    let kept = |round: u64| records.iter().filter(|row| row["round"] == round).count() as u64;
    let (k1, k2) = (kept(1), kept(2));
    let sample = ran.report.steps.iter().find(|step| step.kind == "sample").unwrap();
    let limit = limit as u64;
    assert_eq!(sample.records_in, limit + (limit + k1) + (limit + k1 + k2), "kept per round: {k1}, {k2}");
    // Round 1's kept pairs trained the next model; later rounds wrote the same tasks again,
    // which the dedup step (its memory spans rounds) removed, so there was nothing new to train on.
    let notes = &ran.report.notes;
    assert!(notes.iter().any(|note| note.ends_with(&format!("round 1 trained on {k1} rows → model next-model"))), "{notes:?}");
    assert_eq!(notes.iter().filter(|note| note.contains(".train: round")).count(), 3, "{notes:?}");
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("i-sheep", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(4));
    assert_eq!(ran.data().len(), 0);
    let rejected: Vec<_> = ran.dropped().into_iter().chain(ran.failed()).collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected.iter().all(|row| !row["reason"].as_str().unwrap().is_empty()));
    assert_eq!(ran.report.dropped + ran.report.failed, 4);
}
