//! `score`: the log-probability a model gives a continuation after a prompt (no sampling).
//!
//! SuperGen ranks generated texts by it, Toolformer compares losses with and without an API
//! call, SPA and Constitutional AI turn option probabilities into preferences. It needs a
//! backend that can score (the local model); others fail the record saying so.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record, ScoreRequest};
use serde::Deserialize;
use serde_json::json;

use crate::error::EngineError;
use crate::llm::Llm;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::prompt::{self, asks_a_model};
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};

asks_a_model! {
    /// Settings of a `score` step.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ScoreConfig {
        /// The text to score, as the assistant's answer: a template.
        pub continuation: String,
        /// The field for the continuation's total log-probability.
        pub into: String,
        /// A field for the mean log-probability per token.
        #[serde(default)]
        pub mean_into: Option<String>,
        /// A field for the number of tokens scored.
        #[serde(default)]
        pub tokens_into: Option<String>,
    }
}


impl StepDef for ScoreConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates = prompt::templates(self);
        templates.push(("continuation".to_string(), TemplateSource::Inline(self.continuation.clone())));
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        prompt::check(self, cx, &[]);
        cx.template("continuation", &[]);
        cx.llm("llm", self.llm.as_deref());
        cx.write(&self.into);
        for field in [&self.mean_into, &self.tokens_into].into_iter().flatten() {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        let concurrency = cx.concurrency(spec, Some(&llm));
        Ok(Built::Record(Arc::new(Score { config: self.clone(), llm, concurrency })))
    }
}

struct Score {
    config: ScoreConfig,
    llm: Arc<Llm>,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Score {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let messages = match prompt::render(&self.config, &record, cx, None) {
            Ok(messages) => messages,
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        let continuation = match cx.run.templates.render(&format!("{}.continuation", cx.step), &record, cx.round) {
            Ok(text) => text,
            Err(error) => return vec![Outcome::fail(record, format!("template `continuation` failed: {error}"))],
        };
        let request = ScoreRequest { messages, continuation };
        match self.llm.score(&request, &cx.stats).await {
            Ok(answer) => {
                let scored = answer.value;
                record.set(self.config.into.clone(), json!(scored.total()));
                if let Some(field) = &self.config.mean_into {
                    record.set(field.clone(), json!(scored.mean()));
                }
                if let Some(field) = &self.config.tokens_into {
                    record.set(field.clone(), json!(scored.tokens.len()));
                }
                vec![Outcome::Keep(record)]
            }
            Err(error) => vec![Outcome::fail(record, format!("scoring failed: {error}"))],
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
