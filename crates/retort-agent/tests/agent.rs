//! The agent loop in both formats, the ReAct parser, and DFSDT tree search, on scripted
//! backends.

mod common;

use std::sync::Arc;

use common::{call, say, scripted};
use retort_agent::tools::calculator::Calculator;
use retort_agent::{
    derive_seed, dfsdt, parse_action_input, parse_react, run_agent, AgentConfig, AgentFormat, DfsdtConfig, ReactReply, StepStatus,
    StopReason, ToolRegistry,
};
use retort_core::{Message, Role, ToolSpec};
use serde_json::json;

fn tools() -> ToolRegistry {
    ToolRegistry::new().with(Arc::new(Calculator::default())).unwrap()
}

fn task(text: &str) -> Vec<Message> {
    vec![Message::user(text)]
}

fn react() -> AgentConfig {
    AgentConfig { format: AgentFormat::React, ..AgentConfig::default() }
}

#[tokio::test]
async fn function_calling_reaches_a_final_answer() {
    let backend = scripted(vec![
        say(r"tool: 42\z", "The answer is 42."),
        call(r"user: What is six times seven", "calculator", r#"{"expression": "6 * 7"}"#),
    ]);
    let config = AgentConfig { system_prompt: Some("Use tools.".into()), ..AgentConfig::default() };
    let trajectory = run_agent(&backend, &tools(), &config, task("What is six times seven?")).await;
    assert_eq!(trajectory.stop_reason, StopReason::FinalAnswer);
    assert_eq!(trajectory.final_answer.as_deref(), Some("The answer is 42."));
    assert_eq!(trajectory.steps.len(), 1);
    assert_eq!(trajectory.steps[0].action, "calculator");
    assert_eq!(trajectory.steps[0].arguments, json!({"expression": "6 * 7"}));
    assert_eq!(trajectory.steps[0].observation, "42");
    assert_eq!((trajectory.errors, trajectory.model_calls), (0, 2));
    let roles: Vec<Role> = trajectory.messages.iter().map(|m| m.role).collect();
    assert_eq!(roles, [Role::System, Role::User, Role::Assistant, Role::Tool, Role::Assistant]);
    let call_id = &trajectory.messages[2].tool_calls[0].id;
    assert_eq!(trajectory.messages[3].tool_call_id.as_ref(), Some(call_id));
    // The whole trajectory round-trips through JSON.
    let text = serde_json::to_string(&trajectory).unwrap();
    assert_eq!(serde_json::from_str::<retort_agent::Trajectory>(&text).unwrap(), trajectory);
    assert!(text.contains("\"stop_reason\":\"final_answer\""));
}

#[tokio::test]
async fn react_reaches_a_final_answer() {
    let backend = scripted(vec![
        say(r"Observation: 1024\z", "Thought: I have it.\nFinal Answer: 1024"),
        say(
            r"(?s)You have access to the following tools.*calculator.*user: Compute 2\^10",
            "Thought: use the calculator\nAction: calculator\nAction Input: {\"expression\": \"2^10\"}\nObservation: 999 (made up)",
        ),
    ]);
    let trajectory = run_agent(&backend, &tools(), &react(), task("Compute 2^10")).await;
    assert_eq!(trajectory.stop_reason, StopReason::FinalAnswer, "{trajectory:#?}");
    assert_eq!(trajectory.final_answer.as_deref(), Some("1024"));
    assert_eq!(trajectory.steps[0].thought, "use the calculator");
    // The made-up observation was cut; the real one follows as a user turn.
    assert!(!trajectory.messages[2].content.contains("made up"));
    assert_eq!(trajectory.messages[3].content, "Observation: 1024");
    assert_eq!(trajectory.messages[0].role, Role::System);
}

#[tokio::test]
async fn function_calling_recovers_from_an_unknown_tool_and_bad_arguments() {
    let backend = scripted(vec![
        say(r"tool: 5\z", "5"),
        call(r"tool: Error: invalid arguments", "calculator", r#"{"expression": "2 + 3"}"#),
        call(r"tool: Error: there is no tool named", "calculator", r#"{"expr": "2 + 3"}"#),
        call(r"user: Add", "calculater", r#"{"expression": "2 + 3"}"#),
    ]);
    let trajectory = run_agent(&backend, &tools(), &AgentConfig::default(), task("Add 2 and 3")).await;
    assert_eq!(trajectory.stop_reason, StopReason::FinalAnswer, "{trajectory:#?}");
    let statuses: Vec<StepStatus> = trajectory.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::UnknownTool, StepStatus::BadArguments, StepStatus::Ok]);
    assert_eq!(trajectory.errors, 2);
    assert!(trajectory.steps[0].observation.contains("Available tools: calculator"));
    assert!(trajectory.steps[1].observation.contains("schema"), "{}", trajectory.steps[1].observation);
}

#[tokio::test]
async fn react_recovers_from_a_malformed_reply_and_bad_input() {
    let backend = scripted(vec![
        say(r"Observation: 12\z", "Final Answer: 12"),
        say(
            r"Observation: Error: `calculator` rejected",
            "Thought: fix it\nAction: calculator\nAction Input: ```json\n{\"expression\": \"3 * 4\"}\n```",
        ),
        say(r"Observation: Invalid format", "Thought: retry\nAction: calculator\nAction Input: 3 * * 4"),
        say(r"user: Multiply", "I think I should multiply the numbers."),
    ]);
    let trajectory = run_agent(&backend, &tools(), &react(), task("Multiply 3 by 4")).await;
    assert_eq!(trajectory.stop_reason, StopReason::FinalAnswer, "{trajectory:#?}");
    assert_eq!(trajectory.final_answer.as_deref(), Some("12"));
    let statuses: Vec<StepStatus> = trajectory.steps.iter().map(|s| s.status).collect();
    assert_eq!(statuses, [StepStatus::Malformed, StepStatus::BadArguments, StepStatus::Ok]);
    assert!(trajectory.steps[0].observation.contains("Action Input:"), "{}", trajectory.steps[0].observation);
    // The bare input was taken as the calculator's one argument.
    assert_eq!(trajectory.steps[1].arguments, json!({"expression": "3 * * 4"}));
    assert_eq!(trajectory.errors, 2);
}

#[tokio::test]
async fn stops_at_the_step_limit_and_the_error_budget() {
    let looping = scripted(vec![call(".", "calculator", r#"{"expression": "1 + 1"}"#)]);
    let config = AgentConfig { max_steps: 3, ..AgentConfig::default() };
    let trajectory = run_agent(&looping, &tools(), &config, task("Loop")).await;
    assert_eq!(trajectory.stop_reason, StopReason::StepLimit);
    assert_eq!((trajectory.model_calls, trajectory.steps.len(), trajectory.final_answer.clone()), (3, 3, None));

    let confused = scripted(vec![say(".", "Action: teleport\nAction Input: {}")]);
    let config = AgentConfig { format: AgentFormat::React, max_errors: 2, ..AgentConfig::default() };
    let trajectory = run_agent(&confused, &tools(), &config, task("Go")).await;
    assert_eq!(trajectory.stop_reason, StopReason::ErrorBudget);
    assert_eq!((trajectory.errors, trajectory.model_calls), (2, 2));
    assert!(trajectory.steps.iter().all(|s| s.status == StepStatus::UnknownTool));

    let failing = scripted(vec![retort_backends::ScriptRule { when: ".".into(), error: Some("auth".into()), ..Default::default() }]);
    let trajectory = run_agent(&failing, &tools(), &AgentConfig::default(), task("Hi")).await;
    assert_eq!(trajectory.stop_reason, StopReason::BackendError);
    assert!(trajectory.backend_error.unwrap().contains("auth"));
}

#[tokio::test]
async fn runs_are_reproducible_and_seeded_per_step() {
    // The reply depends on the seed; the same base seed gives the same run.
    let rule = retort_backends::ScriptRule {
        when: r"user: Pick\z".into(),
        replies: (0..10).map(|i| format!("Final Answer: {i}")).collect(),
        ..Default::default()
    };
    let backend = scripted(vec![rule]);
    let run = |seed| {
        let config = AgentConfig { format: AgentFormat::React, seed, ..AgentConfig::default() };
        let backend = &backend;
        async move { run_agent(backend, &tools(), &config, task("Pick")).await.final_answer.unwrap() }
    };
    assert_eq!(run(7).await, run(7).await);
    let answers: std::collections::BTreeSet<String> = answers_for_seeds(&run).await;
    assert!(answers.len() > 1, "different base seeds give different samples: {answers:?}");
    assert_ne!(derive_seed(7, &[0]), derive_seed(7, &[1]));
    assert_ne!(derive_seed(7, &[0]), derive_seed(8, &[0]));
}

async fn answers_for_seeds<F, Fut>(run: &F) -> std::collections::BTreeSet<String>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let mut answers = std::collections::BTreeSet::new();
    for seed in 0..8 {
        answers.insert(run(seed).await);
    }
    answers
}

#[test]
fn react_parser_cases() {
    let action =
        |thought: &str, name: &str, input: &str| ReactReply::Action { thought: thought.into(), action: name.into(), input: input.into() };
    let cases: Vec<(&str, ReactReply)> = vec![
        ("Thought: a\nAction: calc\nAction Input: {\"x\": 1}", action("a", "calc", "{\"x\": 1}")),
        ("thought: a\naction: `calc`\naction input: {}", action("a", "calc", "{}")),
        ("**Thought:** a\n**Action:** calc\n**Action Input:** {\"x\": 1}", action("a", "calc", "{\"x\": 1}")),
        ("Let me see.\nAction: search[capital of France]", action("Let me see.", "search", "capital of France")),
        ("Action: calc\n{\"x\": 2}", action("", "calc", "{\"x\": 2}")),
        (
            "Thought: done\nFinal Answer: Paris\nis the answer",
            ReactReply::Final { thought: "done".into(), answer: "Paris\nis the answer".into() },
        ),
        (
            "Final Answer: 3\nAction: calc\nAction Input: {}",
            ReactReply::Final { thought: String::new(), answer: "3\nAction: calc\nAction Input: {}".into() },
        ),
        (
            "Thought: hmm",
            ReactReply::Malformed {
                thought: "hmm".into(),
                problem: "the reply has neither an `Action:` line nor a `Final Answer:` line".into(),
            },
        ),
        (
            "Action: calc",
            ReactReply::Malformed { thought: String::new(), problem: "`Action: calc` is not followed by an `Action Input:` line".into() },
        ),
        ("Action:\nAction Input: {}", ReactReply::Malformed { thought: String::new(), problem: "the `Action:` line names no tool".into() }),
        ("Final Answer:", ReactReply::Malformed { thought: String::new(), problem: "`Final Answer:` is followed by nothing".into() }),
    ];
    for (text, want) in cases {
        assert_eq!(parse_react(text), want, "{text:?}");
    }
    let spec = ToolSpec {
        name: "calc".into(),
        description: String::new(),
        parameters: json!({"type": "object", "properties": {"expression": {"type": "string"}}}),
    };
    let two = ToolSpec {
        name: "two".into(),
        description: String::new(),
        parameters: json!({"type": "object", "properties": {"a": {}, "b": {}}}),
    };
    assert_eq!(parse_action_input("{\"expression\": \"1\"}", Some(&spec)), Ok(json!({"expression": "1"})));
    assert_eq!(parse_action_input("1 + 1", Some(&spec)), Ok(json!({"expression": "1 + 1"})));
    assert_eq!(parse_action_input("\"1 + 1\"", Some(&spec)), Ok(json!({"expression": "1 + 1"})));
    assert_eq!(parse_action_input("use {\"a\": 1, \"b\": 2} please", Some(&two)), Ok(json!({"a": 1, "b": 2})));
    assert_eq!(parse_action_input("", Some(&two)), Ok(json!({})));
    assert!(parse_action_input("a=1, b=2", Some(&two)).unwrap_err().contains("JSON object"));
}

/// A script for the search: the first idea leads nowhere and the model gives up; the
/// diversity hint at the root makes it try another action, which succeeds.
fn search_script() -> retort_backends::ScriptedBackend {
    scripted(vec![
        say(r"Observation: 4\z", "Thought: done\nFinal Answer: 4"),
        say(r"Observation: 99", "Thought: this cannot be right\nAction: give_up\nAction Input: {\"reason\": \"wrong number\"}"),
        say(r"(?s)user: Compute.*already tried", "Thought: another way\nAction: calculator\nAction Input: {\"expression\": \"2+2\"}"),
        say(r"user: Compute", "Thought: guess\nAction: calculator\nAction Input: {\"expression\": \"99\"}"),
    ])
}

#[tokio::test]
async fn dfsdt_backtracks_after_a_give_up() {
    let backend = search_script();
    let search = DfsdtConfig { width: 2, max_expansions: 10, keep_paths: true };
    let result = dfsdt(&backend, &tools(), &react(), &search, task("Compute two plus two")).await;
    let trajectory = result.trajectory.expect("the second branch succeeds");
    assert_eq!(trajectory.final_answer.as_deref(), Some("4"));
    assert_eq!(trajectory.steps.len(), 1, "the winning path holds only its own steps");
    assert_eq!(trajectory.steps[0].arguments, json!({"expression": "2+2"}));
    // root candidate 1, its child (gives up), the child's second candidate (same give-up:
    // skipped), root candidate 2 (with the hint), and the final answer.
    assert_eq!(result.stats.expansions, 5, "{:?}", result.stats);
    assert_eq!((result.stats.gave_up, result.stats.duplicates, result.stats.backtracks), (1, 1, 2), "{:?}", result.stats);
    assert!(!result.stats.budget_exhausted);
    assert_eq!(result.paths.len(), 1);
    assert_eq!(result.paths[0].stop_reason, StopReason::GaveUp);
    assert_eq!(result.paths[0].steps.last().unwrap().status, StepStatus::GaveUp);
    // The give-up pseudo-tool is offered in the prompt.
    assert!(trajectory.messages[0].content.contains("give_up"));
}

#[tokio::test]
async fn dfsdt_respects_its_budget_and_width_one_is_the_plain_run() {
    let backend = search_script();
    let search = DfsdtConfig { width: 2, max_expansions: 2, keep_paths: false };
    let result = dfsdt(&backend, &tools(), &react(), &search, task("Compute two plus two")).await;
    assert!(result.trajectory.is_none());
    assert_eq!(result.stats.expansions, 2);
    assert!(result.stats.budget_exhausted);
    assert!(result.paths.is_empty());

    let backend = scripted(vec![say(r"tool: 4\z", "4"), call(r"user: Add", "calculator", r#"{"expression": "2+2"}"#)]);
    let config = AgentConfig { seed: 3, ..AgentConfig::default() };
    let chain = DfsdtConfig { width: 1, max_expansions: 10, keep_paths: false };
    let searched = dfsdt(&backend, &tools(), &config, &chain, task("Add")).await.trajectory.unwrap();
    let plain = run_agent(&backend, &tools(), &AgentConfig { allow_give_up: true, ..config }, task("Add")).await;
    assert_eq!(searched, plain);
}
