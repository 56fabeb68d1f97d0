//! The agent loop: a model acts with tools, in native function calling or in the ReAct text
//! format, until it answers, runs out of steps or makes too many errors; ToRA's
//! tool-integrated reasoning (`tora.rs`) is its own loop over one continued answer.

pub mod dfsdt;
pub mod episode;
pub mod react;
pub mod tora;

use retort_core::{Backend, BackendError, BackendErrorKind, ChatRequest, Choice, Message, Role, SamplingParams, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::seed::derive_seed;
use crate::tool::{clip, CallStatus, ToolRegistry};
use react::{cut_at_observation, format_reminder, parse_action_input, parse_react, react_system_prompt, ReactReply, REACT_INTRO};

/// The name of the pseudo-tool with which a model abandons a branch (tree search).
pub const GIVE_UP: &str = "give_up";

/// The name of ToolBench's finishing function (`return_type`: `give_answer` with a
/// `final_answer`, or `give_up_and_restart`).
pub const FINISH: &str = "Finish";

/// How the agent ends a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishStyle {
    /// A reply with no tool call (function calling) or `Final Answer:` (ReAct) is the answer.
    #[default]
    Text,
    /// ToolBench's `Finish` function: `give_answer` ends with `final_answer`,
    /// `give_up_and_restart` abandons the branch (it replaces `give_up`).
    Toolbench,
}

/// How the model calls tools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentFormat {
    /// The request's `tools`, the answer's `tool_calls`, `tool` messages back.
    #[default]
    FunctionCalling,
    /// `Thought:` / `Action:` / `Action Input:` / `Observation:` / `Final Answer:` text.
    React,
    /// ToRA's tool-integrated reasoning: one answer interleaving rationale, ```` ```python ````
    /// programs and their ```` ```output ````, continued piece by piece ([`tora::run_tora`],
    /// which needs a sandbox rather than tools).
    Tora,
}

fn default_max_steps() -> u32 {
    10
}

fn default_max_errors() -> u32 {
    3
}

fn default_max_observation() -> usize {
    4000
}

/// How an agent runs.
///
/// ```yaml
/// format: react          # or function_calling (default)
/// max_steps: 8           # model requests per run
/// max_errors: 3          # the run stops when this many errors happened
/// seed: 42
/// temperature: 0.7
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Function calling or ReAct text.
    #[serde(default)]
    pub format: AgentFormat,
    /// Most model requests in one run (default 10).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// The run stops once this many errors happened: unknown tools, bad arguments, tool
    /// failures, malformed replies (default 3).
    #[serde(default = "default_max_errors")]
    pub max_errors: u32,
    /// Base seed; request `i` of a run gets `derive_seed(seed, [i])`.
    #[serde(default)]
    pub seed: u64,
    /// Sampling temperature (default: the backend's).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Most tokens per reply (default: the backend's).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Function calling: a system message put first when the task has none. ReAct: replaces
    /// the opening of the generated system prompt (tools and format are still appended).
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Most characters of an observation sent back to the model (default 4000).
    #[serde(default = "default_max_observation")]
    pub max_observation_chars: usize,
    /// Offer the `give_up` pseudo-tool (always on in tree search).
    #[serde(default)]
    pub allow_give_up: bool,
    /// How the run ends: `text` (default) or ToolBench's `Finish` function.
    #[serde(default)]
    pub finish: FinishStyle,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            format: AgentFormat::default(),
            max_steps: default_max_steps(),
            max_errors: default_max_errors(),
            seed: 0,
            temperature: None,
            max_tokens: None,
            system_prompt: None,
            max_observation_chars: default_max_observation(),
            allow_give_up: false,
            finish: FinishStyle::Text,
        }
    }
}

/// How one step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// The tool answered (or the environment took the action).
    Ok,
    /// The model named a tool that does not exist.
    UnknownTool,
    /// The arguments were not valid JSON, broke the schema, or were rejected.
    BadArguments,
    /// The tool failed.
    Failed,
    /// The reply did not follow the format.
    Malformed,
    /// The model gave up on this branch.
    GaveUp,
}

impl From<CallStatus> for StepStatus {
    fn from(status: CallStatus) -> StepStatus {
        match status {
            CallStatus::Ok => StepStatus::Ok,
            CallStatus::UnknownTool => StepStatus::UnknownTool,
            CallStatus::BadArguments => StepStatus::BadArguments,
            CallStatus::Failed => StepStatus::Failed,
        }
    }
}

