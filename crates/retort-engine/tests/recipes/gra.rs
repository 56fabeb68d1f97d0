//! GRA's mechanics on the scripted backend: three reviewers score each proposal; the
//! adjudicator is consulted only when they disagree and then decides; agreeing reviewers
//! decide by their mean; duplicates are removed; each role runs on its own model, and the
//! reviewers sample with settings of their own.

use crate::common;

use serde_json::{json, Value};

const ROLES: &[&str] = &["generator", "reviewer_1", "reviewer_2", "reviewer_3", "adjudicator"];

/// Reviewer rules: reviewer N gives `scores[N-1]` to the proposal whose instruction starts with `start`.
fn reviews(start: &str, scores: [u32; 3]) -> String {
    scores
        .iter()
        .enumerate()
        .map(|(index, score)| {
            format!(
                "- {{when: '(?s)^system: You are reviewer {} .*Instruction: {start}', reply: 'Critique by reviewer {}.\n\nScore: {score}'}}\n",
                index + 1,
                index + 1
            )
        })
        .collect()
}

fn adjudication(start: &str, score: u32) -> String {
    format!("- {{when: '(?s)^system: You are the adjudicator.*Instruction: {start}', reply: 'Adjudicated.\n\nScore: {score}'}}\n")
}

fn gra_rules() -> String {
    let mut rules = String::new();
    // Agriculture: accepted by agreement; rejected by agreement; split and rescued by the
    // adjudicator; a duplicate of the first.
    rules += &reviews("Explain crop rotation", [8, 8, 8]);
    rules += &reviews("List three pests", [2, 3, 2]);
    rules += &reviews("Describe soil health", [8, 3, 7]);
    // Biology: split (scores far apart) and rejected by the adjudicator; accepted by agreement.
    rules += &reviews("What is photosynthesis", [7, 7, 2]);
    rules += &reviews("Name two enzymes", [6, 9, 7]);
    // Were the adjudicator asked about an agreed proposal, it would flip the outcome.
    rules += &adjudication("Explain crop rotation", 1);
    rules += &adjudication("List three pests", 10);
    rules += &adjudication("Describe soil health", 9);
    rules += &adjudication("What is photosynthesis", 3);
    rules += &adjudication("Name two enzymes", 1);
    rules += r#"
- {when: "domain of Agriculture", times: 1, reply: "Explain crop rotation to a new farmer.\n\nResponse: Crop rotation means growing different crops on the same field in turns."}
- {when: "domain of Agriculture", times: 1, reply: "List three pests of wheat.\n\nResponse: Aphids, armyworms and Hessian flies attack wheat."}
- {when: "domain of Agriculture", times: 1, reply: "Describe soil health in one paragraph.\n\nResponse: Healthy soil holds water, air, organic matter and living organisms."}
- {when: "domain of Agriculture", times: 1, reply: "Explain crop rotation to a new farmer!\n\nResponse: It is growing different crops on one field over the seasons."}
- {when: "domain of Biology", times: 1, reply: "What is photosynthesis in plants?\n\nResponse: Plants turn light, water and carbon dioxide into sugar and oxygen."}
- {when: "domain of Biology", times: 1, reply: "Name two enzymes of digestion.\n\nResponse: Amylase breaks down starch and pepsin breaks down protein."}
- {when: "domain of Biology", times: 1, reply: "I am sorry, I cannot write that."}
- {when: "domain of Biology", times: 1, reply: "Hi\n\nResponse: ok"}
"#;
    rules
}

#[test]
fn the_adjudicator_decides_only_where_reviewers_disagree() {
    let ran = common::run_recipe("gra", &gra_rules(), ROLES, &["llms.adjudicator.model=adjudicator-model"], Some(2));
    let records = ran.rows("records");
    let mut kept: Vec<(String, Value, Value)> = records
        .iter()
        .map(|row| {
            let first_words: String = row["instruction"].as_str().unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            (first_words, row["decided_by"].clone(), row["final_score"].clone())
        })
        .collect();
    kept.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        kept,
        vec![
            ("Describe soil".to_string(), json!("adjudicator"), json!(9.0)),
            ("Explain crop".to_string(), json!("reviewers"), json!(8.0)),
            ("Name two".to_string(), json!("reviewers"), json!(22.0 / 3.0)),
        ]
    );
    // The adjudicator was asked exactly twice: about the two split proposals.
    let judges: Vec<_> = ran.report.steps.iter().filter(|step| step.kind == "judge").collect();
    assert_eq!(judges.len(), 4);
    assert_eq!(judges[3].requests, 2, "{:?}", judges[3]);
    for row in &records {
        assert_eq!(row["adjudicator_score"].is_null(), row["decided_by"] == json!("reviewers"), "{row:?}");
    }
    // Dropped on purpose: rejected by agreement, rejected by the adjudicator, the duplicate, the too-short one.
    let mut reasons: Vec<String> =
        ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert_eq!(reasons.iter().filter(|reason| reason.starts_with("filter keep")).count(), 3, "{reasons:?}");
    // The proposal without the format failed, with its reason.
    let failed = ran.failed();
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["reason"].as_str().unwrap().contains("expected a match"), "{failed:?}");
    // Each role answered on its own model.
    let lineage = common::read_jsonl(&ran.out().join("data.lineage.jsonl"));
    let adjudicated = lineage
        .iter()
        .flat_map(|line| line["lineage"].as_array().unwrap().iter())
        .find(|entry| entry["field"] == json!("adjudicator_score"))
        .expect("an adjudicated row");
    assert_eq!(adjudicated["model"], json!("adjudicator-model"));
    // The reviewers are independent draws, not clones: each samples with its own settings.
    let reviewer_params: Vec<(Value, Value)> = ["score_1", "score_2", "score_3"]
        .iter()
        .map(|field| {
            let entry = lineage
                .iter()
                .flat_map(|line| line["lineage"].as_array().unwrap().iter())
                .find(|entry| entry["field"] == json!(field))
                .expect("a reviewed row");
            (entry["params"]["temperature"].clone(), entry["params"]["seed"].clone())
        })
        .collect();
    let temperatures: Vec<&Value> = reviewer_params.iter().map(|(temperature, _)| temperature).collect();
    assert_eq!(temperatures, [&json!(0.3), &json!(0.7), &json!(1.0)]);
    assert!(reviewer_params[0].1 != reviewer_params[1].1 && reviewer_params[1].1 != reviewer_params[2].1);
    // The SFT data holds the instruction and the response.
    let data = ran.data();
    assert_eq!(data.len(), 3);
    assert!(data.iter().all(|row| row["messages"][1]["role"] == json!("assistant")));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("gra", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(3));
    assert_eq!(ran.data().len(), 0);
    // Every proposal fails to parse, with the reason; every seed is accounted for.
    assert_eq!(ran.failed().len(), 12);
    assert!(ran.failed().iter().all(|row| row["reason"].as_str().unwrap().contains("expected a match")));
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 3);
}
