//! The `bfcl` check: the calls a model wrote against BFCL's possible answers, by its AST checker's rules.
//!
//! The answer is decoded as BFCL decodes a prompting model's: trimmed of backticks, spaces and
//! line breaks, put in brackets, and parsed as a Python list of calls (prose, code fences, and
//! calls on separate lines do not decode; positional arguments are dropped; an attribute such
//! as `math.pi` as a value does not decode). Then the rules of the Berkeley Function-Calling
//! Leaderboard's AST checker: the function's name, exactly;
//! every required parameter present; no parameter the schema or the answer key does not know;
//! each value of the schema's type (an integer is a float where a float is asked for, outside
//! lists; a tuple a list; `any` is a string; a value of another type passes as the possible
//! answers' own type, then compared exactly); the value among the possible answers, strings compared without spaces, `,./-_*^` and
//! case; a parameter the answer key lists but the call leaves out only if `""` is among its
//! possible answers. Several expected calls (parallel) match the model's calls in any order.
//! With no possible answers (BFCL's irrelevance category) the check passes when no call is made.

use async_trait::async_trait;
use retort_core::Record;
use serde_json::{Map, Value};

use super::calls::ModelCall;
use super::pycall::{self, PyValue};
use super::{field_text, Verdict, Verifier};
use crate::runtime::StageCx;

pub(crate) struct Bfcl {
    pub field: String,
    /// BFCL's `ground_truth`: a list of `{function name: {parameter: [possible values]}}`.
    pub gold: String,
    /// The function schemas offered (BFCL's `function`).
    pub functions: String,
}

#[async_trait]
impl Verifier for Bfcl {
    async fn verify(&self, record: &Record, _cx: &StageCx) -> Result<Verdict, String> {
        let text = field_text(record, &self.field)?;
        let functions = match record.get(&self.functions) {
            Some(Value::Array(functions)) => functions.clone(),
            Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| format!("`{}` is not a JSON list of functions: {e}", self.functions))?,
            _ => return Err(format!("field `{}` (the function schemas) is missing", self.functions)),
        };
        let gold = match record.get(&self.gold) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.clone(),
            Some(other) => return Err(format!("`{}` should be a list of possible answers, found {other}", self.gold)),
        };
        Ok(check(&text, &functions, &gold))
    }
}

/// The verdict for a model's answer; its class is the reason's first word.
pub(crate) fn check(text: &str, functions: &[Value], gold: &[Value]) -> Verdict {
    let calls = match decode(text) {
        Ok(calls) => calls,
        Err(error) if gold.is_empty() => return Verdict::class(true, "no_call", format!("no call could be read ({error}), as expected")),
        Err(error) => return Verdict::class(false, "unparsable", error),
    };
    if gold.is_empty() {
        return match calls.first() {
            None => Verdict::class(true, "no_call", "no call, as expected".to_string()),
            Some(call) => Verdict::class(false, "called", format!("expected no call (no function fits), found a call to `{}`", call.name)),
        };
    }
    if calls.is_empty() {
        return Verdict::class(false, "no_call", format!("expected {} call(s), found none", gold.len()));
    }
    if calls.len() != gold.len() {
        return Verdict::class(false, "wrong_count", format!("expected {} call(s), found {}", gold.len(), calls.len()));
    }
    let mut used = vec![false; calls.len()];
    for answer in gold {
        let Some((name, params)) = answer.as_object().and_then(|map| map.iter().next()) else {
            return Verdict::class(false, "bad_gold", format!("a possible answer is not {{name: {{param: [values]}}}}: {answer}"));
        };
        let Some(schema) = functions.iter().find(|f| f.get("name").and_then(Value::as_str) == Some(name.as_str())) else {
            return Verdict::class(false, "bad_gold", format!("the answer names `{name}`, which is not among the functions"));
        };
        let empty = Map::new();
        let params = params.as_object().unwrap_or(&empty);
        let mut last_problem = None;
        let mut found = false;
        for (index, call) in calls.iter().enumerate() {
            if used[index] {
                continue;
            }
            match check_call(schema, call, name, params) {
                Ok(()) => {
                    used[index] = true;
                    found = true;
                    break;
                }
                Err(problem) => last_problem = Some(problem),
            }
        }
        if !found {
            let (class, reason) = last_problem.unwrap_or(("wrong_call", format!("no call matches `{name}`")));
            return Verdict::class(false, class, reason);
        }
    }
    Verdict::class(true, "correct", "every call matches a possible answer".to_string())
}

