//! SynPO's mechanics on the scripted backend: the prompt generator is trained on the seeds'
//! keywords → instruction, the improver on the current model's answers → gold every
//! iteration; prompts are written by the generator from sampled keywords, the improver's rewrite
//! of the current model's answer is chosen over the initial model's answer, and pairs whose
//! judged preference gap is below the threshold are dropped.

use serde_json::{Map, Value};

use crate::common;

/// The generator echoes the keywords it was given. Two kinds of answer to a written request: a
/// "short draft", improved to a 9, and a "weak draft", improved to a 5; the drafts score 3 and 4.
const RULES: &str = r#####"
- {when: "(?s)Keywords: ([^\n]*)\nRequest:$", reply: "Write a short note about $1."}
- {when: "(?s)Draft answer: A short draft", reply: "A complete and clear answer."}
- {when: "(?s)Draft answer: A weak draft", reply: "A slightly better answer."}
- {when: "(?s)Draft answer: ", reply: "An improved seed answer."}
- {when: "(?s)Answer: A complete and clear answer", reply: "Very good. Score: 9"}
- {when: "(?s)Answer: A slightly better answer", reply: "Fine. Score: 5"}
- {when: "(?s)Answer: A short draft", reply: "Weak. Score: 3"}
- {when: "(?s)Answer: A weak draft", reply: "Weak. Score: 4"}
- {when: "^user: Write a short note about", replies: ["A short draft.", "A weak draft."]}
- {when: "^user: ", reply: "My answer to a seed task."}
"#####;

const ROLES: &[&str] = &["generator", "improver"];

fn score(answer: &str) -> f64 {
    match answer {
        "A complete and clear answer." => 9.0,
        "A slightly better answer." => 5.0,
        "A short draft." => 3.0,
        "A weak draft." => 4.0,
        other => panic!("unexpected answer {other:?}"),
    }
}

fn improved(draft: &str) -> &'static str {
    match draft {
        "A short draft." => "A complete and clear answer.",
        "A weak draft." => "A slightly better answer.",
        other => panic!("unexpected draft {other:?}"),
    }
}

/// The model each generated field of a line of lineage came from.
fn model_of<'a>(line: &'a Map<String, Value>, field: &str) -> &'a str {
    let entry = line["lineage"].as_array().unwrap().iter().find(|entry| entry["field"] == field);
    entry.unwrap_or_else(|| panic!("no lineage of {field}: {line:?}"))["model"].as_str().unwrap()
}

#[test]
fn the_improved_answer_of_the_current_model_is_chosen_over_the_initial_models_when_the_gap_is_large_enough() {
    let ran = common::run_recipe("synpo", RULES, ROLES, &[], Some(8));
    let records = ran.rows("records");
    assert!(!records.is_empty());
    for row in &records {
        // The prompt was written around the keywords sampled for it.
        let keywords: Vec<&str> = row["keywords"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(keywords.len(), 3);
        assert_eq!(row["prompt"].as_str().unwrap(), format!("Write a short note about {}.", keywords.join(", ")));
        // The improver rewrote the current model's answer; the gap is to the initial model's.
        let (original, initial) = (row["original"].as_str().unwrap(), row["initial"].as_str().unwrap());
        assert_eq!(row["improved"], improved(original));
        assert_eq!(row["gap"].as_f64().unwrap(), score(improved(original)) - score(initial));
        assert!(row["gap"].as_f64().unwrap() >= 2.0);
    }
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    for (row, record) in data.iter().zip(&records) {
        assert_eq!(row["chosen"], record["improved"]);
        assert_eq!(row["rejected"], record["initial"]);
    }
    // The pairs whose improvement gained less than two points were dropped by the gap filter.
    let dropped = ran.dropped();
    assert!(!dropped.is_empty());
    assert_eq!(dropped.len() + data.len(), 8);
    for row in &dropped {
        assert!(row["reason"].as_str().unwrap().contains("gap >= vars.min_gap"), "{row:?}");
        assert!(row["record"]["gap"].as_f64().unwrap() < 2.0);
    }
    // The generator's and the improver's training rows: keywords → the seed instruction, and
    // the current model's answer to a seed task → its gold answer.
    let seeds = common::read_jsonl(&ran.dir.path().join("recipe/data/seed.jsonl"));
    let generator = common::read_jsonl(&ran.out().join("rounds/train-round-1-generator.jsonl"));
    assert_eq!(generator.len(), 8);
    for (row, seed) in generator.iter().zip(&seeds) {
        let keywords: Vec<&str> = seed["keywords"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        assert!(prompt.ends_with(&format!("Keywords: {}\nRequest:", keywords.join(", "))), "{prompt}");
        assert_eq!(row["messages"][1]["content"], seed["instruction"]);
    }
    let improver = common::read_jsonl(&ran.out().join("rounds/train-round-1-improver.jsonl"));
    assert_eq!(improver.len(), 8);
    for (row, seed) in improver.iter().zip(&seeds) {
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        let instruction = seed["instruction"].as_str().unwrap();
        assert!(prompt.contains(&format!("Request: {instruction}\nDraft answer: My answer to a seed task.")), "{prompt}");
        assert_eq!(row["messages"][1]["content"], seed["output"]);
    }
    // A lower threshold keeps every pair.
    let lenient = common::run_recipe("synpo", RULES, ROLES, &["vars.min_gap=1"], Some(8));
    assert_eq!(lenient.data().len(), 8);
}

#[test]
fn with_a_trainer_the_rejected_answers_stay_with_the_initial_model() {
    let ran = common::run_recipe("synpo", RULES, ROLES, &["vars.trainer=echo next-model"], Some(4));
    let records = ran.rows("records");
    let lineage = common::read_jsonl(&ran.out().join("records.lineage.jsonl"));
    assert_eq!(lineage.len(), records.len());
    let mut later = 0;
    for (line, row) in lineage.iter().zip(&records) {
        // M0 answers the rejected side in every iteration; the current model, trained from
        // round 1 on, the side the improver rewrites; the trained improver and generator serve.
        assert_eq!(model_of(line, "initial"), "scripted", "{line:?}");
        assert_eq!(model_of(line, "original"), if row["round"] == 1 { "scripted" } else { "next-model" }, "{line:?}");
        assert_eq!(model_of(line, "improved"), "next-model");
        assert_eq!(model_of(line, "prompt"), "next-model");
        later += usize::from(row["round"] != 1);
    }
    assert!(later > 0, "{records:?}");
    // Round 1 trained the generator, the improver and the policy.
    let notes = &ran.report.notes;
    assert_eq!(notes.iter().filter(|note| note.contains("round 1 trained on")).count(), 3, "{notes:?}");
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("synpo", r#"- {when: ".", reply: "qwerty"}"#, ROLES, &[], Some(4));
    // A one-word prompt is filtered out: every seed is dropped or failed, with a reason.
    assert!(ran.data().is_empty());
    assert_eq!(ran.dropped().len() + ran.failed().len(), 4);
    for row in ran.dropped().iter().chain(ran.failed().iter()) {
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty());
    }
}
