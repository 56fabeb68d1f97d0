//! The definition-only tool: a name, a description and a schema the model sees, with nothing
//! behind it (GPT4Tools' visual tools, Agent-FLAN's negatives, tools of an evaluation that
//! only checks the call).

use async_trait::async_trait;
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ToolError;
use crate::tool::Tool;

fn default_parameters() -> Value {
    serde_json::json!({"type": "object"})
}

/// The definition-only tool's configuration (`kind: definition`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionConfig {
    /// The tool's name, as the model calls it.
    pub name: String,
    /// What the tool does.
    #[serde(default)]
    pub description: String,
    /// The JSON schema of the arguments (default: any object).
    #[serde(default = "default_parameters")]
    pub parameters: Value,
}

/// A tool the model can call whose call is recorded but not executed: the observation says so.
#[derive(Debug, Clone)]
pub struct DefinitionTool {
    config: DefinitionConfig,
}

impl DefinitionTool {
    /// A tool with this definition.
    pub fn new(config: &DefinitionConfig) -> DefinitionTool {
        DefinitionTool { config: config.clone() }
    }
}

#[async_trait]
impl Tool for DefinitionTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.config.name.clone(),
            description: self.config.description.clone(),
            parameters: self.config.parameters.clone(),
        }
    }

    async fn call(&self, _arguments: &Value) -> Result<String, ToolError> {
        Err(ToolError::Failed(format!("`{}` has a definition only: the call is recorded, not executed", self.config.name)))
    }
}
