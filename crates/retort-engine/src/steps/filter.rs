//! `filter`: keep or drop records by an expression.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, RecordStep};
use crate::template::{truthy, Expr};

/// Settings of a `filter` step; give `keep` or `drop`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// Keep records for which this expression is true, e.g. `answer | length > 20`.
    #[serde(default)]
    pub keep: Option<String>,
    /// Drop records for which this expression is true.
    #[serde(default)]
    pub drop: Option<String>,
}

impl StepDef for FilterConfig {
    fn expressions(&self) -> Vec<(String, String)> {
        let keep = self.keep.iter().map(|keep| ("keep".to_string(), keep.clone()));
        let drop = self.drop.iter().map(|drop| ("drop".to_string(), drop.clone()));
        keep.chain(drop).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        match (&self.keep, &self.drop) {
            (Some(keep), None) => cx.expression("keep", keep, &[]),
            (None, Some(drop)) => cx.expression("drop", drop, &[]),
            _ => cx.error("", "give exactly one of `keep` and `drop`"),
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let (expression, keep_when) = match (&self.keep, &self.drop) {
            (Some(keep), _) => (Expr::at(&spec.path, "keep", keep), true),
            (None, Some(drop)) => (Expr::at(&spec.path, "drop", drop), false),
            (None, None) => {
                return Err(EngineError::Step { step: spec.path.clone(), message: "no `keep` or `drop`".into() })
            }
        };
        Ok(Built::Record(Arc::new(Filter { expression, keep_when, concurrency: cx.concurrency(spec, None) })))
    }
}

struct Filter {
    expression: Expr,
    /// True for `keep:`, false for `drop:`.
    keep_when: bool,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Filter {
    async fn apply(&self, record: Record, cx: &StageCx) -> Vec<Outcome> {
        match cx.run.templates.eval(&self.expression, &record, cx.round) {
            Ok(value) if truthy(&value) == self.keep_when => vec![Outcome::Keep(record)],
            Ok(_) => {
                let verb = if self.keep_when { "keep" } else { "drop" };
                let outcome = if self.keep_when { "false" } else { "true" };
                vec![Outcome::Drop(record, format!("filter {verb}: `{}` was {outcome}", self.expression))]
            }
            Err(error) => vec![Outcome::fail(record, format!("filter expression `{}` failed: {error}", self.expression))],
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
