//! Output parsers: turn a model's text into the value a step writes (text, JSON, a regex capture, a tagged answer).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::template::{extract_answer, normalize_number};

/// How to read a model's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum ParseConfig {
    /// The text, trimmed.
    #[default]
    Text,
    /// JSON (fences and prose around it are tolerated), optionally checked against a schema.
    Json {
        /// A JSON schema the value must satisfy; also sent as structured output.
        schema: Option<Value>,
        /// Merge the object's keys into the record instead of writing it to `into`.
        spread: bool,
    },
    /// The first match of a regular expression: group 1, or an object of named groups.
    Regex(String),
    /// The text after the last occurrence of a tag such as `####`, first line.
    Tagged(String),
    /// The final answer: after `####` or "the answer is", else the last number.
    Answer,
    /// One item per non-empty line, with list markers (`1.`, `-`, `*`) removed.
    List,
}

const SHAPES: &str =
    "expected `text`, `json`, `answer`, `list`, or a mapping with one of `json: {schema, spread}`, `regex: PATTERN`, `tagged: TAG`";

impl<'de> Deserialize<'de> for ParseConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ParseConfig, D::Error> {
        let value = Value::deserialize(deserializer)?;
        match &value {
            Value::String(name) => match name.as_str() {
                "text" => Ok(ParseConfig::Text),
                "json" => Ok(ParseConfig::Json { schema: None, spread: false }),
                "answer" => Ok(ParseConfig::Answer),
                "list" => Ok(ParseConfig::List),
                other => Err(D::Error::custom(format!("unknown parser `{other}`; {SHAPES}"))),
            },
            Value::Object(map) if map.len() == 1 => {
                let (key, body) = map.iter().next().expect("one entry");
                match (key.as_str(), body) {
                    ("regex", Value::String(pattern)) => Ok(ParseConfig::Regex(pattern.clone())),
                    ("tagged", Value::String(tag)) => Ok(ParseConfig::Tagged(tag.clone())),
                    ("json", Value::Object(options)) => {
                        for key in options.keys() {
                            if key != "schema" && key != "spread" {
                                return Err(D::Error::custom(format!("unknown key `json.{key}`; expected `schema` or `spread`")));
                            }
                        }
                        let spread = match options.get("spread") {
                            None => false,
                            Some(Value::Bool(spread)) => *spread,
                            Some(other) => return Err(D::Error::custom(format!("`json.spread`: expected true or false, found {other}"))),
                        };
                        Ok(ParseConfig::Json { schema: options.get("schema").cloned(), spread })
                    }
                    _ => Err(D::Error::custom(format!("unknown parser `{key}: {body}`; {SHAPES}"))),
                }
            }
            other => Err(D::Error::custom(format!("found {other}; {SHAPES}"))),
        }
    }
}

/// What a parse produced.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    /// Write this value to the step's `into`.
    Value(Value),
    /// Merge these fields into the record.
    Fields(Map<String, Value>),
}

impl ParseConfig {
    /// The JSON schema to send as structured output, if any.
    pub(crate) fn schema(&self) -> Option<&Value> {
        match self {
            ParseConfig::Json { schema, .. } => schema.as_ref(),
            _ => None,
        }
    }

    /// Checks the config itself (regex compiles, schema is a schema).
    pub(crate) fn problems(&self) -> Vec<String> {
        match self {
            ParseConfig::Regex(pattern) => {
                regex::Regex::new(pattern).err().map(|error| format!("invalid regular expression: {error}")).into_iter().collect()
            }
            ParseConfig::Json { schema: Some(schema), .. } => {
                jsonschema::validator_for(schema).err().map(|error| format!("invalid JSON schema: {error}")).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// Problems of a schema that sampling is held to (the local backend turns it into a
    /// grammar): there, an object that lists `properties` admits only those keys unless
    /// `additionalProperties` says otherwise, so a `required` key it does not list could never
    /// be written and every answer would fail. Each problem names the object by JSON pointer.
    pub(crate) fn constrained_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(schema) = self.schema() {
            closed_objects(schema, "", &mut problems);
        }
        problems
    }

    /// The parser for this config, its regular expression and JSON schema compiled once (the
    /// check already found them valid; a problem here is reported the same way).
    pub(crate) fn compile(&self) -> Result<Parser, String> {
        let regex = match self {
            ParseConfig::Regex(pattern) => {
                Some(regex::Regex::new(pattern).map_err(|error| format!("invalid regular expression: {error}"))?)
            }
            _ => None,
        };
        let validator = match self {
            ParseConfig::Json { schema: Some(schema), .. } => {
                Some(jsonschema::validator_for(schema).map_err(|error| format!("invalid JSON schema: {error}"))?)
            }
            _ => None,
        };
        Ok(Parser { config: self.clone(), regex, validator: validator.map(std::sync::Arc::new) })
    }
}

/// Walks a schema for [`ParseConfig::constrained_problems`]: objects with `properties`, no
/// `additionalProperties` (or `false`), and a `required` name that `properties` does not list.
fn closed_objects(schema: &Value, pointer: &str, problems: &mut Vec<String>) {
    let Some(object) = schema.as_object() else { return };
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        if matches!(object.get("additionalProperties"), None | Some(Value::Bool(false))) {
            let at = if pointer.is_empty() { "the schema".to_string() } else { format!("the schema at `{pointer}`") };
            let required = object.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str);
            for name in required.filter(|name| !properties.contains_key(*name)) {
                problems.push(format!(
                    "{at} requires `{name}`, which its `properties` does not list; sampling held to the schema admits only the \
                     listed keys, so no answer could have it: add `{name}` to `properties`, or set `additionalProperties: true`"
                ));
            }
        }
        for (name, sub) in properties {
            closed_objects(sub, &format!("{pointer}/properties/{name}"), problems);
        }
    }
    for key in ["items", "additionalProperties", "not", "contains"] {
        if let Some(sub) = object.get(key) {
            closed_objects(sub, &format!("{pointer}/{key}"), problems);
        }
    }
    for key in ["prefixItems", "anyOf", "oneOf", "allOf"] {
        for (index, sub) in object.get(key).and_then(Value::as_array).into_iter().flatten().enumerate() {
            closed_objects(sub, &format!("{pointer}/{key}/{index}"), problems);
        }
    }
    for key in ["$defs", "definitions"] {
        for (name, sub) in object.get(key).and_then(Value::as_object).into_iter().flatten() {
            closed_objects(sub, &format!("{pointer}/{key}/{name}"), problems);
        }
    }
}

