//! `pair`: build chosen/rejected preference pairs from scored candidates of one prompt.
//!
//! Candidates of a group arrive together (the samples of one record do), so a group ends when
//! the group key changes and memory holds one group at a time.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};

/// Which pairs a group gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairStrategy {
    /// One pair: the best against the worst (Self-Rewarding).
    #[default]
    BestWorst,
    /// Every pair whose scores differ by more than the margin.
    AllPairs,
}

/// Among candidates with equal scores, which to prefer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TieBreak {
    /// The first in order.
    #[default]
    First,
    /// The shorter as chosen and the longer as rejected (Meta-Rewarding's length control).
    Shorter,
}

/// Settings of a `pair` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PairConfig {
    /// The field holding each candidate's score.
    pub score: String,
    /// The field holding each candidate's answer.
    pub response: String,
    /// The field holding the prompt, copied to `prompt` in the pair.
    #[serde(default)]
    pub prompt: Option<String>,
    /// The field that groups candidates; by default the samples of one record form a group.
    #[serde(default)]
    pub group_by: Option<String>,
    /// `best_worst` or `all_pairs`.
    #[serde(default)]
    pub strategy: PairStrategy,
    /// Scores must differ by more than this to make a pair.
    #[serde(default)]
    pub min_margin: f64,
    /// `first` or `shorter`.
    #[serde(default)]
    pub tie_break: TieBreak,
    /// Also write every candidate of the group into this field of each pair, best first, as
    /// objects of `candidate_fields` (Meta-Rewarding picks the response whose judgments vary
    /// most for its judge pairs, whichever responses the actor pair took).
    #[serde(default)]
    pub candidates_into: Option<String>,
    /// The fields of each candidate `candidates_into` keeps (all of them when empty).
    #[serde(default)]
    pub candidate_fields: Vec<String>,
}

impl StepDef for PairConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("score", &self.score);
        cx.read("response", &self.response);
        if let Some(prompt) = &self.prompt {
            cx.read("prompt", prompt);
        }
        if let Some(group) = &self.group_by {
            cx.read("group_by", group);
        }
        if self.min_margin < 0.0 {
            cx.error("min_margin", format!("expected 0 or more, found {}", self.min_margin));
        }
        for field in ["prompt", "chosen", "rejected", "chosen_score", "rejected_score", "margin"] {
            cx.write(field);
        }
        if !self.candidate_fields.is_empty() && self.candidates_into.is_none() {
            cx.error("candidate_fields", "`candidate_fields` needs `candidates_into`");
        }
        for field in &self.candidate_fields {
            cx.read("candidate_fields", field);
        }
        if let Some(field) = &self.candidates_into {
            cx.write(field);
        }
    }

    fn build(&self, _spec: &StepSpec, _cx: &BuildCx) -> Result<Built, EngineError> {
        Ok(Built::Stream(Arc::new(Pair { config: self.clone() })))
    }
}

struct Pair {
    config: PairConfig,
}

struct Candidate {
    record: Record,
    score: f64,
    length: usize,
}

impl Pair {
    fn group_key(&self, record: &Record) -> String {
        match &self.config.group_by {
            Some(field) => record.get(field).map(Value::to_string).unwrap_or_default(),
            None => record.parent_id().unwrap_or(&record.id).to_string(),
        }
    }

