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
        #[serde(default)]
        pub continuation: Option<String>,
        /// The field for the continuation's total log-probability.
        #[serde(default)]
        pub into: Option<String>,
        /// Score plain text: the prompt as it is, no chat template, then `join` and the
        /// continuation (Toolformer's language-model losses).
        #[serde(default)]
        pub raw: bool,
        /// Put before the continuation in `raw` mode (templates are trimmed: `" "` keeps the
        /// space between a prompt and the next word).
        #[serde(default)]
        pub join: String,
        /// A field for Toolformer's weighted loss of the continuation: minus the sum of its
        /// tokens' log-probabilities weighted by max(0, 1 - 0.2 t), normalised (t = 0, 1, ...).
        #[serde(default)]
        pub weighted_loss_into: Option<String>,
        /// A field for the probability of the continuation's first token.
        #[serde(default)]
        pub first_prob_into: Option<String>,
        /// Probe every word boundary of a text: the probability of `token` after the prompt and
        /// the text's words before the boundary (Toolformer's p(<API>) at each position).
        #[serde(default)]
        pub probe: Option<Probe>,
        /// A field for the mean log-probability per token.
        #[serde(default)]
        pub mean_into: Option<String>,
        /// A field for the number of tokens scored.
        #[serde(default)]
        pub tokens_into: Option<String>,
    }
}


/// Word boundaries to probe (`score` with `probe`, `raw` mode).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    /// The text whose boundaries are probed: a template.
    pub text: String,
    /// The token whose probability is read at each boundary (with its leading space, e.g. " [").
    pub token: String,
    /// The field for the list of `{position, prefix, prob}`: `position` words come before the
    /// boundary, `prefix` is their text.
    pub into: String,
    /// Skip boundaries with fewer words before them (default 1).
    #[serde(default = "one")]
    pub min_position: usize,
}

fn one() -> usize {
    1
}

/// Toolformer's weights: max(0, 1 - 0.2 t) for the t-th token, normalised to sum to 1.
fn toolformer_weights(tokens: usize) -> Vec<f64> {
    let raw: Vec<f64> = (0..tokens).map(|t| (1.0 - 0.2 * t as f64).max(0.0)).collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|w| if total > 0.0 { w / total } else { 0.0 }).collect()
}

/// Word boundaries of a text: the byte offset where each word after the first starts.
fn word_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let (mut previous_space, mut seen_word) = (false, false);
    for (offset, c) in text.char_indices() {
        if c.is_whitespace() {
            previous_space = true;
        } else {
            if previous_space && seen_word {
                starts.push(offset);
            }
            previous_space = false;
            seen_word = true;
        }
    }
    starts
}

