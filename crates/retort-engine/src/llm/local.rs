//! The `local` backend kind: the in-process model over llama.cpp (`retort_llama::LocalBackend`),
//! in a worker process this binary starts.

use std::path::Path;
use std::sync::Arc;

use retort_core::{Backend, ConfigProblem};
use retort_llama::LocalConfig;

use crate::llm::{BackendKind, BoxError};

impl BackendKind for LocalConfig {
    const NAME: &'static str = "local";

    fn problems(&self) -> Vec<ConfigProblem> {
        LocalConfig::problems(self)
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn set_model(&mut self, model: &str) {
        self.set_model_string(model);
    }

    fn describe(&self) -> String {
        format!("local `{}` (in-process)", self.model_string())
    }

    fn build(&self, _base_dir: &Path) -> Result<(Arc<dyn Backend>, usize), BoxError> {
        Ok((Arc::new(local_backend(self)?), self.max_sequences))
    }
}

/// The in-process model for a config. It runs in a worker process: this binary re-launched as
/// `__llama-worker` (or the program named by RETORT_WORKER_EXE, for tests and embedders).
pub(crate) fn local_backend(config: &LocalConfig) -> Result<retort_llama::LocalBackend, BoxError> {
    let command = match std::env::var_os("RETORT_WORKER_EXE") {
        Some(program) => retort_llama::WorkerCommand::new(program, vec!["__llama-worker".to_string()]),
        None => retort_llama::WorkerCommand::current_exe()
            .map_err(|error| format!("finding the running binary to start the model worker: {error}"))?,
    };
    Ok(retort_llama::LocalBackend::with_worker(config.clone(), command)?)
}