    /// The record as a candidate, or the outcome it gets when it cannot be one.
    fn candidate(&self, record: Record) -> Result<Candidate, Outcome> {
        let score = match record.get(&self.config.score) {
            Some(Value::Number(number)) => number.as_f64(),
            Some(Value::String(text)) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        let Some(score) = score else {
            let found = record.get(&self.config.score).map(Value::to_string).unwrap_or_else(|| "nothing".into());
            let reason = format!("pair: expected a number in `{}`, found {found}", self.config.score);
            return Err(Outcome::fail(record, reason));
        };
        let length = match record.get(&self.config.response) {
            Some(Value::String(text)) => text.chars().count(),
            Some(other) => other.to_string().len(),
            None => 0,
        };
        Ok(Candidate { record, score, length })
    }

    /// The pairs of one group, and the candidates that made none (with why).
    fn pairs(&self, mut group: Vec<Candidate>) -> (Vec<Record>, Vec<(Record, String)>) {
        let margin = self.config.min_margin;
        // Best first; among equal scores the preferred one first.
        group.sort_by(|a, b| {
            b.score.total_cmp(&a.score).then_with(|| match self.config.tie_break {
                TieBreak::First => std::cmp::Ordering::Equal,
                TieBreak::Shorter => a.length.cmp(&b.length),
            })
        });
        let mut chosen_pairs: Vec<(usize, usize)> = Vec::new();
        match self.config.strategy {
            PairStrategy::BestWorst => {
                if group.len() >= 2 {
                    let best = 0;
                    // The worst: lowest score; among equal lowest, the longest under `shorter`.
                    let worst = (0..group.len())
                        .rev()
                        .min_by(|&a, &b| {
                            group[a].score.total_cmp(&group[b].score).then_with(|| match self.config.tie_break {
                                TieBreak::First => std::cmp::Ordering::Equal,
                                TieBreak::Shorter => group[b].length.cmp(&group[a].length),
                            })
                        })
                        .unwrap_or(group.len() - 1);
                    if group[best].score - group[worst].score > margin {
                        chosen_pairs.push((best, worst));
                    }
                }
            }
            PairStrategy::AllPairs => {
                for better in 0..group.len() {
                    for worse in better + 1..group.len() {
                        if group[better].score - group[worse].score > margin {
                            chosen_pairs.push((better, worse));
                        }
                    }
                }
            }
        }
        let candidates = self.config.candidates_into.as_ref().map(|_| {
            let list: Vec<Value> = group
                .iter()
                .map(|candidate| {
                    let fields: serde_json::Map<String, Value> = if self.config.candidate_fields.is_empty() {
                        candidate.record.fields.clone().into_iter().collect()
                    } else {
                        self.config.candidate_fields.iter().map(|field| (field.clone(), candidate.record.get(field).cloned().unwrap_or(Value::Null))).collect()
                    };
                    Value::Object(fields)
                })
                .collect();
            Value::Array(list)
        });
        let mut used = vec![false; group.len()];
        let mut pairs = Vec::new();
        for (index, &(better, worse)) in chosen_pairs.iter().enumerate() {
            used[better] = true;
            used[worse] = true;
            let (chosen, rejected) = (&group[better], &group[worse]);
            let base_id = chosen.record.parent_id().unwrap_or(&chosen.record.id).to_string();
            let id = if chosen_pairs.len() == 1 { base_id } else { format!("{base_id}.p{index}") };
            let mut pair = Record::new(id, chosen.record.fields.clone());
            pair.lineage = chosen.record.lineage.clone();
            pair.lineage.extend(rejected.record.lineage.iter().cloned());
            if let Some(prompt) = &self.config.prompt {
                pair.set("prompt", chosen.record.get(prompt).cloned().unwrap_or(Value::Null));
            }
            pair.set("chosen", chosen.record.get(&self.config.response).cloned().unwrap_or(Value::Null));
            pair.set("rejected", rejected.record.get(&self.config.response).cloned().unwrap_or(Value::Null));
            pair.set("chosen_score", serde_json::json!(chosen.score));
            pair.set("rejected_score", serde_json::json!(rejected.score));
            pair.set("margin", serde_json::json!(chosen.score - rejected.score));
            if let (Some(field), Some(candidates)) = (&self.config.candidates_into, &candidates) {
                pair.set(field.clone(), candidates.clone());
            }
            pairs.push(pair);
        }
        let scores: Vec<String> = group.iter().map(|candidate| candidate.score.to_string()).collect();
        let unused = group
            .into_iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(candidate, _)| {
                let reason = if pairs.is_empty() {
                    format!("pair: no two candidates differ by more than {margin} (scores {})", scores.join(", "))
                } else {
                    "pair: not part of the chosen pair".to_string()
                };
                (candidate.record, reason)
            })
            .collect();
        (pairs, unused)
    }
}

#[async_trait]
impl StreamStep for Pair {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut group: Vec<Candidate> = Vec::new();
        let mut group_key: Option<String> = None;
        loop {
            let next = input.recv().await;
            let key = next.as_ref().map(|record| self.group_key(record));
            if !group.is_empty() && (next.is_none() || key != group_key) {
                let (pairs, unused) = self.pairs(std::mem::take(&mut group));
                for (record, reason) in unused {
                    cx.settle(Outcome::Drop(record, reason)).await;
                }
                for pair in pairs {
                    if let Some(pair) = cx.settle(Outcome::Keep(pair)).await {
                        if output.send(pair).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            let Some(record) = next else { break };
            cx.stats.record_in();
            group_key = key;
            match self.candidate(record) {
                Ok(candidate) => group.push(candidate),
                Err(outcome) => {
                    cx.settle(outcome).await;
                }
            }
        }
        Ok(())
    }
}
