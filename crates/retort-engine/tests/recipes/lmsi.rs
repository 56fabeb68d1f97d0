//! LMSI's mechanics on the scripted backend: eight reasoning paths per unlabelled question, a
//! majority vote on the extracted answers, only the paths that reach the majority are kept
//! (with the vote's confidence), and each kept path becomes training data in four formats.

use crate::common;

use std::collections::{BTreeMap, HashMap};

const RULES: &str = r#####"
- {when: "(?s)A:$", replies: ["3 + 2 = 5. The answer is 5.", "3 x 2 = 6. The answer is 6.", "5 apples. The answer is 5.", "2 + 2 + 1 = 5. The answer is 5.", "It is 7. The answer is 7."]}
"#####;

#[test]
fn only_paths_reaching_the_majority_are_kept_in_four_formats() {
    let ran = common::run_builtin("lmsi", RULES, &[], Some(3));
    // Every path's answer, by question: the kept ones from the records, the others from the drops.
    let mut answers: HashMap<String, Vec<String>> = HashMap::new();
    for row in ran.dropped() {
        let reason = row["reason"].as_str().unwrap();
        if reason.starts_with("vote: answer") {
            let record = &row["record"];
            answers.entry(record["question"].as_str().unwrap().into()).or_default().push(record["predicted"].as_str().unwrap().into());
        }
    }
    let records = ran.rows("records");
    let mut kept: HashMap<String, Vec<&serde_json::Map<String, serde_json::Value>>> = HashMap::new();
    for row in &records {
        if row["format"] == "cot_fewshot" {
            kept.entry(row["question"].as_str().unwrap().into()).or_default().push(row);
        }
    }
    assert_eq!(kept.len(), 3, "three questions, each with a majority");
    for (question, paths) in &kept {
        let majority = paths[0]["majority"].as_str().unwrap();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for answer in answers.get(question).into_iter().flatten() {
            assert_ne!(answer, majority, "a path reaching the majority was dropped");
            *counts.entry(answer.clone()).or_default() += 1;
        }
        for path in paths {
            // A kept path's own answer is the majority.
            assert!(path["response"].as_str().unwrap().ends_with(&format!("The answer is {majority}.")), "{path:?}");
            assert_eq!(path["majority"], majority);
        }
        // The vote's confidence is the majority's share of the eight paths; the rest were dropped.
        let confidence = paths[0]["confidence"].as_f64().unwrap();
        let reached = (confidence * 8.0).round() as usize;
        assert!((confidence - reached as f64 / 8.0).abs() < 1e-9);
        assert_eq!(counts.values().sum::<usize>() + reached, 8, "eight paths per question");
        // The majority has the most votes.
        assert!(counts.values().all(|count| *count <= reached), "{counts:?} against {reached}");
        // Identical paths are kept once; each distinct kept path gives a row in both chain-of-thought formats.
        let of = |format: &str| records.iter().filter(|row| row["question"] == question.as_str() && row["format"] == format).count();
        assert!(paths.len() <= reached);
        assert_eq!(of("cot_zeroshot"), paths.len());
        assert_eq!(of("direct_fewshot"), 1);
        assert_eq!(of("direct_zeroshot"), 1);
    }
    // The SFT rows: the zero-shot chain of thought asks to think step by step; the direct rows answer at once.
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    for row in &data {
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        let response = row["messages"][1]["content"].as_str().unwrap();
        if prompt.ends_with("Let's think step by step.") {
            assert!(response.contains(" = ") || response.contains("apples"));
        }
        assert!(response.contains("The answer is"));
    }
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("lmsi", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(2));
    assert_eq!(ran.data().len(), 0);
    // Every path of both questions failed to give an answer, each with the reason.
    let failed = ran.failed();
    assert_eq!(failed.len(), 16, "{failed:?}");
    assert!(failed.iter().all(|row| row["step"].as_str().unwrap().ends_with("generate") && !row["reason"].as_str().unwrap().is_empty()));
    assert_eq!(ran.report.failed, 16);
}