/// A [`ParseConfig`] ready to read answers.
#[derive(Debug, Clone)]
pub(crate) struct Parser {
    config: ParseConfig,
    regex: Option<regex::Regex>,
    validator: Option<std::sync::Arc<jsonschema::Validator>>,
}

impl Parser {
    /// Reads an answer; the error says what was expected and what was found.
    pub(crate) fn parse(&self, text: &str) -> Result<Parsed, String> {
        match &self.config {
            ParseConfig::Text => Ok(Parsed::Value(Value::String(text.trim().to_string()))),
            ParseConfig::Json { schema, spread } => {
                let value = find_json(text)?;
                if let (Some(_), Some(validator)) = (schema, &self.validator) {
                    validate(validator, &value)?;
                }
                match (spread, value) {
                    (true, Value::Object(fields)) => Ok(Parsed::Fields(fields)),
                    (true, other) => Err(format!("expected a JSON object to spread into the record, found {}", kind_of(&other))),
                    (false, value) => Ok(Parsed::Value(value)),
                }
            }
            ParseConfig::Regex(pattern) => {
                let regex = self.regex.as_ref().expect("compiled with the config");
                let captures = regex.captures(text).ok_or_else(|| format!("expected a match for /{pattern}/, found none"))?;
                let names: Vec<&str> = regex.capture_names().flatten().collect();
                if names.is_empty() {
                    let found = captures.get(1).or_else(|| captures.get(0)).map(|m| m.as_str()).unwrap_or("");
                    Ok(Parsed::Value(Value::String(found.trim().to_string())))
                } else {
                    let mut fields = Map::new();
                    for name in names {
                        if let Some(found) = captures.name(name) {
                            fields.insert(name.to_string(), Value::String(found.as_str().trim().to_string()));
                        }
                    }
                    Ok(Parsed::Value(Value::Object(fields)))
                }
            }
            ParseConfig::Tagged(tag) => {
                let (_, tail) =
                    text.rsplit_once(tag.as_str()).ok_or_else(|| format!("expected `{tag}` followed by the answer, found no `{tag}`"))?;
                let answer = tail.trim().lines().next().unwrap_or("").trim();
                if answer.is_empty() {
                    return Err(format!("expected an answer after `{tag}`, found nothing"));
                }
                Ok(Parsed::Value(Value::String(normalize_number(answer))))
            }
            ParseConfig::Answer => extract_answer(text)
                .map(|answer| Parsed::Value(Value::String(answer)))
                .ok_or_else(|| "expected a final answer (`#### X`, \"the answer is X\", or a number), found none".to_string()),
            ParseConfig::List => {
                let items: Vec<Value> = text
                    .lines()
                    .map(strip_list_marker)
                    .filter(|line| !line.is_empty())
                    .map(|line| Value::String(line.to_string()))
                    .collect();
                if items.is_empty() {
                    Err("expected a list with at least one item, found an empty answer".to_string())
                } else {
                    Ok(Parsed::Value(Value::Array(items)))
                }
            }
        }
    }
}

fn strip_list_marker(line: &str) -> &str {
    let line = line.trim();
    let without_number = line.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = if without_number.len() < line.len() {
        without_number.strip_prefix('.').or_else(|| without_number.strip_prefix(')')).unwrap_or(line)
    } else {
        line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")).or_else(|| line.strip_prefix("• ")).unwrap_or(line)
    };
    rest.trim()
}

