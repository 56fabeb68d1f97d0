//! The simulated tool: a language model plays an API from its documentation (ToolAlpaca,
//! API-Bank style) and answers with a plausible JSON response.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Backend, ChatRequest, Message, SamplingParams, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ToolError;
use crate::seed::{derive_seed, hash_bytes};
use crate::tool::Tool;

fn default_parameters() -> Value {
    serde_json::json!({"type": "object"})
}

/// An example exchange shown to the simulator, to anchor the response format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedExample {
    /// The arguments of the example call.
    pub arguments: Value,
    /// The response the real API gave (or would give).
    pub response: Value,
}

/// The simulated tool's configuration (`kind: simulated`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatedConfig {
    /// The tool's name, as the model calls it.
    pub name: String,
    /// What the tool does, for the calling model.
    #[serde(default)]
    pub description: String,
    /// The JSON schema of the arguments (default: any object).
    #[serde(default = "default_parameters")]
    pub parameters: Value,
    /// The API's documentation (free text, or an OpenAPI document as YAML/JSON text) that
    /// the simulator follows.
    pub documentation: String,
    /// The backend that plays the tool, by the name the caller passed at build time.
    pub backend: String,
    /// Example calls with their responses.
    #[serde(default)]
    pub examples: Vec<SimulatedExample>,
    /// Sampling temperature of the simulator (default: the backend's).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Base seed of the simulator's requests; each call's seed also depends on its arguments,
    /// so the same call gets the same answer.
    #[serde(default)]
    pub seed: u64,
}

/// A tool whose answers a language model makes up from the documentation.
pub struct SimulatedTool {
    config: SimulatedConfig,
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for SimulatedTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatedTool").field("name", &self.config.name).finish()
    }
}

/// Most tokens of one simulated response (a response cut short is not JSON).
pub const SIMULATOR_MAX_TOKENS: u32 = 768;

/// The simulator's instructions (`{name}`, `{documentation}`, `{examples}` filled in).
pub const SIMULATOR_PROMPT: &str = "You are simulating the API `{name}`. You are not an assistant: you are the server that implements this API. Here is its documentation:

<documentation>
{documentation}
</documentation>
{examples}
Rules:
1. You receive one call as a JSON object of arguments. Answer with the JSON response the real API would return for exactly these arguments, and nothing else: no explanation, no markdown fences.
2. Make the response realistic and specific: plausible names, numbers, dates and identifiers that fit the arguments; follow the response format of the documentation (and of the examples) field by field.
3. If the arguments are invalid for this API (missing required fields, wrong types, unknown values), return an error object such as {\"error\": \"...\"} in the style the documentation describes, saying what is wrong.
4. Never mention that you are simulating.";

impl SimulatedTool {
    /// A simulated tool answered by this backend.
    pub fn new(config: &SimulatedConfig, backend: Arc<dyn Backend>) -> SimulatedTool {
        SimulatedTool { config: config.clone(), backend }
    }

    fn system_prompt(&self) -> String {
        let examples = if self.config.examples.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> =
                self.config.examples.iter().map(|e| format!("Call: {}\nResponse: {}", e.arguments, e.response)).collect();
            format!("\nExamples of calls and the responses of the real API:\n{}\n", shown.join("\n\n"))
        };
        SIMULATOR_PROMPT
            .replace("{name}", &self.config.name)
            .replace("{documentation}", self.config.documentation.trim())
            .replace("{examples}", &examples)
    }
}

/// The first JSON value in a model's answer: the whole text, a fenced block, or the first
/// balanced `{...}` / `[...]`.
pub(crate) fn extract_json(text: &str) -> Option<Value> {
    let trimmed = text.trim();
    if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        return Some(v);
    }
    let unfenced = strip_fences(trimmed);
    if let Ok(v) = serde_json::from_str::<Value>(unfenced) {
        return Some(v);
    }
    for (start, open) in trimmed.char_indices().filter(|(_, c)| *c == '{' || *c == '[') {
        let mut stream = serde_json::Deserializer::from_str(&trimmed[start..]).into_iter::<Value>();
        if let Some(Ok(v)) = stream.next() {
            if (open == '{' && v.is_object()) || (open == '[' && v.is_array()) {
                return Some(v);
            }
        }
    }
    None
}

/// The inside of a ```-fenced block, or the text itself.
pub(crate) fn strip_fences(text: &str) -> &str {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix("```") {
        let rest = rest.split_once('\n').map_or("", |(_, body)| body);
        return rest.trim_end().strip_suffix("```").unwrap_or(rest).trim();
    }
    t
}

#[async_trait]
impl Tool for SimulatedTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.config.name.clone(),
            description: self.config.description.clone(),
            parameters: self.config.parameters.clone(),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let call = arguments.to_string();
        let seed = derive_seed(self.config.seed, &[hash_bytes(self.config.name.as_bytes()), hash_bytes(call.as_bytes())]);
        let request = ChatRequest {
            messages: vec![Message::system(self.system_prompt()), Message::user(format!("Call: {call}"))],
            params: SamplingParams {
                temperature: self.config.temperature,
                seed: Some(seed),
                max_tokens: Some(SIMULATOR_MAX_TOKENS),
                ..SamplingParams::default()
            },
            json_schema: None,
            grammar: None,
            tools: Vec::new(),
            continue_final: false,
        };
        let response = self.backend.chat(&request).await.map_err(|e| ToolError::Failed(format!("the simulator backend failed: {e}")))?;
        let text = response.choices.first().map(|c| c.text.as_str()).unwrap_or_default();
        // A response written as a JSON string holding JSON is read as the JSON inside.
        let value = extract_json(text).map(|value| match &value {
            Value::String(inner) => serde_json::from_str::<Value>(inner).ok().filter(|v| v.is_object() || v.is_array()).unwrap_or(value),
            _ => value,
        });
        match value {
            Some(value) => Ok(value.to_string()),
            None => Err(ToolError::Failed(format!(
                "the simulator answered something that is not JSON: {:?}",
                text.chars().take(200).collect::<String>()
            ))),
        }
    }
}
