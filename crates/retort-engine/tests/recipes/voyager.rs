//! Voyager's mechanics on the scripted backend, in the text crafting world run in the sandbox:
//! the curriculum proposes tasks from the agent's state, the action agent's function runs in the
//! persistent world, the critic's verdict decides, a failure goes back with the error and the
//! critique (at most 4 rounds), a success joins the skill library and is retrieved (with its
//! code) for the next task; the ablation switches turn the critic and the library off.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)^user: You are a helpful assistant that tells me the next immediate task.*Completed tasks so far: none', reply: "Reasoning: I need wood first.\nTask: Mine 2 oak_log"}
- {when: '(?s)^user: You are a helpful assistant that tells me the next immediate task.*Completed tasks so far: Mine 2 oak_log\n', reply: "Reasoning: planks come from logs.\nTask: Craft 8 oak_planks"}
- {when: '(?s)^user: You are a helpful assistant that tells me the next immediate task', reply: "Reasoning: diamonds are rare.\nTask: Mine 1 diamond_ore"}
- {when: '(?s)^user: You are a helpful assistant that writes Python.*Task: Mine 2 oak_log\nCode from the last round', reply: "Mine some dirt too.\n```python\ndef mine_logs(bot):\n    bot.mine_block(\"dirt\", 1)\n```"}
- {when: '(?s)^user: You are a helpful assistant that writes Python.*Task: Mine 2 oak_log', reply: "```python\ndef mine_three_logs(bot):\n    bot.mine_block(\"oak_log\", 3)\n```"}
- {when: '(?s)^user: You are a helpful assistant that writes Python.*def mine_logs.*Task: Craft 8 oak_planks', reply: "Use the logs.\n```python\ndef make_planks(bot):\n    bot.craft_item(\"oak_planks\", 2)\n```"}
- {when: '(?s)^user: You are a helpful assistant that writes Python.*Task: Craft 8 oak_planks', reply: "No skill was shown."}
- {when: '(?s)^user: You are a helpful assistant that writes Python', reply: "```python\ndef get_diamond(bot):\n    bot.mine_block(\"diamond_ore\", 1)\n```"}
- {when: '(?s)^user: You are an assistant that assesses.*Execution error: WorldError', reply: '{"reasoning": "it failed", "success": false, "critique": "Mine only what is there."}'}
- {when: '(?s)^user: You are an assistant that assesses.*Task: Mine 2 oak_log.*Inventory now: [^\n]*oak_log: 2', reply: '{"reasoning": "two logs", "success": true, "critique": ""}'}
- {when: '(?s)^user: You are an assistant that assesses.*Task: Craft 8 oak_planks.*Inventory now: [^\n]*oak_planks: 8', reply: 'The planks are there, "success": true.'}
- {when: '(?s)^user: You are an assistant that assesses', reply: '{"reasoning": "no", "success": false, "critique": "Try again."}'}
- {when: '(?s)^user: You are a helpful assistant that writes a description.*def (\w+)', reply: '$1 gets what the task needs from the world.'}
- {when: '(?s).*', reply: 'Nothing.'}
"#;

#[test]
fn tasks_from_the_curriculum_are_retried_with_critique_and_successes_become_retrieved_skills() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("voyager", RULES, &[], &["vars.iterations=3"], Some(1));
    let records = ran.rows("records");
    assert_eq!(records.len(), 1, "failed {:?}", ran.failed());
    let agent = &records[0];
    assert_eq!(agent["completed"], serde_json::json!(["Mine 2 oak_log", "Craft 8 oak_planks"]));
    assert_eq!(agent["failed"], serde_json::json!(["Mine 1 diamond_ore"]));
    let history = agent["history"].as_array().unwrap();
    let attempts: Vec<u64> = history.iter().map(|h| h["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [2, 1, 4], "a failure is retried with the error and critique; 4 rounds at most");
    let skills: Vec<&str> = agent["skills"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(skills, ["mine_logs", "make_planks"]);
    assert_eq!(agent["skills"][0]["description"], "mine_logs gets what the task needs from the world.");
    // The world persisted: the logs mined in the failed first round, the dirt, the planks.
    let items: Vec<&str> = agent["items"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert_eq!(items, ["dirt", "oak_log", "oak_planks"]);
    // The second task's prompt showed the first skill's code (retrieved by embedding).
    let data = ran.data();
    assert_eq!(data.len(), 2);
    let prompt = data[1]["messages"][0]["content"].as_str().unwrap();
    assert!(prompt.contains("def mine_logs(bot):") && prompt.contains("Task: Craft 8 oak_planks"), "{prompt}");
    assert!(data[1]["messages"][1]["content"].as_str().unwrap().contains("bot.craft_item(\"oak_planks\", 2)"));
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}

#[test]
fn without_critic_and_library_a_task_is_done_when_its_program_runs_and_nothing_is_kept() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("voyager", RULES, &[], &["vars.iterations=2", "vars.critic=false", "vars.skill_library=false"], Some(1));
    let agent = &ran.rows("records")[0];
    let attempts: Vec<u64> = agent["history"].as_array().unwrap().iter().map(|h| h["attempts"].as_u64().unwrap()).collect();
    // Round 1 errs (only 2 logs), round 2 runs clean; the planks task gets no skill to see and
    // writes no code: an empty program runs clean too, so it counts as done without a critic.
    assert_eq!(attempts, [2, 1], "{agent:?}");
    assert_eq!(agent["skills"], serde_json::json!([]));
    assert_eq!(agent["completed"], serde_json::json!(["Mine 2 oak_log", "Craft 8 oak_planks"]));
}
