//! `explode`: one record per item of a list field (e.g. the instructions a model listed).

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, RecordStep};

/// Settings of an `explode` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplodeConfig {
    /// The list field.
    pub field: String,
    /// The field each child gets its item in (default: the same name as `field`).
    #[serde(default)]
    pub into: Option<String>,
    /// A field for the item's position in the list.
    #[serde(default)]
    pub index_into: Option<String>,
    /// Merge object items' keys into the child instead of writing the item to `into`.
    #[serde(default)]
    pub spread: bool,
}

impl StepDef for ExplodeConfig {
    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("field", &self.field);
        if self.spread {
            cx.fields.open = true;
        } else {
            cx.write(self.into.as_deref().unwrap_or(&self.field));
        }
        if let Some(field) = &self.index_into {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        Ok(Built::Record(Arc::new(Explode { config: self.clone(), concurrency: cx.concurrency(spec, None) })))
    }
}

struct Explode {
    config: ExplodeConfig,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Explode {
    async fn apply(&self, record: Record, _cx: &StageCx) -> Vec<Outcome> {
        let items = match record.get(&self.config.field) {
            Some(Value::Array(items)) => items.clone(),
            Some(other) => {
                let reason = format!("explode: expected `{}` to be a list, found {}", self.config.field, other);
                return vec![Outcome::fail(record, reason)];
            }
            None => return vec![Outcome::fail(record, format!("explode: field `{}` is missing", self.config.field))],
        };
        if items.is_empty() {
            return vec![Outcome::Drop(record, format!("explode: `{}` is an empty list", self.config.field))];
        }
        let into = self.config.into.as_deref().unwrap_or(&self.config.field);
        items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let mut child = record.child(index);
                if into != self.config.field {
                    child.fields.shift_remove(&self.config.field);
                }
                match (self.config.spread, item) {
                    (true, Value::Object(fields)) => child.fields.extend(fields),
                    (_, item) => child.set(into.to_string(), item),
                }
                if let Some(field) = &self.config.index_into {
                    child.set(field.clone(), Value::from(index));
                }
                Outcome::Keep(child)
            })
            .collect()
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
