//! `repeat`: run a sub-pipeline for several rounds, each round's kept records seeding the next.
//!
//! Rounds are a barrier: round k+1 starts when round k has finished. Each round's output is
//! also written to `rounds/round-K.jsonl` in the run directory.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Record;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Diagnostic, EngineError};
use crate::flow::{Inbox, Outbox};
use crate::steps::{check_steps, StepSpec};
use crate::runtime::{Pass, PipelineStep, StageCx};
use crate::steps::{BuildCx, CheckCx, StepConfig, StepDef};
use crate::runtime::{Built, StreamStep};

/// What seeds the next round.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feed {
    /// This round's output (STaR, self-improvement loops).
    #[default]
    Output,
    /// The seeds so far plus this round's output (a growing pool, as Self-Instruct keeps).
    Accumulate,
    /// The same input every round (the model changes between rounds, the prompts do not).
    Input,
}

/// Which rounds' records go downstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Every round's output, tagged with its round.
    #[default]
    All,
    /// Only the last round's output.
    Last,
}

/// The settings of a `repeat` step as written; `steps` are read by the recipe parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RepeatRaw<V> {
    /// How many rounds at most.
    pub rounds: u32,
    /// The steps of one round, as written (the recipe parser reads them).
    pub steps: Vec<V>,
    /// What seeds the next round: `output`, `accumulate` or `input`.
    #[serde(default)]
    pub feed: Feed,
    /// Stop early when this expression is true after a round; it sees `round`, `count` (this
    /// round's output), `total` (output so far) and `pool` (the next round's seeds).
    #[serde(default)]
    pub until: Option<String>,
    /// `all` or `last`.
    #[serde(default)]
    pub emit: Emit,
    /// The field each output record gets its round number in.
    #[serde(default = "default_round_field")]
    pub round_field: String,
}

fn default_round_field() -> String {
    "round".to_string()
}

/// Settings of a `repeat` step.
#[derive(Debug, Clone)]
pub struct RepeatConfig {
    /// How many rounds at most.
    pub rounds: u32,
    /// The steps of one round.
    pub steps: Vec<StepSpec>,
    /// What seeds the next round.
    pub feed: Feed,
    /// Stop early when true after a round.
    pub until: Option<String>,
    /// Which rounds' records go downstream.
    pub emit: Emit,
    /// The field for the round number.
    pub round_field: String,
}

impl RepeatConfig {
    /// The config from its settings as written and its steps as the recipe parser read them,
    /// reporting what is wrong with the two together.
    pub(crate) fn from_raw<V>(raw: RepeatRaw<V>, steps: Vec<StepSpec>, path: &str, diagnostics: &mut Vec<Diagnostic>) -> RepeatConfig {
        if raw.rounds == 0 {
            diagnostics.push(Diagnostic::new(format!("{path}.rounds"), "expected at least 1 round, found 0"));
        }
        if raw.steps.is_empty() {
            diagnostics.push(Diagnostic::new(format!("{path}.steps"), "empty; a round needs at least one step"));
        }
        for step in &steps {
            if matches!(step.config, StepConfig::Load(_)) {
                diagnostics.push(Diagnostic::new(step.path.clone(), "`load` cannot be inside `repeat`; its input is the round's seeds"));
            }
        }
        RepeatConfig { rounds: raw.rounds, steps, feed: raw.feed, until: raw.until, emit: raw.emit, round_field: raw.round_field }
    }
}

impl crate::steps::StepKind for RepeatConfig {
    fn fields() -> &'static [&'static str] {
        crate::introspect::struct_fields::<RepeatRaw<serde::de::IgnoredAny>>()
    }

    /// `repeat` holds steps of its own: the recipe parser reads it (`RepeatConfig::from_raw`).
    fn read<'de, D: serde::Deserializer<'de>>(_settings: D) -> Result<Self, (String, String)> {
        Err((String::new(), "`repeat` is read by the recipe parser, with its steps".to_string()))
    }
}

