//! The `llm:` and `llms:` blocks as YAML: which backend, and its settings, read through the
//! table of backend kinds (`crate::llm`), every problem reported at once.

use serde_yaml::{Mapping, Value};

use crate::error::Diagnostic;
use crate::introspect::suggest;
use crate::llm::{LlmConfig, BACKENDS};
use crate::recipe::{describe, unknown_keys};

/// Kinds recipes may name that this build of retort was made without, with the feature that
/// brings them.
const FEATURED: &[(&str, &str)] = &[("local", "local")];

/// Reads an llm block at `path`, reporting every problem: the keys, their types, and what
/// building the backend would refuse (so `validate` knows what `run` refuses).
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
    let Some(fields) = LlmConfig::fields_of(backend) else {
        let message = match FEATURED.iter().find(|(kind, _)| *kind == backend) {
            Some((_, feature)) => format!("this build of retort has no `{backend}` backend (it was built without the `{feature}` feature)"),
            None => {
                let hint = suggest(backend, BACKENDS.iter().copied()).map(|near| format!("did you mean `{near}`? ")).unwrap_or_default();
                format!("unknown backend `{backend}`; {hint}expected one of: {}", BACKENDS.join(", "))
            }
        };
        diagnostics.push(Diagnostic::new(format!("{path}.backend"), message));
        return None;
    };
    let mut allowed = vec!["backend"];
    allowed.extend_from_slice(fields);
    let before = diagnostics.len();
    unknown_keys(map, &allowed, path, diagnostics);
    let mut body: Mapping = map.clone();
    body.remove("backend");
    body.retain(|key, _| key.as_str().is_some_and(|key| fields.contains(&key)));
    let parsed = match LlmConfig::parse(backend, Value::Mapping(body)) {
        Ok(config) => Some(config),
        Err((field, message)) => {
            let at = if field.is_empty() { path.to_string() } else { format!("{path}.{field}") };
            diagnostics.push(Diagnostic::new(at, message));
            None
        }
    };
    if diagnostics.len() != before {
        return None;
    }
    let mut config = parsed?;
    // A model string that names an adapter (`MODEL+lora:ADAPTER`, as `--model` may give it, or a
    // round's model handed to an evaluation) sets the model and the adapter, as a round's does.
    if config.model().contains("+lora:") {
        config = config.with_model(&config.model());
    }
    for problem in config.problems() {
        let at = if problem.key.is_empty() { path.to_string() } else { format!("{path}.{}", problem.key) };
        diagnostics.push(Diagnostic::new(at, problem.message));
    }
    (diagnostics.len() == before).then_some(config)
}