/// BFCL's decoding of a prompting model's answer (`default_decode_ast_prompting`).
pub(crate) fn decode(text: &str) -> Result<Vec<ModelCall>, String> {
    let trimmed = text.trim_matches(|c| c == '`' || c == '\n' || c == ' ');
    let mut wrapped = String::with_capacity(trimmed.len() + 2);
    if !trimmed.starts_with('[') {
        wrapped.push('[');
    }
    wrapped.push_str(trimmed);
    if !trimmed.ends_with(']') {
        wrapped.push(']');
    }
    let calls = pycall::parse_call_list(&wrapped).map_err(|error| format!("the answer does not decode as a list of calls: {error}"))?;
    calls
        .iter()
        .map(|call| {
            let mut args = Map::new();
            let mut tuples = Vec::new();
            for (key, value) in &call.kwargs {
                if matches!(value, PyValue::Tuple(_)) {
                    tuples.push(key.clone());
                }
                args.insert(key.clone(), decoded_value(value)?);
            }
            Ok(ModelCall { name: call.name.clone(), args, tuples })
        })
        .collect()
}

/// A value as BFCL's decoder reads it: a bare name is its text, a call with keywords
/// `{name: {args}}`, one without its source; an attribute or a set does not decode.
fn decoded_value(value: &PyValue) -> Result<Value, String> {
    Ok(match value {
        PyValue::Name(name) if name.contains('.') => return Err(format!("`{name}`: an attribute is not a value BFCL decodes")),
        PyValue::Name(name) => Value::String(name.clone()),
        PyValue::Set(_) => return Err("a set is not a value BFCL decodes".to_string()),
        PyValue::Call(call) if !call.kwargs.is_empty() => {
            let mut args = Map::new();
            for (key, value) in &call.kwargs {
                args.insert(key.clone(), decoded_value(value)?);
            }
            let mut outer = Map::new();
            outer.insert(call.name.clone(), Value::Object(args));
            Value::Object(outer)
        }
        PyValue::List(items) | PyValue::Tuple(items) => Value::Array(items.iter().map(decoded_value).collect::<Result<_, _>>()?),
        PyValue::Dict(pairs) => {
            let mut map = Map::new();
            for (key, value) in pairs {
                let key = match key {
                    PyValue::Str(text) => text.clone(),
                    other => other.to_json().to_string(),
                };
                map.insert(key, decoded_value(value)?);
            }
            Value::Object(map)
        }
        other => other.to_json(),
    })
}

