//! `export`: write records as they arrive (JSONL, with lineage beside), in the record, SFT or DPO shape.
//!
//! Records pass through, so a recipe may export several shapes. Parquet files and the dataset
//! card are written from the JSONL when the run ends (see `crate::output`), also after Ctrl-C.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::EngineError;
pub(crate) use crate::output::{OutputFormat, Shape};
use crate::output::{partial, ExportTarget};
use crate::flow::{Inbox, Outbox};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};

/// Settings of an `export` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// The formats to write.
    #[serde(default = "default_formats")]
    pub formats: Vec<OutputFormat>,
    /// The files' stem in the run directory: `NAME.jsonl`, `NAME.parquet`, `NAME.lineage.jsonl`.
    #[serde(default = "default_name")]
    pub name: String,
    /// `records`, `sft`, `dpo` or `sharegpt`.
    #[serde(default)]
    pub shape: Shape,
    /// `records`: write only these fields, in this order.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// `sft`: a field that already holds chat messages.
    #[serde(default)]
    pub messages: Option<String>,
    /// `sft`: the field with the user's prompt; `dpo`: the prompt field (default `prompt`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// `sft`: the field with the assistant's answer.
    #[serde(default)]
    pub response: Option<String>,
    /// `sft`: a field with a system prompt to put first.
    #[serde(default)]
    pub system: Option<String>,
    /// `dpo`: the preferred answer's field (default `chosen`).
    #[serde(default)]
    pub chosen: Option<String>,
    /// `dpo`: the dispreferred answer's field (default `rejected`).
    #[serde(default)]
    pub rejected: Option<String>,
    /// `dpo`: a field with the probability that `chosen` is preferred (a soft label, SPA's and
    /// Constitutional AI's), written as `label`.
    #[serde(default)]
    pub label: Option<String>,
    /// `dpo`: a field with a margin the preference should exceed, written as `margin`.
    #[serde(default)]
    pub margin: Option<String>,
    /// `dpo`: write `prompt`, `chosen` and `rejected` as chat message lists (TRL's
    /// conversational form) instead of strings.
    #[serde(default)]
    pub conversational: bool,
    /// `sft`, `sharegpt`: a field with the tools offered (a list of function schemas), written as `tools`.
    #[serde(default)]
    pub tools: Option<String>,
    /// `sharegpt`: the name each chat role gets in `from` (default system → system,
    /// user → human, assistant → gpt, tool → observation).
    #[serde(default)]
    pub roles: Option<BTreeMap<String, String>>,
    /// `sharegpt`: give every turn a `loss` flag, true for the assistant's turns (a message's own
    /// `loss` key wins).
    #[serde(default)]
    pub loss: bool,
    /// Write `NAME.lineage.jsonl` beside the data, one line per row, in the same order.
    #[serde(default = "yes")]
    pub lineage: bool,
}

fn default_formats() -> Vec<OutputFormat> {
    vec![OutputFormat::Jsonl]
}

fn default_name() -> String {
    "data".to_string()
}

fn yes() -> bool {
    true
}

impl ExportConfig {
    pub(crate) fn default_for_recipe() -> ExportConfig {
        ExportConfig {
            formats: default_formats(),
            name: default_name(),
            shape: Shape::Records,
            fields: None,
            messages: None,
            prompt: None,
            response: None,
            system: None,
            chosen: None,
            rejected: None,
            label: None,
            margin: None,
            conversational: false,
            tools: None,
            roles: None,
            loss: false,
            lineage: true,
        }
    }
}

impl StepDef for ExportConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.formats.is_empty() {
            cx.error("formats", "empty; give jsonl, parquet or both");
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) {
            cx.error("name", format!("expected a file stem without slashes, found {:?}", self.name));
        }
        self.row_shape().check(cx);
        let known: Vec<String> = cx.fields.known.iter().cloned().collect();
        cx.fields_at.insert(cx.path.clone(), known);
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let target = ExportTarget {
            name: self.name.clone(),
            shape: self.shape,
            formats: self.formats.clone(),
            jsonl: cx.out_dir.join(format!("{}.jsonl", self.name)),
            lineage: self.lineage.then(|| cx.out_dir.join(format!("{}.lineage.jsonl", self.name))),
            empty_schema: Arc::new(self.row_shape().empty_schema(cx.fields_at.get(&spec.path).map(Vec::as_slice).unwrap_or(&[]))),
        };
        cx.exports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(target.clone());
        Ok(Built::Stream(Arc::new(Export { shape: self.row_shape(), target, writers: Mutex::new(None) })))
    }
}

