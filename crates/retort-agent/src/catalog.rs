//! Tool definitions read from data (a record's list of tools): plain definitions, OpenAI
//! function specs, ToolBench's API entries, or full [`ToolConfig`]s; each becomes a tool
//! config, simulated from its documentation when a simulator is named, definition-only
//! otherwise.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::tools::definition::DefinitionConfig;
use crate::tools::simulated::{SimulatedConfig, SimulatedExample};
use crate::tools::ToolConfig;

/// How the items of a tool list are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatalogFormat {
    /// `{name, description, parameters, documentation?, examples?}`, an OpenAI
    /// `{type: function, function: {...}}`, or a tool config with `kind`.
    #[default]
    Plain,
    /// ToolBench's API entries: `tool_name`, `api_name`, `api_description`,
    /// `required_parameters`, `optional_parameters`, `template_response`.
    Toolbench,
}

/// ToolBench's normalisation of tool and API names into function names: every character that
/// is not a letter, digit or `_` becomes `_`, runs of `_` collapse, the ends are trimmed,
/// lower case, and a leading digit gets `get_` in front.
pub fn toolbench_standardize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '_' || ('\u{4e00}'..='\u{9fa5}').contains(&c) { c } else { '_' };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c.to_ascii_lowercase());
    }
    let out = out.trim_matches('_').to_string();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("get_{out}")
    } else {
        out
    }
}

/// The function name ToolBench gives an API: `{api}_for_{tool}`, standardised, at most the
/// last 64 characters.
pub fn toolbench_function_name(tool_name: &str, api_name: &str) -> String {
    let name = format!("{}_for_{}", toolbench_standardize(api_name), toolbench_standardize(tool_name));
    let skip = name.chars().count().saturating_sub(64);
    name.chars().skip(skip).collect()
}

/// Parameter names that ToolBench renames (Python keywords and the like) by prefixing `is_`.
fn toolbench_param_name(name: &str) -> String {
    if ["from", "class", "return", "false", "true", "id", "and"].contains(&name) {
        format!("is_{name}")
    } else {
        name.to_string()
    }
}

fn toolbench_type(kind: &str) -> &'static str {
    match kind.to_ascii_uppercase().as_str() {
        "NUMBER" | "INTEGER" => "integer",
        "BOOLEAN" => "boolean",
        "FLOAT" => "number",
        _ => "string",
    }
}

/// A ToolBench API entry as a function spec: its name, description and JSON schema.
fn toolbench_spec(item: &Value) -> Result<(String, String, Value), String> {
    let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_string);
    let tool = text("tool_name").ok_or("a ToolBench API entry needs `tool_name`")?;
    let api = text("api_name").ok_or("a ToolBench API entry needs `api_name`")?;
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (key, is_required) in [("required_parameters", true), ("optional_parameters", false)] {
        for param in item.get(key).and_then(Value::as_array).into_iter().flatten() {
            let Some(name) = param.get("name").and_then(Value::as_str) else { continue };
            let name = toolbench_param_name(name);
            let mut schema = json!({"type": toolbench_type(param.get("type").and_then(Value::as_str).unwrap_or("STRING"))});
            if let Some(description) = param.get("description").and_then(Value::as_str).filter(|d| !d.is_empty()) {
                schema["description"] = json!(description);
            }
            if let Some(default) = param.get("default").filter(|d| !d.is_null() && d.as_str() != Some("")) {
                schema["example_value"] = default.clone();
            }
            properties.insert(name.clone(), schema);
            if is_required {
                required.push(Value::String(name));
            }
        }
    }
    let description = format!(
        "Function of the tool \"{}\". {}",
        toolbench_standardize(&tool),
        text("api_description").filter(|d| !d.trim().is_empty()).unwrap_or_else(|| "(no description)".into()).trim()
    );
    // ToolBench's schemas do not forbid extra keys; types are loose (numbers arrive as text).
    let parameters = json!({"type": "object", "properties": Value::Object(properties), "required": required});
    Ok((toolbench_function_name(&tool, &api), description, parameters))
}

/// Loosens a schema's `type`s so that a value written as text or as a number both pass
/// (ToolBench's APIs take query strings; models write `"34"` and `34` alike).
fn loosen(parameters: &mut Value) {
    if let Some(properties) = parameters.get_mut("properties").and_then(Value::as_object_mut) {
        for schema in properties.values_mut() {
            if let Some(kind) = schema.get("type").and_then(Value::as_str) {
                if matches!(kind, "integer" | "number" | "boolean") {
                    schema["type"] = json!([kind, "string"]);
                }
            }
        }
    }
}