/// One call against one expected function: the class of the first problem and what it is.
fn check_call(schema: &Value, call: &ModelCall, name: &str, answer: &Map<String, Value>) -> Result<(), (&'static str, String)> {
    if call.name != name {
        return Err(("wrong_function", format!("expected a call to `{name}`, found `{}`", call.name)));
    }
    let empty = Map::new();
    let properties = schema.pointer("/parameters/properties").and_then(Value::as_object).unwrap_or(&empty);
    let required: Vec<&str> = schema.pointer("/parameters/required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    for param in &required {
        if !call.args.contains_key(*param) {
            return Err(("missing_parameter", format!("`{name}`: the required parameter `{param}` is missing")));
        }
    }
    for (param, value) in &call.args {
        let (Some(property), Some(allowed)) = (properties.get(param), answer.get(param)) else {
            return Err(("unexpected_parameter", format!("`{name}`: unexpected parameter `{param}`")));
        };
        let expected = match property.get("type").and_then(Value::as_str).unwrap_or("any") {
            // BFCL's Python type map reads `any` as a string.
            "any" => "string",
            other => other,
        };
        let allowed = allowed.as_array().cloned().unwrap_or_else(|| vec![allowed.clone()]);
        // The possible answers' own type (their first one that is not ""): a value of that
        // type passes as a "variable" and is compared exactly.
        let answer_kind = allowed.iter().find(|possible| possible.as_str() != Some("")).map(|possible| kind(possible, false));
        let value = match typed(value, expected, call.tuples.contains(param)) {
            Ok(value) => value,
            Err(_) if answer_kind.is_some_and(|answer| answer == kind(value, false)) => {
                if allowed.iter().any(|possible| python_equal(value, possible)) {
                    continue;
                }
                return Err(("wrong_value", format!("`{name}`: `{param}` = {value} is not among the possible answers {}", Value::Array(allowed))));
            }
            Err(found) => return Err(("wrong_type", format!("`{name}`: `{param}` should be of type {expected}, found {found}"))),
        };
        if let Some(items) = property.pointer("/items/type").and_then(Value::as_str) {
            if let Value::Array(elements) = &value {
                for element in elements {
                    // Inside lists the types are exact: an integer is no float there.
                    if !fits(kind(element, false), items) {
                        return Err(("wrong_type", format!("`{name}`: the items of `{param}` should be {items}, found {element}")));
                    }
                }
            }
        }
        if !allowed.iter().any(|possible| same_value(&value, possible, expected)) {
            return Err(("wrong_value", format!("`{name}`: `{param}` = {value} is not among the possible answers {}", Value::Array(allowed))));
        }
    }
    for (param, allowed) in answer {
        let optional = allowed.as_array().is_some_and(|values| values.iter().any(|v| v.as_str() == Some("")));
        if !call.args.contains_key(param) && !optional {
            return Err(("missing_parameter", format!("`{name}`: `{param}` is missing (the answer key has no default for it)")));
        }
    }
    Ok(())
}

/// A JSON value's type in BFCL's words (a list that was a Python tuple is a tuple).
fn kind(value: &Value, was_tuple: bool) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "float",
        Value::String(_) => "string",
        Value::Array(_) if was_tuple => "tuple",
        Value::Array(_) => "array",
        Value::Object(_) => "dict",
    }
}

/// Whether a value of this kind is of the schema's type, exactly (a tuple is a list).
fn fits(kind: &str, expected: &str) -> bool {
    match expected {
        "integer" => kind == "integer",
        "float" | "number" => kind == "float",
        "string" | "any" => kind == "string",
        "boolean" => kind == "boolean",
        "array" | "list" | "tuple" => kind == "array" || kind == "tuple",
        "dict" | "object" => kind == "dict",
        _ => true,
    }
}

/// The value as the schema's type expects it (an integer becomes a float where one is
/// asked for); the value's own type when it is not of that type.
fn typed(value: &Value, expected: &str, was_tuple: bool) -> Result<Value, String> {
    let found = kind(value, was_tuple);
    if matches!(expected, "float" | "number") && found == "integer" {
        return Ok(value.as_f64().and_then(serde_json::Number::from_f64).map(Value::Number).unwrap_or_else(|| value.clone()));
    }
    if !fits(found, expected) {
        return Err(format!("{found} {value}"));
    }
    Ok(value.clone())
}

/// Python's `==` on decoded values: 1 == 1.0, lists and dicts compared deeply.
fn python_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| python_equal(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(key, value)| y.get(key).is_some_and(|other| python_equal(value, other))),
        _ => a == b,
    }
}

/// BFCL's string standardisation: no spaces or `,./-_*^`, lower case, double quotes.
fn standardize(text: &str) -> String {
    text.chars().filter(|c| !matches!(c, ' ' | ',' | '.' | '/' | '-' | '_' | '*' | '^')).flat_map(char::to_lowercase).map(|c| if c == '\'' { '"' } else { c }).collect()
}