struct Writers {
    data: BufWriter<std::fs::File>,
    lineage: Option<BufWriter<std::fs::File>>,
}

struct Export {
    shape: RowShape,
    target: ExportTarget,
    /// Opened on the first run and kept, so an export inside `repeat` appends round after round.
    writers: Mutex<Option<Writers>>,
}

fn text(record: &Record, field: &str) -> Result<Value, String> {
    match record.get(field) {
        None | Some(Value::Null) => Err(format!("export: field `{field}` is missing")),
        Some(value) => Ok(value.clone()),
    }
}

/// How a record becomes a row: the shape and which fields fill it. Shared by `export` and `train`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RowShape {
    /// `records`, `sft`, `dpo` or `sharegpt`.
    #[serde(default)]
    pub shape: Shape,
    /// `records`: write only these fields, in this order.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// `sft`: a field that already holds chat messages.
    #[serde(default)]
    pub messages: Option<String>,
    /// `sft`: the user's prompt; `dpo`: the prompt (default `prompt`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// `sft`: the assistant's answer.
    #[serde(default)]
    pub response: Option<String>,
    /// `sft`: a system prompt to put first.
    #[serde(default)]
    pub system: Option<String>,
    /// `dpo`: the preferred answer (default `chosen`).
    #[serde(default)]
    pub chosen: Option<String>,
    /// `dpo`: the dispreferred answer (default `rejected`).
    #[serde(default)]
    pub rejected: Option<String>,
    /// `dpo`: a field with the probability that `chosen` is preferred (a soft label, SPA's and
    /// Constitutional AI's), written as `label`.
    #[serde(default)]
    pub label: Option<String>,
    /// `dpo`: a field with a margin the preference should exceed, written as `margin`.
    #[serde(default)]
    pub margin: Option<String>,
    /// `dpo`: write `prompt`, `chosen` and `rejected` as chat message lists (TRL's
    /// conversational form) instead of strings.
    #[serde(default)]
    pub conversational: bool,
    /// `sft`, `sharegpt`: a field with the tools offered (a list of function schemas), written as `tools`.
    #[serde(default)]
    pub tools: Option<String>,
    /// `sharegpt`: the name each chat role gets in `from` (default system → system,
    /// user → human, assistant → gpt, tool → observation).
    #[serde(default)]
    pub roles: Option<BTreeMap<String, String>>,
    /// `sharegpt`: give every turn a `loss` flag, true for the assistant's turns (a message's own
    /// `loss` key wins).
    #[serde(default)]
    pub loss: bool,
}

impl RowShape {
    /// Checks that the fields the shape reads exist upstream.
    pub(crate) fn check(&self, cx: &mut CheckCx<'_>) {
        match self.shape {
            Shape::Records => {
                for field in self.fields.iter().flatten() {
                    cx.read("fields", field);
                }
            }
            Shape::Sft | Shape::Sharegpt => match (&self.messages, &self.prompt, &self.response) {
                (Some(messages), None, None) => cx.read("messages", messages),
                (None, Some(prompt), Some(response)) => {
                    cx.read("prompt", prompt);
                    cx.read("response", response);
                }
                _ => cx.error("", "the sft and sharegpt shapes need `messages`, or `prompt` and `response`"),
            },
            Shape::Dpo => {
                cx.read("prompt", self.prompt.as_deref().unwrap_or("prompt"));
                cx.read("chosen", self.chosen.as_deref().unwrap_or("chosen"));
                cx.read("rejected", self.rejected.as_deref().unwrap_or("rejected"));
                for (key, field) in [("label", &self.label), ("margin", &self.margin)] {
                    if let Some(field) = field {
                        cx.read(key, field);
                    }
                }
            }
        }
        if (self.label.is_some() || self.margin.is_some()) && self.shape != Shape::Dpo {
            cx.error("label", "only the dpo shape has a label and a margin");
        }
        if let Some(system) = &self.system {
            cx.read("system", system);
        }
        if let Some(tools) = &self.tools {
            if !matches!(self.shape, Shape::Sft | Shape::Sharegpt) {
                cx.error("tools", "only the sft and sharegpt shapes carry `tools`");
            }
            cx.read("tools", tools);
        }
        if (self.roles.is_some() || self.loss) && self.shape != Shape::Sharegpt {
            cx.error(if self.loss { "loss" } else { "roles" }, "only the sharegpt shape has `roles` and per-turn `loss`");
        }
        if self.conversational && self.shape != Shape::Dpo {
            cx.error("conversational", "only the dpo shape has a conversational form (sft rows are messages already)");
        }
    }