/// Makes one item of a tool list into a tool config. `simulator` names the backend that plays
/// tools with no `kind`; without one they are definition-only.
pub fn tool_config(item: &Value, format: CatalogFormat, simulator: Option<&str>) -> Result<ToolConfig, String> {
    if format == CatalogFormat::Plain && item.get("kind").is_some() {
        return serde_json::from_value(item.clone()).map_err(|error| format!("not a tool config: {error}"));
    }
    let (name, description, parameters, documentation, examples) = match format {
        CatalogFormat::Toolbench => {
            let (name, description, mut parameters) = toolbench_spec(item)?;
            loosen(&mut parameters);
            let documentation = serde_json::to_string_pretty(item).unwrap_or_default();
            (name, description, parameters, documentation, Vec::new())
        }
        CatalogFormat::Plain => {
            let function = item.get("function").filter(|_| item.get("type").and_then(Value::as_str) == Some("function")).unwrap_or(item);
            let name = function.get("name").and_then(Value::as_str).ok_or("a tool needs a `name`")?.to_string();
            let description = function.get("description").and_then(Value::as_str).unwrap_or_default().to_string();
            let parameters = function.get("parameters").cloned().unwrap_or_else(|| json!({"type": "object"}));
            let documentation = match item.get("documentation") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
                None => serde_json::to_string_pretty(&json!({"name": name, "description": description, "parameters": parameters}))
                    .unwrap_or_default(),
            };
            let examples = match item.get("examples") {
                Some(examples) => serde_json::from_value::<Vec<SimulatedExample>>(examples.clone())
                    .map_err(|error| format!("tool `{name}`: `examples` must be a list of {{arguments, response}}: {error}"))?,
                None => Vec::new(),
            };
            (name, description, parameters, documentation, examples)
        }
    };
    Ok(match simulator {
        Some(backend) => ToolConfig::Simulated(SimulatedConfig {
            name,
            description,
            parameters,
            documentation,
            backend: backend.to_string(),
            examples,
            temperature: None,
            seed: 0,
        }),
        None => ToolConfig::Definition(DefinitionConfig { name, description, parameters }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolbench_names_follow_its_standardisation() {
        assert_eq!(toolbench_function_name("Turkey Postal Codes", "il"), "il_for_turkey_postal_codes");
        assert_eq!(
            toolbench_function_name("Placeholder text API", "Generate placeholder text"),
            "generate_placeholder_text_for_placeholder_text_api"
        );
        assert_eq!(toolbench_standardize("  3D--Models!! "), "get_3d_models");
        let long = toolbench_function_name(&"t".repeat(80), "api");
        assert_eq!(long.chars().count(), 64);
        assert!(long.ends_with("ttt"));
    }

    #[test]
    fn a_toolbench_entry_becomes_a_schema_with_its_required_parameters() {
        let item = json!({"tool_name": "Turkey Postal Codes", "api_name": "il", "api_description": "Turkish plates. 1 to 81",
            "required_parameters": [{"name": "il", "type": "NUMBER", "description": "", "default": "34"}],
            "optional_parameters": [{"name": "from", "type": "STRING", "description": "start", "default": ""}],
            "template_response": {"success": "bool"}});
        let ToolConfig::Simulated(config) = tool_config(&item, CatalogFormat::Toolbench, Some("sim")).unwrap() else { panic!() };
        assert_eq!(config.name, "il_for_turkey_postal_codes");
        assert_eq!(config.parameters["required"], json!(["il"]));
        assert_eq!(config.parameters["properties"]["il"]["type"], json!(["integer", "string"]));
        assert_eq!(config.parameters["properties"]["il"]["example_value"], json!("34"));
        assert!(config.parameters["properties"].get("is_from").is_some());
        assert!(config.documentation.contains("template_response"));
        assert_eq!(config.backend, "sim");
    }

    #[test]
    fn plain_items_are_definitions_without_a_simulator() {
        let item = json!({"type": "function", "function": {"name": "segment", "description": "Segments an image", "parameters": {"type": "object"}}});
        let ToolConfig::Definition(config) = tool_config(&item, CatalogFormat::Plain, None).unwrap() else { panic!() };
        assert_eq!(config.name, "segment");
        let calc = tool_config(&json!({"kind": "calculator"}), CatalogFormat::Plain, None).unwrap();
        assert_eq!(calc.name(), "calculator");
        assert!(tool_config(&json!({"description": "x"}), CatalogFormat::Plain, None).unwrap_err().contains("name"));
    }
}
