//! The `python` check: run model-written code in the sandbox against a record's field.
//!
//! Two forms: call a function (`code` defines it, `function` names it; it is called with the
//! field's value and passes when it returns something true), as AutoIF runs its verifiers on a
//! response; or run tests (`tests` defines `check(candidate)`, `entry_point` names the function
//! under test in the field's code), as HumanEval scores a solution.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::Record;
use retort_sandbox::{ExecRequest, ExecStatus, Limits, Sandbox};
use serde_json::Value;

use super::{Verdict, Verifier};
use crate::runtime::StageCx;

pub(crate) struct Python {
    pub sandbox: Arc<Sandbox>,
    pub field: String,
    pub function: Option<String>,
    pub limits: Limits,
}

impl Python {
    fn render(&self, cx: &StageCx, record: &Record, key: &str) -> Result<String, String> {
        cx.run
            .templates
            .render(&format!("{}.{key}", cx.step), record, cx.round)
            .map_err(|error| format!("template `{key}` failed: {error}"))
    }
}

fn status_word(status: ExecStatus) -> &'static str {
    match status {
        ExecStatus::Ok => "ok",
        ExecStatus::Error => "error",
        ExecStatus::Timeout => "timeout",
        ExecStatus::Killed => "killed",
        ExecStatus::Denied => "denied",
    }
}

fn last_line(text: &str) -> String {
    text.trim().lines().last().unwrap_or("").chars().take(160).collect()
}

#[async_trait]
impl Verifier for Python {
    async fn verify(&self, record: &Record, cx: &StageCx) -> Result<Verdict, String> {
        let value = record.get(&self.field).cloned().ok_or_else(|| format!("field `{}` is missing", self.field))?;
        match &self.function {
            Some(function) => {
                let code = self.render(cx, record, "code")?;
                let harness = format!(
                    "{code}\n\nimport json as __json, sys as __sys\n__value = __json.loads(__sys.stdin.read())\n__result = {function}(__value)\nprint('\\n__RETORT_RESULT__' + __json.dumps(bool(__result)))\n"
                );
                let request = ExecRequest::new(harness)
                    .with_stdin(serde_json::to_vec(&value).unwrap_or_default())
                    .with_limits(self.limits.clone());
                let result = self.sandbox.run(request).await.map_err(|error| format!("sandbox: {error}"))?;
                if result.status != ExecStatus::Ok {
                    let reason = format!("{function}() did not run: {} ({})", status_word(result.status), last_line(&result.stderr));
                    return Ok(Verdict { pass: false, reason, class: None });
                }
                let verdict = result.stdout.rsplit_once("__RETORT_RESULT__").map(|(_, tail)| tail.trim() == "true");
                Ok(match verdict {
                    Some(true) => Verdict { pass: true, reason: format!("{function}() returned true"), class: None },
                    Some(false) => Verdict { pass: false, reason: format!("{function}() returned false"), class: None },
                    None => Verdict { pass: false, reason: format!("{function}() printed no result"), class: None },
                })
            }
            None => {
                let solution = match &value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                };
                let tests = self.render(cx, record, "tests")?;
                let entry_point = self.render(cx, record, "entry_point")?;
                let outcome = self
                    .sandbox
                    .run_tests(&solution, &tests, entry_point.trim())
                    .await
                    .map_err(|error| format!("sandbox: {error}"))?;
                Ok(if outcome.passed {
                    Verdict { pass: true, reason: "tests passed".to_string(), class: None }
                } else {
                    // The failing assertion's source line, when the traceback shows one, and the error.
                    let failed_at = outcome.result.stderr.lines().rev().map(str::trim).find(|line| line.starts_with("assert "));
                    let detail = match failed_at {
                        Some(line) => format!("{}: {}", last_line(&outcome.result.stderr), line.chars().take(200).collect::<String>()),
                        None => last_line(&outcome.result.stderr),
                    };
                    Verdict { pass: false, reason: format!("tests failed: {} ({detail})", status_word(outcome.result.status)), class: None }
                })
            }
        }
    }
}

/// The sandbox every `python` check of a run shares: this binary re-launched as its helper
/// (or the program named by `RETORT_WORKER_EXE`).
pub(crate) fn shared_sandbox() -> Result<Arc<Sandbox>, String> {
    static SANDBOX: std::sync::OnceLock<Result<Arc<Sandbox>, String>> = std::sync::OnceLock::new();
    SANDBOX
        .get_or_init(|| {
            let mut config = match std::env::var_os("RETORT_WORKER_EXE") {
                Some(program) => retort_sandbox::SandboxConfig::new(program, vec![retort_sandbox::HELPER_SUBCOMMAND.to_string()]),
                None => retort_sandbox::SandboxConfig::for_current_exe().map_err(|error| format!("finding the running binary: {error}"))?,
            };
            config.allow_unsandboxed = std::env::var_os("RETORT_UNSAFE_NO_SANDBOX").is_some();
            Sandbox::new(config).map(Arc::new).map_err(|error| error.to_string())
        })
        .clone()
}
