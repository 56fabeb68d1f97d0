//! `call`: run one named tool with arguments from the record, with no model, and write the
//! observation and how the call went (DRAFT's explorer calls, ToolGrad's proposed calls).

use std::sync::Arc;

use async_trait::async_trait;
use retort_agent::ToolConfig;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::runtime::{Built, RecordStep, StageCx};
use crate::steps::toolset::{self, ToolSet, ToolsFrom};
use crate::steps::{BuildCx, CheckCx, StepDef, StepSpec, TemplateSource};

/// Settings of a `call` step.
///
/// ```yaml
/// - call:
///     tools_from: {field: tools, simulate: simulator}
///     tool: "{{ explore.tool }}"
///     arguments: "{{ explore.arguments | tojson }}"
///     into: result            # {tool, arguments, observation, status}
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallConfig {
    /// The tool's name: a template.
    pub tool: String,
    /// The arguments as JSON object text: a template (empty means `{}`).
    #[serde(default)]
    pub arguments: Option<String>,
    /// Tools listed in the recipe.
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
    /// Tools listed in a field of each record.
    #[serde(default)]
    pub tools_from: Option<ToolsFrom>,
    /// The field the result goes to: `{tool, arguments, observation, status}`.
    #[serde(default = "default_into")]
    pub into: String,
    /// Drop the record, with the observation as the reason, when the call did not succeed.
    #[serde(default)]
    pub require_ok: bool,
}

fn default_into() -> String {
    "call".to_string()
}

impl StepDef for CallConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates = vec![("tool".to_string(), TemplateSource::Inline(self.tool.clone()))];
        if let Some(arguments) = &self.arguments {
            templates.push(("arguments".to_string(), TemplateSource::Inline(arguments.clone())));
        }
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.template("tool", &[]);
        if self.arguments.is_some() {
            cx.template("arguments", &[]);
        }
        if self.tools.is_empty() && self.tools_from.is_none() {
            cx.error("tools", "no tools: give `tools`, `tools_from`, or both");
        }
        toolset::check(&self.tools, self.tools_from.as_ref(), cx);
        cx.write(&self.into);
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let tools = ToolSet::build(&spec.path, &self.tools, self.tools_from.as_ref(), cx)?;
        Ok(Built::Record(Arc::new(Call { config: self.clone(), tools, concurrency: cx.concurrency(spec, None) })))
    }
}

struct Call {
    config: CallConfig,
    tools: ToolSet,
    concurrency: usize,
}

impl Call {
    fn render(&self, cx: &StageCx, record: &Record, key: &str) -> Result<String, String> {
        cx.run.templates.render(&format!("{}.{key}", cx.step), record, cx.round).map_err(|error| format!("call: template `{key}` failed: {error}"))
    }
}

#[async_trait]
impl RecordStep for Call {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let name = match self.render(cx, &record, "tool") {
            Ok(name) => name.trim().to_string(),
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        let arguments = match &self.config.arguments {
            Some(_) => match self.render(cx, &record, "arguments") {
                Ok(text) => text,
                Err(reason) => return vec![Outcome::fail(record, reason)],
            },
            None => String::new(),
        };
        let registry = match self.tools.registry(&record, &arguments, cx) {
            Ok(registry) => registry,
            Err(reason) => return vec![Outcome::fail(record, format!("call: {reason}"))],
        };
        let outcome = registry.call_text(&name, &arguments).await;
        if cx.run.cancel.is_cancelled() && outcome.is_error() {
            return vec![Outcome::Interrupted(record)];
        }
        let parsed = serde_json::from_str::<Value>(arguments.trim()).unwrap_or_else(|_| Value::String(arguments.clone()));
        let status = serde_json::to_value(outcome.status).unwrap_or(Value::Null);
        let ok = !outcome.is_error();
        let reason = format!("call: `{name}` {}: {}", status.as_str().unwrap_or("failed"), outcome.observation.chars().take(300).collect::<String>());
        record.set(self.config.into.clone(), json!({"tool": name, "arguments": parsed, "observation": outcome.observation, "status": status}));
        if self.config.require_ok && !ok {
            return vec![Outcome::Drop(record, reason)];
        }
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