    /// The row for a record in this shape.
    pub(crate) fn row(&self, record: &Record) -> Result<Map<String, Value>, String> {
        Ok(match self.shape {
            Shape::Records => match &self.fields {
                None => record.fields.clone(),
                Some(fields) => fields.iter().map(|field| (field.clone(), record.get(field).cloned().unwrap_or(Value::Null))).collect(),
            },
            Shape::Sft => {
                let mut row = Map::new();
                row.insert("messages".into(), Value::Array(self.messages_of(record)?));
                if let Some(tools) = &self.tools {
                    row.insert("tools".into(), text(record, tools)?);
                }
                row
            }
            Shape::Sharegpt => {
                let turns = self
                    .messages_of(record)?
                    .into_iter()
                    .map(|message| {
                        let role = message.get("role").and_then(Value::as_str).unwrap_or("user").to_string();
                        let mut turn = Map::new();
                        turn.insert("from".into(), Value::String(self.role_name(&role)));
                        let value = match message.get("content") {
                            Some(Value::String(content)) => content.clone(),
                            Some(Value::Null) | None => String::new(),
                            Some(other) => other.to_string(),
                        };
                        // An assistant's tool calls, when it wrote no text, become its value.
                        let value = match message.get("tool_calls") {
                            Some(calls) if value.is_empty() => calls.to_string(),
                            _ => value,
                        };
                        turn.insert("value".into(), Value::String(value));
                        if self.loss {
                            let loss = message.get("loss").and_then(Value::as_bool).unwrap_or(role == "assistant");
                            turn.insert("loss".into(), Value::Bool(loss));
                        }
                        Value::Object(turn)
                    })
                    .collect();
                let mut row = Map::new();
                row.insert("conversations".into(), Value::Array(turns));
                if let Some(tools) = &self.tools {
                    row.insert("tools".into(), text(record, tools)?);
                }
                row
            }
            Shape::Dpo => {
                let prompt = text(record, self.prompt.as_deref().unwrap_or("prompt"))?;
                let chosen = text(record, self.chosen.as_deref().unwrap_or("chosen"))?;
                let rejected = text(record, self.rejected.as_deref().unwrap_or("rejected"))?;
                let mut row = Map::new();
                if self.conversational {
                    let mut turns = Vec::new();
                    if let Some(system) = &self.system {
                        turns.push(json!({"role": "system", "content": text(record, system)?}));
                    }
                    match prompt {
                        Value::Array(messages) => turns.extend(messages),
                        other => turns.push(json!({"role": "user", "content": other})),
                    }
                    let answer = |value: Value| match value {
                        Value::Array(messages) => Value::Array(messages),
                        other => json!([{"role": "assistant", "content": other}]),
                    };
                    row.insert("prompt".into(), Value::Array(turns));
                    row.insert("chosen".into(), answer(chosen));
                    row.insert("rejected".into(), answer(rejected));
                } else {
                    row.insert("prompt".into(), prompt);
                    row.insert("chosen".into(), chosen);
                    row.insert("rejected".into(), rejected);
                }
                for (key, field) in [("label", &self.label), ("margin", &self.margin)] {
                    if let Some(field) = field {
                        row.insert(key.into(), text(record, field)?);
                    }
                }
                row
            }
        })
    }
}

