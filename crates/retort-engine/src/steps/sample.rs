//! `sample`: draw items from a pool (few-shot examples, personas, tags, roles) into a field, seeded per record.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::source;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, RecordStep};

/// How many items to draw: a number, or `[min, max]` drawn per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Count {
    /// Exactly this many.
    Exactly(usize),
    /// Between the two, inclusive, chosen per record.
    Between([usize; 2]),
}

impl Default for Count {
    fn default() -> Count {
        Count::Exactly(1)
    }
}

/// Settings of a `sample` step; give `from` or `items`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// A file of items beside the recipe (`.jsonl`, `.json`, `.csv`, `.txt`: one item per line).
    #[serde(default)]
    pub from: Option<String>,
    /// Items written in the recipe.
    #[serde(default)]
    pub items: Option<Vec<Value>>,
    /// Take this field of each item (when items are objects).
    #[serde(default)]
    pub field: Option<String>,
    /// How many to draw, without replacement.
    #[serde(default)]
    pub k: Count,
    /// The field the draw is written to: the item itself when `k` is 1, else a list.
    pub into: String,
    /// Write a list even when `k` is 1.
    #[serde(default)]
    pub list: bool,
}

impl StepDef for SampleConfig {
    fn check(&self, cx: &mut CheckCx<'_>) {
        match (&self.from, &self.items) {
            (Some(from), None) => {
                cx.file("from", from);
            }
            (None, Some(items)) if items.is_empty() => cx.error("items", "empty; give at least one item"),
            (None, Some(_)) => {}
            _ => cx.error("", "give exactly one of `from` and `items`"),
        }
        if let Count::Between([low, high]) = self.k {
            if low > high {
                cx.error("k", format!("expected [min, max], found [{low}, {high}]"));
            }
        }
        cx.write(&self.into);
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let mut pool: Vec<Value> = match (&self.from, &self.items) {
            (Some(from), _) => {
                let path = cx.base_dir.join(from);
                let format = source::resolve_format(&path, None).map_err(|message| EngineError::Step { step: spec.path.clone(), message })?;
                source::open(&path, format, "text")?
                    .map(|item| item.map(Value::Object).map_err(|message| EngineError::Input { path: path.clone(), message }))
                    .collect::<Result<_, _>>()?
            }
            (None, Some(items)) => items.clone(),
            (None, None) => Vec::new(),
        };
        if let Some(field) = &self.field {
            pool = pool.into_iter().filter_map(|item| item.get(field).cloned()).collect();
        } else {
            // Plain-text lines arrive as {"text": line}; a pool of those is a pool of strings.
            let all_text = pool.iter().all(|item| item.as_object().is_some_and(|map| map.len() == 1 && map.contains_key("text")));
            if all_text {
                pool = pool.into_iter().filter_map(|item| item.get("text").cloned()).collect();
            }
        }
        if pool.is_empty() {
            return Err(EngineError::Step { step: spec.path.clone(), message: "the pool of items is empty".into() });
        }
        Ok(Built::Record(Arc::new(Sample { config: self.clone(), pool, concurrency: cx.concurrency(spec, None) })))
    }
}

struct Sample {
    config: SampleConfig,
    pool: Vec<Value>,
    concurrency: usize,
}

/// A small deterministic generator (SplitMix64) seeded per record.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

#[async_trait]
impl RecordStep for Sample {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let mut random = SplitMix(cx.seed(&record.id, 0));
        let count = match self.config.k {
            Count::Exactly(count) => count,
            Count::Between([low, high]) => low + random.below(high - low + 1),
        }
        .min(self.pool.len());
        // A partial Fisher-Yates shuffle over indices: k draws without replacement.
        let mut indices: Vec<usize> = (0..self.pool.len()).collect();
        for position in 0..count {
            let pick = position + random.below(indices.len() - position);
            indices.swap(position, pick);
        }
        let drawn: Vec<Value> = indices[..count].iter().map(|&index| self.pool[index].clone()).collect();
        let value = if count == 1 && !self.config.list && matches!(self.config.k, Count::Exactly(1)) {
            drawn.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(drawn)
        };
        record.set(self.config.into.clone(), value);
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
