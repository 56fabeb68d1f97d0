//! Running a recipe: build backends and steps, execute the pipeline, finish outputs, remember the run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use retort_store::{RunLock, RunReader, RunState, RunStore, StepRow};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::EngineError;
use crate::llm::{Llm, SharedLocal};
use crate::output::ExportTarget;
use crate::output::{self, CardFacts};
use crate::recipe::Recipe;
use crate::runtime::{empty_input, join_all, spawn_pipeline, PipelineStep, RunCx};
use crate::stats::{RunStats, StepSnapshot};
use crate::steps::export::ExportConfig;
use crate::steps::{build_steps, for_each_step, StepSpec};
use crate::steps::{BuildCx, StepConfig};
use crate::template::Templates;

/// How to run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run directory: data, lineage, rejects, card and `run.sqlite`.
    pub out_dir: PathBuf,
    /// How long in-flight work may finish after a Ctrl-C before it is abandoned.
    pub grace: Duration,
    /// Cancelled to stop at once (a second Ctrl-C): work in flight is abandoned without the
    /// grace period, and the run still commits every answer that arrived and writes its files.
    pub stop_now: CancellationToken,
    /// Run again although the same recipe completed here, when records failed in that run:
    /// their requests are sent again, every answer that arrived is reused.
    pub retry_failed: bool,
}

impl RunOptions {
    /// Options with the default grace period (10 s).
    pub fn new(out_dir: impl Into<PathBuf>) -> RunOptions {
        RunOptions { out_dir: out_dir.into(), grace: Duration::from_secs(10), stop_now: CancellationToken::new(), retry_failed: false }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every record went through every step.
    Completed,
    /// Stopped by Ctrl-C; finished work is written and the next run resumes.
    Interrupted,
    /// The same recipe had already completed in this directory: nothing was done.
    UpToDate,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// How it ended.
    pub outcome: RunOutcome,
    /// Rows written by each export, by file stem.
    pub rows: Vec<(String, u64)>,
    /// Records that failed, in all steps.
    pub failed: u64,
    /// Records removed on purpose, in all steps.
    pub dropped: u64,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// The counters of every step.
    pub steps: Vec<StepSnapshot>,
    /// What the user should know: a round loop cut short, the models trainers produced.
    pub notes: Vec<String>,
    /// Which backend and model answered, per llm of the recipe (`default: openai `m` at URL`).
    pub answered_by: Vec<String>,
    /// Wall-clock seconds.
    pub elapsed_s: f64,
}

impl RunReport {
    /// Model requests sent, in all steps.
    pub fn requests(&self) -> u64 {
        self.steps.iter().map(|step| step.requests).sum()
    }

    /// Answers taken from the run store, in all steps.
    pub fn cached(&self) -> u64 {
        self.steps.iter().map(|step| step.cached).sum()
    }

