//! The [`Tool`] trait and the [`ToolRegistry`] that validates arguments before calling.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ToolBuildError, ToolError};

/// A function the model may call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// Name, description and JSON schema of the arguments, as the model sees them.
    fn spec(&self) -> ToolSpec;

    /// Runs the tool on arguments that already passed the schema; returns the observation.
    async fn call(&self, arguments: &Value) -> Result<String, ToolError>;
}

/// How a call through the registry went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The tool ran and answered.
    Ok,
    /// No tool of that name.
    UnknownTool,
    /// The arguments were not JSON, or did not follow the schema, or the tool rejected them.
    BadArguments,
    /// The tool failed while running.
    Failed,
}

/// The observation of one call, with how it went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallOutcome {
    /// The text that goes back to the model.
    pub observation: String,
    /// How the call went; anything but `Ok` counts against an agent's error budget.
    pub status: CallStatus,
}

impl CallOutcome {
    /// Whether the call counts as an error (anything but [`CallStatus::Ok`]).
    pub fn is_error(&self) -> bool {
        self.status != CallStatus::Ok
    }
}

struct Entry {
    tool: Arc<dyn Tool>,
    spec: ToolSpec,
    validator: jsonschema::Validator,
}

/// Tools by name, in registration order; validates arguments against each tool's schema.
#[derive(Default)]
pub struct ToolRegistry {
    order: Vec<String>,
    tools: BTreeMap<String, Entry>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRegistry").field("tools", &self.order).finish()
    }
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// Adds a tool; fails on a duplicate name or a schema that does not compile. A null
    /// schema means "an object with any properties".
    pub fn register(&mut self, tool: Arc<dyn Tool>) -> Result<(), ToolBuildError> {
        let mut spec = tool.spec();
        if spec.parameters.is_null() {
            spec.parameters = serde_json::json!({"type": "object"});
        }
        if self.tools.contains_key(&spec.name) {
            return Err(ToolBuildError::Duplicate(spec.name));
        }
        let validator = jsonschema::validator_for(&spec.parameters)
            .map_err(|e| ToolBuildError::Schema { tool: spec.name.clone(), message: e.to_string() })?;
        self.order.push(spec.name.clone());
        self.tools.insert(spec.name.clone(), Entry { tool, spec, validator });
        Ok(())
    }

    /// Adds a tool, builder style.
    pub fn with(mut self, tool: Arc<dyn Tool>) -> Result<ToolRegistry, ToolBuildError> {
        self.register(tool)?;
        Ok(self)
    }

    /// The specs of all tools, in registration order (what a request's `tools` gets).
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.order.iter().map(|name| self.tools[name].spec.clone()).collect()
    }

    /// The names of all tools, in registration order.
    pub fn names(&self) -> Vec<&str> {
        self.order.iter().map(String::as_str).collect()
    }

    /// The tool of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.tools.get(name).map(|e| &e.tool)
    }

    /// Whether no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Calls a tool with arguments given as JSON text (what a model writes). An empty text
    /// stands for `{}`.
    pub async fn call_text(&self, name: &str, arguments: &str) -> CallOutcome {
        let trimmed = arguments.trim();
        let value = if trimmed.is_empty() { Ok(Value::Object(Default::default())) } else { serde_json::from_str::<Value>(trimmed) };
        match value {
            Ok(value) => self.call(name, &value).await,
            Err(e) if self.tools.contains_key(name) => CallOutcome {
                observation: format!(
                    "Error: the arguments of `{name}` are not valid JSON ({e}). Expected a JSON object following this schema: {}",
                    self.tools[name].spec.parameters
                ),
                status: CallStatus::BadArguments,
            },
            Err(_) => self.unknown(name),
        }
    }

    /// Calls a tool: unknown names and arguments that break the schema come back as
    /// observations saying so, never as errors.
    pub async fn call(&self, name: &str, arguments: &Value) -> CallOutcome {
        let Some(entry) = self.tools.get(name) else {
            return self.unknown(name);
        };
        let problems: Vec<String> = entry
            .validator
            .iter_errors(arguments)
            .take(5)
            .map(|e| {
                let path = e.instance_path.to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("at {path}: {e}")
                }
            })
            .collect();
        if !problems.is_empty() {
            return CallOutcome {
                observation: format!(
                    "Error: invalid arguments for `{name}`: {}. Expected arguments following this schema: {}",
                    problems.join("; "),
                    entry.spec.parameters
                ),
                status: CallStatus::BadArguments,
            };
        }
        match entry.tool.call(arguments).await {
            Ok(observation) => CallOutcome { observation, status: CallStatus::Ok },
            Err(ToolError::InvalidInput(message)) => {
                CallOutcome { observation: format!("Error: `{name}` rejected its input: {message}"), status: CallStatus::BadArguments }
            }
            Err(ToolError::Failed(message)) => {
                CallOutcome { observation: format!("Error: `{name}` failed: {message}"), status: CallStatus::Failed }
            }
        }
    }

    fn unknown(&self, name: &str) -> CallOutcome {
        CallOutcome {
            observation: format!(
                "Error: there is no tool named `{name}`. Available tools: {}",
                if self.order.is_empty() { "(none)".to_string() } else { self.order.join(", ") }
            ),
            status: CallStatus::UnknownTool,
        }
    }
}

/// Cuts a text to at most `max_chars` characters, saying how much was left out.
pub(crate) fn clip(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => {
            let rest = text[cut..].chars().count();
            format!("{}\n[... {rest} more characters cut]", &text[..cut])
        }
        None => text.to_string(),
    }
}

/// Cuts a text to its last `max_chars` characters (where a traceback ends), saying how much
/// was left out.
pub(crate) fn clip_tail(text: &str, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_string();
    }
    let skip = total - max_chars;
    let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
    format!("[... {skip} characters cut]\n{}", &text[start..])
}
