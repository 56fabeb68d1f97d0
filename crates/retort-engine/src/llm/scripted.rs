//! The `scripted` backend kind: answers chosen by rules, for tests (`retort_backends::ScriptedBackend`).

use std::path::Path;
use std::sync::Arc;

use retort_backends::{ScriptedBackend, ScriptedConfig};
use retort_core::{Backend, ConfigProblem};

use crate::llm::{BackendKind, BoxError};

impl BackendKind for ScriptedConfig {
    const NAME: &'static str = "scripted";

    fn problems(&self) -> Vec<ConfigProblem> {
        ScriptedConfig::problems(self)
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn set_model(&mut self, model: &str) {
        self.model = model.to_string();
    }

    fn describe(&self) -> String {
        format!("scripted `{}`", self.model)
    }

    fn build(&self, base_dir: &Path) -> Result<(Arc<dyn Backend>, usize), BoxError> {
        let mut config = self.clone();
        if let Some(file) = &config.rules_file {
            config.rules_file = Some(base_dir.join(file));
        }
        Ok((Arc::new(ScriptedBackend::new(config)?), 64))
    }
}
