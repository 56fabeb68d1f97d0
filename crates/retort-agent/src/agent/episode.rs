//! Drives an [`Environment`] with a model: each reply is one action, each observation the
//! next user turn; the steps carry the environment's rewards.

use retort_core::{Backend, ChatRequest, Message, SamplingParams};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{StepStatus, StopReason, Trajectory, TrajectoryStep};
use crate::env::{answer_of, Environment};
use crate::error::EnvError;
use crate::seed::derive_seed;

fn default_max_steps() -> u32 {
    10
}

/// How a model plays an environment.
///
/// ```yaml
/// max_steps: 10
/// seed: 7
/// system_prompt: "You are operating a Linux shell."
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpisodeConfig {
    /// Most actions (model requests) in one episode (default 10).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Base seed; request `i` gets `derive_seed(seed, [i])`.
    #[serde(default)]
    pub seed: u64,
    /// Sampling temperature (default: the backend's).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Most tokens per reply (default: the backend's).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// A system message put before the environment's first observation.
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Strings that end a reply (CodeAct's `</execute>`: the model waits for the output).
    #[serde(default)]
    pub stop: Vec<String>,
}

impl Default for EpisodeConfig {
    fn default() -> EpisodeConfig {
        EpisodeConfig {
            max_steps: default_max_steps(),
            seed: 0,
            temperature: None,
            max_tokens: None,
            system_prompt: None,
            stop: Vec::new(),
        }
    }
}

/// A reply cut at a stop string that closes a tag (`</execute>`) gets the closing tag back
/// when it opened one, so the conversation reads as the model meant it.
fn close_stopped_tag(reply: &str, stops: &[String]) -> String {
    let mut action = reply.to_string();
    for stop in stops {
        if let Some(name) = stop.strip_prefix("</").and_then(|rest| rest.strip_suffix('>')) {
            let open = format!("<{name}>");
            if action.matches(open.as_str()).count() > action.matches(stop.as_str()).count() {
                action.push_str(stop);
            }
        }
    }
    action
}

/// Resets the environment and lets the model act until it says done or `max_steps` pass.
/// Each step's `action` is the reply, `reward` the environment's; `final_answer` is the text
/// of a last `answer:` action. Environment failures are errors; a backend failure ends the
/// trajectory with `stop_reason: backend_error`.
pub async fn run_episode(backend: &dyn Backend, env: &mut dyn Environment, config: &EpisodeConfig) -> Result<Trajectory, EnvError> {
    let first = env.reset().await?;
    let mut messages = Vec::new();
    if let Some(system) = &config.system_prompt {
        messages.push(Message::system(system.clone()));
    }
    messages.push(Message::user(first));
    let mut steps = Vec::new();
    let mut model_calls = 0;
    let finish = |messages, steps, stop_reason, final_answer, model_calls, backend_error| Trajectory {
        steps,
        final_answer,
        stop_reason,
        messages,
        errors: 0,
        model_calls,
        backend_error,
    };
    while model_calls < config.max_steps {
        let request = ChatRequest {
            messages: messages.clone(),
            params: SamplingParams {
                temperature: config.temperature,
                max_tokens: config.max_tokens,
                seed: Some(derive_seed(config.seed, &[u64::from(model_calls)])),
                stop: config.stop.clone(),
                ..SamplingParams::default()
            },
            json_schema: None,
            grammar: None,
            tools: Vec::new(),
            continue_final: false,
        };
        model_calls += 1;
        let reply = match backend.chat(&request).await {
            Ok(response) => response.choices.into_iter().next().map(|c| c.text).unwrap_or_default(),
            Err(e) => return Ok(finish(messages, steps, super::stop_reason_for(&e), None, model_calls, Some(e.to_string()))),
        };
        let action = close_stopped_tag(reply.trim(), &config.stop);
        messages.push(Message::assistant(action.clone()));
        let result = env.step(&action).await?;
        // The episode's last word (its verdict) is the step's observation, not a turn the
        // model answers: the conversation ends with the model's last action.
        if !result.done {
            messages.push(Message::user(result.observation.clone()));
        }
        let answer = answer_of(&action).map(str::to_string);
        steps.push(TrajectoryStep {
            thought: String::new(),
            action,
            arguments: Value::Null,
            observation: result.observation,
            reward: Some(result.reward),
            status: StepStatus::Ok,
        });
        if result.done {
            return Ok(finish(messages, steps, StopReason::FinalAnswer, answer, model_calls, None));
        }
    }
    Ok(finish(messages, steps, StopReason::StepLimit, None, model_calls, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_cut_by_its_stop_string_is_closed_again() {
        let stops = vec!["</execute>".to_string()];
        assert_eq!(close_stopped_tag("<execute>print(1)", &stops), "<execute>print(1)</execute>");
        assert_eq!(close_stopped_tag("<execute>print(1)</execute>", &stops), "<execute>print(1)</execute>");
        assert_eq!(close_stopped_tag("<solution>1</solution>", &stops), "<solution>1</solution>");
        assert_eq!(close_stopped_tag("<execute>x", &[]), "<execute>x");
    }
}
