//! Shared helpers for the local backend's tests: the default model and the worker binary.

#![allow(dead_code, unreachable_pub)]

use retort_llama::{LocalBackend, LocalConfig, WorkerCommand, TEST_HOOKS_ENV};

/// The worker command of this crate's own worker binary.
pub fn worker(hooks: bool) -> WorkerCommand {
    let mut command = WorkerCommand::new(env!("CARGO_BIN_EXE_retort-llama-worker"), Vec::new());
    if hooks {
        command.env.push((TEST_HOOKS_ENV.to_string(), "1".to_string()));
    }
    command
}

/// A small config of the default model; tests share 2 cores, so one thread each.
pub fn config() -> LocalConfig {
    LocalConfig { context_size: 512, max_sequences: 4, threads: Some(1), default_max_tokens: 32, ..LocalConfig::default() }
}

/// A backend over the default model; fails (does not skip) when the model is not installed.
pub fn backend_with(config: LocalConfig, hooks: bool) -> LocalBackend {
    LocalBackend::with_worker(config, worker(hooks))
        .unwrap_or_else(|error| panic!("the local backend's tests need the default model: {error}"))
}

/// The default backend of the tests.
pub fn backend() -> LocalBackend {
    backend_with(config(), false)
}
