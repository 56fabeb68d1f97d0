//! Chat backends for retort: an OpenAI-compatible HTTP client, a scripted backend for tests,
//! and a compliance suite that every backend must pass.
//!
//! Configs are deserialized straight from a recipe's `llm:` block (the engine picks the
//! config type by the block's `backend:` tag):
//!
//! ```yaml
//! llm:
//!   backend: openai
//!   base_url: http://127.0.0.1:8000/v1
//!   model: qwen2.5-7b-instruct
//!   max_concurrency: 128
//! ```
//!
//! Backends do no caching: the engine caches answers by a hash of the rendered request.

pub mod balance;
pub mod clock;
pub mod compliance;
pub mod hedge;
pub mod limiter;
pub mod openai;
pub mod retry;
pub mod scripted;
pub mod wire;

pub use openai::{OpenAiBackend, OpenAiConfig};
pub use scripted::{ScriptRule, ScriptToolCall, ScriptedBackend, ScriptedConfig};

use std::path::PathBuf;

/// What a model's tokens cost, in US dollars per million tokens (`price: {prompt: 0.15,
/// completion: 0.6}`): the run counts the cost of the requests it sends.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub prompt: f64,
    /// Per million completion tokens.
    pub completion: f64,
    /// Per million prompt tokens the server took from its prompt cache (default: `prompt`).
    #[serde(default)]
    pub cached_prompt: Option<f64>,
}

impl Price {
    /// The cost of one answer's tokens, in dollars.
    pub fn cost(&self, usage: &retort_core::Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens);
        let fresh = usage.prompt_tokens - cached;
        (fresh as f64 * self.prompt
            + cached as f64 * self.cached_prompt.unwrap_or(self.prompt)
            + usage.completion_tokens as f64 * self.completion)
            / 1e6
    }

    /// The problems of these prices (negative or not finite), as `(key, message)`.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (key, value) in [("prompt", Some(self.prompt)), ("completion", Some(self.completion)), ("cached_prompt", self.cached_prompt)] {
            if let Some(value) = value {
                if !value.is_finite() || value < 0.0 {
                    problems.push((format!("price.{key}"), format!("expected dollars per million tokens, 0 or more, found {value}")));
                }
            }
        }
        problems
    }
}

/// A backend could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum BackendBuildError {
    /// A base URL is not an absolute http(s) URL.
    #[error("building the openai backend: expected an http(s) base URL, found {url:?}: {reason}")]
    InvalidBaseUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A config value is out of range or contradicts another.
    #[error("building the {backend} backend: {message}")]
    InvalidConfig {
        /// The backend kind (`openai`, `scripted`).
        backend: &'static str,
        /// What is wrong, naming the field.
        message: String,
    },
    /// The HTTP client could not be built.
    #[error("building the openai backend: the HTTP client could not be built: {0}")]
    Client(String),
    /// A scripted rule's `when` is not a valid regex.
    #[error("building the scripted backend: rule {index} has an invalid `when` regex {pattern:?}: {error}")]
    InvalidRegex {
        /// The rule's position (0-based, inline rules first, then the rules file).
        index: usize,
        /// The pattern as written.
        pattern: String,
        /// The regex compiler's complaint.
        error: String,
    },
    /// A scripted rule names an unknown error kind.
    #[error("building the scripted backend: rule {index} has error {found:?}, expected one of rate_limited, server, timeout, connection, bad_request, context_length, auth, protocol, unsupported, worker_died")]
    UnknownErrorKind {
        /// The rule's position.
        index: usize,
        /// The kind name as written.
        found: String,
    },
    /// The rules file could not be read or parsed.
    #[error("building the scripted backend: reading rules file {path}: {error}")]
    RulesFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        error: String,
    },
}
