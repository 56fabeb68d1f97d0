//! The `json_schema` check: the field, or the JSON inside its text, satisfies a schema.

use async_trait::async_trait;
use retort_core::Record;
use serde_json::Value;

use super::{Verdict, Verifier};
use crate::parse::{check_schema, find_json};
use crate::runtime::StageCx;

pub(crate) struct JsonSchema {
    field: String,
    schema: Value,
}

impl JsonSchema {
    pub(crate) fn new(field: &str, schema: &Value) -> Result<JsonSchema, String> {
        jsonschema::validator_for(schema).map_err(|error| format!("schema: {error}"))?;
        Ok(JsonSchema { field: field.to_string(), schema: schema.clone() })
    }
}

#[async_trait]
impl Verifier for JsonSchema {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let value = match record.get(&self.field) {
            None | Some(Value::Null) => return Err(format!("field `{}` is missing", self.field)),
            Some(Value::String(text)) => match find_json(text) {
                Ok(value) => value,
                Err(reason) => return Ok(Verdict { pass: false, reason, class: None }),
            },
            Some(other) => other.clone(),
        };
        Ok(match check_schema(&self.schema, &value) {
            Ok(()) => Verdict { pass: true, reason: "matches the schema".to_string(), class: None },
            Err(reason) => Verdict { pass: false, reason, class: None },
        })
    }
}
