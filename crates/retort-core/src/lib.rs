//! Shared vocabulary of retort: records, chat requests and responses, and the backend trait.
//!
//! This crate does no I/O. Backends (`retort-backends`), the run store (`retort-store`) and
//! the engine (`retort-engine`) all speak in these types.

mod backend;
mod hash;
mod record;
mod redact;
mod time;

pub use backend::{
    Backend, BackendError, BackendErrorKind, Capabilities, ChatRequest, ChatResponse, Choice, ConfigProblem, FinishReason, Message, Role,
    SamplingParams, ScoreRequest, ScoreResponse, TokenLogprob, ToolCall, ToolSpec, Usage,
};
pub use hash::{derive_seed, stable_hash, stable_hash_hex, StableHasher};
pub use record::{Failure, Lineage, Outcome, Record, RecordStatus};
pub use redact::{redact_url, scrub_url_secrets, url_secrets};
pub use time::civil_from_days;
