//! The ReAct text format: the prompt that teaches it and a forgiving parser of replies.

use std::sync::LazyLock;

use regex::Regex;
use retort_core::ToolSpec;
use serde_json::{Map, Value};

use crate::tools::simulated::{extract_json, strip_fences};

/// The default opening of the ReAct system prompt (replaced by `AgentConfig::system_prompt`).
pub const REACT_INTRO: &str = "Answer the user's request as well as you can. You can use tools to look things up and compute.";

/// What one reply says.
#[derive(Debug, Clone, PartialEq)]
pub enum ReactReply {
    /// `Thought: ... Action: name Action Input: {...}`.
    Action {
        /// The reasoning before the action.
        thought: String,
        /// The tool named.
        action: String,
        /// The raw text after `Action Input:` (or inside `name[...]`).
        input: String,
    },
    /// `Thought: ... Final Answer: ...`.
    Final {
        /// The reasoning before the answer.
        thought: String,
        /// The answer.
        answer: String,
    },
    /// Neither: the reason, for the observation that explains the format.
    Malformed {
        /// Whatever came before the problem, as the thought.
        thought: String,
        /// What is wrong.
        problem: String,
    },
}

static LABEL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?im)^[ \t>]*[*_#]*[ \t]*(thought|action[ \t]+input|action|final[ \t]+answer|observation)[ \t]*[*_]*[ \t]*:[*_]*[ \t]*")
        .expect("the label pattern compiles")
});

#[derive(Debug, Clone, Copy, PartialEq)]
enum Label {
    Thought,
    Action,
    Input,
    Final,
    Observation,
}

fn labels(text: &str) -> Vec<(Label, usize, usize)> {
    LABEL
        .captures_iter(text)
        .map(|c| {
            let whole = c.get(0).expect("group 0 exists");
            let word = c[1].to_ascii_lowercase();
            let label = if word.starts_with("thought") {
                Label::Thought
            } else if word.starts_with("final") {
                Label::Final
            } else if word.starts_with("observation") {
                Label::Observation
            } else if word.contains("input") {
                Label::Input
            } else {
                Label::Action
            };
            (label, whole.start(), whole.end())
        })
        .collect()
}

/// Cuts a reply where the model started writing an observation itself.
pub fn cut_at_observation(text: &str) -> &str {
    match labels(text).into_iter().find(|(l, _, _)| *l == Label::Observation) {
        Some((_, start, _)) => text[..start].trim_end(),
        None => text.trim_end(),
    }
}

/// Parses one reply (already cut at any `Observation:`).
pub fn parse_react(text: &str) -> ReactReply {
    let found = labels(text);
    let body = |i: usize| -> &str {
        let (_, _, end) = found[i];
        let stop = found.get(i + 1).map_or(text.len(), |(_, s, _)| *s);
        text[end..stop].trim()
    };
    let first_of = |label: Label| found.iter().position(|(l, _, _)| *l == label);
    let thought = match (first_of(Label::Thought), found.first()) {
        (Some(0), _) => body(0).to_string(),
        (_, Some((_, start, _))) => text[..*start].trim().to_string(),
        (_, None) => text.trim().to_string(),
    };
    let action = first_of(Label::Action);
    let final_answer = first_of(Label::Final);
    if let Some(f) = final_answer {
        if action.is_none_or(|a| f < a) {
            // The answer runs to the end (it may contain lines that look like labels).
            let answer = text[found[f].2..].trim().to_string();
            if answer.is_empty() {
                return ReactReply::Malformed { thought, problem: "`Final Answer:` is followed by nothing".into() };
            }
            return ReactReply::Final { thought, answer };
        }
    }
    let Some(a) = action else {
        return ReactReply::Malformed { thought, problem: "the reply has neither an `Action:` line nor a `Final Answer:` line".into() };
    };
    let line = body(a);
    let first_line = line.lines().next().unwrap_or_default().trim();
    // `name[input]` (the original ReAct style) and `name(input)`.
    for (open, close) in [('[', ']'), ('(', ')')] {
        if let (Some(o), true) = (first_line.find(open), first_line.ends_with(close)) {
            let name = clean_name(&first_line[..o]);
            let inside = first_line[o + 1..first_line.len() - 1].trim();
            if !name.is_empty() && (!inside.is_empty() || found.get(a + 1).is_none_or(|(l, _, _)| *l != Label::Input)) {
                let input = match found.get(a + 1) {
                    Some((Label::Input, _, _)) if inside.is_empty() => body(a + 1).to_string(),
                    _ => inside.to_string(),
                };
                return ReactReply::Action { thought, action: name, input };
            }
        }
    }
    let name = clean_name(first_line);
    if name.is_empty() {
        return ReactReply::Malformed { thought, problem: "the `Action:` line names no tool".into() };
    }
    let input = match found.get(a + 1) {
        Some((Label::Input, _, _)) => body(a + 1).to_string(),
        _ => {
            // Tolerate the input written on the lines after the action name.
            let rest = line[first_line.len().min(line.len())..].trim();
            if rest.is_empty() {
                return ReactReply::Malformed { thought, problem: format!("`Action: {name}` is not followed by an `Action Input:` line") };
            }
            rest.to_string()
        }
    };
    ReactReply::Action { thought, action: name, input }
}

