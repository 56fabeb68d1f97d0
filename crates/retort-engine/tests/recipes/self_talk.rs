//! Self-Talk's mechanics on the scripted backend: the agent is prompted turn by turn with the
//! steps it may take now; the step matcher (MiniLM similarity) moves the dialogue along the
//! workflow graph only when the agent's message carries out one of them; subgoal completion is
//! the steps matched; dialogues complete enough and judged adherent are kept, as SFT data from
//! the agent's side.

use crate::common;

use serde_json::json;

const ROLES: &[&str] = &["client", "agent"];

/// The librarian carries out the first step it is offered, word for word, except with the
/// Pilot, where it talks about airplanes; the Nurse leaves after her first message; the others
/// end when the agent says goodbye.
const RULES: &str = r#"
- {when: '(?s)^system: You are a client[^\n]*Your persona: Nurse.*\nassistant: ', reply: 'Sorry, I have to go. [END]'}
- {when: '(?s)^system: You are a client.*\nuser: [^\n]*goodbye[^\n]*$', reply: 'Thanks, bye! [END]'}
- {when: '(?s)^system: You are a client.*?Your persona: ([A-Za-z ]+)\.', reply: 'Hello, I am a $1 and I need to renew two books.'}
- {when: '(?s)^system: You are a help-desk librarian.*I am a Pilot', reply: 'Let me tell you about airplanes and the clouds.'}
- {when: '(?s)^system: You are a help-desk librarian.*Now carry out one of these steps[^\n]*\n- ([^\n]*)\n', reply: '$1'}
- {when: '(?s)^system: You are a help-desk librarian.*Every step is done', reply: 'Have a nice day.'}
- {when: '(?s)^user: An agent.*I am a Pilot', reply: "It left the graph.\nScore: 2"}
- {when: '(?s)^user: An agent', reply: "In order.\nScore: 5"}
"#;

#[test]
fn only_dialogues_whose_steps_the_matcher_found_and_that_follow_the_workflow_are_kept() {
    let personas = "steps[1].sample={items: [Farmer, Nurse, Pilot], k: 3, into: personas, list: true}";
    let ran = common::run_recipe("self-talk", RULES, ROLES, &[personas], Some(1));
    // Three dialogues (one per persona); only the Farmer's completes enough steps and adheres.
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "{records:?}");
    let kept = &records[0];
    assert_eq!(kept["persona"], json!("Farmer"));
    // Greeting, card number, fines, the first branch (no fines), goodbye: the graph's path,
    // each step matched to the message that carried it out.
    assert_eq!(kept["done_steps"], json!([1, 2, 3, 4, 6]));
    assert_eq!(kept["subgoals_completed"].as_f64(), Some(5.0));
    assert_eq!(kept["completion_rate"].as_f64(), Some(5.0 / 6.0));
    assert_eq!(kept["stopped_by"], json!("[END]"));
    let log = kept["step_log"].as_array().unwrap();
    assert_eq!(log.len(), 5);
    assert!(log.iter().all(|entry| entry["advanced"] == json!(true) && entry["similarity"].as_f64().unwrap() > 0.99), "{log:?}");
    let roles: Vec<_> = kept["dialogue"].as_array().unwrap().iter().map(|turn| turn["role"].as_str().unwrap().to_string()).collect();
    assert_eq!(roles, ["agent", "client"].repeat(5));
    // SFT from the agent's side: the whole workflow as system, the cue, then its turns.
    let data = ran.data();
    assert_eq!(data.len(), 1);
    let messages = data[0]["messages"].as_array().unwrap();
    assert!(messages[0]["content"].as_str().unwrap().contains("Step 6: Ask whether there is anything else"));
    assert_eq!(messages[1]["content"], json!("(A client has come to you.)"));
    assert_eq!(messages[2], json!({"role": "assistant", "content": "Greet the client and ask how you can help."}));
    assert_eq!(messages.last().unwrap()["role"], json!("assistant"));
    assert_eq!(messages.len(), 1 + 1 + 9);
    // Nurse: she left after the card number (2 steps); Pilot: after the greeting the agent
    // left the workflow, the matcher found no step in its messages, and the talk ran to the
    // exchange limit.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 2);
    for row in &dropped {
        assert!(row["reason"].as_str().unwrap().contains("vars.min_subgoals"), "{row:?}");
        let record = &row["record"];
        match record["persona"].as_str().unwrap() {
            "Nurse" => assert_eq!(record["done_steps"], json!([1, 2])),
            "Pilot" => {
                assert_eq!(record["done_steps"], json!([1]));
                assert_eq!(record["stopped_by"], json!("max_turns"));
                let log = record["step_log"].as_array().unwrap();
                assert_eq!(log.len(), 8);
                assert!(log[1..].iter().all(|entry| entry["advanced"] == json!(false) && entry["matched"] == json!(2)), "{log:?}");
            }
            other => panic!("unexpected persona {other}"),
        }
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_recipe("self-talk", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(2));
    assert_eq!(ran.data().len(), 0);
    // The talk runs to the exchange limit, the matcher finds no step in "qwerty", and the
    // judge's answer has no score: every dialogue fails with the reason.
    let failed = ran.failed();
    assert_eq!(failed.len(), 6);
    assert!(failed.iter().all(|row| row["reason"].as_str().unwrap().contains("expected a score")), "{failed:?}");
    assert!(
        failed.iter().all(|row| row["record"]["done_steps"] == json!([]) && row["record"]["stopped_by"] == json!("max_turns")),
        "{failed:?}"
    );
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 2);
}
