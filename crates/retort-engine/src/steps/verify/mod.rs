//! `verify`: check a field (answer against gold, regex, JSON schema, code) and record the verdict with its reason.
//!
//! One [`Verifier`] per check, each in its own file. By default the verdict is written to the
//! record (`into`, `reason_into`) and the record goes on; with `require: true` a failing record
//! is dropped with the reason.

mod answer_match;
mod api_ast;
mod api_call;
mod bfcl;
mod calls;
mod json_schema;
mod pycall;
mod python;
#[cfg(feature = "agent")]
pub(crate) use python::shared_sandbox;
mod regex_match;

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, RecordStep};

/// Which check to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The field's final answer equals the gold answer (numbers compared as numbers).
    AnswerMatch,
    /// The field matches a regular expression.
    Regex,
    /// The field (or the JSON in it) satisfies a JSON schema.
    JsonSchema,
    /// Python code run in the sandbox passes: a function called with the field, or tests.
    Python,
    /// The calls in the field match BFCL's possible answers (its AST checker's rules).
    Bfcl,
    /// One call with exactly the expected API name and parameters (API-Bank).
    ApiCall,
    /// Gorilla's AST sub-tree match against an API database, with hallucinations.
    ApiAst,
}

/// How to take the answer out of a text before comparing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Extract {
    /// After `####` or "the answer is", else the last number.
    #[default]
    Answer,
    /// The whole text, trimmed.
    None,
    /// After the last occurrence of this tag.
    Tagged(String),
}

/// Settings of a `verify` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Which check: `answer_match`, `regex`, `json_schema`, `python`, `bfcl`, `api_call` or `api_ast`.
    pub check: CheckKind,
    /// The field to check.
    pub field: String,
    /// `answer_match`: the field holding the gold answer; `bfcl`: the possible answers;
    /// `api_call`: the expected `{api_name, param_dict}`.
    #[serde(default)]
    pub gold: Option<String>,
    /// `answer_match`: how to take the answer out of the field and the gold text.
    #[serde(default)]
    pub extract: Extract,
    /// `answer_match`: the largest difference at which two numbers count as equal.
    #[serde(default)]
    pub tolerance: Option<f64>,
    /// `regex`: the pattern the field must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// `json_schema`: the schema the field must satisfy.
    #[serde(default)]
    pub schema: Option<Value>,
    /// `python`: the code defining `function`, a template (for example `{{ verifier_code }}`).
    #[serde(default)]
    pub code: Option<String>,
    /// `python`: the function called with the field's value; the check passes when it returns something true.
    #[serde(default)]
    pub function: Option<String>,
    /// `python`: test code defining `check(candidate)` (HumanEval style), a template; the field holds the solution.
    #[serde(default)]
    pub tests: Option<String>,
    /// `python` with `tests`: the name of the function under test, a template (e.g. `{{ entry_point }}`).
    #[serde(default)]
    pub entry_point: Option<String>,
    /// `python`: seconds before the program is stopped.
    #[serde(default)]
    pub timeout_s: Option<f64>,
    /// `python`: memory limit in MB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// `bfcl`: the field with the function schemas offered.
    #[serde(default)]
    pub functions: Option<String>,
    /// `api_ast`: the API database, a JSONL file beside the recipe (rows with `api_call` and
    /// `domain`, or APIBench's `api_data`).
    #[serde(default)]
    pub database: Option<String>,
    /// `api_ast`: what passes: `api` (the gold API, the default) or `domain` (an API of the
    /// gold's domain, as APIBench's TorchHub evaluator counts).
    #[serde(default, rename = "match")]
    pub ast_match: api_ast::AstMatch,
    /// The field that receives the kind of verdict, for checks that have kinds (`bfcl`,
    /// `api_call`: `correct`, `wrong_value`, `no_call`, ...).
    #[serde(default)]
    pub class_into: Option<String>,
    /// The field that receives the verdict, true or false.
    #[serde(default = "default_into")]
    pub into: String,
    /// The field that receives the reason for the verdict.
    #[serde(default)]
    pub reason_into: Option<String>,
    /// Drop records that fail the check (with the reason), instead of only marking them.
    #[serde(default)]
    pub require: bool,
}

