//! Reading the calls a model wrote: Python syntax (`f(a=1)`, `[f(a=1), g()]`), OpenAI tool calls
//! as JSON, or `{"name": ..., "arguments": ...}`, possibly inside prose or a code fence.

use serde_json::{Map, Value};

use super::pycall::{self, PyValue};

/// One call, with its keyword arguments by name (the call checks read no positional ones).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ModelCall {
    pub name: String,
    pub args: Map<String, Value>,
    /// Values that were Python but not JSON (tuples), by argument name: a type check needs them.
    pub tuples: Vec<String>,
}

impl ModelCall {
    fn from_py(call: &pycall::Call) -> ModelCall {
        let tuples = call.kwargs.iter().filter(|(_, value)| matches!(value, PyValue::Tuple(_))).map(|(key, _)| key.clone()).collect();
        ModelCall { name: call.name.clone(), args: call.kwargs_json(), tuples }
    }
}

/// The calls in a model's answer, or why none could be read. An answer that is plainly not a
/// call (no parenthesis, no JSON) is `Ok(vec![])`: the model chose not to call.
pub(crate) fn read_calls(text: &str) -> Result<Vec<ModelCall>, String> {
    let text = strip_fence(text.trim());
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Some(calls) = json_calls(&value) {
            return Ok(calls);
        }
    }
    let whole = match pycall::parse_calls(text) {
        Ok(calls) => return Ok(calls.iter().map(ModelCall::from_py).collect()),
        // No parenthesis at all: prose, the model chose not to call.
        Err(_) if !text.contains('(') => return Ok(Vec::new()),
        Err(error) => error,
    };
    // Prose around a bracketed list of calls, or one call on its own line.
    if let (Some(open), Some(close)) = (text.find('['), text.rfind(']')) {
        if open < close {
            if let Ok(calls) = pycall::parse_calls(&text[open..=close]) {
                if !calls.is_empty() {
                    return Ok(calls.iter().map(ModelCall::from_py).collect());
                }
            }
        }
    }
    for line in text.lines() {
        if let Ok(calls) = pycall::parse_calls(line.trim()) {
            if !calls.is_empty() {
                return Ok(calls.iter().map(ModelCall::from_py).collect());
            }
        }
    }
    Err(format!("not a call: {whole}"))
}

/// Code between the first pair of ``` fences, or the text as it is.
fn strip_fence(text: &str) -> &str {
    let Some(start) = text.find("```") else {
        return text;
    };
    let body = &text[start + 3..];
    let body = body.strip_prefix("python").or_else(|| body.strip_prefix("json")).unwrap_or(body);
    match body.find("```") {
        Some(end) => body[..end].trim(),
        None => body.trim(),
    }
}

/// Calls written as JSON: OpenAI's `tool_calls` (or a list of them), `{"name", "arguments"}`,
/// or BFCL's `{"fname": {"arg": value}}`.
fn json_calls(value: &Value) -> Option<Vec<ModelCall>> {
    match value {
        Value::Array(items) => items.iter().map(json_call).collect(),
        Value::Object(map) if map.contains_key("tool_calls") => json_calls(&map["tool_calls"]),
        Value::Object(_) => json_call(value).map(|call| vec![call]),
        _ => None,
    }
}

fn json_call(value: &Value) -> Option<ModelCall> {
    let map = value.as_object()?;
    let inner = map.get("function").and_then(Value::as_object).unwrap_or(map);
    let call = |name: &str, arguments: &Value| {
        let args = match arguments {
            Value::String(text) => serde_json::from_str::<Map<String, Value>>(text).ok()?,
            Value::Object(args) => args.clone(),
            Value::Null => Map::new(),
            _ => return None,
        };
        Some(ModelCall { name: name.to_string(), args, tuples: Vec::new() })
    };
    match (inner.get("name").and_then(Value::as_str), inner.get("arguments").or_else(|| inner.get("parameters"))) {
        (Some(name), Some(arguments)) => call(name, arguments),
        (Some(name), None) => call(name, &Value::Null),
        // BFCL's form: one key, the function's name, holding the arguments.
        (None, _) if map.len() == 1 => {
            let (name, arguments) = map.iter().next()?;
            arguments.is_object().then(|| call(name, arguments)).flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn calls_are_read_from_every_form_models_write() {
        let cases: &[(&str, &[(&str, Value)])] = &[
            ("calculate_triangle_area(base=10, height=5)", &[("calculate_triangle_area", json!({"base": 10, "height": 5}))]),
            ("[math.factorial(number=5)]", &[("math.factorial", json!({"number": 5}))]),
            ("```python\nget_weather(city='Paris')\n```", &[("get_weather", json!({"city": "Paris"}))]),
            ("Sure! I will call:\n[f(a=1), g(b='x')]\nDone.", &[("f", json!({"a": 1})), ("g", json!({"b": "x"}))]),
            (r#"{"name": "f", "arguments": "{\"a\": 2}"}"#, &[("f", json!({"a": 2}))]),
            (r#"[{"type": "function", "function": {"name": "f", "arguments": {"a": 3}}}]"#, &[("f", json!({"a": 3}))]),
            (r#"{"f": {"a": 4}}"#, &[("f", json!({"a": 4}))]),
            ("I cannot help with that, no function fits.", &[]),
            ("", &[]),
        ];
        for (text, expected) in cases {
            let calls = read_calls(text).unwrap_or_else(|error| panic!("{text}: {error}"));
            let found: Vec<(&str, Value)> = calls.iter().map(|call| (call.name.as_str(), Value::Object(call.args.clone()))).collect();
            let expected: Vec<(&str, Value)> = expected.iter().map(|(name, args)| (*name, args.clone())).collect();
            assert_eq!(found, expected, "{text}");
        }
        assert!(read_calls("f(a=").is_err());
    }
}
