//! The streaming executor: stages joined by bounded channels, so memory stays flat.
//!
//! Each step runs as one task. Records flow from the source through every step without
//! waiting for a step to finish; a full channel makes the step before it wait (backpressure).
//! Dropped and failed records leave the stream through the reject writer, with their reasons.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Failure, Outcome, Record, RecordStatus};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::flow::{Flow, Inbox, OrderKey, Outbox};
use crate::stats::StepStats;

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
                let _ = self.run.rejects.send(Reject { record, status, round: self.round }).await;
                None
            }
            Outcome::Interrupted(_) => None,
            Outcome::Fail(record, Failure { reason, raw }) => {
                self.stats.record_failed(&reason);
                let status = RecordStatus::Failed { step: self.step.to_string(), reason, raw };
                let _ = self.run.rejects.send(Reject { record, status, round: self.round }).await;
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
    /// The round of an enclosing `repeat` it was rejected in.
    pub round: Option<u32>,
}

#[derive(Serialize)]
struct RejectLine<'a> {
    id: &'a str,
    #[serde(flatten)]
    status: &'a RecordStatus,
    /// The round of an enclosing `repeat` it was rejected in.
    #[serde(skip_serializing_if = "Option::is_none")]
    round: Option<u32>,
    record: &'a serde_json::Map<String, serde_json::Value>,
    /// How its generated fields were made (the messages sent, parameters, seed), as in
    /// `NAME.lineage.jsonl` for kept rows.
    #[serde(skip_serializing_if = "<[retort_core::Lineage]>::is_empty")]
    lineage: &'a [retort_core::Lineage],
}

/// Writes rejects as they come; returns how many of each kind were written.
///
/// A task on the runtime rather than a thread of its own: writes go into 64 KiB buffers, so
/// the occasional write to the file is short, and a reject costs no thread wake-up.
pub(crate) fn spawn_reject_writer(out_dir: PathBuf, mut receiver: mpsc::Receiver<Reject>) -> JoinHandle<Result<(u64, u64), EngineError>> {
    tokio::spawn(async move {
        let failed_path = out_dir.join("failed.jsonl");
        let dropped_path = out_dir.join("dropped.jsonl");
        let open = |path: &PathBuf| {
            std::fs::File::create(crate::output::partial(path))
                .map(|file| std::io::BufWriter::with_capacity(1 << 16, file))
                .map_err(EngineError::io("create", path.clone()))
        };
        let mut failed = open(&failed_path)?;
        let mut dropped = open(&dropped_path)?;
        let (mut failed_count, mut dropped_count) = (0u64, 0u64);
        while let Some(reject) = receiver.recv().await {
            let line = RejectLine {
                id: &reject.record.id,
                status: &reject.status,
                round: reject.round,
                record: &reject.record.fields,
                lineage: &reject.record.lineage,
            };
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
            // Written through when no other reject waits, so a viewer sees them while the run goes.
            if receiver.is_empty() {
                writer.flush().map_err(EngineError::io("write", path.clone()))?;
            }
        }
        failed.flush().map_err(EngineError::io("write", failed_path.clone()))?;
        dropped.flush().map_err(EngineError::io("write", dropped_path.clone()))?;
        drop((failed, dropped));
        for path in [&failed_path, &dropped_path] {
            crate::output::rename(&crate::output::partial(path), path)?;
        }
        Ok((failed_count, dropped_count))
    })
}

