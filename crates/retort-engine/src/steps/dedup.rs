//! `dedup`: remove records whose key (fields or an expression) was seen before.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::EngineError;
use crate::recipe::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, Built, CheckCx, StepDef, StreamStep};
use crate::template::to_json;

/// How two records count as the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupMethod {
    /// Equal keys (after normalisation, when asked).
    #[default]
    Exact,
}

/// Settings of a `dedup` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// The field whose value is the key.
    #[serde(default)]
    pub field: Option<String>,
    /// Several fields that together are the key.
    #[serde(default)]
    pub fields: Vec<String>,
    /// An expression whose value is the key (instead of fields).
    #[serde(default)]
    pub key: Option<String>,
    /// How records compare.
    #[serde(default)]
    pub method: DedupMethod,
    /// Compare text case-folded, with runs of whitespace and punctuation ignored.
    #[serde(default = "yes")]
    pub normalize: bool,
}

fn yes() -> bool {
    true
}

impl DedupConfig {
    fn key_fields(&self) -> Vec<String> {
        self.field.iter().cloned().chain(self.fields.iter().cloned()).collect()
    }
}

impl StepDef for DedupConfig {
    fn check(&self, cx: &mut CheckCx<'_>) {
        let fields = self.key_fields();
        match (&self.key, fields.is_empty()) {
            (Some(key), true) => cx.expression("key", key, &[]),
            (None, false) => fields.iter().for_each(|field| cx.read("field", field)),
            (None, true) => cx.error("", "give the key: `field`, `fields` or `key` (an expression)"),
            (Some(_), false) => cx.error("", "give either fields or `key`, not both"),
        }
    }

    fn build(&self, _spec: &StepSpec, _cx: &BuildCx) -> Result<Built, EngineError> {
        Ok(Built::Stream(Arc::new(Dedup { config: self.clone(), fields: self.key_fields() })))
    }
}

struct Dedup {
    config: DedupConfig,
    fields: Vec<String>,
}

/// Case-folds and keeps only letters and digits, single-spaced.
pub(crate) fn normalize_text(text: &str) -> String {
    let mut normalized = String::with_capacity(text.len());
    let mut pending_space = false;
    for character in text.chars() {
        if character.is_alphanumeric() {
            if pending_space && !normalized.is_empty() {
                normalized.push(' ');
            }
            pending_space = false;
            normalized.extend(character.to_lowercase());
        } else {
            pending_space = true;
        }
    }
    normalized
}

impl Dedup {
    fn key(&self, record: &Record, cx: &StageCx) -> Result<String, String> {
        let values: Vec<Value> = match &self.config.key {
            Some(expression) => vec![to_json(&cx.run.templates.eval(expression, record, cx.round).map_err(|error| format!("dedup key `{expression}` failed: {error}"))?)],
            None => self.fields.iter().map(|field| record.get(field).cloned().unwrap_or(Value::Null)).collect(),
        };
        let text = values
            .iter()
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\u{1f}");
        Ok(if self.config.normalize { normalize_text(&text) } else { text })
    }
}

#[async_trait]
impl StreamStep for Dedup {
    async fn run(self: Arc<Self>, mut input: mpsc::Receiver<Record>, output: mpsc::Sender<Record>, cx: StageCx) -> Result<(), EngineError> {
        // 128-bit hashes, not the keys themselves: memory grows by 16 bytes a record.
        let mut seen: HashSet<u128> = HashSet::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            let outcome = match self.key(&record, &cx) {
                Err(reason) => Outcome::fail(record, reason),
                Ok(key) => {
                    let digest = retort_core::stable_hash(&[key.as_bytes()]);
                    let hash = u128::from_le_bytes(digest[..16].try_into().expect("16 bytes"));
                    if seen.insert(hash) {
                        Outcome::Keep(record)
                    } else {
                        let shown: String = key.chars().take(40).collect();
                        Outcome::Drop(record, format!("dedup: exact duplicate of an earlier record ({shown:?})"))
                    }
                }
            };
            if let Some(record) = cx.settle(outcome).await {
                if output.send(record).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
}