impl StepDef for ScoreConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates = prompt::templates(self);
        if let Some(continuation) = &self.continuation {
            templates.push(("continuation".to_string(), TemplateSource::Inline(continuation.clone())));
        }
        if let Some(probe) = &self.probe {
            templates.push(("probe.text".to_string(), TemplateSource::Inline(probe.text.clone())));
        }
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        prompt::check(self, cx, &[]);
        match (&self.continuation, &self.into, &self.probe) {
            (Some(_), Some(_), None) => cx.template("continuation", &[]),
            (None, None, Some(probe)) => {
                cx.template("probe.text", &[]);
                if !self.raw {
                    cx.error("probe", "probing word boundaries scores plain text: set `raw: true`");
                }
                cx.write(&probe.into);
            }
            _ => cx.error("", "give `continuation` and `into`, or `probe`"),
        }
        cx.llm("llm", self.llm.as_deref());
        let written = [&self.into, &self.mean_into, &self.tokens_into, &self.weighted_loss_into, &self.first_prob_into];
        for field in written.into_iter().flatten() {
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

impl Score {
    async fn ask(&self, messages: Vec<retort_core::Message>, continuation: String, cx: &StageCx) -> Result<retort_core::ScoreResponse, String> {
        let continuation = if self.config.raw { format!("{}{continuation}", self.config.join) } else { continuation };
        let request = ScoreRequest { messages, continuation, raw: self.config.raw };
        self.llm.score(&request, &cx.stats).await.map(|answer| answer.value).map_err(|error| format!("scoring failed: {error}"))
    }

    /// Toolformer's p(token) at each word boundary of the probed text.
    async fn probe(&self, probe: &Probe, messages: &[retort_core::Message], record: &Record, cx: &StageCx) -> Result<serde_json::Value, String> {
        let text = cx.run.templates.render(&format!("{}.probe.text", cx.step), record, cx.round).map_err(|error| format!("template `probe.text` failed: {error}"))?;
        let prompt: String = messages.iter().map(|message| message.content.as_str()).collect();
        let mut positions = Vec::new();
        for (index, start) in word_starts(&text).into_iter().enumerate() {
            let position = index + 1;
            if position < probe.min_position {
                continue;
            }
            let prefix = text[..start].trim_end();
            let separator = if prompt.is_empty() || prompt.ends_with(char::is_whitespace) { "" } else { " " };
            let request = ScoreRequest {
                messages: vec![retort_core::Message::user(format!("{prompt}{separator}{prefix}"))],
                continuation: probe.token.clone(),
                raw: true,
            };
            let scored = self.llm.score(&request, &cx.stats).await.map_err(|error| format!("scoring failed: {error}"))?.value;
            let prob = scored.tokens.first().map_or(0.0, |token| token.logprob.exp());
            positions.push(json!({"position": position, "prefix": prefix, "prob": prob}));
        }
        Ok(serde_json::Value::Array(positions))
    }
}

#[async_trait]
impl RecordStep for Score {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let messages = match prompt::render(&self.config, &record, cx, None) {
            Ok(messages) => messages,
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        if let Some(probe) = &self.config.probe {
            return match self.probe(probe, &messages, &record, cx).await {
                Ok(positions) => {
                    record.set(probe.into.clone(), positions);
                    vec![Outcome::Keep(record)]
                }
                Err(reason) => vec![Outcome::fail(record, reason)],
            };
        }
        let continuation = match cx.run.templates.render(&format!("{}.continuation", cx.step), &record, cx.round) {
            Ok(text) => text,
            Err(error) => return vec![Outcome::fail(record, format!("template `continuation` failed: {error}"))],
        };
        match self.ask(messages, continuation, cx).await {
            Ok(scored) => {
                if let Some(field) = &self.config.into {
                    record.set(field.clone(), json!(scored.total()));
                }
                if let Some(field) = &self.config.mean_into {
                    record.set(field.clone(), json!(scored.mean()));
                }
                if let Some(field) = &self.config.tokens_into {
                    record.set(field.clone(), json!(scored.tokens.len()));
                }
                if let Some(field) = &self.config.weighted_loss_into {
                    let weights = toolformer_weights(scored.tokens.len());
                    let loss: f64 = scored.tokens.iter().zip(&weights).map(|(token, weight)| -weight * token.logprob).sum();
                    record.set(field.clone(), json!(loss));
                }
                if let Some(field) = &self.config.first_prob_into {
                    record.set(field.clone(), json!(scored.tokens.first().map_or(0.0, |token| token.logprob.exp())));
                }
                vec![Outcome::Keep(record)]
            }
            Err(reason) => vec![Outcome::fail(record, reason)],
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolformer_weights_fall_to_zero_after_five_tokens() {
        let weights = toolformer_weights(7);
        assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((weights[0] - 1.0 / 3.0).abs() < 1e-12, "{weights:?}");
        assert_eq!(weights[5], 0.0);
        assert_eq!(weights[6], 0.0);
        assert!(toolformer_weights(0).is_empty());
    }

    #[test]
    fn word_boundaries_are_where_words_start() {
        assert_eq!(word_starts("He paid 400 dollars."), vec![3, 8, 12]);
        assert_eq!(word_starts("  two  words "), vec![7]);
    }
}