    /// The steps whose share of failed records is above `threshold` (0 to 1), or, with no
    /// threshold, where every record that came in failed; each as a sentence.
    pub fn failures_above(&self, threshold: Option<f64>) -> Vec<String> {
        self.steps
            .iter()
            .filter(|step| step.records_in > 0 && step.failed > 0)
            .filter(|step| {
                // What the step put out, counted in its own records: a step that fans out
                // (`generate` with `n`, `explode`) fails children, not the records it took in.
                let outcomes = step.out + step.dropped + step.failed;
                match threshold {
                    Some(threshold) => step.failed as f64 / outcomes as f64 > threshold,
                    None => step.out == 0 && step.dropped == 0,
                }
            })
            .map(|step| format!("{}: {} of {} records failed", step.step, step.failed, step.out + step.dropped + step.failed))
            .collect()
    }
}

/// A run, built and ready to execute.
pub struct PreparedRun {
    recipe: Recipe,
    options: RunOptions,
    store: Arc<RunStore>,
    stats: RunStats,
    steps: Vec<Arc<PipelineStep>>,
    templates: Templates,
    exports: Vec<ExportTarget>,
    fingerprint: String,
    models: Vec<String>,
    /// Held from `prepare` to the end of `execute`: one run per directory.
    _lock: RunLock,
}

/// The hash of the resolved recipe and every file it reads. Files are read in pieces, so a
/// million-record input costs no memory to fingerprint.
fn fingerprint(recipe: &Recipe) -> String {
    let mut hasher = retort_core::StableHasher::default();
    hasher.part(recipe.resolved.as_bytes());
    for file in recipe.files() {
        hasher.part(file.to_string_lossy().as_bytes());
        hasher.file(&file);
    }
    hasher.finish_hex()
}

impl PreparedRun {
    /// Builds everything a run needs; nothing is sent yet.
    pub fn prepare(mut recipe: Recipe, options: RunOptions) -> Result<PreparedRun, EngineError> {
        if !recipe.steps.iter().any(|step| matches!(step.config, StepConfig::Export(_))) {
            let path = format!("steps[{}].export", recipe.steps.len());
            recipe.steps.push(StepSpec {
                path,
                when: None,
                concurrency: None,
                config: StepConfig::Export(ExportConfig::default_for_recipe()),
                after_broken: false,
            });
        }
        let mut diagnostics = Vec::new();
        let env = recipe.environment(&mut diagnostics);
        if !diagnostics.is_empty() {
            return Err(EngineError::Recipe(crate::error::Diagnostics { file: recipe.file.clone(), items: diagnostics }));
        }
        let templates = Templates::new(env, recipe.vars.clone());
        let lock = RunLock::acquire(&options.out_dir)?;
        let store = Arc::new(RunStore::open(&options.out_dir)?);
        let fresh = store.count("chat")? == 0 && store.count("score")? == 0;
        let mut llms = HashMap::new();
        let mut models = Vec::new();
        let mut shared = SharedLocal::default();
        for (name, config) in &recipe.llms {
            let llm = Llm::build(name, config, &recipe.base_dir, store.clone(), fresh, &mut shared)?;
            models.push(format!("{name}: {}", llm.describe()));
            llms.insert(name.clone(), Arc::new(llm));
        }
        let exports = Arc::new(Mutex::new(Vec::new()));
        let fields_at = recipe.context_facts(&mut Vec::new()).fields_at;
        let cx = BuildCx {
            fields_at,
            base_dir: recipe.base_dir.clone(),
            llms,
            out_dir: options.out_dir.clone(),
            default_concurrency: recipe.concurrency.unwrap_or(64),
            stats: Mutex::new(RunStats::default()),
            exports: exports.clone(),
        };
        let steps = build_steps(&recipe.steps, &cx)?;
        let stats = cx.stats.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
        let exports = exports.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let fingerprint = fingerprint(&recipe);
        Ok(PreparedRun { recipe, options, store, stats, steps, templates, exports, fingerprint, models, _lock: lock })
    }

    /// The live counters, for progress display.
    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// The recipe being run.
    pub fn recipe(&self) -> &Recipe {
        &self.recipe
    }

    /// Whether the same recipe already completed in this directory with its outputs in place
    /// (and, with `retry_failed`, without failed records).
    pub fn up_to_date(&self) -> Result<bool, EngineError> {
        let Some(last) = self.store.last_run()? else { return Ok(false) };
        let done = last.state == RunState::Completed
            && last.fingerprint == self.fingerprint
            && self.exports.iter().all(|target| target.jsonl.exists());
        Ok(done && !(self.options.retry_failed && self.failed_last_time()? > 0))
    }

    /// Records that failed in the last run here, from its summary.
    pub fn failed_last_time(&self) -> Result<u64, EngineError> {
        Ok(self.store.last_run()?.and_then(|last| last.summary.get("failed").and_then(serde_json::Value::as_u64)).unwrap_or(0))
    }

