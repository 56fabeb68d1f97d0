//! MATRIX's mechanics on the scripted backend: the personas of a community act in turn in a
//! simulation; its record becomes a scenario; instructions are conditioned on the scenario;
//! the aligned model's responses are judged, giving SFT (best) and DPO (best vs worst).

use crate::common;

use serde_json::json;

const ROLES: &[&str] = &["agents", "responder"];

const RULES: &str = r#"
- {when: '(?s)^system: You are (\w+), a (\w+) in', reply: '$1 the $2: I do one thing for my goal.'}
- {when: '(?s)^user: Here is a record of a simulation.*Ana the Farmer: I do one thing.*Ben the Teacher: I do one thing.*Chidi the Technician', reply: 'A farming village is in a drought. Ana, a farmer, is losing her crops, Ben teaches children to save water and Chidi must repair the failing pump before the wells run dry.'}
- {when: '(?s)^user: Read this scenario.*drought', times: 1, reply: 'How can a small village share its water fairly during a drought?'}
- {when: '(?s)^user: Read this scenario.*drought', times: 1, reply: 'Which vegetables need the least water in a hot summer?'}
- {when: '^user: How can a small village', times: 1, reply: 'Fix leaks, ration by household and water crops at night.'}
- {when: '^user: How can a small village', times: 1, reply: 'Just wait for the rain.'}
- {when: '^user: Which vegetables', times: 1, reply: 'Beans, chard and squash cope with little water.'}
- {when: '^user: Which vegetables', times: 1, reply: 'Roses.'}
- {when: '(?s)^user: Rate.*Answer: Fix leaks', reply: "Practical.\nScore: 9"}
- {when: '(?s)^user: Rate.*Answer: Just wait', reply: "Unhelpful.\nScore: 2"}
- {when: '(?s)^user: Rate.*Answer: Beans', reply: "Good.\nScore: 8"}
- {when: '(?s)^user: Rate.*Answer: Roses', reply: "Wrong.\nScore: 1"}
"#;

#[test]
fn scenario_grounded_instructions_give_sft_and_dpo() {
    let ran = common::run_recipe("matrix", RULES, ROLES, &[], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 2, "{:?} {:?}", ran.failed(), ran.dropped());
    // The simulation: the three personas acted in turn after the opening, each with its own persona.
    let interaction = records[0]["interaction"].as_array().unwrap();
    let speakers: Vec<_> = interaction.iter().map(|turn| turn["role"].as_str().unwrap()).collect();
    assert_eq!(speakers, vec!["opening", "agent_1", "agent_2", "agent_3", "agent_1", "agent_2", "agent_3"]);
    assert!(interaction[2]["content"].as_str().unwrap().starts_with("Ben the Teacher"));
    // The scenario was written from that record; the instructions from the scenario.
    assert!(records.iter().all(|row| row["scenario"].as_str().unwrap().starts_with("A farming village is in a drought")));
    // DPO: chosen is the response the judge scored highest, rejected the lowest.
    let mut pairs: Vec<_> = ran
        .rows("dpo")
        .iter()
        .map(|row| (row["prompt"].as_str().unwrap().to_string(), row["chosen"].clone(), row["rejected"].clone()))
        .collect();
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        pairs,
        vec![
            (
                "How can a small village share its water fairly during a drought?".to_string(),
                json!("Fix leaks, ration by household and water crops at night."),
                json!("Just wait for the rain.")
            ),
            (
                "Which vegetables need the least water in a hot summer?".to_string(),
                json!("Beans, chard and squash cope with little water."),
                json!("Roses.")
            ),
        ]
    );
    // SFT: the instruction and its best response.
    let sft: Vec<_> = ran.data().iter().map(|row| row["messages"][1]["content"].clone()).collect();
    assert!(sft.contains(&json!("Fix leaks, ration by household and water crops at night.")));
    assert!(sft.contains(&json!("Beans, chard and squash cope with little water.")));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("matrix", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(2));
    assert_eq!(ran.data().len(), 0);
    // A one-word scenario is too short: each community is dropped with the reason.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 2);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("scenario")), "{dropped:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
}
