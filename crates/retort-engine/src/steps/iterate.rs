//! `iterate`: run sub-steps on each record again and again, its fields carried from one pass to
//! the next, until the record's own condition holds or the iterations run out.
//!
//! Where `repeat` is run-wide (a round ends when every record has passed), `iterate` decides per
//! record: a record whose `until` is true after a pass leaves at once, the others go
//! round again (retries with feedback, chains that grow, curriculum steps). Passes are a barrier
//! among the records still looping: pass k+1 starts when pass k has finished. Each pass sets the
//! iteration number (from 1) in `iteration_field` before the sub-steps run; a record's id gets
//! `~K` on pass K > 1 (so that its requests are new ones, not answers reused from pass 1) and
//! leaves the loop with its id as it came in. A record dropped or failed on pass K keeps the
//! `~K` mark in `dropped.jsonl` and `failed.jsonl`, which says on which pass it was removed.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Record;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Diagnostic, EngineError};
use crate::flow::{Inbox, Outbox};
use crate::runtime::{Pass, PipelineStep, StageCx};
use crate::runtime::{Built, StreamStep};
use crate::steps::{check_steps, StepSpec};
use crate::steps::{BuildCx, CheckCx, StepConfig, StepDef};
use crate::template::{truthy, Expr};

/// The settings of an `iterate` step as written; `steps` are read by the recipe parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IterateRaw<V> {
    /// How many passes at most.
    pub max_iterations: u32,
    /// The steps of one pass, as written (the recipe parser reads them).
    pub steps: Vec<V>,
    /// A record leaves the loop when this expression over its fields is true after a pass.
    #[serde(default)]
    pub until: Option<String>,
    /// The field that holds the pass number (from 1).
    #[serde(default = "default_iteration_field")]
    pub iteration_field: String,
}

fn default_iteration_field() -> String {
    "iteration".to_string()
}

/// Settings of an `iterate` step.
#[derive(Debug, Clone)]
pub struct IterateConfig {
    /// How many passes at most.
    pub max_iterations: u32,
    /// The steps of one pass.
    pub steps: Vec<StepSpec>,
    /// The per-record stop condition.
    pub until: Option<String>,
    /// The field for the pass number.
    pub iteration_field: String,
}

impl IterateConfig {
    /// The config from its settings as written and its steps as the recipe parser read them,
    /// reporting what is wrong with the two together.
    pub(crate) fn from_raw<V>(raw: IterateRaw<V>, steps: Vec<StepSpec>, path: &str, diagnostics: &mut Vec<Diagnostic>) -> IterateConfig {
        if raw.max_iterations == 0 {
            diagnostics.push(Diagnostic::new(format!("{path}.max_iterations"), "expected at least 1 iteration, found 0"));
        }
        if raw.steps.is_empty() {
            diagnostics.push(Diagnostic::new(format!("{path}.steps"), "empty; a pass needs at least one step"));
        }
        for step in &steps {
            let refused = match step.config {
                StepConfig::Load(_) => Some("`load` cannot be inside `iterate`; its input is the records still looping"),
                StepConfig::Train(_) => Some("`train` cannot be inside `iterate`; put it inside a `repeat` and train at the round's end"),
                _ => None,
            };
            if let Some(message) = refused {
                diagnostics.push(Diagnostic::new(step.path.clone(), message));
            }
        }
        IterateConfig { max_iterations: raw.max_iterations, steps, until: raw.until, iteration_field: raw.iteration_field }
    }
}

impl crate::steps::StepKind for IterateConfig {
    fn fields() -> &'static [&'static str] {
        crate::introspect::struct_fields::<IterateRaw<serde::de::IgnoredAny>>()
    }

    /// `iterate` holds steps of its own: the recipe parser reads it (`IterateConfig::from_raw`).
    fn read<'de, D: serde::Deserializer<'de>>(_settings: D) -> Result<Self, (String, String)> {
        Err((String::new(), "`iterate` is read by the recipe parser, with its steps".to_string()))
    }
}

impl StepDef for IterateConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn expressions(&self) -> Vec<(String, String)> {
        self.until.iter().map(|until| ("until".to_string(), until.clone())).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let path = cx.path.clone();
        if u64::from(self.max_iterations) > crate::limits::MAX_ITERATIONS {
            cx.error("max_iterations", format!("expected a number from 1 to {}, found {}", crate::limits::MAX_ITERATIONS, self.max_iterations));
        }
        // The sub-steps see the pass number as a field.
        cx.write(&self.iteration_field);
        check_steps(&self.steps, cx);
        cx.path = path;
        if let Some(until) = &self.until {
            cx.expression("until", until, &[]);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let steps = crate::steps::build_steps(&self.steps, cx)?;
        let until = self.until.as_ref().map(|until| Expr::at(&spec.path, "until", until));
        Ok(Built::Stream(Arc::new(Iterate { config: self.clone(), until, steps })))
    }
}

struct Iterate {
    config: IterateConfig,
    until: Option<Expr>,
    steps: Vec<Arc<PipelineStep>>,
}

/// The id a record has on pass `iteration`, from its id on the pass before.
fn pass_id(id: &str, iteration: u32) -> String {
    let base = strip_pass(id, iteration - 1);
    if iteration == 1 {
        base.to_string()
    } else {
        format!("{base}~{iteration}")
    }
}

/// The id without the mark of pass `iteration` (ids of pass 1 have none).
fn strip_pass(id: &str, iteration: u32) -> &str {
    if iteration < 2 {
        return id;
    }
    id.strip_suffix(&format!("~{iteration}")).unwrap_or(id)
}

#[async_trait]
impl StreamStep for Iterate {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut looping = Vec::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            looping.push(record);
        }
        for iteration in 1..=self.config.max_iterations {
            if cx.run.cancel.is_cancelled() || looping.is_empty() {
                break;
            }
            let seeds: Vec<Record> = std::mem::take(&mut looping)
                .into_iter()
                .map(|mut record| {
                    record.id = pass_id(&record.id, iteration);
                    record.set(self.config.iteration_field.clone(), Value::from(iteration));
                    record
                })
                .collect();
            let (mut results, pass) = Pass::spawn(&self.steps, seeds, cx.run.clone(), cx.round);
            let last = iteration == self.config.max_iterations;
            while let Some(mut record) = results.recv().await {
                let done = match &self.until {
                    None => false,
                    Some(until) => match cx.run.templates.eval(until, &record, cx.round) {
                        Ok(value) => truthy(&value),
                        Err(error) => {
                            return Err(EngineError::Step {
                                step: cx.step.to_string(),
                                message: format!("until `{until}` failed on record {}: {error}", record.id),
                            })
                        }
                    },
                };
                if done || last {
                    record.id = strip_pass(&record.id, iteration).to_string();
                    cx.stats.record_out();
                    if output.send(record).await.is_err() {
                        return Ok(());
                    }
                } else {
                    looping.push(record);
                }
            }
            pass.finish().await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{pass_id, strip_pass};

    #[test]
    fn a_pass_marks_the_id_and_leaving_restores_it() {
        assert_eq!(pass_id("7", 1), "7");
        assert_eq!(pass_id("7", 2), "7~2");
        assert_eq!(pass_id("7~2", 3), "7~3");
        assert_eq!(pass_id("7~2.1", 3), "7~2.1~3", "a child made inside the loop keeps its parent's mark");
        assert_eq!(strip_pass("7~3", 3), "7");
        assert_eq!(strip_pass("7", 1), "7");
    }
}
