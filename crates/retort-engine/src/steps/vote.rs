//! `vote`: majority vote over the samples of one question (self-consistency, LMSI).
//!
//! Samples of a group arrive together (the children of one record), so a group ends when the
//! group key changes. Each sample gets the group's majority answer and its confidence (the
//! share of samples that reached it); with `keep: majority` only the samples that reached the
//! majority go on, the others are dropped with the reason.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};
use crate::template::normalize_number;

/// Which samples go on after the vote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteKeep {
    /// Only the samples whose answer is the majority's.
    #[default]
    Majority,
    /// Every sample, marked.
    All,
}

/// Settings of a `vote` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteConfig {
    /// The field holding each sample's answer.
    pub field: String,
    /// The field that groups samples; by default the samples of one record form a group.
    #[serde(default)]
    pub group_by: Option<String>,
    /// The field for the majority answer.
    #[serde(default = "default_into")]
    pub into: String,
    /// The field for the majority's share of the group's samples (0 to 1).
    #[serde(default = "default_confidence")]
    pub confidence_into: String,
    /// `majority` or `all`.
    #[serde(default)]
    pub keep: VoteKeep,
    /// Groups whose majority has a smaller share are dropped whole.
    #[serde(default)]
    pub min_confidence: f64,
}

fn default_into() -> String {
    "majority".to_string()
}

fn default_confidence() -> String {
    "confidence".to_string()
}

impl StepDef for VoteConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("field", &self.field);
        if let Some(group) = &self.group_by {
            cx.read("group_by", group);
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            cx.error("min_confidence", format!("expected a share from 0 to 1, found {}", self.min_confidence));
        }
        cx.write(&self.into);
        cx.write(&self.confidence_into);
    }

    fn build(&self, _spec: &StepSpec, _cx: &BuildCx) -> Result<Built, EngineError> {
        Ok(Built::Stream(Arc::new(Vote { config: self.clone() })))
    }
}

struct Vote {
    config: VoteConfig,
}

/// An answer as votes compare it: numbers normalised, text case-folded and trimmed.
fn ballot(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Null => None,
        Value::String(text) if text.trim().is_empty() => None,
        Value::String(text) => Some(normalize_number(text).to_lowercase()),
        other => Some(other.to_string()),
    }
}

impl Vote {
    fn group_key(&self, record: &Record) -> String {
        match &self.config.group_by {
            Some(field) => record.get(field).map(Value::to_string).unwrap_or_default(),
            None => record.parent_id().unwrap_or(&record.id).to_string(),
        }
    }

    fn decide(&self, group: Vec<Record>) -> Vec<Outcome> {
        let total = group.len();
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut first_seen: Vec<String> = Vec::new();
        for record in &group {
            if let Some(ballot) = ballot(record.get(&self.config.field)) {
                let count = counts.entry(ballot.clone()).or_insert(0);
                if *count == 0 {
                    first_seen.push(ballot);
                }
                *count += 1;
            }
        }
        // The most votes wins; ties go to the answer seen first, so the result is deterministic.
        let winner = first_seen.iter().max_by(|a, b| counts[*a].cmp(&counts[*b]).then(std::cmp::Ordering::Greater)).cloned();
        let Some(winner) = winner else {
            return group.into_iter().map(|record| Outcome::Drop(record, "vote: no sample gave an answer".to_string())).collect();
        };
        let confidence = counts[&winner] as f64 / total.max(1) as f64;
        group
            .into_iter()
            .map(|mut record| {
                let agrees = ballot(record.get(&self.config.field)).as_deref() == Some(winner.as_str());
                let shown = record.get(&self.config.field).cloned().unwrap_or(Value::Null);
                record.set(self.config.into.clone(), Value::String(winner.clone()));
                record.set(self.config.confidence_into.clone(), json!(confidence));
                if confidence < self.config.min_confidence {
                    Outcome::Drop(record, format!("vote: the majority `{winner}` has {:.0}% of the votes, below {:.0}%", confidence * 100.0, self.config.min_confidence * 100.0))
                } else if !agrees && self.config.keep == VoteKeep::Majority {
                    Outcome::Drop(record, format!("vote: answer {shown} is not the majority `{winner}`"))
                } else {
                    Outcome::Keep(record)
                }
            })
            .collect()
    }
}

#[async_trait]
impl StreamStep for Vote {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut group: Vec<Record> = Vec::new();
        let mut group_key: Option<String> = None;
        loop {
            let next = input.recv().await;
            let key = next.as_ref().map(|record| self.group_key(record));
            if !group.is_empty() && (next.is_none() || key != group_key) {
                for outcome in self.decide(std::mem::take(&mut group)) {
                    if let Some(record) = cx.settle(outcome).await {
                        if output.send(record).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            let Some(record) = next else { break };
            cx.stats.record_in();
            group_key = key;
            group.push(record);
        }
        Ok(())
    }
}
