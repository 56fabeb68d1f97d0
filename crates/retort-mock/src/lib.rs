//! A fast local server speaking the OpenAI chat-completions wire format, for tests and
//! benchmarks.
//!
//! It answers `POST /v1/chat/completions` deterministically (scripted rules first, else a
//! hash of the conversation and seed; see [`responder`]), serves `GET /v1/models` and
//! `GET /health`, can add latency and inject faults (statuses with `Retry-After`, hangs,
//! dropped connections), and logs every chat request (a hash of its body) so tests can see
//! which requests were sent again.
//!
//! ```no_run
//! # async fn demo() -> Result<(), retort_mock::MockError> {
//! use retort_mock::{MockConfig, MockServer};
//! let server = MockServer::start(MockConfig::default()).await?;
//! println!("{}", server.url()); // http://127.0.0.1:PORT/v1
//! assert_eq!(server.count(), 0);
//! server.shutdown().await;
//! # Ok(()) }
//! ```

pub mod responder;
mod server;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use retort_backends::ScriptRule;
use serde::{Deserialize, Serialize};

pub use server::MockServer;

fn default_host() -> IpAddr {
    IpAddr::V4(Ipv4Addr::LOCALHOST)
}
fn default_model() -> String {
    "mock".to_owned()
}
fn default_true() -> bool {
    true
}
fn default_fail_status() -> u16 {
    500
}

/// How the mock server behaves.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MockConfig {
    /// The address to listen on.
    #[serde(default = "default_host")]
    pub host: IpAddr,
    /// The port; 0 picks a free one.
    #[serde(default)]
    pub port: u16,
    /// The model name listed by `/v1/models` and reported when a request names none.
    #[serde(default = "default_model")]
    pub model: String,
    /// Milliseconds every chat request waits before its answer.
    #[serde(default)]
    pub latency_ms: u64,
    /// Scripted rules (the scripted backend's), tried before the default answers; an
    /// `error` rule answers with the matching status (`rate_limited` 429, `server` 500,
    /// `timeout` 408, `connection` drops the connection, `context_length` 400, ...).
    #[serde(default)]
    pub rules: Vec<ScriptRule>,
    /// The answer when no rule matches, instead of the hash-derived default.
    #[serde(default)]
    pub default_reply: Option<String>,
    /// Derive default answers from the conversation alone, ignoring the request's `seed`, so
    /// clients that send different seeds (or none) get the same answers (benchmarks compare
    /// engines this way).
    #[serde(default)]
    pub ignore_seed: bool,
    /// Injected faults.
    #[serde(default)]
    pub faults: Faults,
    /// Whether to answer log-probabilities when asked (false imitates a server without them).
    #[serde(default = "default_true")]
    pub logprobs: bool,
    /// Whether to keep the in-memory request log ([`MockServer::requests`]); the count is
    /// always kept.
    #[serde(default = "default_true")]
    pub record: bool,
    /// A file to append one line per chat request to, flushed at once:
    /// `seq<TAB>key<TAB>status<TAB>last user message as JSON`.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
}

impl Default for MockConfig {
    fn default() -> MockConfig {
        MockConfig {
            host: default_host(),
            port: 0,
            model: default_model(),
            latency_ms: 0,
            rules: Vec::new(),
            default_reply: None,
            ignore_seed: false,
            faults: Faults::default(),
            logprobs: true,
            record: true,
            log_file: None,
        }
    }
}

/// Faults injected into chat requests, counted from 1 in arrival order (since the server
/// started or [`MockServer::set_faults`] was last called). Checked in this order: drop,
/// hang, fail.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Fail the first this-many requests with `fail_status`.
    #[serde(default)]
    pub fail_first: u32,
    /// Also fail every request whose number is a multiple of this.
    #[serde(default)]
    pub fail_every: Option<u32>,
    /// The status of failed requests (e.g. 429, 500, 503).
    #[serde(default = "default_fail_status")]
    pub fail_status: u16,
    /// Seconds sent as `Retry-After` with failed requests (decimals allowed).
    #[serde(default)]
    pub retry_after_s: Option<f64>,
    /// Hang the first this-many requests for `hang_s` seconds before answering.
    #[serde(default)]
    pub hang_first: u32,
    /// How long a hang lasts.
    #[serde(default)]
    pub hang_s: f64,
    /// Drop the connection of the first this-many requests without answering.
    #[serde(default)]
    pub drop_first: u32,
    /// Also drop every request whose number is a multiple of this.
    #[serde(default)]
    pub drop_every: Option<u32>,
    /// A share (0 to 1) of chat requests that meet a fault drawn evenly from [`MixedFault`]:
    /// resets, hangs (`hang_s`, or an hour when it is 0), 429/500/503 with `Retry-After`,
    /// malformed and truncated bodies, 200 without `choices`, empty content, answers cut by
    /// `finish_reason: length`, and bodies dripped a byte at a time. The draw hashes the
    /// request body, how many times that body came before, and `mixed_seed`, so the same
    /// requests meet the same faults in every run whatever the arrival order, and a retry
    /// of a request draws again.
    #[serde(default)]
    pub mixed_rate: f64,
    /// The seed of the mixed-fault draw.
    #[serde(default)]
    pub mixed_seed: u64,
}

/// The faults of [`Faults::mixed_rate`], drawn with equal weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MixedFault {
    /// The connection is dropped without an answer.
    Reset,
    /// The answer comes after `hang_s` (an hour when 0): past any sensible timeout.
    Hang,
    /// 429 with `Retry-After: 0.2`.
    RateLimited,
    /// 500.
    ServerError,
    /// 503 with `Retry-After: 0.1`.
    Unavailable,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 whose body stops half-way (the connection breaks).
    Truncated,
    /// 200 with no `choices`.
    NoChoices,
    /// 200 with an empty answer.
    Empty,
    /// 200 with half the answer and `finish_reason: length`.
    Length,
    /// 200 with the answer sent a byte every 2 ms.
    Drip,
}

impl MixedFault {
    /// Every kind, in draw order.
    pub const ALL: [MixedFault; 11] = [
        MixedFault::Reset,
        MixedFault::Hang,
        MixedFault::RateLimited,
        MixedFault::ServerError,
        MixedFault::Unavailable,
        MixedFault::Malformed,
        MixedFault::Truncated,
        MixedFault::NoChoices,
        MixedFault::Empty,
        MixedFault::Length,
        MixedFault::Drip,
    ];
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            fail_first: 0,
            fail_every: None,
            fail_status: default_fail_status(),
            retry_after_s: None,
            hang_first: 0,
            hang_s: 0.0,
            drop_first: 0,
            drop_every: None,
            mixed_rate: 0.0,
            mixed_seed: 0,
        }
    }
}

/// One chat request as the mock logged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// Its number, from 1, in arrival order.
    pub seq: u64,
    /// A hash of the request body (16 hex digits): equal bodies give equal keys.
    pub key: String,
    /// The status answered (0: the connection was dropped).
    pub status: u16,
    /// The last user message.
    pub last_user: String,
    /// Whether the request carried an `Authorization` header.
    pub authorized: bool,
    /// The mixed fault it met, if any.
    pub fault: Option<MixedFault>,
}

/// The mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listening socket could not be bound.
    #[error("starting the mock server: binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The scripted rules are invalid.
    #[error("starting the mock server: {0}")]
    Rules(#[from] retort_backends::BackendBuildError),
    /// The log file could not be opened.
    #[error("starting the mock server: opening log file {path}: {source}")]
    LogFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
