//! The `llm:` and `llms:` blocks: which backend, and its settings.

use serde_yaml::{Mapping, Value};

use crate::error::Diagnostic;
use crate::recipe::introspect::{struct_fields, suggest};
use crate::recipe::{describe, unknown_keys};

/// Backend kinds a recipe can name.
pub(super) const BACKENDS: &[&str] = &["openai", "local", "scripted"];

/// A backend and its settings, as a recipe gives them.
#[derive(Debug, Clone)]
pub enum LlmConfig {
    /// Any OpenAI-compatible server.
    Openai(retort_backends::OpenAiConfig),
    /// The in-process model (llama.cpp), offline.
    Local(retort_llama::LocalConfig),
    /// Answers chosen by rules, for tests.
    Scripted(retort_backends::ScriptedConfig),
}

impl LlmConfig {
    /// The backend kind.
    pub fn kind(&self) -> &'static str {
        match self {
            LlmConfig::Openai(_) => "openai",
            LlmConfig::Local(_) => "local",
            LlmConfig::Scripted(_) => "scripted",
        }
    }

    /// The same settings with another model (a trainer's output for the next round).
    pub fn with_model(&self, model: &str) -> LlmConfig {
        let mut config = self.clone();
        match &mut config {
            LlmConfig::Openai(openai) => openai.model = model.to_string(),
            LlmConfig::Local(local) => local.model = model.to_string(),
            LlmConfig::Scripted(scripted) => scripted.model = model.to_string(),
        }
        config
    }

    /// Reads an llm block at `path`, reporting every problem.
    pub(crate) fn parse(value: &Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<LlmConfig> {
        let Some(map) = value.as_mapping() else {
            diagnostics.push(Diagnostic::new(path, format!("expected a mapping with `backend`, found {}", describe(value))));
            return None;
        };
        let backend = match map.get("backend") {
            Some(Value::String(backend)) => backend.as_str(),
            Some(other) => {
                diagnostics.push(Diagnostic::new(format!("{path}.backend"), format!("expected a backend name, found {}", describe(other))));
                return None;
            }
            None => {
                diagnostics.push(Diagnostic::new(format!("{path}.backend"), format!("missing; expected one of: {}", BACKENDS.join(", "))));
                return None;
            }
        };
        let mut body: Mapping = map.clone();
        body.remove("backend");
        let fields: &[&str] = match backend {
            "openai" => struct_fields::<retort_backends::OpenAiConfig>(),
            "scripted" => struct_fields::<retort_backends::ScriptedConfig>(),
            "local" => struct_fields::<retort_llama::LocalConfig>(),
            other => {
                let hint = suggest(other, BACKENDS.iter().copied()).map(|near| format!("did you mean `{near}`? ")).unwrap_or_default();
                diagnostics.push(Diagnostic::new(
                    format!("{path}.backend"),
                    format!("unknown backend `{other}`; {hint}expected one of: {}", BACKENDS.join(", ")),
                ));
                return None;
            }
        };
        let mut allowed = vec!["backend"];
        allowed.extend_from_slice(fields);
        let before = diagnostics.len();
        unknown_keys(map, &allowed, path, diagnostics);
        body.retain(|key, _| key.as_str().is_some_and(|key| fields.contains(&key)));
        let body = Value::Mapping(body);
        let parsed = match backend {
            "openai" => read(body, path, diagnostics).map(LlmConfig::Openai),
            "local" => read(body, path, diagnostics).map(LlmConfig::Local),
            _ => read(body, path, diagnostics).map(LlmConfig::Scripted),
        };
        if diagnostics.len() != before {
            return None;
        }
        // What building the backend would refuse, all of it, now: `validate` knows what `run` refuses.
        let problems = match &parsed {
            Some(LlmConfig::Openai(config)) => config.problems().into_iter().map(|problem| problem.into_config_problem()).collect(),
            Some(LlmConfig::Local(config)) => config.problems(),
            Some(LlmConfig::Scripted(config)) => config.problems(),
            None => Vec::new(),
        };
        for problem in problems {
            let at = if problem.key.is_empty() { path.to_string() } else { format!("{path}.{}", problem.key) };
            diagnostics.push(Diagnostic::new(at, problem.message));
        }
        if diagnostics.len() == before {
            parsed
        } else {
            None
        }
    }
}

fn read<T: serde::de::DeserializeOwned>(value: Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(config) => Some(config),
        Err(error) => {
            let field = error.path().to_string();
            let at = if field == "." { path.to_string() } else { format!("{path}.{field}") };
            diagnostics.push(Diagnostic::new(at, crate::limits::friendly(&error.into_inner().to_string())));
            None
        }
    }
}