/// Why a row could not be written.
enum RowError {
    /// The record does not fit the shape (a field is missing): the record fails.
    Shape(String),
    /// Serialising failed: the export fails.
    Json(serde_json::Error),
}

/// A line of the lineage file, serialised straight from the record.
#[derive(serde::Serialize)]
struct LineageLine<'a> {
    id: &'a str,
    lineage: &'a [retort_core::Lineage],
}

/// The message keys an SFT row keeps: the text and the tool calls (OpenAI's and TRL's names).
const MESSAGE_KEYS: &[&str] = &["role", "content", "tool_calls", "tool_call_id", "loss"];

impl RowShape {
    /// The chat messages of an `sft` or `sharegpt` row: the system prompt, then the messages
    /// field's (with their role, content and tool calls) or the prompt and the response.
    fn messages_of(&self, record: &Record) -> Result<Vec<Value>, String> {
        let mut messages = Vec::new();
        if let Some(system) = &self.system {
            messages.push(json!({"role": "system", "content": text(record, system)?}));
        }
        match (&self.messages, &self.prompt, &self.response) {
            (Some(field), _, _) => match text(record, field)? {
                Value::Array(items) => messages.extend(items.into_iter().map(|item| match item {
                    Value::Object(mut message) => {
                        // A turn's `loss` flag is sharegpt's; empty tool keys are left out.
                        let sharegpt = self.shape == Shape::Sharegpt;
                        message.retain(|key, value| match key.as_str() {
                            "role" | "content" => true,
                            "loss" => sharegpt,
                            other => MESSAGE_KEYS.contains(&other) && !value.is_null(),
                        });
                        Value::Object(message)
                    }
                    other => other,
                })),
                other => return Err(format!("export: `{field}` should hold a list of messages, found {other}")),
            },
            (None, Some(prompt), Some(response)) => {
                messages.push(json!({"role": "user", "content": text(record, prompt)?}));
                messages.push(json!({"role": "assistant", "content": text(record, response)?}));
            }
            _ => return Err("export: this shape needs `messages`, or `prompt` and `response`".into()),
        }
        Ok(messages)
    }

    /// The `from` name of a chat role in a `sharegpt` row.
    fn role_name(&self, role: &str) -> String {
        if let Some(name) = self.roles.as_ref().and_then(|roles| roles.get(role)) {
            return name.clone();
        }
        match role {
            "user" => "human",
            "assistant" => "gpt",
            "tool" | "function" => "observation",
            other => other,
        }
        .to_string()
    }

    /// Appends the record's row as JSON to `line`; whole records are written without a copy.
    fn write_row(&self, record: &Record, line: &mut Vec<u8>) -> Result<(), RowError> {
        if let (Shape::Records, None) = (self.shape, &self.fields) {
            return serde_json::to_writer(line, &crate::output::CanonicalMap(&record.fields)).map_err(RowError::Json);
        }
        let row = self.row(record).map_err(RowError::Shape)?;
        serde_json::to_writer(line, &crate::output::CanonicalMap(&row)).map_err(RowError::Json)
    }

    /// The Arrow schema of this shape's rows, as far as it is known without rows: what an
    /// export with no rows writes to Parquet. `known` are the fields known upstream.
    pub(crate) fn empty_schema(&self, known: &[String]) -> arrow_schema::Schema {
        use arrow_schema::{DataType, Field, Fields, Schema};
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        let messages = |name: &str| {
            let message = Fields::from(vec![text("role"), text("content")]);
            Field::new(name, DataType::List(Arc::new(Field::new("item", DataType::Struct(message), true))), true)
        };
        match self.shape {
            Shape::Records => {
                let names: Vec<&str> = match &self.fields {
                    Some(fields) => fields.iter().map(String::as_str).collect(),
                    None => known.iter().map(String::as_str).collect(),
                };
                Schema::new(names.into_iter().map(text).collect::<Vec<_>>())
            }
            Shape::Sft => Schema::new(vec![messages("messages")]),
            Shape::Sharegpt => {
                let turn = Fields::from(vec![text("from"), text("value")]);
                Schema::new(vec![Field::new("conversations", DataType::List(Arc::new(Field::new("item", DataType::Struct(turn), true))), true)])
            }
            Shape::Dpo if self.conversational => Schema::new(vec![messages("prompt"), messages("chosen"), messages("rejected")]),
            Shape::Dpo => Schema::new(vec![text("prompt"), text("chosen"), text("rejected")]),
        }
    }
}

