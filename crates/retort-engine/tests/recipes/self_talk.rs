//! Self-Talk's mechanics on the scripted backend: a client (persona, goal) and an agent (role,
//! workflow graph in its system prompt) talk until the client ends; a judge scores subgoal
//! completion and workflow adherence; only dialogues good on both are kept, as SFT data from
//! the agent's side.

use crate::common;

use serde_json::json;

const ROLES: &[&str] = &["client", "agent"];

const RULES: &str = r#"
- {when: '(?s)^system: You are a client.*\nassistant: ', reply: 'Great, thank you, that is all I needed. [END]'}
- {when: '(?s)^system: You are a client.*?Your persona: ([A-Za-z ]+)\.', reply: 'Hello, I am a $1 and I need to renew two books.'}
- {when: '(?s)^system: You are a help-desk librarian.*I am a ([A-Za-z ]+) and', reply: 'Welcome, $1. What is your card number? I see no fines, so I renewed your books until next month.'}
- {when: '(?s)^user: Below is a workflow.*I am a Farmer', reply: "All six steps were done.\nCompleted steps: 6"}
- {when: '(?s)^user: Below is a workflow.*I am a Nurse', reply: "Only the greeting and the card number.\nCompleted steps: 2"}
- {when: '(?s)^user: Below is a workflow.*I am a Pilot', reply: "Completed steps: 9"}
- {when: '(?s)^user: An agent.*I am a Farmer', reply: "In order.\nScore: 5"}
- {when: '(?s)^user: An agent.*I am a Nurse', reply: "In order.\nScore: 5"}
- {when: '(?s)^user: An agent.*I am a Pilot', reply: "It left the graph.\nScore: 2"}
"#;

#[test]
fn only_dialogues_that_complete_and_follow_the_workflow_are_kept() {
    let personas = "steps[1].sample={items: [Farmer, Nurse, Pilot], k: 3, into: personas, list: true}";
    let ran = common::run_recipe("self-talk", RULES, ROLES, &[personas], Some(1));
    // Three dialogues (one per persona); only the Farmer's completes enough steps and adheres.
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{records:?}");
    let kept = &records[0];
    assert_eq!(kept["persona"], json!("Farmer"));
    assert_eq!(kept["subgoals_completed"].as_f64(), Some(6.0));
    assert_eq!(kept["completion_rate"].as_f64(), Some(1.0));
    assert_eq!(kept["stopped_by"], json!("[END]"));
    let roles: Vec<_> = kept["dialogue"].as_array().unwrap().iter().map(|turn| turn["role"].clone()).collect();
    assert_eq!(roles, vec![json!("client"), json!("agent"), json!("client")]);
    // Nurse: too few subgoals; Pilot: its count is capped at the workflow's 6 steps, but it left the graph.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 2);
    let mut dropped_personas: Vec<_> = dropped.iter().map(|row| row["record"]["persona"].clone()).collect();
    dropped_personas.sort_by_key(|value| value.to_string());
    assert_eq!(dropped_personas, vec![json!("Nurse"), json!("Pilot")]);
    let pilot = dropped.iter().find(|row| row["record"]["persona"] == json!("Pilot")).unwrap();
    assert_eq!(pilot["record"]["subgoals_completed"].as_f64(), Some(6.0));
    // The SFT row is the agent's side: its workflow prompt, the client as user, itself as
    // assistant; the closing client turn is trimmed.
    let data = ran.data();
    assert_eq!(data.len(), 1);
    let messages = data[0]["messages"].as_array().unwrap();
    let shape: Vec<_> = messages.iter().map(|message| message["role"].as_str().unwrap()).collect();
    assert_eq!(shape, vec!["system", "user", "assistant"]);
    let system = messages[0]["content"].as_str().unwrap();
    assert!(system.contains("Step 3: Check the account for overdue fines. Next: step 4 or 5."), "{system}");
    assert!(messages[2]["content"].as_str().unwrap().starts_with("Welcome, Farmer."));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("self-talk", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(2));
    assert_eq!(ran.data().len(), 0);
    // The talk runs to the turn limit; the judge's answer has no count, so every dialogue fails with the reason.
    let failed = ran.failed();
    assert_eq!(failed.len(), 6);
    assert!(failed.iter().all(|row| row["reason"].as_str().unwrap().contains("expected a score")), "{failed:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
}