/// Finds the JSON value in an answer: the whole text, a fenced block, or the outermost braces.
pub(crate) fn find_json(text: &str) -> Result<Value, String> {
    let trimmed = text.trim();
    let mut first_error = match serde_json::from_str::<Value>(trimmed) {
        Ok(value) => return Ok(value),
        Err(error) => error.to_string(),
    };
    if let Some(start) = trimmed.find("```") {
        let after = &trimmed[start + 3..];
        let after = after.strip_prefix("json").unwrap_or(after);
        if let Some(end) = after.find("```") {
            match serde_json::from_str::<Value>(after[..end].trim()) {
                Ok(value) => return Ok(value),
                Err(error) => first_error = error.to_string(),
            }
        }
    }
    for (open, close) in [('{', '}'), ('[', ']')] {
        if let (Some(start), Some(end)) = (trimmed.find(open), trimmed.rfind(close)) {
            if start < end {
                if let Ok(value) = serde_json::from_str::<Value>(&trimmed[start..=end]) {
                    return Ok(value);
                }
            }
        }
    }
    let shown: String = trimmed.chars().take(60).collect();
    Err(format!("expected JSON, found {shown:?} ({first_error})"))
}

/// Checks a value against a JSON schema; the error lists the first violations.
pub(crate) fn check_schema(schema: &Value, value: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema).map_err(|error| format!("invalid JSON schema: {error}"))?;
    validate(&validator, value)
}

/// Checks a value against a compiled schema; the error names the first problems and where.
fn validate(validator: &jsonschema::Validator, value: &Value) -> Result<(), String> {
    let problems: Vec<String> = validator
        .iter_errors(value)
        .take(3)
        .map(|error| {
            let at = error.instance_path.to_string();
            if at.is_empty() {
                error.to_string()
            } else {
                format!("{at}: {error}")
            }
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("JSON does not match the schema: {}", problems.join("; ")))
    }
}

pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(config: ParseConfig, text: &str, expected: Result<Parsed, &str>) {
        let found = config.compile().and_then(|parser| parser.parse(text));
        match (&found, &expected) {
            (Ok(found), Ok(expected)) => assert_eq!(found, expected, "{text}"),
            (Err(found), Err(expected)) => assert!(found.contains(expected), "{found} does not contain {expected}"),
            _ => panic!("{text}: expected {expected:?}, found {found:?}"),
        }
    }

    #[test]
    fn parsers() {
        let value = |value: Value| Ok(Parsed::Value(value));
        check(ParseConfig::Text, "  hi \n", value(json!("hi")));
        check(ParseConfig::Json { schema: None, spread: false }, "Sure:\n```json\n{\"a\": 1}\n```", value(json!({"a": 1})));
        check(ParseConfig::Json { schema: None, spread: false }, "x {\"a\": [1]} y", value(json!({"a": [1]})));
        check(ParseConfig::Json { schema: None, spread: false }, "no json", Err("expected JSON, found \"no json\""));
        check(
            ParseConfig::Json { schema: Some(json!({"type": "object", "required": ["q"]})), spread: true },
            "{\"q\": \"why\"}",
            Ok(Parsed::Fields(json!({"q": "why"}).as_object().unwrap().clone())),
        );
        check(
            ParseConfig::Json { schema: Some(json!({"type": "object", "required": ["q"]})), spread: false },
            "{\"r\": 1}",
            Err("JSON does not match the schema"),
        );
        check(ParseConfig::Regex(r"Score: (\d)".into()), "ok. Score: 4", value(json!("4")));
        check(ParseConfig::Regex(r"(?P<a>\w+)=(?P<b>\w+)".into()), "x=y", value(json!({"a": "x", "b": "y"})));
        check(ParseConfig::Regex(r"Score: (\d)".into()), "none", Err("expected a match"));
        check(ParseConfig::Tagged("####".into()), "3+4=7\n#### 7", value(json!("7")));
        check(ParseConfig::Tagged("####".into()), "7", Err("found no `####`"));
        check(ParseConfig::Answer, "The answer is 12.", value(json!("12")));
        check(ParseConfig::List, "1. a\n2) b\n- c\n\n", value(json!(["a", "b", "c"])));
    }

    #[test]
    fn configs_read_from_yaml() {
        let read = |text: &str| serde_yaml::from_str::<ParseConfig>(text);
        assert_eq!(read("json").unwrap(), ParseConfig::Json { schema: None, spread: false });
        assert_eq!(read("{tagged: '####'}").unwrap(), ParseConfig::Tagged("####".into()));
        assert!(read("jsn").unwrap_err().to_string().contains("unknown parser `jsn`"));
        assert!(read("{json: {sprad: true}}").unwrap_err().to_string().contains("json.sprad"));
    }
}
