//! MATRIX's mechanics on the scripted backend: the society is clustered by the similarity of its
//! agents' goals, one community per group, anchored by its first member; they act in turn, each seeing
//! only what the modulator routed to it; the log becomes a scenario; instructions are
//! conditioned on the scenario; the aligned model's responses are judged, giving SFT (best) and
//! DPO (best vs worst).

use crate::common;

use serde_json::json;

const ROLES: &[&str] = &["agents", "responder"];

/// A society of six: three with goals about water in a drought, three about a software launch.
const SOCIETY: &str = "steps[1].sample={k: 1000, into: society, items: [\
{name: Ana, role: farmer, profile: grows vegetables, goal: keep her vegetable crops alive through the drought with little water, setting: a village in a drought}, \
{name: Dana, role: software engineer, profile: writes the app, goal: fix the last bugs in the app before the launch, setting: a start-up}, \
{name: Ben, role: teacher, profile: teaches at the school, goal: teach the children how to save water at home and at school, setting: a village in a drought}, \
{name: Eli, role: social media manager, profile: runs the accounts, goal: announce the app launch to as many people as possible, setting: a start-up}, \
{name: Chidi, role: technician, profile: maintains the pumps, goal: repair the old water pump before it fails in the heat, setting: a village in a drought}, \
{name: Farah, role: founder, profile: manages the money, goal: keep the app launch on budget and the team motivated, setting: a start-up}]}";

/// Every action is routed to Ana (and to Zed, who is not in the community).
const RULES: &str = r#"
- {when: '(?s)^user: You are (\w+), a ([a-z ]+) who', reply: '$1 the $2: I do one thing for my goal.'}
- {when: '(?s)^user: You are the modulator', reply: '{"recipients": ["Ana", "Zed"], "outcome": "Something changes."}'}
- {when: '(?s)^user: Here is a record of a simulation.*Ana: Ana the farmer: I do one thing.*Ben: Ben the teacher: I do one thing.*Chidi: Chidi the technician', reply: 'A farming village is in a drought. Ana, a farmer, is losing her crops, Ben teaches children to save water and Chidi must repair the failing pump before the wells run dry.'}
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
fn communities_form_by_goal_similarity_and_the_modulator_routes_what_each_agent_sees() {
    let ran = common::run_recipe("matrix", RULES, ROLES, &[SOCIETY, "vars.communities=2"], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 2, "{:?} {:?}", ran.failed(), ran.dropped());
    // Ana's group of the two: herself and the two others whose goals are about water.
    let mut members: Vec<&str> = records[0]["members"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert_eq!(members[0], "Ana");
    members.sort();
    assert_eq!(members, ["Ana", "Ben", "Chidi"]);
    // The simulation: they acted in turn; every action went to Ana only (Zed is no member, and
    // Ana's own actions reach nobody else), so Ana saw everything and the others only their own.
    let log = records[0]["log"].as_array().unwrap();
    let steps: Vec<(String, Vec<String>, Vec<u64>)> = log
        .iter()
        .map(|entry| {
            (
                entry["actor"].as_str().unwrap().to_string(),
                entry["recipients"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect(),
                entry["saw"].as_array().unwrap().iter().map(|s| s.as_u64().unwrap()).collect(),
            )
        })
        .collect();
    let order: Vec<&str> = steps.iter().map(|(actor, _, _)| actor.as_str()).collect();
    assert_eq!(order.len(), 6);
    assert_eq!(&order[..3], &order[3..]);
    assert_eq!(order[0], "Ana");
    for (actor, recipients, saw) in &steps {
        let expected: Vec<String> = if actor == "Ana" { vec![] } else { vec!["Ana".to_string()] };
        assert_eq!(recipients, &expected, "{actor}");
        let own: Vec<u64> = steps.iter().enumerate().filter(|(_, (a, _, _))| a == actor).map(|(i, _)| i as u64 + 1).collect();
        let visible: Vec<u64> = if actor == "Ana" { (1..=3).collect() } else { own.clone() };
        // What an actor saw when it acted: the visible steps before its turn.
        let turn = steps.iter().position(|(a, _, s)| a == actor && s == saw).unwrap() as u64 + 1;
        let before: Vec<u64> = visible.into_iter().filter(|step| *step < turn).collect();
        assert_eq!(saw, &before, "{actor} at step {turn}");
    }
    assert!(log[1]["action"].as_str().unwrap().ends_with(": I do one thing for my goal."));
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
    let ran = common::run_recipe("matrix", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], None);
    assert_eq!(ran.data().len(), 0);
    // The 36 agents fall into at most 12 groups, one simulation each, anchored by the group's
    // first member (Ana, the first agent, always anchors); the others are members, not
    // anchors, and leave with that reason.
    let dropped = ran.dropped();
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("community[0].name == name")), "{dropped:?}");
    // The modulator's answer is not JSON: each community fails with the reason.
    let failed = ran.failed();
    assert!((2..=12).contains(&failed.len()), "{failed:?}");
    assert_eq!(failed.len() + dropped.len(), 36);
    assert!(failed.iter().all(|row| row["reason"].as_str().unwrap().contains("JSON")), "{failed:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 36);
}