    /// Runs the pipeline to its end, or until `cancel` fires and the grace period passes.
    pub async fn execute(self, cancel: CancellationToken) -> Result<RunReport, EngineError> {
        let started = Instant::now();
        if self.up_to_date()? {
            let last = self.store.last_run()?.expect("checked above");
            let steps = self.store.steps(last.id)?.into_iter().filter_map(|row| serde_json::from_value(row.stats).ok()).collect();
            return Ok(RunReport {
                outcome: RunOutcome::UpToDate,
                rows: self.exports.iter().map(|target| (target.name.clone(), output::count_rows(&target.jsonl))).collect(),
                failed: 0,
                dropped: 0,
                files: Vec::new(),
                steps,
                notes: Vec::new(),
                answered_by: self.models.clone(),
                elapsed_s: started.elapsed().as_secs_f64(),
            });
        }
        let run_id = self.store.begin_run(&self.recipe.name, &self.fingerprint)?;
        let mut identity = RunIdentity {
            recipe: self.recipe.name.clone(),
            description: self.recipe.description.clone(),
            paper: self.recipe.paper.clone(),
            recipe_file: self.recipe.file.clone(),
            fingerprint: self.fingerprint.clone(),
            seed: self.recipe.seed,
            retort_version: env!("CARGO_PKG_VERSION").to_string(),
            models: self.models.clone(),
            run_id,
            started_at: unix_now(),
            finished_at: None,
            outcome: None,
        };
        identity.write(&self.options.out_dir)?;
        let (reject_sender, reject_receiver) = mpsc::channel(1024);
        let rejects = crate::runtime::spawn_reject_writer(self.options.out_dir.clone(), reject_receiver);
        let run = Arc::new(RunCx {
            templates: self.templates.clone(),
            seed: self.recipe.seed,
            cancel: cancel.clone(),
            rejects: reject_sender,
            out_dir: self.options.out_dir.clone(),
            store: self.store.clone(),
            notes: Mutex::new(Vec::new()),
            stop_rounds: std::sync::atomic::AtomicBool::new(false),
        });
        let (mut results, tasks) = spawn_pipeline(&self.steps, empty_input(), run.clone(), None);
        let notes_from = run.clone();
        drop(run);
        let abort_handles: Vec<_> = tasks.iter().map(|task| task.abort_handle()).collect();
        let drain = tokio::spawn(async move { results.drain().await });
        // Statistics are saved every few seconds, so `retort status` can follow a run.
        let ticker = {
            let store = self.store.clone();
            let stats = self.stats.clone();
            tokio::spawn(async move {
                let mut interval = tokio::time::interval(Duration::from_secs(2));
                for tick in 0u64.. {
                    interval.tick().await;
                    stats.sample(tick);
                    let _ = store.save_steps(run_id, &step_rows(&stats.snapshot()));
                }
            })
        };
        let grace = self.options.grace;
        let watchdog = {
            let cancel = cancel.clone();
            let stop_now = self.options.stop_now.clone();
            tokio::spawn(async move {
                let graceful = async {
                    cancel.cancelled().await;
                    tokio::time::sleep(grace).await;
                };
                tokio::select! {
                    () = graceful => {}
                    () = stop_now.cancelled() => cancel.cancel(),
                }
                for handle in abort_handles {
                    handle.abort();
                }
            })
        };
        let pipeline_result = join_all(tasks).await;
        let _ = drain.await;
        watchdog.abort();
        ticker.abort();
        let notes = std::mem::take(&mut *notes_from.notes.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        drop(notes_from);
        let (failed, dropped) = match rejects.await {
            Ok(Ok(counts)) => counts,
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(EngineError::Step { step: "rejects".into(), message: error.to_string() }),
        };
        self.store.flush()?;
        let interrupted = cancel.is_cancelled();
        let outcome = if interrupted { RunOutcome::Interrupted } else { RunOutcome::Completed };
        let steps = self.stats.snapshot();
        self.store.save_steps(run_id, &step_rows(&steps))?;
        if let Err(error) = pipeline_result {
            let aborted = interrupted && matches!(error, EngineError::Cancelled);
            if !aborted {
                self.store.finish_run(run_id, RunState::Failed, &serde_json::json!({"error": error.to_string()}))?;
                return Err(error);
            }
        }
        let mut files = output::finish_exports(&self.exports)?;
        let state_word = if interrupted { "interrupted (re-run to finish)" } else { "completed" };
        files.push(output::write_card(
            &self.options.out_dir,
            &CardFacts {
                name: &self.recipe.name,
                description: &self.recipe.description,
                paper: self.recipe.paper.as_deref(),
                models: self.models.clone(),
                seed: self.recipe.seed,
                targets: &self.exports,
                steps: &steps,
                state: state_word,
            },
        )?);
        let rows: Vec<(String, u64)> = self.exports.iter().map(|target| (target.name.clone(), output::count_rows(&target.jsonl))).collect();
        let report = RunReport {
            outcome,
            rows,
            failed,
            dropped,
            files,
            steps,
            notes,
            answered_by: self.models.clone(),
            elapsed_s: started.elapsed().as_secs_f64(),
        };
        identity.finished_at = Some(unix_now());
        identity.outcome = Some(outcome);
        identity.write(&self.options.out_dir)?;
        let state = if interrupted { RunState::Interrupted } else { RunState::Completed };
        self.store.finish_run(run_id, state, &serde_json::to_value(&report).unwrap_or_default())?;
        Ok(report)
    }
}

/// The file in a run directory that says which run made it: `run.json`.
pub const RUN_FILE: &str = "run.json";

/// What `run.json` holds: the run's identity, written when it starts and again when it ends
/// (a run killed before it ended keeps the first). Never a key: models are described as
/// `retort run` prints them.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunIdentity {
    /// The recipe's name.
    pub recipe: String,
    /// The recipe's description.
    #[serde(default)]
    pub description: String,
    /// The paper it implements.
    #[serde(default)]
    pub paper: Option<String>,
    /// The recipe file run.
    #[serde(default)]
    pub recipe_file: Option<PathBuf>,
    /// Hash of the resolved recipe and every file it reads.
    pub fingerprint: String,
    /// The recipe's seed.
    pub seed: u64,
    /// The version of retort that ran it.
    pub retort_version: String,
    /// Which backend and model answered, per llm of the recipe.
    #[serde(default)]
    pub models: Vec<String>,
    /// The run's id in the run store.
    pub run_id: i64,
    /// Seconds since the Unix epoch.
    pub started_at: f64,
    /// When it ended, once it did.
    #[serde(default)]
    pub finished_at: Option<f64>,
    /// How it ended, once it did.
    #[serde(default)]
    pub outcome: Option<RunOutcome>,
}

impl RunIdentity {
    fn write(&self, dir: &Path) -> Result<(), EngineError> {
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|error| EngineError::Step { step: RUN_FILE.into(), message: error.to_string() })?;
        output::write_atomically(&dir.join(RUN_FILE), &bytes)
    }

