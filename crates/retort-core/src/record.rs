//! The record: one row of data flowing through a pipeline, with the lineage of its generated fields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backend::{Message, SamplingParams};

/// One row of data. Steps read and write its fields; the engine moves it between steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Unique within a run. Seeds get `"0"`, `"1"`, ...; a fan-out appends `.k`, so a
    /// record's id names its whole ancestry (`"4.2"` is sample 2 of seed 4).
    pub id: String,
    /// The data itself: what export writes.
    pub fields: Map<String, Value>,
    /// How each generated field was made, appended by every step that calls a model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lineage: Vec<Lineage>,
}

impl Record {
    /// A record with the given id and fields and no lineage yet.
    pub fn new(id: impl Into<String>, fields: Map<String, Value>) -> Record {
        Record { id: id.into(), fields, lineage: Vec::new() }
    }

    /// The id of the record this one was fanned out from, if any.
    pub fn parent_id(&self) -> Option<&str> {
        self.id.rsplit_once('.').map(|(parent, _)| parent)
    }

    /// A child for sample `index` of a fan-out: same fields and lineage, id `"{id}.{index}"`.
    pub fn child(&self, index: usize) -> Record {
        Record { id: format!("{}.{index}", self.id), fields: self.fields.clone(), lineage: self.lineage.clone() }
    }

    /// The field's value, if present.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.get(field)
    }

    /// Sets a field, replacing any earlier value.
    pub fn set(&mut self, field: impl Into<String>, value: Value) {
        self.fields.insert(field.into(), value);
    }
}

/// How one field of a record was generated: enough to reproduce or audit the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    /// The field the answer was written to.
    pub field: String,
    /// The step that made it, as its path in the recipe (`steps[2].generate`).
    pub step: String,
    /// The backend kind (`openai`, `scripted`, `local`).
    pub backend: String,
    /// The model that answered.
    pub model: String,
    /// The messages exactly as sent.
    pub prompt: Vec<Message>,
    /// The sampling parameters as sent, the derived seed included.
    pub params: SamplingParams,
    /// The key of the answer in the run store.
    pub request_key: String,
    /// Why the answer ended (`stop`, `length`, `tool_calls`), as the backend said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<crate::backend::FinishReason>,
}

/// Where a record stands when it leaves a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RecordStatus {
    /// Goes on to the next step.
    Ok,
    /// Removed on purpose (a filter, a duplicate); not an error.
    Dropped {
        /// The step that dropped it.
        step: String,
        /// Why, in words.
        reason: String,
    },
    /// Something went wrong with this record; the run goes on without it.
    Failed {
        /// The step where it failed.
        step: String,
        /// What went wrong.
        reason: String,
        /// The raw model answer that could not be used, kept for inspection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<String>,
    },
}

/// Why a record failed: the reason in words (what was expected, what was found), and the raw
/// model answer that could not be used, kept for inspection.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// What went wrong.
    pub reason: String,
    /// The raw answer, when there was one.
    pub raw: Option<String>,
}

impl Failure {
    /// A failure without a raw answer.
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), raw: None }
    }

    /// A failure with the raw answer that caused it.
    pub fn with_raw(reason: impl Into<String>, raw: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), raw: Some(raw.into()) }
    }
}

/// What a step made of one record.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Goes on downstream.
    Keep(Record),
    /// Removed on purpose, with the reason.
    Drop(Record, String),
    /// Failed, with the reason and the raw answer if there was one.
    Fail(Record, Failure),
    /// Not worked on because the run is stopping: set aside silently, neither kept nor failed,
    /// and redone by the next run.
    Interrupted(Record),
}

impl Outcome {
    /// A failure without a raw answer.
    pub fn fail(record: Record, reason: impl Into<String>) -> Outcome {
        Outcome::Fail(record, Failure::new(reason))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_name_their_parent() {
        let seed = Record::new("4", Map::new());
        let child = seed.child(2);
        assert_eq!(child.id, "4.2");
        assert_eq!(child.parent_id(), Some("4"));
        assert_eq!(child.child(0).parent_id(), Some("4.2"));
        assert_eq!(seed.parent_id(), None);
    }
}
