//! `converse`: several roles, each with its own system prompt and model, take turns until a stop phrase or a turn limit.
//!
//! Each role sees the conversation from its side: its own turns as `assistant`, everyone
//! else's (and the opening) as `user`, consecutive turns of one side merged. A conversation that
//! outgrows a model's context ends there with the turns so far (`stopped_by: context_length`),
//! as CAMEL ends a conversation at the model's token limit.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{BackendErrorKind, ChatRequest, Message, Outcome, Record, Role, SamplingParams};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::llm::Llm;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::generate::{ask_with_kind, lineage};
use crate::steps::prompt::one_or_many;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};

/// One speaker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// The role's name, as it appears in the transcript.
    pub name: String,
    /// Its system prompt: a template over the record's fields.
    #[serde(default)]
    pub system: Option<String>,
    /// Its model, by name in `llms:`; the `llm:` block by default.
    #[serde(default)]
    pub llm: Option<String>,
    /// Its sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// The most tokens of one of its turns.
    #[serde(default)]
    pub max_tokens: Option<u32>,
}

/// Settings of a `converse` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConverseConfig {
    /// The speakers, in speaking order; the first speaks first.
    pub roles: Vec<RoleConfig>,
    /// The message that starts the conversation, addressed to the first speaker: a template.
    #[serde(default)]
    pub opening: Option<String>,
    /// The most turns in all.
    #[serde(default = "default_turns")]
    pub max_turns: usize,
    /// Phrases that end the conversation when a turn contains one (e.g. `<CAMEL_TASK_DONE>`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub stop: Vec<String>,
    /// The field the transcript goes to: a list of `{role, content}`.
    #[serde(default = "default_into")]
    pub into: String,
    /// Also write the conversation as chat `messages` from this role's side (its turns as `assistant`).
    #[serde(default)]
    pub messages_as: Option<String>,
    /// The field for those chat messages.
    #[serde(default = "default_messages")]
    pub messages_into: String,
    /// Fail the record if no stop phrase ends the conversation before the turn limit.
    #[serde(default)]
    pub require_stop: bool,
}

fn default_turns() -> usize {
    10
}

fn default_into() -> String {
    "dialogue".to_string()
}

fn default_messages() -> String {
    "messages".to_string()
}

impl StepDef for ConverseConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates: Vec<(String, TemplateSource)> = self
            .roles
            .iter()
            .enumerate()
            .filter_map(|(index, role)| role.system.as_ref().map(|system| (format!("roles[{index}].system"), TemplateSource::Inline(system.clone()))))
            .collect();
        if let Some(opening) = &self.opening {
            templates.push(("opening".to_string(), TemplateSource::Inline(opening.clone())));
        }
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.roles.len() < 2 {
            cx.error("roles", format!("expected at least 2 roles, found {}", self.roles.len()));
        }
        cx.range("max_turns", self.max_turns as u64, 1, crate::limits::MAX_ITERATIONS);
        for (index, role) in self.roles.iter().enumerate() {
            if let Some(max_tokens) = role.max_tokens {
                cx.range(&format!("roles[{index}].max_tokens"), u64::from(max_tokens), 1, crate::limits::MAX_TOKENS);
            }
            if role.system.is_some() {
                cx.template(&format!("roles[{index}].system"), &[]);
            }
            cx.llm(&format!("roles[{index}].llm"), role.llm.as_deref());
        }
        if self.opening.is_some() {
            cx.template("opening", &[]);
        }
        if let Some(name) = &self.messages_as {
            if !self.roles.iter().any(|role| &role.name == name) {
                cx.error("messages_as", format!("unknown role `{name}`"));
            }
            cx.write(&self.messages_into);
        }
        cx.write(&self.into);
        cx.write("turns");
        cx.write("stopped_by");
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llms = self.roles.iter().map(|role| cx.llm(&spec.path, role.llm.as_deref())).collect::<Result<Vec<_>, _>>()?;
        let concurrency = cx.concurrency(spec, llms.first().map(|llm| llm.as_ref()));
        Ok(Built::Record(Arc::new(Converse { config: self.clone(), llms, concurrency })))
    }
}

struct Converse {
    config: ConverseConfig,
    llms: Vec<Arc<Llm>>,
    concurrency: usize,
}

