//! `top`: keep the `k` records with the highest score in each group, drop the rest with their rank.
//!
//! SuperGen's selection: per label, the generated texts with the highest average
//! log-probability. The step holds at most `k` records per group (a min-heap; a record pushed
//! out is dropped at once), and sends the kept ones on, best first, when its input ends; inside
//! `repeat` that is each round.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::runtime::StageCx;
use crate::runtime::{Built, StreamStep};
use crate::steps::StepSpec;
use crate::steps::{BuildCx, CheckCx, StepDef};

/// Settings of a `top` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopConfig {
    /// The numeric field that ranks records (higher is better).
    pub by: String,
    /// How many records each group keeps.
    pub k: usize,
    /// The field whose value makes the groups (SuperGen: the label); without it, one group.
    #[serde(default)]
    pub group_by: Option<String>,
    /// Keep the lowest scores instead of the highest.
    #[serde(default)]
    pub lowest: bool,
    /// Write each kept record's rank in its group (1 = best) into this field.
    #[serde(default)]
    pub rank_into: Option<String>,
}

impl StepDef for TopConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("by", &self.by);
        if let Some(group) = &self.group_by {
            cx.read("group_by", group);
        }
        if self.k == 0 {
            cx.error("k", "expected at least 1 record per group, found 0");
        }
        if let Some(field) = &self.rank_into {
            cx.write(field);
        }
    }

    fn build(&self, _spec: &StepSpec, _cx: &BuildCx) -> Result<Built, EngineError> {
        Ok(Built::Stream(Arc::new(Top { config: self.clone() })))
    }
}

struct Top {
    config: TopConfig,
}

/// A record in a group's heap. The heap's top is the worst kept: the lowest score (highest,
/// with `lowest`), and of equal scores the one that came last, so earlier records win ties.
struct Entry {
    /// The score, negated with `lowest` so that higher is always better.
    score: f64,
    arrival: u64,
    record: Record,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    /// "Greater" is worse: a lower score, or the same score arriving later.
    fn cmp(&self, other: &Self) -> Ordering {
        other.score.total_cmp(&self.score).then(self.arrival.cmp(&other.arrival))
    }
}

impl Top {
    fn group_of(&self, record: &Record) -> String {
        match &self.config.group_by {
            Some(field) => match record.get(field) {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            },
            None => String::new(),
        }
    }

    fn score_of(&self, record: &Record) -> Result<f64, String> {
        let value = record.get(&self.config.by);
        let score = match value {
            Some(Value::Number(number)) => number.as_f64(),
            Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match score {
            Some(score) if score.is_finite() => Ok(if self.config.lowest { -score } else { score }),
            _ => Err(format!("top: expected a number in `{}`, found {}", self.config.by, value.map_or("nothing".to_string(), Value::to_string))),
        }
    }

    /// The score as the record has it, to 4 decimals without trailing zeros.
    fn shown(&self, score: f64) -> String {
        let score = if self.config.lowest { -score } else { score };
        let text = format!("{score:.4}");
        let text = text.trim_end_matches('0').trim_end_matches('.');
        if text == "-0" { "0".to_string() } else { text.to_string() }
    }
}

#[async_trait]
impl StreamStep for Top {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let k = self.config.k;
        let mut groups: BTreeMap<String, BinaryHeap<Entry>> = BTreeMap::new();
        let mut arrival = 0u64;
        let which = if self.config.lowest { "lowest" } else { "highest" };
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            let score = match self.score_of(&record) {
                Ok(score) => score,
                Err(reason) => {
                    cx.settle(Outcome::fail(record, reason)).await;
                    continue;
                }
            };
            let group = self.group_of(&record);
            let heap = groups.entry(group.clone()).or_default();
            heap.push(Entry { score, arrival, record });
            arrival += 1;
            if heap.len() > k {
                let out = heap.pop().expect("more than k entries");
                let label = if self.config.group_by.is_some() { format!(" of group {group:?}") } else { String::new() };
                let reason = format!("top: {} = {} is not among the {k} {which}{label}", self.config.by, self.shown(out.score));
                cx.settle(Outcome::Drop(out.record, reason)).await;
            }
        }
        for (_, heap) in groups {
            for (rank, entry) in heap.into_sorted_vec().into_iter().enumerate() {
                let mut record = entry.record;
                if let Some(field) = &self.config.rank_into {
                    record.set(field.clone(), json!(rank + 1));
                }
                if let Some(record) = cx.settle(Outcome::Keep(record)).await {
                    if output.send(record).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }
}
