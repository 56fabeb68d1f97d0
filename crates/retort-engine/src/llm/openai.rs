//! The `openai` backend kind: any OpenAI-compatible server (`retort_backends::OpenAiBackend`).

use std::path::Path;
use std::sync::Arc;

use retort_backends::{OpenAiBackend, OpenAiConfig};
use retort_core::{Backend, ConfigProblem};

use crate::llm::{BackendKind, BoxError};

impl BackendKind for OpenAiConfig {
    const NAME: &'static str = "openai";

    fn problems(&self) -> Vec<ConfigProblem> {
        OpenAiConfig::problems(self).into_iter().map(|problem| problem.into_config_problem()).collect()
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn set_model(&mut self, model: &str) {
        self.model = model.to_string();
    }

    fn describe(&self) -> String {
        let urls: Vec<String> = self.all_base_urls().iter().map(|url| retort_core::redact_url(url)).collect();
        format!("openai `{}` at {}", self.model, urls.join(", "))
    }

    fn build(&self, _base_dir: &Path) -> Result<(Arc<dyn Backend>, usize), BoxError> {
        let backend = OpenAiBackend::new(self.clone())?;
        Ok((Arc::new(backend), self.max_concurrency))
    }
}
