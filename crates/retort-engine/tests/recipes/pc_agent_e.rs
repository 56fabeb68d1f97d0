//! PC Agent-E's mechanics on the scripted backend, on the desktop run in the sandbox: the
//! task's scripted gold solution is recorded (screens and click(x, y) on the elements' cells)
//! and kept because its checker passes; thoughts are completed step by step, each seeing the
//! ones before it; trajectory boost proposes alternatives at every recorded state, of which the
//! well-formed ones become rows beside the human step.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)^user: You are reconstructing.*The action they took: click\(20, 13\)', reply: "I see the taskbar; dark mode lives in Settings, so I open it."}
- {when: '(?s)^user: You are reconstructing.*Dark mode: \[Off\].*The action they took: click\(3, 3\)', reply: "Settings shows Dark mode: [Off]; I click it to turn it on."}
- {when: '(?s)^user: You are reconstructing.*(dark).*The action they took: finish\(\)', reply: "The title bar says dark, so the task is done."}
- {when: '(?s)^user: You are a computer-use agent.*No previous steps', reply: "Thought: Settings is on the taskbar.\nAction: click(21, 13)"}
- {when: '(?s)^user: You are a computer-use agent.*2\. Thought', reply: "Thought: maybe Files.\nAction: click(11, 13)"}
- {when: '(?s)^user: You are a computer-use agent', replies: ["I am not sure what to do.", "Thought: click the button.\nAction: click(x, y) on the button", "Thought: close.\nAction: click(3, 3)\""]}
- {when: '(?s).*', reply: 'Nothing.'}
"#;

#[test]
fn a_recorded_trajectory_gets_completed_thoughts_and_boosted_alternatives_at_every_step() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("pc-agent-e", RULES, &[], &["steps[0].load.skip=1"], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "failed {:?}", ran.failed());
    let record = &records[0];
    assert_eq!(record["task"], "Turn dark mode on.");
    assert_eq!(record["human_steps"], 3);
    let done = record["steps_done"].as_array().unwrap();
    let actions: Vec<&str> = done.iter().map(|s| s["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["click(20, 13)", "click(3, 3)", "finish()"], "the gold solution, clicked where its labels are");
    assert_eq!(done[1]["thought"], "Settings shows Dark mode: [Off]; I click it to turn it on.");
    // Three proposals per state; those of step 2 have no action, or one the desktop cannot read
    // (`click(x, y) on the button`, a stray quote), and are left out: 6 boosted
    // rows beside 3 human ones.
    assert_eq!(record["boosted"], 6);
    let proposed = |step: usize| -> Vec<String> {
        done[step]["alternatives"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(proposed(0), ["click(21, 13)"; 3]);
    assert!(proposed(1).is_empty());
    assert_eq!(proposed(2), ["click(11, 13)"; 3]);
    assert_eq!(done[0]["alternatives"][0]["thought"], "Settings is on the taskbar.");
    let steps = ran.rows("steps");
    assert_eq!(steps.len(), 9);
    let human: Vec<&serde_json::Map<String, serde_json::Value>> = steps.iter().filter(|r| r["source"] == "human").collect();
    assert_eq!(human.len(), 3);
    assert_eq!(human[1]["response"], "Thought: Settings shows Dark mode: [Off]; I click it to turn it on.\nAction: click(3, 3)");
    // The prompt at step 2 carries step 1's completed thought and shows the screen with its grid.
    let prompt = human[1]["prompt"].as_str().unwrap();
    assert!(
        prompt.contains("1. Thought: I see the taskbar; dark mode lives in Settings, so I open it.\n   Action: click(20, 13)"),
        "{prompt}"
    );
    assert!(prompt.contains(" 3|   Dark mode: [Off]"), "{prompt}");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 9);
}

#[test]
fn the_evaluation_agent_acts_on_the_desktop_until_finish_and_the_checker_decides() {
    common::use_retort_as_sandbox_helper();
    let rules = r#"
- {when: '(?s)Task: Delete the file a\.txt\..*> a\.txt', reply: "Thought: delete it.\nAction: click(3, 10)"}
- {when: '(?s)Task: Delete the file a\.txt\..*   a\.txt', reply: "Thought: select it.\nAction: click(3, 3)"}
- {when: '(?s)Task: Delete the file a\.txt\..* 1\|  Files', reply: "Thought: it is gone.\nAction: finish()"}
- {when: '(?s)Task: Delete the file a\.txt\.', reply: "Thought: Files is on the taskbar.\nAction: click(11, 13)"}
- {when: '(?s).*', reply: "Thought: I give up.\nAction: finish()"}
"#;
    let ran = common::run_file(&common::checkout("evals/pc-agent-e/agent.yaml"), rules, &[], None);
    let records = ran.rows("records");
    assert_eq!(records.len(), 4, "failed {:?}", ran.failed());
    let outcome: Vec<(&str, bool, u64)> = records
        .iter()
        .map(|r| (r["task"].as_str().unwrap(), r["success"].as_bool().unwrap(), r["steps_taken"].as_u64().unwrap()))
        .collect();
    assert!(outcome.contains(&("Delete the file a.txt.", true, 4)), "{outcome:?}");
    assert_eq!(outcome.iter().filter(|(_, success, _)| *success).count(), 1, "finishing at once passes no other checker: {outcome:?}");
}