/// A built step with what the runtime needs to run it.
pub(crate) struct PipelineStep {
    pub path: String,
    /// `when:`, compiled once with the recipe's templates.
    pub when: Option<crate::template::Expr>,
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
        if let Some(round) = round {
            step.stats.begin_round(round);
        }
        let (sender, receiver): (Outbox, Inbox) = crate::flow::channel(CHANNEL_CAPACITY);
        let cx = StageCx { run: run.clone(), step: Arc::from(step.path.as_str()), round, stats: step.stats.clone() };
        let task = match &step.built {
            Built::Record(record_step) => tokio::spawn(drive_records(record_step.clone(), step.when.clone(), current, sender, cx)),
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

/// One pass of a nested pipeline (a round of `repeat`, a pass of `iterate`): its seeds fed in
/// from a list, its steps running as tasks.
pub(crate) struct Pass {
    feeder: JoinHandle<()>,
    tasks: Vec<JoinHandle<Result<(), EngineError>>>,
}

impl Pass {
    /// Feeds `seeds` through `steps`; returns the last step's output and the pass to finish.
    pub(crate) fn spawn(steps: &[Arc<PipelineStep>], seeds: Vec<Record>, run: Arc<RunCx>, round: Option<u32>) -> (Inbox, Pass) {
        let (sender, receiver) = crate::flow::channel(CHANNEL_CAPACITY);
        let feeder = tokio::spawn(async move {
            for seed in seeds {
                if sender.send(seed).await.is_err() {
                    break;
                }
            }
        });
        let (results, tasks) = spawn_pipeline(steps, receiver, run, round);
        (results, Pass { feeder, tasks })
    }

    /// Waits for the feeder and the steps, returning the first error.
    pub(crate) async fn finish(self) -> Result<(), EngineError> {
        let _ = self.feeder.await;
        join_all(self.tasks).await
    }
}

/// Waits for a pipeline's tasks, returning the first error.
pub(crate) async fn join_all(tasks: Vec<JoinHandle<Result<(), EngineError>>>) -> Result<(), EngineError> {
    let mut first_error = None;
    for task in tasks {
        let result = match task.await {
            Ok(result) => result,
            // Aborted after the grace period of a Ctrl-C.
            Err(join_error) if join_error.is_cancelled() => Err(EngineError::Cancelled),
            Err(join_error) => {
                Err(EngineError::Step { step: "runtime".to_string(), message: format!("a step task stopped: {join_error}") })
            }
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

/// A built step, ready to run.
pub(crate) enum Built {
    /// Works record by record.
    Record(Arc<dyn RecordStep>),
    /// Works on the stream.
    Stream(Arc<dyn StreamStep>),
}

/// A step that works on one record at a time.
#[async_trait]
pub(crate) trait RecordStep: Send + Sync + 'static {
    /// What became of one record: kept (possibly fanned out), dropped or failed.
    async fn apply(&self, record: Record, cx: &StageCx) -> Vec<Outcome>;

    /// How many records it works on at once.
    fn concurrency(&self) -> usize;
}

/// A step that works on the whole stream.
#[async_trait]
pub(crate) trait StreamStep: Send + Sync + 'static {
    /// Reads `input` to its end, sending kept records to `output` and rejects through `cx`.
    async fn run(self: Arc<Self>, input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError>;
}

/// Runs a record step over a stream: many records at once, with `when:` and panics handled.
///
/// Each record goes on as soon as its work is done, so a slow one (a request hanging until
/// its timeout) holds back no other; its place in the order travels with it, and watermarks
/// tell the next ordered reader when it may release what overtook it (see `crate::flow`).
pub(crate) async fn drive_records(
    step: Arc<dyn RecordStep>,
    when: Option<crate::template::Expr>,
    mut input: Inbox,
    output: Outbox,
    cx: StageCx,
) -> Result<(), EngineError> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let window = step.concurrency();
    let mut running = FuturesUnordered::new();
    let mut order = Watermarks::default();
    loop {
        tokio::select! {
            biased;
            done = running.next(), if !running.is_empty() => {
                let Some((key, outcomes)) = done else { continue };
                let in_order = order.is_lowest(&key);
                order.finish(&key);
                let outcomes: Vec<Outcome> = outcomes;
                let count = outcomes.len();
                for (index, outcome) in outcomes.into_iter().enumerate() {
                    if let Some(record) = cx.settle(outcome).await {
                        let key = crate::flow::outcome_key(&key, index, count);
                        order.sent(&key, in_order);
                        if output.send_flow(Flow::Record { key, record, ordered: in_order }).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if let Some(watermark) = order.due() {
                    if output.send_flow(Flow::Watermark(watermark)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            message = input.recv_flow(), if running.len() < window && !order.input_closed => {
                match message {
                    None => order.input_closed = true,
                    Some(Flow::Watermark(watermark)) => order.input_reached(watermark),
                    Some(Flow::Record { key, record, ordered }) => {
                        if ordered {
                            let mut past = key.clone();
                            past.push(0);
                            order.input_reached(past);
                        }
                        order.start(key.clone());
                        running.push(apply_one(step.clone(), when.clone(), key, record, cx.clone()));
                    }
                }
                if let Some(watermark) = order.due() {
                    if output.send_flow(Flow::Watermark(watermark)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            else => break,
        }
    }
    Ok(())
}

/// One record's work in a record step: `when:`, the step itself, a panic turned into a failure.
async fn apply_one(
    step: Arc<dyn RecordStep>,
    when: Option<crate::template::Expr>,
    key: OrderKey,
    record: Record,
    cx: StageCx,
) -> (OrderKey, Vec<Outcome>) {
    use futures::FutureExt;
    cx.stats.record_in();
    // After Ctrl-C no new record is started; a resumed run does it.
    if cx.run.cancel.is_cancelled() {
        return (key, Vec::new());
    }
    if let Some(condition) = &when {
        match cx.run.templates.eval(condition, &record, cx.round) {
            Ok(value) if !crate::template::truthy(&value) => return (key, vec![Outcome::Keep(record)]),
            Ok(_) => {}
            Err(error) => {
                let reason = format!("`when: {condition}` failed: {error}");
                return (key, vec![Outcome::fail(record, reason)]);
            }
        }
    }
    // Only the id is kept aside for a panic: a copy of every record at every step would
    // cost more than the step itself on a fast server. A panicked record is failed under
    // its id (which names its seed), without its fields.
    let id_for_panic = record.id.clone();
    let outcomes = match std::panic::AssertUnwindSafe(step.apply(record, &cx)).catch_unwind().await {
        // Records the stopping run did not work on leave quietly; the next run does them.
        Ok(outcomes) => outcomes.into_iter().filter(|outcome| !matches!(outcome, Outcome::Interrupted(_))).collect(),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            vec![Outcome::fail(Record::new(id_for_panic, serde_json::Map::new()), format!("internal error (panic): {message}"))]
        }
    };
    (key, outcomes)
}

/// A record step's bookkeeping of the order: which inputs are in flight, how far its input
/// has come, and how far what it sent is complete.
#[derive(Default)]
struct Watermarks {
    /// Keys of the records being worked on.
    in_flight: std::collections::BTreeSet<OrderKey>,
    /// Every input key below this one has arrived.
    input: OrderKey,
    input_closed: bool,
    /// The last watermark sent (or implied by a record sent in order).
    sent: OrderKey,
    /// A record went out of order since the last watermark: the next reader waits for one.
    owed: bool,
}

impl Watermarks {
    fn input_reached(&mut self, key: OrderKey) {
        if key > self.input {
            self.input = key;
        }
    }

    fn start(&mut self, key: OrderKey) {
        self.in_flight.insert(key);
    }

    /// Whether every input before `key` has arrived and been finished: its outcomes then go
    /// out in order.
    fn is_lowest(&self, key: &OrderKey) -> bool {
        self.in_flight.first() == Some(key) && (self.input_closed || self.input > *key)
    }

    fn finish(&mut self, key: &OrderKey) {
        self.in_flight.remove(key);
    }

    fn sent(&mut self, key: &OrderKey, in_order: bool) {
        if in_order {
            if *key > self.sent {
                self.sent = key.clone();
            }
        } else {
            self.owed = true;
        }
    }

    /// A watermark to send now: owed, and higher than the last. Everything below the lowest
    /// record in flight (or below how far the input has come) has been sent.
    fn due(&mut self) -> Option<OrderKey> {
        if !self.owed {
            return None;
        }
        let reached = match self.in_flight.first() {
            Some(lowest) if self.input_closed || *lowest < self.input => lowest.clone(),
            _ if self.input_closed => return None,
            _ => self.input.clone(),
        };
        if reached > self.sent {
            self.sent = reached.clone();
            self.owed = false;
            Some(reached)
        } else {
            None
        }
    }
}

/// Why a record's work did not end in a kept record: it failed, or the run is stopping and
/// the work was not started (then the record is set aside and redone by the next run).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Miss {
    /// The run is stopping: nothing was sent.
    Interrupted,
    /// The record failed.
    Failed(Failure),
}

impl Miss {
    /// A failure without a raw answer.
    pub(crate) fn failed(reason: impl Into<String>) -> Miss {
        Miss::Failed(Failure::new(reason))
    }

    /// A failure with the raw answer that caused it.
    pub(crate) fn with_raw(reason: impl Into<String>, raw: impl Into<String>) -> Miss {
        Miss::Failed(Failure::with_raw(reason, raw))
    }

    /// What becomes of `record`.
    pub(crate) fn outcome(self, record: Record) -> Outcome {
        match self {
            Miss::Interrupted => Outcome::Interrupted(record),
            Miss::Failed(failure) => Outcome::Fail(record, failure),
        }
    }

    /// The same miss with the raw answer filled in when it has none.
    pub(crate) fn or_raw(self, raw: impl FnOnce() -> String) -> Miss {
        match self {
            Miss::Failed(Failure { reason, raw: None }) => Miss::Failed(Failure { reason, raw: Some(raw()) }),
            other => other,
        }
    }
}

impl From<Failure> for Miss {
    fn from(failure: Failure) -> Miss {
        Miss::Failed(failure)
    }
}
