//! The backend trait and the chat request and response types that every backend speaks.
//!
//! A backend turns one [`ChatRequest`] into one [`ChatResponse`]. Retries, rate limits and
//! load balancing live inside a backend; caching lives in the engine, so a backend never
//! sees a request twice unless the engine means it.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The speaker of a chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions that frame the conversation.
    System,
    /// The human side (or the simulated human).
    User,
    /// The model side.
    Assistant,
    /// The result of a tool call.
    Tool,
}

impl Role {
    /// The wire name: `system`, `user`, `assistant`, `tool`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
    /// Tool calls an assistant message makes (function calling).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For a `tool` message: the call it answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl Message {
    /// A message with no tool calls.
    pub fn new(role: Role, content: impl Into<String>) -> Message {
        Message { role, content: content.into(), tool_calls: Vec::new(), tool_call_id: None }
    }

    /// A system message.
    pub fn system(content: impl Into<String>) -> Message {
        Message::new(Role::System, content)
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Message {
        Message::new(Role::User, content)
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Message {
        Message::new(Role::Assistant, content)
    }
}

/// A tool the model may call, in the OpenAI function format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The function's name.
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// Its arguments as a JSON schema.
    #[serde(default)]
    pub parameters: Value,
}

impl ToolSpec {
    /// The tool as OpenAI's `{"type": "function", "function": {...}}` object (what chat
    /// templates and exported `tools` columns expect).
    pub fn to_openai(&self) -> Value {
        serde_json::json!({"type": "function", "function": {"name": self.name, "description": self.description, "parameters": self.parameters}})
    }
}

/// A call the model made to a tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The id the answer must quote back.
    pub id: String,
    /// The function called.
    pub name: String,
    /// The arguments, as the JSON text the model wrote.
    pub arguments: String,
}

/// Sampling parameters. `None` leaves the server's default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingParams {
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "short_float")]
    pub temperature: Option<f32>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "short_float")]
    pub top_p: Option<f32>,
    /// The most tokens to generate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Strings that end generation; not included in the answer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
    /// The sampling seed. The engine derives one per record and sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// How many choices to return for this one request (the OpenAI `n`).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub n: u32,
    /// Return log-probabilities of the generated tokens, with this many alternatives each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u8>,
}

/// Writes an `f32` as the decimal it was written as (`0.7`, not `0.699999988079071`), so
/// lineage reads as the recipe does and cache keys do not depend on float widening.
fn short_float<S: serde::Serializer>(value: &Option<f32>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(value) => serializer.serialize_f64(value.to_string().parse::<f64>().unwrap_or(f64::from(*value))),
        None => serializer.serialize_none(),
    }
}

fn one() -> u32 {
    1
}

impl Default for SamplingParams {
    fn default() -> SamplingParams {
        SamplingParams { temperature: None, top_p: None, max_tokens: None, stop: Vec::new(), seed: None, n: 1, logprobs: None }
    }
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

/// One request to a chat model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// How to sample.
    #[serde(default)]
    pub params: SamplingParams,
    /// A JSON schema the answer must follow (structured output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    /// A GBNF grammar (root rule `root`) the answer must follow, where the backend can hold
    /// sampling to one ([`Capabilities::grammar`]); a backend that cannot ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grammar: Option<String>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// The last message is the start of the assistant's answer, which the model continues
    /// (prefill: ToRA's code outputs, a teacher completing a prefix) instead of a new turn.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continue_final: bool,
}

impl ChatRequest {
    /// A request with one user message and default parameters.
    pub fn from_prompt(prompt: impl Into<String>) -> ChatRequest {
        ChatRequest { messages: vec![Message::user(prompt)], ..ChatRequest::default() }
    }
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// The model ended its answer or hit a stop string.
    Stop,
    /// `max_tokens` was reached.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Anything else the server said.
    Other,
}

/// The log-probability of one token, with the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its natural-log probability.
    pub logprob: f64,
    /// The most likely tokens at this position with theirs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub top: Vec<(String, f64)>,
}

/// One answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The answer's text.
    pub text: String,
    /// Tool calls, when the model made any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// Why it stopped.
    pub finish_reason: FinishReason,
    /// Per-token log-probabilities, when asked for and supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// Tokens counted by the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens read.
    pub prompt_tokens: u64,
    /// Tokens written.
    pub completion_tokens: u64,
    /// Of the prompt tokens, those the server took from its cache of an earlier prompt
    /// rather than evaluated (OpenAI's `prompt_tokens_details.cached_tokens`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cached_tokens: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// A model's answer to one [`ChatRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// One per requested sample; never empty.
    pub choices: Vec<Choice>,
    /// Tokens used.
    #[serde(default)]
    pub usage: Usage,
    /// The model that answered, as the server names it.
    pub model: String,
}