/// One action of a trajectory and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrajectoryStep {
    /// The model's reasoning before the action (ReAct `Thought:`, or the text beside tool calls).
    pub thought: String,
    /// The tool called (empty for a malformed reply; the raw action for an environment).
    pub action: String,
    /// The arguments (a JSON string when they were not JSON).
    pub arguments: Value,
    /// What came back.
    pub observation: String,
    /// The environment's reward for this step, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reward: Option<f64>,
    /// How the step went.
    pub status: StepStatus,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model gave a final answer (or the environment said done).
    FinalAnswer,
    /// `max_steps` requests were made.
    StepLimit,
    /// `max_errors` errors happened.
    ErrorBudget,
    /// The model called `give_up`.
    GaveUp,
    /// The backend failed (see `Trajectory::backend_error`).
    BackendError,
    /// The run is stopping: the next request was not sent (the record is redone later).
    Cancelled,
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    /// The actions in order.
    pub steps: Vec<TrajectoryStep>,
    /// The final answer, when the run reached one.
    pub final_answer: Option<String>,
    /// Why it ended.
    pub stop_reason: StopReason,
    /// The whole chat, system prompt included (SFT data).
    pub messages: Vec<Message>,
    /// Errors counted against the budget.
    pub errors: u32,
    /// Model requests made.
    pub model_calls: u32,
    /// The backend's error, when `stop_reason` is `backend_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_error: Option<String>,
}

/// The state of a run between steps (cloned at each branch of a tree search).
#[derive(Debug, Clone)]
pub(crate) struct AgentState {
    pub(crate) messages: Vec<Message>,
    pub(crate) steps: Vec<TrajectoryStep>,
    pub(crate) errors: u32,
    pub(crate) model_calls: u32,
    pub(crate) final_answer: Option<String>,
}

/// What applying one reply led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Advance {
    Continue,
    Final,
    GaveUp,
    ErrorBudget,
}

/// ToolBench's `Finish` function, as its system prompt describes it.
pub fn finish_spec() -> ToolSpec {
    ToolSpec {
        name: FINISH.into(),
        description: "If you believe that you have obtained a result that can answer the task, call this function to give the final answer. Or, if you think you cannot handle the task with the current tools, call it with give_up_and_restart. Always call this function at the end of an attempt.".into(),
        parameters: json!({
            "type": "object",
            "properties": {
                "return_type": {"type": "string", "enum": ["give_answer", "give_up_and_restart"]},
                "final_answer": {"type": "string", "description": "The final answer for the user. Required when return_type is give_answer."}
            },
            "required": ["return_type"]
        }),
    }
}

/// What a `Finish` call means: the answer, or a give-up (`None`).
fn read_finish(arguments: &Value) -> Result<Option<String>, String> {
    match arguments.get("return_type").and_then(Value::as_str) {
        Some("give_up_and_restart") => Ok(None),
        Some("give_answer") => match arguments.get("final_answer").and_then(Value::as_str) {
            Some(answer) if !answer.trim().is_empty() => Ok(Some(answer.trim().to_string())),
            _ => Err("`Finish` with give_answer needs a non-empty `final_answer`".into()),
        },
        other => Err(format!("`Finish` needs return_type give_answer or give_up_and_restart, found {other:?}")),
    }
}

impl AgentConfig {
    /// Whether `give_up` is offered (ToolBench's `Finish` replaces it).
    pub(crate) fn offers_give_up(&self) -> bool {
        self.allow_give_up && self.finish == FinishStyle::Text
    }

    /// The pseudo-tools offered besides the registry's.
    pub(crate) fn extra_specs(&self) -> Vec<ToolSpec> {
        let mut specs = Vec::new();
        if self.finish == FinishStyle::Toolbench {
            specs.push(finish_spec());
        }
        if self.offers_give_up() {
            specs.push(give_up_spec());
        }
        specs
    }
}

fn give_up_spec() -> ToolSpec {
    ToolSpec {
        name: GIVE_UP.into(),
        description: "Give up on the current line of attack when it cannot lead to an answer; an earlier step will be retried differently."
            .into(),
        parameters: json!({"type": "object", "properties": {"reason": {"type": "string"}}}),
    }
}