fn same_value(value: &Value, possible: &Value, expected: &str) -> bool {
    match (value, possible) {
        (Value::String(a), Value::String(b)) => standardize(a) == standardize(b),
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) if matches!(expected, "float" | "number") => (x - y).abs() <= f64::EPSILON * x.abs().max(y.abs()).max(1.0),
            // Python's `==`: 1 == 1.0.
            _ => a.as_f64() == b.as_f64(),
        },
        (Value::Array(a), Value::Array(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y, "any")),
        (Value::Object(a), Value::Object(b)) => {
            // Each key of the possible answer holds a list of possible values (BFCL's dict
            // answers), or a value; keys it has with "" may be left out.
            b.iter().all(|(key, allowed)| match (a.get(key), allowed) {
                (Some(found), Value::Array(options)) => options.iter().any(|option| same_value(found, option, "any")),
                (Some(found), option) => same_value(found, option, "any"),
                (None, Value::Array(options)) => options.iter().any(|option| option.as_str() == Some("")),
                (None, _) => false,
            }) && a.keys().all(|key| b.contains_key(key))
        }
        _ => value == possible,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn triangle() -> Vec<Value> {
        vec![json!({"name": "calculate_triangle_area", "parameters": {"type": "dict", "properties": {
            "base": {"type": "integer"}, "height": {"type": "integer"}, "unit": {"type": "string"},
            "scale": {"type": "float"}, "tags": {"type": "array", "items": {"type": "string"}}}, "required": ["base", "height"]}})]
    }

    fn gold() -> Vec<Value> {
        vec![json!({"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["units", ""], "scale": [1.0, ""], "tags": [["Big Area"], ""]}})]
    }

    #[test]
    fn the_ast_checker_rules() {
        let cases = [
            ("calculate_triangle_area(base=10, height=5)", "correct"),
            ("[calculate_triangle_area(height=5, base=10, unit='Units')]", "correct"),
            ("calculate_triangle_area(base=10, height=5, scale=1)", "correct"),
            ("calculate_triangle_area(base=10, height=5, tags=['big_area'])", "correct"),
            ("calculate_triangle_area(base=10)", "missing_parameter"),
            ("calculate_triangle_area(base=10, height=5, color='red')", "unexpected_parameter"),
            ("calculate_triangle_area(base=10.0, height=5)", "wrong_type"),
            ("calculate_triangle_area(base='10', height=5)", "wrong_type"),
            ("calculate_triangle_area(base=10, height=6)", "wrong_value"),
            ("calculate_triangle_area(base=10, height=5, unit='cm')", "wrong_value"),
            ("area(base=10, height=5)", "wrong_function"),
            ("The area is 25.", "unparsable"),
            ("[calculate_triangle_area(base=10, height=5), calculate_triangle_area(base=1, height=2)]", "wrong_count"),
            ("calculate_triangle_area(base=10, height=5)\ncalculate_triangle_area(base=1, height=2)", "unparsable"),
            ("```python\ncalculate_triangle_area(base=10, height=5)\n```", "unparsable"),
            ("``` calculate_triangle_area(base=10, height=5) ```", "correct"),
            ("calculate_triangle_area(10, 5)", "missing_parameter"),
            ("calculate_triangle_area(base=10, height=5, scale=math.pi)", "unparsable"),
            ("calculate_triangle_area(base=10, height=5, tags=[1.0])", "wrong_type"),
            ("calculate_triangle_area(base=10, height=", "unparsable"),
        ];
        for (text, class) in cases {
            let verdict = check(text, &triangle(), &gold());
            assert_eq!(verdict.class.as_deref(), Some(class), "{text}: {}", verdict.reason);
            assert_eq!(verdict.pass, class == "correct", "{text}");
        }
    }

    #[test]
    fn parallel_calls_match_in_any_order_and_irrelevance_wants_none() {
        let functions = vec![json!({"name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"]}})];
        let gold = vec![json!({"get_weather": {"city": ["Paris"]}}), json!({"get_weather": {"city": ["Rome"]}})];
        assert!(check("[get_weather(city='Rome'), get_weather(city='Paris')]", &functions, &gold).pass);
        assert!(!check("[get_weather(city='Rome'), get_weather(city='Rome')]", &functions, &gold).pass);
        assert!(check("I can't help with that.", &functions, &[]).pass);
        assert!(!check("get_weather(city='Paris')", &functions, &[]).pass);
    }
}