/// Score mode: the log-probability of a given continuation after a given prompt, no sampling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRequest {
    /// The context, rendered with the model's chat template.
    pub messages: Vec<Message>,
    /// The text whose probability is wanted, as the assistant's answer.
    pub continuation: String,
    /// Plain text, no chat template: the messages' contents joined as they are, followed
    /// directly by the continuation (Toolformer scores raw text). Left out of the wire form
    /// when false, so requests made before it existed keep their keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raw: bool,
}

impl ScoreRequest {
    /// The continuation after the messages, rendered with the chat template.
    pub fn chat(messages: Vec<Message>, continuation: impl Into<String>) -> ScoreRequest {
        ScoreRequest { messages, continuation: continuation.into(), raw: false }
    }

    /// The raw text of a `raw` request's context: the messages' contents, concatenated.
    pub fn raw_prompt(&self) -> String {
        self.messages.iter().map(|message| message.content.as_str()).collect()
    }
}

/// The per-token log-probabilities of a scored continuation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreResponse {
    /// The continuation's tokens with their log-probabilities.
    pub tokens: Vec<TokenLogprob>,
}

impl ScoreResponse {
    /// The sum of the tokens' log-probabilities.
    pub fn total(&self) -> f64 {
        self.tokens.iter().map(|token| token.logprob).sum()
    }

    /// The mean log-probability per token; 0 for an empty continuation.
    pub fn mean(&self) -> f64 {
        if self.tokens.is_empty() {
            0.0
        } else {
            self.total() / self.tokens.len() as f64
        }
    }
}

/// What a backend can do beyond plain chat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Several choices in one request.
    pub n: bool,
    /// Log-probabilities of generated tokens.
    pub logprobs: bool,
    /// Score mode ([`Backend::score`]).
    pub score: bool,
    /// Structured output by JSON schema.
    pub json_schema: bool,
    /// Sampling held to a GBNF grammar ([`ChatRequest::grammar`]).
    pub grammar: bool,
    /// Native function calling.
    pub tools: bool,
}

/// The kinds of backend failure, which decide whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendErrorKind {
    /// 429: too many requests.
    RateLimited,
    /// 5xx, or a reset connection: the server may answer next time.
    Server,
    /// No answer in time.
    Timeout,
    /// The server could not be reached.
    Connection,
    /// 4xx other than 429: the request itself is wrong; retrying will not help.
    BadRequest,
    /// The prompt does not fit the model's context.
    ContextLength,
    /// 401/403: the key is missing or wrong.
    Auth,
    /// The server answered something that is not the wire format.
    Protocol,
    /// The server said 200 but its body was not a usable answer (not JSON, cut off, no
    /// choices): a fault of the moment, retried like a 5xx.
    Malformed,
    /// The backend cannot do what was asked (for example logprobs on a server without them).
    Unsupported,
    /// The model's worker died while answering.
    WorkerDied,
    /// Not sent: the run is stopping (Ctrl-C). Not a failure of the request, never retried.
    Cancelled,
}

/// A failed backend call.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendError {
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// What happened, in words (never a key or a secret).
    pub message: String,
    /// How long the server asked us to wait, from `Retry-After`.
    pub retry_after: Option<Duration>,
}

impl BackendError {
    /// An error of the given kind.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> BackendError {
        BackendError { kind, message: message.into(), retry_after: None }
    }

    /// Whether trying the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            BackendErrorKind::RateLimited
                | BackendErrorKind::Server
                | BackendErrorKind::Timeout
                | BackendErrorKind::Connection
                | BackendErrorKind::WorkerDied
                | BackendErrorKind::Malformed
        )
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = serde_json::to_value(self.kind).ok();
        let kind = kind.as_ref().and_then(Value::as_str).unwrap_or("error");
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for BackendError {}

/// A chat model that retort can send requests to.
///
/// Implementations: `openai` (any OpenAI-compatible server), `scripted` (rules, for tests),
/// and the in-process `local` model. Each lives in its own file and passes the same
/// compliance suite.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// The backend's kind, as recipes name it (`openai`, `scripted`, `local`).
    fn kind(&self) -> &str;

    /// The model this backend sends requests to; part of every cache key.
    fn model(&self) -> &str;

    /// What it supports beyond plain chat.
    fn capabilities(&self) -> Capabilities {
        Capabilities::default()
    }

    /// Sends one request and waits for its answer, retrying transient failures inside.
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError>;

    /// Scores a continuation after a prompt (log-probabilities, no sampling).
    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        let _ = request;
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            format!("the {} backend cannot score a continuation; use the local backend", self.kind()),
        ))
    }

    /// Requests in flight right now, for progress display.
    fn in_flight(&self) -> usize {
        0
    }
}

/// One problem with a backend's settings, found without building it: the key and what is
/// wrong (what was expected, what was found). `retort validate` reports them all at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The settings key, such as `base_url` or `max_concurrency` (empty for the whole block).
    pub key: String,
    /// What was expected and what was found.
    pub message: String,
}

impl ConfigProblem {
    /// A problem at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigProblem {
        ConfigProblem { key: key.into(), message: message.into() }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}