/// The conversation as `speaker` sees it.
fn view(system: Option<&str>, transcript: &[(Option<usize>, String)], speaker: usize) -> Vec<Message> {
    let mut messages: Vec<Message> = system.map(Message::system).into_iter().collect();
    for (author, content) in transcript {
        let role = if *author == Some(speaker) { Role::Assistant } else { Role::User };
        match messages.last_mut() {
            Some(last) if last.role == role => {
                last.content.push_str("\n\n");
                last.content.push_str(content);
            }
            _ => messages.push(Message::new(role, content.clone())),
        }
    }
    if messages.last().is_none_or(|last| last.role != Role::User) {
        // A model answers a user turn; a speaker with nothing addressed to it is asked to begin.
        messages.push(Message::user("Begin."));
    }
    messages
}

#[async_trait]
impl RecordStep for Converse {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let templates = &cx.run.templates;
        let render = |key: &str, record: &Record| templates.render(&format!("{}.{key}", cx.step), record, cx.round);
        let mut systems = Vec::new();
        for (index, role) in self.config.roles.iter().enumerate() {
            match role.system.as_ref().map(|_| render(&format!("roles[{index}].system"), &record)).transpose() {
                Ok(system) => systems.push(system),
                Err(error) => return vec![Outcome::fail(record, format!("roles[{index}].system failed: {error}"))],
            }
        }
        let mut transcript: Vec<(Option<usize>, String)> = Vec::new();
        if self.config.opening.is_some() {
            match render("opening", &record) {
                Ok(opening) => transcript.push((None, opening)),
                Err(error) => return vec![Outcome::fail(record, format!("opening failed: {error}"))],
            }
        }
        let mut stopped_by = Value::Null;
        let mut out_of_context = false;
        for turn in 0..self.config.max_turns {
            let speaker = turn % self.config.roles.len();
            let role = &self.config.roles[speaker];
            let request = ChatRequest {
                messages: view(systems[speaker].as_deref(), &transcript, speaker),
                params: SamplingParams {
                    temperature: role.temperature,
                    max_tokens: role.max_tokens,
                    seed: Some(cx.seed(&record.id, turn)),
                    n: 1,
                    ..SamplingParams::default()
                },
                json_schema: None,
                grammar: None,
                tools: Vec::new(),
                continue_final: false,
            };
            let (response, key) = match ask_with_kind(&self.llms[speaker], &request, cx).await {
                Ok(answer) => answer,
                Err((Some(BackendErrorKind::ContextLength), _)) if turn > 0 => {
                    out_of_context = true;
                    break;
                }
                Err((Some(BackendErrorKind::Cancelled), _)) => return vec![Outcome::Interrupted(record)],
                Err((_, reason)) => return vec![Outcome::fail(record, format!("turn {turn} ({}): {reason}", role.name))],
            };
            let text = response.choices[0].text.trim().to_string();
            if turn == 0 {
                let finish_reason = response.choices[0].finish_reason;
                record.lineage.push(lineage(&self.llms[speaker], cx, &self.config.into, request, key, Some(finish_reason)));
            }
            let stop = self.config.stop.iter().find(|phrase| text.contains(phrase.as_str())).cloned();
            transcript.push((Some(speaker), text));
            if let Some(phrase) = stop {
                stopped_by = Value::String(phrase);
                break;
            }
        }
        if self.config.require_stop && stopped_by.is_null() {
            let reason = match out_of_context {
                true => "converse: no stop phrase before the dialogue outgrew the model's context".to_string(),
                false => format!("converse: no stop phrase within {} turns", self.config.max_turns),
            };
            return vec![Outcome::Drop(record, reason)];
        }
        if out_of_context {
            stopped_by = json!("context_length");
        }
        let dialogue: Vec<Value> = transcript
            .iter()
            .map(|(author, content)| {
                let name = author.map(|index| self.config.roles[index].name.as_str()).unwrap_or("opening");
                json!({"role": name, "content": content})
            })
            .collect();
        let turns = transcript.iter().filter(|(author, _)| author.is_some()).count();
        if let Some(name) = &self.config.messages_as {
            let speaker = self.config.roles.iter().position(|role| &role.name == name).unwrap_or(0);
            let mut messages = view(systems[speaker].as_deref(), &transcript, speaker);
            if messages.last().is_some_and(|last| last.role == Role::User && last.content == "Begin.") {
                messages.pop();
            }
            record.set(self.config.messages_into.clone(), serde_json::to_value(messages).unwrap_or(Value::Null));
        }
        record.set(self.config.into.clone(), Value::Array(dialogue));
        record.set("turns", json!(turns));
        record.set("stopped_by", stopped_by);
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
