//! `load`: the source of a pipeline, reading seed records from a file or from the recipe itself.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Record;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::source::{self, Format};
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};

/// Settings of a `load` step; give `path` or `records`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadConfig {
    /// The file, relative to the recipe: `.jsonl`, `.json`, `.csv`, `.tsv`, `.parquet` or `.txt`.
    #[serde(default)]
    pub path: Option<String>,
    /// Records written in the recipe itself.
    #[serde(default)]
    pub records: Option<Vec<Map<String, Value>>>,
    /// The format, when the extension does not say.
    #[serde(default)]
    pub format: Option<Format>,
    /// Read at most this many records (after `skip`).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Skip this many records first.
    #[serde(default)]
    pub skip: usize,
    /// The field that plain-text lines and non-object JSON values go into.
    #[serde(default = "default_text_field")]
    pub text_field: String,
}

fn default_text_field() -> String {
    "text".to_string()
}

impl StepDef for LoadConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        match (&self.path, &self.records) {
            (Some(path), None) => {
                let Some(resolved) = cx.file("path", path) else { return };
                let format = match source::resolve_format(&resolved, self.format) {
                    Ok(format) => format,
                    Err(message) => return cx.error("path", message),
                };
                match source::open(&resolved, format, &self.text_field) {
                    Ok(mut records) => match records.next() {
                        Some(Ok(first)) => {
                            first.keys().for_each(|key| cx.write(key));
                            if format == Format::Jsonl && !source::first_line_is_object(&resolved) {
                                cx.fields.hint = Some(format!(
                                    "the first line of {} is not a JSON object, so its value went into `{}`; write each seed as {{\"field\": value}}, or set `text_field`",
                                    resolved.display(),
                                    self.text_field
                                ));
                            }
                        }
                        Some(Err(message)) => cx.error("path", format!("{}: {message}", resolved.display())),
                        None => cx.error("path", format!("{} holds no records", resolved.display())),
                    },
                    Err(error) => cx.error("path", error.to_string()),
                }
            }
            (None, Some(records)) => {
                if records.is_empty() {
                    cx.error("records", "empty; give at least one record");
                }
                if let Some(first) = records.first() {
                    first.keys().for_each(|key| cx.write(key));
                }
            }
            _ => cx.error("", "give exactly one of `path` and `records`"),
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let path = self.path.as_ref().map(|path| cx.base_dir.join(path));
        if let Some(path) = &path {
            source::resolve_format(path, self.format).map_err(|message| EngineError::Step { step: spec.path.clone(), message })?;
        }
        Ok(Built::Stream(Arc::new(Load { config: self.clone(), path })))
    }
}

struct Load {
    config: LoadConfig,
    path: Option<PathBuf>,
}

/// Records read per hand-off from the reading thread: the thread wakes once per chunk, not once
/// per record, while the next step works through the chunk.
const CHUNK: usize = 256;

#[async_trait]
impl StreamStep for Load {
    async fn run(self: Arc<Self>, _input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let this = self.clone();
        let reader_cx = cx.clone();
        let (chunks, mut received) = mpsc::channel::<Vec<Record>>(2);
        let reader = tokio::task::spawn_blocking(move || -> Result<(), EngineError> {
            let cx = reader_cx;
            let records: source::Records = match (&this.path, &this.config.records) {
                (Some(path), _) => {
                    let format = source::resolve_format(path, this.config.format)
                        .map_err(|message| EngineError::Input { path: path.clone(), message })?;
                    source::open(path, format, &this.config.text_field)?
                }
                (None, Some(records)) => Box::new(records.clone().into_iter().map(Ok)),
                (None, None) => Box::new(std::iter::empty()),
            };
            let limit = this.config.limit.unwrap_or(usize::MAX);
            let mut chunk = Vec::with_capacity(CHUNK);
            for (index, item) in records.skip(this.config.skip).take(limit).enumerate() {
                if cx.run.cancel.is_cancelled() {
                    break;
                }
                let fields = item.map_err(|message| EngineError::Input {
                    path: this.path.clone().unwrap_or_else(|| PathBuf::from("records")),
                    message,
                })?;
                chunk.push(Record::new(index.to_string(), fields));
                if chunk.len() == CHUNK && chunks.blocking_send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).is_err() {
                    return Ok(());
                }
            }
            if !chunk.is_empty() {
                let _ = chunks.blocking_send(chunk);
            }
            Ok(())
        });
        'forward: while let Some(chunk) = received.recv().await {
            for record in chunk {
                if cx.run.cancel.is_cancelled() {
                    break 'forward;
                }
                cx.stats.record_in();
                cx.stats.record_out();
                if output.send(record).await.is_err() {
                    break 'forward;
                }
            }
        }
        drop(received);
        reader.await.map_err(|error| EngineError::Step { step: "load".into(), message: error.to_string() })?
    }
}
