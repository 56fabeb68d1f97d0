//! The Python tool: runs model-written code in the sandbox, one fresh process per call.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::ToolSpec;
use retort_sandbox::{ExecRequest, ExecResult, Limits, Sandbox};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ToolError;
use crate::tool::{clip, clip_tail, Tool};

fn default_max_chars() -> usize {
    4000
}

/// The Python tool's configuration (`kind: python`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PythonConfig {
    /// The tool's name (default `python`).
    #[serde(default)]
    pub name: Option<String>,
    /// Limits of each run; the sandbox's defaults when absent.
    #[serde(default)]
    pub limits: Option<Limits>,
    /// Most characters of stdout and of stderr shown to the model (default 4000).
    #[serde(default = "default_max_chars")]
    pub max_output_chars: usize,
}

impl Default for PythonConfig {
    fn default() -> PythonConfig {
        PythonConfig { name: None, limits: None, max_output_chars: default_max_chars() }
    }
}

/// Runs Python code in the sandbox and reports status, stdout and stderr.
#[derive(Clone)]
pub struct PythonTool {
    name: String,
    sandbox: Arc<Sandbox>,
    limits: Option<Limits>,
    max_chars: usize,
}

impl std::fmt::Debug for PythonTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonTool").field("name", &self.name).finish()
    }
}

impl PythonTool {
    /// A Python tool running in this sandbox.
    pub fn new(config: &PythonConfig, sandbox: Arc<Sandbox>) -> PythonTool {
        PythonTool {
            name: config.name.clone().unwrap_or_else(|| "python".into()),
            sandbox,
            limits: config.limits.clone(),
            max_chars: config.max_output_chars,
        }
    }
}

/// An execution result as the model sees it: `status: ...`, then stdout and stderr when
/// not empty, each cut to `max_chars`.
pub fn render_exec(result: &ExecResult, max_chars: usize) -> String {
    let mut out = format!("status: {}", result.status.as_str());
    if let Some(reason) = &result.reason {
        out.push_str(&format!(" ({reason})"));
    }
    if !result.stdout.is_empty() {
        out.push_str("\nstdout:\n");
        out.push_str(clip(result.stdout.trim_end(), max_chars).as_str());
    }
    if !result.stderr.is_empty() {
        out.push_str("\nstderr:\n");
        out.push_str(clip_tail(result.stderr.trim_end(), max_chars).as_str());
    }
    if result.stdout.is_empty() && result.stderr.is_empty() {
        out.push_str("\n(no output; use print() to see values)");
    }
    out
}

#[async_trait]
impl Tool for PythonTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: "Runs a Python 3 program in a fresh, isolated interpreter (no network, no files outside its own directory, no state kept between calls) and returns its status, stdout and stderr. Print what you want to see.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The whole program"}},
                "required": ["code"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let code = arguments["code"].as_str().unwrap_or_default();
        let mut request = ExecRequest::new(code);
        if let Some(limits) = &self.limits {
            request = request.with_limits(limits.clone());
        }
        let result = self.sandbox.run(request).await.map_err(|e| ToolError::Failed(format!("running the code: {e}")))?;
        Ok(render_exec(&result, self.max_chars))
    }
}
