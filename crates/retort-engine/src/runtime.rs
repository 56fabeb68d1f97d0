//! The streaming executor: stages joined by bounded channels, so memory stays flat.
//!
//! Each step runs as one task. Records flow from the source through every step without
//! waiting for a step to finish; a full channel makes the step before it wait (backpressure).
//! Dropped and failed records leave the stream through the reject writer, with their reasons.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use retort_core::{Outcome, Record, RecordStatus};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::stats::StepStats;
use crate::flow::{Inbox, Outbox};
use crate::steps::{drive_records, Built};
use crate::template::Templates;

/// Records buffered between two steps.
pub(crate) const CHANNEL_CAPACITY: usize = 256;

/// What every stage of a run shares.
pub(crate) struct RunCx {
    pub templates: Templates,
    /// The recipe's seed, from which every request's seed is derived.
    pub seed: u64,
    /// Cancelled by Ctrl-C: sources stop reading, in-flight work finishes.
    pub cancel: CancellationToken,
    pub rejects: mpsc::Sender<Reject>,
    pub out_dir: PathBuf,
    /// The run store, for steps that memoise work other than model answers (trainers).
    pub store: Arc<retort_store::RunStore>,
    /// Things the user should know at the end (a round loop cut short, a trainer's model).
    pub notes: std::sync::Mutex<Vec<String>>,
    /// Set by a `train` step that has no trainer: the enclosing `repeat` stops after this round.
    pub stop_rounds: std::sync::atomic::AtomicBool,
}

impl RunCx {
    /// Adds a note for the run's report.
    pub(crate) fn note(&self, note: String) {
        let mut notes = self.notes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
}

/// One stage's view: the run, its step, its counters, and the round inside `repeat`.
#[derive(Clone)]
pub(crate) struct StageCx {
    pub run: Arc<RunCx>,
    pub step: Arc<str>,
    pub round: Option<u32>,
    pub stats: Arc<StepStats>,
}

impl StageCx {
    /// Counts an outcome; returns the record if it goes on downstream.
    pub(crate) async fn settle(&self, outcome: Outcome) -> Option<Record> {
        match outcome {
            Outcome::Keep(record) => {
                self.stats.record_out();
                Some(record)
            }
            Outcome::Drop(record, reason) => {
                self.stats.record_dropped(&reason);
                let status = RecordStatus::Dropped { step: self.step.to_string(), reason };
                let _ = self.run.rejects.send(Reject { record, status }).await;
                None
            }
            Outcome::Fail(record, reason, raw) => {
                self.stats.record_failed(&reason);
                let status = RecordStatus::Failed { step: self.step.to_string(), reason, raw };
                let _ = self.run.rejects.send(Reject { record, status }).await;
                None
            }
        }
    }

    /// A derived seed for this step, round, record and sample.
    pub(crate) fn seed(&self, record_id: &str, sample: usize) -> u64 {
        let round = self.round.map(|round| round.to_string()).unwrap_or_default();
        retort_core::derive_seed(self.run.seed, &[&self.step, &round, record_id, &sample.to_string()])
    }
}

/// A dropped or failed record on its way to `dropped.jsonl` or `failed.jsonl`.
pub(crate) struct Reject {
    pub record: Record,
    pub status: RecordStatus,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    id: &'a str,
    #[serde(flatten)]
    status: &'a RecordStatus,
    record: &'a serde_json::Map<String, serde_json::Value>,
}

/// Writes rejects as they come; returns how many of each kind were written.
///
/// A task on the runtime rather than a thread of its own: writes go into 64 KiB buffers, so
/// the occasional write to the file is short, and a reject costs no thread wake-up.
pub(crate) fn spawn_reject_writer(
    out_dir: PathBuf,
    mut receiver: mpsc::Receiver<Reject>,
) -> JoinHandle<Result<(u64, u64), EngineError>> {
    tokio::spawn(async move {
        let failed_path = out_dir.join("failed.jsonl");
        let dropped_path = out_dir.join("dropped.jsonl");
        let open = |path: &PathBuf| {
            std::fs::File::create(crate::steps::export::partial(path))
                .map(|file| std::io::BufWriter::with_capacity(1 << 16, file))
                .map_err(EngineError::io("create", path.clone()))
        };
        let mut failed = open(&failed_path)?;
        let mut dropped = open(&dropped_path)?;
        let (mut failed_count, mut dropped_count) = (0u64, 0u64);
        while let Some(reject) = receiver.recv().await {
            let line = RejectLine { id: &reject.record.id, status: &reject.status, record: &reject.record.fields };
            let (writer, path) = match reject.status {
                RecordStatus::Failed { .. } => {
                    failed_count += 1;
                    (&mut failed, &failed_path)
                }
                _ => {
                    dropped_count += 1;
                    (&mut dropped, &dropped_path)
                }
            };
            serde_json::to_writer(&mut *writer, &line)
                .map_err(std::io::Error::from)
                .and_then(|()| writer.write_all(b"\n"))
                .map_err(EngineError::io("write", path.clone()))?;
        }
        failed.flush().map_err(EngineError::io("write", failed_path.clone()))?;
        dropped.flush().map_err(EngineError::io("write", dropped_path.clone()))?;
        drop((failed, dropped));
        for path in [&failed_path, &dropped_path] {
            crate::output::rename(&crate::steps::export::partial(path), path)?;
        }
        Ok((failed_count, dropped_count))
    })
}

/// A built step with what the runtime needs to run it.
pub(crate) struct PipelineStep {
    pub path: String,
    pub when: Option<String>,
    pub built: Built,
    pub stats: Arc<StepStats>,
}

/// Starts every step of a pipeline as a task; returns the last step's output and the tasks.
pub(crate) fn spawn_pipeline(
    steps: &[Arc<PipelineStep>],
    input: Inbox,
    run: Arc<RunCx>,
    round: Option<u32>,
) -> (Inbox, Vec<JoinHandle<Result<(), EngineError>>>) {
    let mut tasks = Vec::with_capacity(steps.len());
    let mut current = input;
    for step in steps {
        let (sender, receiver): (Outbox, Inbox) = crate::flow::channel(CHANNEL_CAPACITY);
        let cx = StageCx { run: run.clone(), step: Arc::from(step.path.as_str()), round, stats: step.stats.clone() };
        let task = match &step.built {
            Built::Record(record_step) => {
                tokio::spawn(drive_records(record_step.clone(), step.when.clone(), current, sender, cx))
            }
            Built::Stream(stream_step) => {
                let notes = run.clone();
                let path = step.path.clone();
                let current = current.on_disorder(Arc::new(move || {
                    notes.note(format!(
                        "{path}: more than {} records waited behind a slow one, so some reached it out of order",
                        crate::flow::REORDER_LIMIT
                    ))
                }));
                tokio::spawn(stream_step.clone().run(current, sender, cx))
            }
        };
        tasks.push(task);
        current = receiver;
    }
    (current, tasks)
}

/// Waits for a pipeline's tasks, returning the first error.
pub(crate) async fn join_all(tasks: Vec<JoinHandle<Result<(), EngineError>>>) -> Result<(), EngineError> {
    let mut first_error = None;
    for task in tasks {
        let result = match task.await {
            Ok(result) => result,
            Err(join_error) => Err(EngineError::Step {
                step: "runtime".to_string(),
                message: format!("a step task stopped: {join_error}"),
            }),
        };
        if let Err(error) = result {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// An empty, closed input, for sources.
pub(crate) fn empty_input() -> Inbox {
    Inbox::empty()
}
