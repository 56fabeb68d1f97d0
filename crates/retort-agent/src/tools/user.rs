//! The simulated user: a tool the agent calls to ask the person who gave the task for missing
//! details, answered by a language model playing that person (ToolAlpaca's `getDetails` and its
//! user agent). It keeps the exchange so far, so later questions see earlier answers.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Backend, ChatRequest, Message, SamplingParams, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ToolError;
use crate::seed::{derive_seed, hash_bytes};
use crate::tool::Tool;

fn default_name() -> String {
    "getDetails".to_string()
}

/// The simulated user's configuration (`kind: user`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The tool's name (default `getDetails`, as in ToolAlpaca).
    #[serde(default = "default_name")]
    pub name: String,
    /// The backend that plays the user, by the name the caller passed at build time.
    pub backend: String,
    /// The user's request, as they first wrote it (set per task by the caller).
    #[serde(default)]
    pub task: String,
    /// Base seed of the user's answers.
    #[serde(default)]
    pub seed: u64,
}

/// The user's instructions (`{task}` and `{history}` filled in).
pub const USER_PROMPT: &str = "You are the person who asked an AI assistant for help. Your request was:

{task}

The assistant needs more details from you. The conversation so far:
{history}

Reply as this person would, in one or two sentences of plain text: give the details the assistant asks for, inventing realistic ones where your request did not state them, and consistent with your request and your earlier answers. Do not ask questions back and do not write the assistant's part.";

/// A tool that passes the agent's question to a model playing the user.
pub struct UserTool {
    config: UserConfig,
    backend: Arc<dyn Backend>,
    history: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for UserTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserTool").field("name", &self.config.name).finish()
    }
}

impl UserTool {
    /// A simulated user answered by this backend.
    pub fn new(config: &UserConfig, backend: Arc<dyn Backend>) -> UserTool {
        UserTool { config: config.clone(), backend, history: Mutex::new(Vec::new()) }
    }
}

#[async_trait]
impl Tool for UserTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.config.name.clone(),
            description: "Ask the user for details the request lacks (a value a call needs, or what a vague term or pronoun refers to). Do not use it for optional parameters the user left out.".into(),
            parameters: json!({
                "type": "object",
                "properties": {"Question": {"type": "string", "description": "The question that asks the user for the missing details."}},
                "required": ["Question"]
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let question = arguments["Question"].as_str().unwrap_or_default().trim().to_string();
        let mut history = self.history.lock().map(|h| h.clone()).unwrap_or_default();
        history.push(("AI".to_string(), question.clone()));
        let shown: Vec<String> = history.iter().map(|(who, text)| format!("[{who}]: {text}")).collect();
        let prompt = USER_PROMPT.replace("{task}", self.config.task.trim()).replace("{history}", &shown.join("\n"));
        let seed = derive_seed(self.config.seed, &[hash_bytes(self.config.task.as_bytes()), hash_bytes(question.as_bytes())]);
        let request = ChatRequest {
            messages: vec![Message::user(prompt)],
            params: SamplingParams { seed: Some(seed), ..SamplingParams::default() },
            json_schema: None,
            grammar: None,
            tools: Vec::new(),
            continue_final: false,
        };
        let response = self.backend.chat(&request).await.map_err(|e| ToolError::Failed(format!("the user's backend failed: {e}")))?;
        let text = response.choices.first().map(|c| c.text.trim()).unwrap_or_default();
        // Keep the user's part only, as ToolAlpaca does.
        let answer = text.strip_prefix("[User]:").unwrap_or(text).split("[AI]:").next().unwrap_or_default().trim().to_string();
        if answer.is_empty() {
            return Err(ToolError::Failed("the user gave no answer".into()));
        }
        if let Ok(mut kept) = self.history.lock() {
            kept.push(("AI".to_string(), question));
            kept.push(("User".to_string(), answer.clone()));
        }
        Ok(answer)
    }
}