fn default_into() -> String {
    "verified".to_string()
}

/// A check's result for one record.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Verdict {
    pub pass: bool,
    /// What was expected and what was found.
    pub reason: String,
    /// The kind of verdict, for checks with more than two (`correct`, `hallucination`, ...).
    pub class: Option<String>,
}

impl Verdict {
    /// A verdict of a kind.
    pub(crate) fn class(pass: bool, class: &str, reason: String) -> Verdict {
        Verdict { pass, reason, class: Some(class.to_string()) }
    }
}

/// One kind of check.
#[async_trait]
pub(crate) trait Verifier: Send + Sync + 'static {
    /// Checks a record; `Err` when the check could not be made at all (a missing field).
    async fn verify(&self, record: &Record, cx: &StageCx) -> Result<Verdict, String>;
}

impl StepDef for VerifyConfig {
    fn templates(&self) -> Vec<(String, crate::steps::TemplateSource)> {
        use crate::steps::TemplateSource;
        [("code", &self.code), ("tests", &self.tests), ("entry_point", &self.entry_point)]
            .into_iter()
            .filter_map(|(key, text)| text.as_ref().map(|text| (key.to_string(), TemplateSource::Inline(text.clone()))))
            .collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("field", &self.field);
        match self.check {
            CheckKind::AnswerMatch => match &self.gold {
                Some(gold) => cx.read("gold", gold),
                None => cx.error("gold", "`answer_match` needs `gold`: the field with the expected answer"),
            },
            CheckKind::Regex => match &self.pattern {
                Some(pattern) => cx.regex("pattern", pattern),
                None => cx.error("pattern", "`regex` needs `pattern`"),
            },
            CheckKind::JsonSchema => match &self.schema {
                Some(schema) => {
                    if let Err(error) = jsonschema::validator_for(schema) {
                        cx.error("schema", format!("invalid JSON schema: {error}"));
                    }
                }
                None => cx.error("schema", "`json_schema` needs `schema`"),
            },
            CheckKind::Python => match (&self.code, &self.function, &self.tests, &self.entry_point) {
                (Some(_), Some(_), None, None) => cx.template("code", &[]),
                (None, None, Some(_), Some(_)) => {
                    cx.template("tests", &[]);
                    cx.template("entry_point", &[]);
                }
                _ => cx.error("", "`python` needs `code` and `function` (call a function on the field), or `tests` and `entry_point` (run tests on the field's code)"),
            },
            CheckKind::Bfcl => {
                match &self.gold {
                    Some(gold) => cx.read("gold", gold),
                    None => cx.error("gold", "`bfcl` needs `gold`: the field with the possible answers (BFCL's `ground_truth`)"),
                }
                match &self.functions {
                    Some(functions) => cx.read("functions", functions),
                    None => cx.error("functions", "`bfcl` needs `functions`: the field with the function schemas"),
                }
            }
            CheckKind::ApiCall => match &self.gold {
                Some(gold) => cx.read("gold", gold),
                None => cx.error("gold", "`api_call` needs `gold`: the field with the expected `{api_name, param_dict}`"),
            },
            CheckKind::ApiAst => {
                match &self.gold {
                    Some(gold) => cx.read("gold", gold),
                    None => cx.error("gold", "`api_ast` needs `gold`: the field with the expected API call"),
                }
                match &self.database {
                    Some(database) => {
                        cx.file("database", database);
                    }
                    None => cx.error("database", "`api_ast` needs `database`: the JSONL file of API documents"),
                }
            }
        }
        if self.database.is_some() && self.check != CheckKind::ApiAst {
            cx.error("database", "`database` is a setting of `check: api_ast`");
        }
        if self.functions.is_some() && self.check != CheckKind::Bfcl {
            cx.error("functions", "`functions` is a setting of `check: bfcl`");
        }
        if let Some(field) = &self.class_into {
            cx.write(field);
        }
        cx.write(&self.into);
        if let Some(field) = &self.reason_into {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let invalid = |message: String| EngineError::Step { step: spec.path.clone(), message };
        let verifier: Arc<dyn Verifier> = match self.check {
            CheckKind::AnswerMatch => Arc::new(answer_match::AnswerMatch {
                field: self.field.clone(),
                gold: self.gold.clone().ok_or_else(|| invalid("`gold` is missing".into()))?,
                extract: self.extract.clone(),
                tolerance: self.tolerance.unwrap_or(1e-6),
            }),
            CheckKind::Regex => Arc::new(regex_match::RegexMatch::new(
                &self.field,
                self.pattern.as_deref().ok_or_else(|| invalid("`pattern` is missing".into()))?,
            ).map_err(invalid)?),
            CheckKind::Python => {
                let mut limits = retort_sandbox::Limits::default();
                if let Some(timeout) = self.timeout_s {
                    limits.timeout = std::time::Duration::from_secs_f64(timeout.max(0.1));
                    limits.cpu_seconds = timeout.ceil().max(1.0) as u64;
                }
                if let Some(memory) = self.memory_mb {
                    limits.memory_mb = memory;
                }
                Arc::new(python::Python {
                    sandbox: python::shared_sandbox().map_err(invalid)?,
                    field: self.field.clone(),
                    function: self.function.clone(),
                    limits,
                })
            }
            CheckKind::Bfcl => Arc::new(bfcl::Bfcl {
                field: self.field.clone(),
                gold: self.gold.clone().ok_or_else(|| invalid("`gold` is missing".into()))?,
                functions: self.functions.clone().ok_or_else(|| invalid("`functions` is missing".into()))?,
            }),
            CheckKind::ApiAst => Arc::new(api_ast::ApiAst::new(
                &self.field,
                self.gold.as_deref().ok_or_else(|| invalid("`gold` is missing".into()))?,
                &cx.base_dir.join(self.database.as_deref().ok_or_else(|| invalid("`database` is missing".into()))?),
                self.ast_match,
            ).map_err(invalid)?),
            CheckKind::ApiCall => Arc::new(api_call::ApiCall {
                field: self.field.clone(),
                gold: self.gold.clone().ok_or_else(|| invalid("`gold` is missing".into()))?,
            }),
            CheckKind::JsonSchema => Arc::new(json_schema::JsonSchema::new(
                &self.field,
                self.schema.as_ref().ok_or_else(|| invalid("`schema` is missing".into()))?,
            ).map_err(invalid)?),
        };
        let concurrency = cx.concurrency(spec, None);
        Ok(Built::Record(Arc::new(Verify { config: self.clone(), verifier, concurrency })))
    }
}

struct Verify {
    config: VerifyConfig,
    verifier: Arc<dyn Verifier>,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Verify {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let verdict = match self.verifier.verify(&record, cx).await {
            Ok(verdict) => verdict,
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        record.set(self.config.into.clone(), Value::Bool(verdict.pass));
        if let Some(field) = &self.config.reason_into {
            record.set(field.clone(), Value::String(verdict.reason.clone()));
        }
        if let Some(field) = &self.config.class_into {
            let class = verdict.class.clone().unwrap_or_else(|| if verdict.pass { "pass" } else { "fail" }.to_string());
            record.set(field.clone(), Value::String(class));
        }
        if self.config.require && !verdict.pass {
            return vec![Outcome::Drop(record, format!("verify {}: {}", self.config.field, verdict.reason))];
        }
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

/// A field as text: strings as they are, other values as JSON.
pub(crate) fn field_text(record: &Record, field: &str) -> Result<String, String> {
    match record.get(field) {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Null) | None => Err(format!("field `{field}` is missing")),
        Some(other) => Ok(other.to_string()),
    }
}