    /// Reads `run.json` of a run directory; `None` when there is none or it cannot be read.
    pub fn read(dir: &Path) -> Option<RunIdentity> {
        serde_json::from_slice(&std::fs::read(dir.join(RUN_FILE)).ok()?).ok()
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn step_rows(steps: &[StepSnapshot]) -> Vec<StepRow> {
    steps
        .iter()
        .enumerate()
        .map(|(ordinal, step)| StepRow {
            ordinal: ordinal as i64,
            step: step.step.clone(),
            stats: serde_json::to_value(step).unwrap_or_default(),
        })
        .collect()
}

/// What `retort status DIR` shows: the last run and its step counters.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The recipe's name.
    pub recipe: String,
    /// `running (pid N, ...)`, `dead: ...` (a run that was killed), `completed`, `interrupted` or `failed`.
    pub state: String,
    /// Whether a live `retort run` holds the directory now.
    pub alive: bool,
    /// Seconds the run took, or has taken so far.
    pub elapsed_s: f64,
    /// Answers stored in the run store.
    pub answers: u64,
    /// The counters of every step.
    pub steps: Vec<StepSnapshot>,
}

/// Reads the status of the run in `dir`; `None` when there is no run there.
pub fn status(dir: &Path) -> Result<Option<Status>, EngineError> {
    let Some(store) = RunReader::open(dir)? else { return Ok(None) };
    let Some(last) = store.last_run()? else { return Ok(None) };
    let steps = store.steps(last.id)?.into_iter().filter_map(|row| serde_json::from_value(row.stats).ok()).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let mut state = serde_json::to_value(last.state).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default();
    // A run marked running is alive only while it holds the directory's lock; otherwise it was
    // killed (kill -9, a crash, a full disk, a second Ctrl-C) before it could say how it ended.
    let holder = RunLock::holder(dir);
    if last.state == RunState::Running {
        state = match &holder {
            Some(holder) => format!("running ({holder})"),
            None => "dead: stopped without finishing (killed or crashed); run the same command again to resume".to_string(),
        };
    }
    Ok(Some(Status {
        recipe: last.recipe,
        state,
        elapsed_s: last.finished_at.unwrap_or(if holder.is_some() || last.state != RunState::Running { now } else { last.started_at })
            - last.started_at,
        alive: holder.is_some(),
        answers: store.count("chat")? + store.count("score")?,
        steps,
    }))
}

/// Every step path of a recipe, those inside `repeat` included.
pub fn step_paths(recipe: &Recipe) -> Vec<String> {
    let mut paths = Vec::new();
    for_each_step(&recipe.steps, &mut |step| paths.push(step.path.clone()));
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(steps: Vec<StepSnapshot>) -> RunReport {
        RunReport {
            outcome: RunOutcome::Completed,
            rows: Vec::new(),
            failed: 0,
            dropped: 0,
            files: Vec::new(),
            steps,
            notes: Vec::new(),
            answered_by: Vec::new(),
            elapsed_s: 0.0,
        }
    }

    /// Regression: a `generate` with `n: 5` took in 30 records, put out 96 samples and failed 38;
    /// counting its failures against the 30 records it took in said every record failed (exit 3).
    #[test]
    fn failures_count_against_what_a_step_put_out() {
        let fan_out = StepSnapshot { step: "steps[5].generate".into(), records_in: 30, out: 96, failed: 38, ..StepSnapshot::default() };
        assert!(report(vec![fan_out.clone()]).failures_above(None).is_empty());
        assert!(report(vec![fan_out]).failures_above(Some(0.5)).is_empty());
        let all = StepSnapshot { step: "steps[1].generate".into(), records_in: 4, out: 0, failed: 4, ..StepSnapshot::default() };
        assert_eq!(report(vec![all]).failures_above(None), ["steps[1].generate: 4 of 4 records failed"]);
        let most = StepSnapshot { step: "steps[2].map".into(), records_in: 10, out: 3, failed: 7, ..StepSnapshot::default() };
        assert_eq!(report(vec![most]).failures_above(Some(0.5)), ["steps[2].map: 7 of 10 records failed"]);
    }
}