impl AgentState {
    pub(crate) fn new(config: &AgentConfig, tools: &ToolRegistry, mut task: Vec<Message>) -> AgentState {
        match config.format {
            AgentFormat::FunctionCalling | AgentFormat::Tora => {
                if let Some(system) = &config.system_prompt {
                    if task.first().is_none_or(|m| m.role != Role::System) {
                        task.insert(0, Message::system(system.clone()));
                    }
                }
            }
            AgentFormat::React => {
                let intro = config.system_prompt.as_deref().unwrap_or(REACT_INTRO);
                let mut specs = tools.specs();
                if config.finish == FinishStyle::Toolbench {
                    specs.push(finish_spec());
                }
                let prompt = react_system_prompt(intro, &specs, config.offers_give_up());
                match task.first_mut() {
                    Some(first) if first.role == Role::System => {
                        first.content = format!("{}\n\n{prompt}", first.content.trim());
                    }
                    _ => task.insert(0, Message::system(prompt)),
                }
            }
        }
        AgentState { messages: task, steps: Vec::new(), errors: 0, model_calls: 0, final_answer: None }
    }

    pub(crate) fn finish(self, stop_reason: StopReason, backend_error: Option<String>) -> Trajectory {
        Trajectory {
            steps: self.steps,
            final_answer: self.final_answer,
            stop_reason,
            messages: self.messages,
            errors: self.errors,
            model_calls: self.model_calls,
            backend_error,
        }
    }

    fn error(&mut self, config: &AgentConfig) -> bool {
        self.errors += 1;
        self.errors >= config.max_errors
    }
}

/// Asks the model for its next reply (one request, seeded); `hint` is added as a last user
/// message of this request only (tree search uses it to ask for a different action).
pub(crate) async fn sample(
    backend: &dyn Backend,
    tools: &ToolRegistry,
    config: &AgentConfig,
    state: &mut AgentState,
    seed: u64,
    hint: Option<&str>,
) -> Result<Choice, BackendError> {
    let mut messages = state.messages.clone();
    if let Some(hint) = hint {
        messages.push(Message::user(hint));
    }
    let mut params =
        SamplingParams { temperature: config.temperature, max_tokens: config.max_tokens, seed: Some(seed), ..SamplingParams::default() };
    let mut specs = Vec::new();
    match config.format {
        AgentFormat::FunctionCalling => {
            specs = tools.specs();
            specs.extend(config.extra_specs());
        }
        AgentFormat::React => params.stop = vec!["\nObservation:".into()],
        AgentFormat::Tora => params.stop = vec![tora::OUTPUT_OPEN.into()],
    }
    let request = ChatRequest { messages, params, json_schema: None, grammar: None, tools: specs, continue_final: false };
    state.model_calls += 1;
    let response = backend.chat(&request).await?;
    response
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| BackendError::new(BackendErrorKind::Malformed, "the backend answered with no choices"))
}

/// Why a trajectory ends when the backend failed: a request the run's stop cancelled is not
/// an error of the model's.
pub(crate) fn stop_reason_for(error: &BackendError) -> StopReason {
    if error.kind == BackendErrorKind::Cancelled {
        StopReason::Cancelled
    } else {
        StopReason::BackendError
    }
}

/// A key that is equal for two replies that would do the same thing (tree search skips a
/// candidate equal to a sibling already tried).
pub(crate) fn signature(config: &AgentConfig, choice: &Choice) -> String {
    match config.format {
        AgentFormat::FunctionCalling if !choice.tool_calls.is_empty() => {
            choice.tool_calls.iter().map(|c| format!("{}({})", c.name, canonical(&c.arguments))).collect::<Vec<_>>().join(";")
        }
        AgentFormat::FunctionCalling | AgentFormat::Tora => format!("answer:{}", choice.text.trim()),
        AgentFormat::React => match parse_react(cut_at_observation(&choice.text)) {
            ReactReply::Action { action, input, .. } => format!("{action}({})", canonical(&input)),
            ReactReply::Final { answer, .. } => format!("answer:{answer}"),
            ReactReply::Malformed { .. } => format!("malformed:{}", choice.text.trim()),
        },
    }
}

fn canonical(arguments: &str) -> String {
    serde_json::from_str::<Value>(arguments.trim()).map_or_else(|_| arguments.trim().to_string(), |v| v.to_string())
}

/// Applies a reply: runs its tool calls (or takes its answer) and records the steps.
pub(crate) async fn apply(tools: &ToolRegistry, config: &AgentConfig, state: &mut AgentState, choice: Choice) -> Advance {
    match config.format {
        // Without a sandbox (this loop and tree search have none), a ToRA reply is taken as the
        // answer as it is; `tora::run_tora` is ToRA's loop.
        AgentFormat::FunctionCalling | AgentFormat::Tora => apply_function_calls(tools, config, state, choice).await,
        AgentFormat::React => apply_react(tools, config, state, choice).await,
    }
}

