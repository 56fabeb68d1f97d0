//! retort's engine: recipes, steps and the streaming executor.
//!
//! ```text
//! recipe.yaml ──► Recipe (checked) ──► PreparedRun (backends, steps) ──► execute
//!                                         load ─► generate ─► judge ─► filter ─► export
//!                                                  │   answers cached in run.sqlite   │
//!                                                  └──────────────────────────────────┘
//! ```
//! The CLI is a thin layer over [`Recipe::load`], [`PreparedRun::prepare`] and
//! [`PreparedRun::execute`]; a Rust program can do the same.

pub mod builtin;
mod error;
mod flow;
mod introspect;
mod limits;
mod llm;
mod output;
mod parse;
pub mod recipe;
mod run;
mod runtime;
mod source;
mod stats;
pub mod steps;
mod template;

pub use error::{Diagnostic, Diagnostics, EngineError};
pub use llm::build_backend;
pub use parse::ParseConfig;
pub use recipe::{LlmConfig, Overrides, Recipe, StepSpec};
pub use run::{status, step_paths, PreparedRun, RunIdentity, RunOptions, RunOutcome, RunReport, Status, RUN_FILE};
pub use source::Format;
pub use stats::{RoundCounts, RunStats, Sample, StepSnapshot, StepStats, LATENCY_BUCKETS};
pub use template::{extract_answer, normalize_number};