impl StepDef for RepeatConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn expressions(&self) -> Vec<(String, String)> {
        self.until.iter().map(|until| ("until".to_string(), until.clone())).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let path = cx.path.clone();
        if self.rounds > crate::limits::MAX_ITERATIONS as u32 {
            cx.error("rounds", format!("expected a number from 1 to {}, found {}", crate::limits::MAX_ITERATIONS, self.rounds));
        }
        if let Some(until) = &self.until {
            cx.expression("until", until, &["count", "total", "pool"]);
        }
        let outer_globals = cx.extra_globals.clone();
        cx.extra_globals.insert("round".to_string());
        check_steps(&self.steps, cx);
        cx.extra_globals = outer_globals;
        cx.path = path;
        cx.write(&self.round_field);
    }

    fn build(&self, _spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let steps = crate::steps::build_steps(&self.steps, cx)?;
        Ok(Built::Stream(Arc::new(Repeat { config: self.clone(), steps })))
    }
}

struct Repeat {
    config: RepeatConfig,
    steps: Vec<Arc<PipelineStep>>,
}

#[async_trait]
impl StreamStep for Repeat {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut seeds = Vec::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            seeds.push(record);
        }
        let original = seeds.clone();
        let rounds_dir = cx.run.out_dir.join("rounds");
        std::fs::create_dir_all(&rounds_dir).map_err(EngineError::io("create", &rounds_dir))?;
        let mut total = 0usize;
        let mut last_round = Vec::new();
        for round in 1..=self.config.rounds {
            if cx.run.cancel.is_cancelled() || seeds.is_empty() {
                break;
            }
            // Ids stay unique across rounds: round K's seeds are renamed `rK-ID`.
            let round_seeds: Vec<Record> = seeds
                .iter()
                .map(|seed| {
                    let mut seed = seed.clone();
                    if round > 1 {
                        seed.id = format!("r{round}-{}", seed.id);
                    }
                    seed
                })
                .collect();
            let (mut results, pass) = Pass::spawn(&self.steps, round_seeds, cx.run.clone(), Some(round));
            let round_path = rounds_dir.join(format!("round-{round}.jsonl"));
            let mut round_file =
                std::io::BufWriter::new(std::fs::File::create(&round_path).map_err(EngineError::io("create", &round_path))?);
            let mut produced = Vec::new();
            while let Some(mut record) = results.recv().await {
                record.set(self.config.round_field.clone(), Value::from(round));
                serde_json::to_writer(&mut round_file, &record.fields)
                    .map_err(std::io::Error::from)
                    .and_then(|()| round_file.write_all(b"\n"))
                    .map_err(EngineError::io("write", &round_path))?;
                if self.config.emit == Emit::All {
                    cx.stats.record_out();
                    if output.send(record.clone()).await.is_err() {
                        return Ok(());
                    }
                }
                produced.push(record);
            }
            round_file.flush().map_err(EngineError::io("write", &round_path))?;
            pass.finish().await?;
            total += produced.len();
            let count = produced.len();
            seeds = match self.config.feed {
                Feed::Output => produced.clone(),
                Feed::Accumulate => seeds.into_iter().chain(produced.iter().cloned()).collect(),
                Feed::Input => original.clone(),
            };
            last_round = produced;
            if cx.run.stop_rounds.swap(false, std::sync::atomic::Ordering::SeqCst) {
                break;
            }
            if let Some(until) = &self.config.until.as_ref().map(|until| crate::template::Expr::at(&cx.step, "until", until)) {
                let context = minijinja::context! { round => round, count => count, total => total, pool => seeds.len(), vars => cx.run.templates.vars() };
                match cx.run.templates.eval_with(until, context) {
                    Ok(value) if crate::template::truthy(&value) => break,
                    Ok(_) => {}
                    Err(error) => {
                        return Err(EngineError::Step { step: cx.step.to_string(), message: format!("until `{until}` failed: {error}") })
                    }
                }
            }
        }
        if self.config.emit == Emit::Last {
            for record in last_round {
                cx.stats.record_out();
                if output.send(record).await.is_err() {
                    break;
                }
            }
        }
        Ok(())
    }
}