async fn apply_function_calls(tools: &ToolRegistry, config: &AgentConfig, state: &mut AgentState, choice: Choice) -> Advance {
    let thought = choice.text.trim().to_string();
    if choice.tool_calls.is_empty() {
        state.messages.push(Message::assistant(thought.clone()));
        if thought.is_empty() {
            let observation = "Error: the reply was empty. Call a tool, or write the final answer as plain text.".to_string();
            state.messages.push(Message::user(observation.clone()));
            state.steps.push(TrajectoryStep {
                thought,
                action: String::new(),
                arguments: Value::Null,
                observation,
                reward: None,
                status: StepStatus::Malformed,
            });
            return if state.error(config) { Advance::ErrorBudget } else { Advance::Continue };
        }
        state.final_answer = Some(thought);
        return Advance::Final;
    }
    let calls: Vec<ToolCall> = choice.tool_calls.clone();
    state.messages.push(Message { role: Role::Assistant, content: choice.text, tool_calls: choice.tool_calls, tool_call_id: None });
    let mut over_budget = false;
    for (index, call) in calls.into_iter().enumerate() {
        let arguments = serde_json::from_str::<Value>(&call.arguments).unwrap_or_else(|_| Value::String(call.arguments.clone()));
        let step_thought = if index == 0 { thought.clone() } else { String::new() };
        let step = |state: &mut AgentState, observation: Option<String>, status: StepStatus| {
            // A call the model is answered for gets its `tool` message; a Finish that ends the run does not.
            if let Some(observation) = &observation {
                state.messages.push(Message {
                    role: Role::Tool,
                    content: observation.clone(),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(call.id.clone()),
                });
            }
            state.steps.push(TrajectoryStep {
                thought: step_thought.clone(),
                action: call.name.clone(),
                arguments: arguments.clone(),
                observation: observation.unwrap_or_default(),
                reward: None,
                status,
            });
        };
        if config.finish == FinishStyle::Toolbench && call.name == FINISH {
            match read_finish(&arguments) {
                Ok(Some(answer)) => {
                    step(state, None, StepStatus::Ok);
                    state.final_answer = Some(answer);
                    return Advance::Final;
                }
                Ok(None) => {
                    step(state, None, StepStatus::GaveUp);
                    return Advance::GaveUp;
                }
                Err(problem) => {
                    step(state, Some(format!("Error: {problem}")), StepStatus::BadArguments);
                    over_budget |= state.error(config);
                    continue;
                }
            }
        }
        if config.offers_give_up() && call.name == GIVE_UP {
            step(state, Some("Gave up on this path.".to_string()), StepStatus::GaveUp);
            return Advance::GaveUp;
        }
        let outcome = tools.call_text(&call.name, &call.arguments).await;
        step(state, Some(clip(&outcome.observation, config.max_observation_chars)), outcome.status.into());
        if outcome.is_error() && state.error(config) {
            over_budget = true;
        }
    }
    if over_budget {
        Advance::ErrorBudget
    } else {
        Advance::Continue
    }
}

async fn apply_react(tools: &ToolRegistry, config: &AgentConfig, state: &mut AgentState, choice: Choice) -> Advance {
    let text = cut_at_observation(&choice.text).to_string();
    state.messages.push(Message::assistant(text.clone()));
    match parse_react(&text) {
        ReactReply::Final { answer, .. } => {
            state.final_answer = Some(answer);
            Advance::Final
        }
        ReactReply::Malformed { thought, problem } => {
            let observation = format_reminder(&problem);
            state.messages.push(Message::user(format!("Observation: {observation}")));
            state.steps.push(TrajectoryStep {
                thought,
                action: String::new(),
                arguments: Value::Null,
                observation,
                reward: None,
                status: StepStatus::Malformed,
            });
            if state.error(config) {
                Advance::ErrorBudget
            } else {
                Advance::Continue
            }
        }
        ReactReply::Action { thought, action, input } => {
            let action = resolve_action(tools, config, action);
            if config.finish == FinishStyle::Toolbench && action == FINISH {
                let arguments = parse_action_input(&input, Some(&finish_spec())).unwrap_or_else(|_| Value::String(input.clone()));
                let (status, observation, advance) = match read_finish(&arguments) {
                    Ok(Some(answer)) => {
                        state.final_answer = Some(answer);
                        (StepStatus::Ok, String::new(), Advance::Final)
                    }
                    Ok(None) => (StepStatus::GaveUp, String::new(), Advance::GaveUp),
                    Err(problem) => {
                        let observation = format!("Error: {problem}");
                        state.messages.push(Message::user(format!("Observation: {observation}")));
                        let advance = if state.error(config) { Advance::ErrorBudget } else { Advance::Continue };
                        (StepStatus::BadArguments, observation, advance)
                    }
                };
                state.steps.push(TrajectoryStep { thought, action, arguments, observation, reward: None, status });
                return advance;
            }
            if config.offers_give_up() && action == GIVE_UP {
                let observation = "Gave up on this path.".to_string();
                state.messages.push(Message::user(format!("Observation: {observation}")));
                state.steps.push(TrajectoryStep {
                    thought,
                    action,
                    arguments: Value::String(input),
                    observation,
                    reward: None,
                    status: StepStatus::GaveUp,
                });
                return Advance::GaveUp;
            }
            let spec = tools.get(&action).map(|t| t.spec());
            let (arguments, outcome) = match parse_action_input(&input, spec.as_ref()) {
                Ok(arguments) => {
                    let outcome = tools.call(&action, &arguments).await;
                    (arguments, outcome)
                }
                Err(problem) if spec.is_some() => (
                    Value::String(input.clone()),
                    crate::tool::CallOutcome { observation: format!("Error: {problem}"), status: CallStatus::BadArguments },
                ),
                // An unknown tool is the bigger problem; the registry says which exist.
                Err(_) => (Value::String(input.clone()), tools.call(&action, &Value::Null).await),
            };
            let observation = clip(&outcome.observation, config.max_observation_chars);
            state.messages.push(Message::user(format!("Observation: {observation}")));
            state.steps.push(TrajectoryStep { thought, action, arguments, observation, reward: None, status: outcome.status.into() });
            if outcome.is_error() && state.error(config) {
                Advance::ErrorBudget
            } else {
                Advance::Continue
            }
        }
    }
}

