//! retort's in-process local model backend: GGUF models run by llama.cpp.
//!
//! [`LocalBackend`] implements [`retort_core::Backend`]. The model runs in a worker process
//! that the backend supervises: the `retort` binary re-launched with its hidden
//! `__llama-worker` subcommand, which calls [`worker_main`]. Inside the worker one scheduler
//! owns the llama.cpp context and decodes many sequences in one batch (continuous batching),
//! each with its own sampler chain. When llama.cpp aborts the process, the requests in flight
//! fail with `WorkerDied`, the backend starts a new worker and retries them.
//!
//! Models are found by name in [`models_dir`] (installed by `scripts/setup-models.sh`) or
//! given as a path to any GGUF file.
//!
//! # Unsafe code
//!
//! This crate binds C (llama.cpp) through the `llama-cpp-2` crate, which owns every FFI call,
//! so the crate itself needs no `unsafe`. It sets its own lints (not the workspace's
//! `unsafe_code = "forbid"`) only because a C binding may need a reasoned exception one day;
//! today `unsafe_code` is denied here too.

mod config;
#[cfg(feature = "worker")]
mod constrained;
mod error;
mod local;
mod protocol;
#[cfg(feature = "worker")]
mod sample;
#[cfg(feature = "worker")]
mod scheduler;
mod supervisor;
mod template;
#[cfg(feature = "worker")]
mod worker;

pub use config::{check_gguf, models_dir, resolve_model, resolve_model_in, LocalConfig, WorkerCommand, ADAPTER_SEPARATOR, DEFAULT_MODEL};
pub use error::LocalError;
pub use local::LocalBackend;
pub use template::ChatTemplate;
#[cfg(feature = "worker")]
pub use worker::worker_main;

/// Environment variable that enables the worker's test hooks (`1`) in a build with the
/// `test-hooks` feature: a prompt containing `<<retort-llama:abort>>` aborts the worker, and
/// `<<retort-llama:abort-once:PATH>>` aborts it unless PATH exists (creating PATH first). Only
/// for tests of crash recovery.
pub const TEST_HOOKS_ENV: &str = "RETORT_LLAMA_TEST_HOOKS";

/// Environment variable (`1`) that makes the worker apply a grammar to the whole row of logits
/// before it picks a token, as llama.cpp's `grammar_first = true` does, instead of asking the
/// grammar about the picked token first. Greedy answers are the same either way; it exists for
/// comparisons of speed and for tests.
pub const GRAMMAR_FIRST_ENV: &str = "RETORT_GRAMMAR_FIRST";