fn clean_name(text: &str) -> String {
    text.trim().trim_matches(|c: char| c == '`' || c == '"' || c == '\'' || c == '*' || c == '.').trim().to_string()
}

/// Turns an `Action Input` text into arguments: a JSON object as written (fences allowed),
/// the first `{...}` in the text, or — for a tool with exactly one property — the bare text
/// as that property's value. `Err` says what was expected.
pub fn parse_action_input(input: &str, spec: Option<&ToolSpec>) -> Result<Value, String> {
    let text = strip_fences(input).trim();
    if text.is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if value.is_object() {
            return Ok(value);
        }
        if let Some(v) = wrap_single(spec, value) {
            return Ok(v);
        }
    } else if let Some(value) = extract_json(text).filter(Value::is_object) {
        return Ok(value);
    } else if let Some(v) = wrap_single(spec, Value::String(text.to_string())) {
        return Ok(v);
    }
    Err(format!(
        "`Action Input` must be a JSON object of arguments, for example {{\"name\": \"value\"}}; found {:?}",
        text.chars().take(200).collect::<String>()
    ))
}

fn wrap_single(spec: Option<&ToolSpec>, value: Value) -> Option<Value> {
    let properties = spec?.parameters.get("properties")?.as_object()?;
    if properties.len() != 1 {
        return None;
    }
    let (name, schema) = properties.iter().next()?;
    let value = match (schema.get("type").and_then(Value::as_str), value) {
        (Some("string"), Value::String(s)) => Value::String(s),
        (Some("string"), other) => Value::String(other.to_string()),
        (_, other) => other,
    };
    let mut object = Map::new();
    object.insert(name.clone(), value);
    Some(Value::Object(object))
}

/// The ReAct system prompt: the intro, the tools with their argument schemas, the format.
pub fn react_system_prompt(intro: &str, tools: &[ToolSpec], give_up: bool) -> String {
    let mut out = format!("{}\n\nYou have access to the following tools:\n\n", intro.trim());
    for tool in tools {
        out.push_str(&format!("{}: {}\n    Arguments (JSON schema): {}\n", tool.name, tool.description.trim(), tool.parameters));
    }
    if give_up {
        out.push_str("give_up: Use it when this line of attack cannot lead to an answer; an earlier step will be retried differently.\n    Arguments (JSON schema): {\"type\":\"object\",\"properties\":{\"reason\":{\"type\":\"string\"}}}\n");
    }
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    if give_up {
        names.push("give_up");
    }
    out.push_str(&format!(
        "\nUse exactly this format:\n\nThought: what you know so far and what to do next\nAction: the tool to use, one of [{}]\nAction Input: the arguments as one JSON object\nObservation: the tool's result (written for you; never write it yourself)\n... (Thought, Action, Action Input and Observation repeat as needed)\nThought: I now know the final answer\nFinal Answer: the answer to the original request\n\nWrite one Action per reply and stop after its Action Input; the Observation comes in the next message.",
        names.join(", ")
    ));
    out
}

/// The observation that explains the format after a malformed reply.
pub fn format_reminder(problem: &str) -> String {
    format!(
        "Invalid format: {problem}. Reply either with\nThought: ...\nAction: <tool name>\nAction Input: <JSON object of arguments>\nor with\nThought: ...\nFinal Answer: <the answer>"
    )
}