/// The tool an `Action:` line names. Small models often copy the format's wording around the
/// name ("the tool to use, `search`"): when the line is no tool's name but holds exactly one
/// offered name as a whole word, that name is meant.
fn resolve_action(tools: &ToolRegistry, config: &AgentConfig, action: String) -> String {
    let mut names: Vec<&str> = tools.names();
    if config.finish == FinishStyle::Toolbench {
        names.push(FINISH);
    }
    if config.offers_give_up() {
        names.push(GIVE_UP);
    }
    if names.contains(&action.as_str()) {
        return action;
    }
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let found: Vec<&str> = names
        .into_iter()
        .filter(|name| {
            action.match_indices(name).any(|(start, _)| {
                let before = action[..start].chars().next_back();
                let after = action[start + name.len()..].chars().next();
                !before.is_some_and(is_word) && !after.is_some_and(is_word)
            })
        })
        .collect();
    match found.as_slice() {
        [one] => one.to_string(),
        _ => action,
    }
}

/// Runs the agent on a task until a final answer, `max_steps` requests, `max_errors` errors,
/// a give-up or a backend failure. Request `i` is seeded with `derive_seed(config.seed, [i])`.
pub async fn run_agent(backend: &dyn Backend, tools: &ToolRegistry, config: &AgentConfig, task: Vec<Message>) -> Trajectory {
    let mut state = AgentState::new(config, tools, task);
    loop {
        if state.model_calls >= config.max_steps {
            return state.finish(StopReason::StepLimit, None);
        }
        let seed = derive_seed(config.seed, &[u64::from(state.model_calls)]);
        let choice = match sample(backend, tools, config, &mut state, seed, None).await {
            Ok(choice) => choice,
            Err(e) => return state.finish(stop_reason_for(&e), Some(e.to_string())),
        };
        match apply(tools, config, &mut state, choice).await {
            Advance::Continue => {}
            Advance::Final => return state.finish(StopReason::FinalAnswer, None),
            Advance::GaveUp => return state.finish(StopReason::GaveUp, None),
            Advance::ErrorBudget => return state.finish(StopReason::ErrorBudget, None),
        }
    }
}

#[cfg(test)]
mod resolve_tests {
    use super::*;

    #[test]
    fn an_action_line_with_one_offered_name_in_it_means_that_tool() {
        let tools = ToolRegistry::new().with(std::sync::Arc::new(crate::tools::calculator::Calculator::default())).unwrap();
        let config = AgentConfig { finish: FinishStyle::Toolbench, ..AgentConfig::default() };
        let resolve = |text: &str| resolve_action(&tools, &config, text.to_string());
        assert_eq!(resolve("calculator"), "calculator");
        assert_eq!(resolve("the tool to use, `calculator`"), "calculator");
        assert_eq!(resolve("Finish"), "Finish");
        assert_eq!(resolve("calculator or Finish"), "calculator or Finish", "two names: left as written");
        assert_eq!(resolve("calculators"), "calculators", "a name inside a longer word does not count");
    }
}