impl ExportConfig {
    fn row_shape(&self) -> RowShape {
        RowShape {
            shape: self.shape,
            fields: self.fields.clone(),
            messages: self.messages.clone(),
            prompt: self.prompt.clone(),
            response: self.response.clone(),
            system: self.system.clone(),
            chosen: self.chosen.clone(),
            rejected: self.rejected.clone(),
            label: self.label.clone(),
            margin: self.margin.clone(),
            conversational: self.conversational,
            tools: self.tools.clone(),
            roles: self.roles.clone(),
            loss: self.loss,
        }
    }
}

impl Export {
    fn open(&self) -> Result<Writers, EngineError> {
        let create = |path: &PathBuf| -> Result<BufWriter<std::fs::File>, EngineError> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(EngineError::io("create", parent))?;
            }
            std::fs::File::create(path).map(|file| BufWriter::with_capacity(1 << 16, file)).map_err(EngineError::io("create", path))
        };
        Ok(Writers {
            data: create(&partial(&self.target.jsonl))?,
            lineage: self.target.lineage.as_ref().map(|path| create(&partial(path))).transpose()?,
        })
    }
}

#[async_trait]
impl StreamStep for Export {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut writers = match self.writers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take() {
            Some(writers) => writers,
            None => self.open()?,
        };
        let mut line = Vec::with_capacity(1024);
        let mut flushed = std::time::Instant::now();
        let result = async {
            while let Some(record) = input.recv().await {
                cx.stats.record_in();
                line.clear();
                match self.shape.write_row(&record, &mut line) {
                    Ok(()) => {}
                    Err(RowError::Shape(reason)) => {
                        cx.settle(Outcome::fail(record, reason)).await;
                        continue;
                    }
                    Err(RowError::Json(error)) => {
                        return Err(EngineError::Export { path: self.target.jsonl.clone(), message: error.to_string() })
                    }
                }
                line.push(b'\n');
                writers.data.write_all(&line).map_err(EngineError::io("write", &self.target.jsonl))?;
                if let (Some(lineage), Some(path)) = (writers.lineage.as_mut(), self.target.lineage.as_ref()) {
                    line.clear();
                    serde_json::to_writer(&mut line, &LineageLine { id: &record.id, lineage: &record.lineage })
                        .map_err(|error| EngineError::Export { path: path.clone(), message: error.to_string() })?;
                    line.push(b'\n');
                    lineage.write_all(&line).map_err(EngineError::io("write", path))?;
                }
                // Written through about once a second, so a viewer sees rows while the run goes.
                if flushed.elapsed() >= std::time::Duration::from_secs(1) {
                    flushed = std::time::Instant::now();
                    writers.data.flush().map_err(EngineError::io("write", &self.target.jsonl))?;
                    if let (Some(lineage), Some(path)) = (writers.lineage.as_mut(), self.target.lineage.as_ref()) {
                        lineage.flush().map_err(EngineError::io("write", path))?;
                    }
                }
                if let Some(record) = cx.settle(Outcome::Keep(record)).await {
                    if output.send(record).await.is_err() {
                        break;
                    }
                }
            }
            Ok::<(), EngineError>(())
        }
        .await;
        writers.data.flush().map_err(EngineError::io("write", &self.target.jsonl))?;
        if let Some(lineage) = writers.lineage.as_mut() {
            lineage.flush().map_err(EngineError::io("write", self.target.lineage.clone().unwrap_or_default()))?;
        }
        *self.writers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(writers);
        result
    }
}
