//! Chat templates from a model's GGUF metadata (`tokenizer.chat_template`), rendered with minijinja.
//!
//! Hugging Face templates are Jinja2 written for Python: they call `raise_exception`,
//! `strftime_now` and Python string methods (`.strip()`, `.startswith()`), and expect
//! `trim_blocks` and `lstrip_blocks`. This module registers all of that.

use minijinja::{context, Environment, Error, ErrorKind, Value};
use retort_core::{Message, Role, ToolCall, ToolSpec};
use serde::Serialize;

/// A compiled chat template with the model's special tokens.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template reads `tools` (Qwen2.5's, Llama 3.1's, Hermes'): it can offer functions.
    reads_tools: bool,
}

/// One message as templates see it.
#[derive(Serialize)]
struct TemplateMessage<'a> {
    role: &'a str,
    content: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<TemplateToolCall<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<&'a str>,
}

#[derive(Serialize)]
struct TemplateToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: TemplateFunction<'a>,
}

#[derive(Serialize)]
struct TemplateFunction<'a> {
    name: &'a str,
    arguments: serde_json::Value,
}

impl ChatTemplate {
    /// Compiles a template source.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<ChatTemplate, Error> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string())?;
        let reads_tools = source.contains("tools");
        Ok(ChatTemplate { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string(), reads_tools })
    }

    /// Whether the template offers tools to the model (it reads a `tools` variable).
    pub fn reads_tools(&self) -> bool {
        self.reads_tools
    }

    /// Renders a conversation; with `add_generation_prompt` it ends where the assistant's answer begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, Error> {
        self.render_with_tools(messages, &[], add_generation_prompt)
    }

    /// Renders a conversation with the functions the model may call, as the template presents
    /// them (OpenAI's `{"type": "function", "function": {...}}` objects, which templates expect).
    pub fn render_with_tools(&self, messages: &[Message], tools: &[ToolSpec], add_generation_prompt: bool) -> Result<String, Error> {
        let messages: Vec<TemplateMessage<'_>> = messages
            .iter()
            .map(|message| TemplateMessage {
                role: message.role.as_str(),
                content: &message.content,
                tool_calls: (message.role == Role::Assistant && !message.tool_calls.is_empty()).then(|| {
                    message
                        .tool_calls
                        .iter()
                        .map(|call| TemplateToolCall {
                            id: &call.id,
                            kind: "function",
                            function: TemplateFunction {
                                name: &call.name,
                                arguments: serde_json::from_str(&call.arguments)
                                    .unwrap_or_else(|_| serde_json::Value::String(call.arguments.clone())),
                            },
                        })
                        .collect()
                }),
                tool_call_id: message.tool_call_id.as_deref(),
            })
            .collect();
        let template = self.env.get_template("chat")?;
        let tools: Option<Vec<serde_json::Value>> =
            (!tools.is_empty()).then(|| tools.iter().map(retort_core::ToolSpec::to_openai).collect());
        template.render(context! {
            messages => Value::from_serialize(&messages),
            tools => Value::from_serialize(&tools),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
    }
}

/// The tool calls in a model's answer, written as Qwen2.5's and Hermes' templates teach:
/// `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, one block per call. Returns the
/// text outside the blocks and the calls; a block that is not such JSON stays in the text.
/// The `{name, arguments}` object of one call (`parameters` is read as `arguments`).
fn call_of(value: &serde_json::Value) -> Option<(String, String)> {
    let name = value.get("name")?.as_str()?.to_string();
    let arguments = match value.get("arguments").or_else(|| value.get("parameters")) {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => "{}".to_string(),
    };
    Some((name, arguments))
}

/// The calls in an answer given tools: `<tool_call>` blocks (Qwen2.5's and Hermes' form) or,
/// when there are none, an answer that is nothing but a JSON call (or a list of calls, perhaps
/// in a code fence) of an offered tool, as small models often write it.
pub(crate) fn parse_tool_calls(text: &str, offered: &[&str]) -> (String, Vec<ToolCall>) {
    let (content, calls) = parse_tool_call_blocks(text);
    if !calls.is_empty() {
        return (content, calls);
    }
    let trimmed = content.trim();
    let unfenced = trimmed
        .strip_prefix("```")
        .map(|rest| rest.split_once('\n').map_or("", |(_, body)| body).trim_end().trim_end_matches("```").trim())
        .unwrap_or(trimmed);
    let bare: Option<Vec<(String, String)>> = serde_json::from_str::<serde_json::Value>(unfenced).ok().and_then(|value| {
        let items = match &value {
            serde_json::Value::Array(items) => items.clone(),
            serde_json::Value::Object(_) => vec![value.clone()],
            _ => return None,
        };
        let calls: Option<Vec<(String, String)>> = items.iter().map(call_of).collect();
        calls.filter(|calls| !calls.is_empty() && calls.iter().all(|(name, _)| offered.contains(&name.as_str())))
    });
    match bare {
        Some(found) => {
            let calls = found
                .into_iter()
                .enumerate()
                .map(|(index, (name, arguments))| ToolCall { id: format!("call_{index}"), name, arguments })
                .collect();
            (String::new(), calls)
        }
        None => (content, calls),
    }
}

/// The `<tool_call>{...}</tool_call>` blocks of an answer as calls, and the text around them.
fn parse_tool_call_blocks(text: &str) -> (String, Vec<ToolCall>) {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut content = String::new();
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        content.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        // The block ends at its closing tag, or at the end of an answer cut short.
        let (body, block_end) = match after.find(CLOSE) {
            Some(end) => (&after[..end], start + OPEN.len() + end + CLOSE.len()),
            None => (after, rest.len()),
        };
        let parsed = serde_json::from_str::<serde_json::Value>(body.trim()).ok().as_ref().and_then(call_of);
        match parsed {
            Some((name, arguments)) => calls.push(ToolCall { id: format!("call_{}", calls.len()), name, arguments }),
            None => content.push_str(&rest[start..block_end]),
        }
        rest = &rest[block_end..];
    }
    content.push_str(rest);
    (content.trim().to_string(), calls)
}

fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, format!("the chat template refused the conversation: {message}")))
}

/// `strftime_now(format)`: the current UTC time, for templates that print today's date.
fn strftime_now(format: String) -> String {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|elapsed| elapsed.as_secs() as i64).unwrap_or(0);
    strftime(&format, seconds)
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Formats a Unix time (UTC) with the common `strftime` directives.
fn strftime(format: &str, unix_seconds: i64) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let secs = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = retort_core::civil_from_days(days);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    let weekday = (days + 3).rem_euclid(7) as usize;
    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&year.to_string()),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('-') => match chars.next() {
                Some('d') => out.push_str(&day.to_string()),
                Some('m') => out.push_str(&month.to_string()),
                Some(other) => out.push(other),
                None => {}
            },
            Some('B') => out.push_str(MONTHS[(month - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(month - 1) as usize][..3]),
            Some('A') => out.push_str(WEEKDAYS[weekday]),
            Some('a') => out.push_str(&WEEKDAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", secs / 3600)),
            Some('M') => out.push_str(&format!("{:02}", secs % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", secs % 60)),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_formats_known_dates() {
        let cases = [
            (0, "%Y-%m-%d %H:%M:%S", "1970-01-01 00:00:00"),
            (951_782_400, "%d %B %Y", "29 February 2000"),
            (1_732_492_800, "%-d %b %Y, %A", "25 Nov 2024, Monday"),
            (1_700_000_000, "%%%H", "%22"),
        ];
        for (seconds, format, expected) in cases {
            assert_eq!(strftime(format, seconds), expected, "{format} at {seconds}");
        }
    }

    #[test]
    fn hugging_face_idioms_render() {
        let source = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ '<s>' + m.content.strip() + '\\n' }}\
{% else %}{{ m.role + ': ' + m.content }}\n{% endif %}{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";
        let template = ChatTemplate::new(source, "<bos>", "<eos>").unwrap();
        let text = template.render(&[Message::system("  be brief  "), Message::user("hi")], true).unwrap();
        assert_eq!(text, "<bos><s>be brief\nuser: hi\nassistant:");
    }

    #[test]
    fn tools_reach_the_template_and_calls_come_back() {
        let source = "{% if tools %}<tools>{% for tool in tools %}{{ tool | tojson }}{% endfor %}</tools>\n{% endif %}\
{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
        let template = ChatTemplate::new(source, "", "").unwrap();
        assert!(template.reads_tools());
        let tool = ToolSpec { name: "search".into(), description: "Search.".into(), parameters: serde_json::json!({"type": "object"}) };
        let text = template.render_with_tools(&[Message::user("hi")], &[tool], true).unwrap();
        assert!(text.starts_with("<tools>{\"function\":{\"description\":\"Search.\""), "{text}");
        assert_eq!(template.render(&[Message::user("hi")], true).unwrap(), "user: hi\n");
        let cases = [
            (
                "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"tides\"}}\n</tool_call>",
                "",
                vec![("search", "{\"q\":\"tides\"}")],
            ),
            (
                "Let me look.\n<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call><tool_call>{\"name\": \"b\"}</tool_call>",
                "Let me look.",
                vec![("a", "{}"), ("b", "{}")],
            ),
            ("<tool_call>not json</tool_call> done", "<tool_call>not json</tool_call> done", vec![]),
            ("<tool_call>{\"name\": \"cut\", \"arguments\": {}}", "", vec![("cut", "{}")]),
            ("No tools needed.", "No tools needed.", vec![]),
            // A bare JSON call of an offered tool, as Qwen2.5-Coder writes it; an unknown name stays text.
            ("{\"name\": \"search\", \"arguments\": {\"q\": \"x\"}}", "", vec![("search", "{\"q\":\"x\"}")]),
            ("```json\n[{\"name\": \"a\", \"arguments\": {}}]\n```", "", vec![("a", "{}")]),
            ("{\"name\": \"other\", \"arguments\": {}}", "{\"name\": \"other\", \"arguments\": {}}", vec![]),
        ];
        for (answer, content, expected) in cases {
            let (found_content, calls) = parse_tool_calls(answer, &["search", "a", "b", "cut"]);
            assert_eq!(found_content, content, "{answer}");
            let found: Vec<(&str, &str)> = calls.iter().map(|call| (call.name.as_str(), call.arguments.as_str())).collect();
            assert_eq!(found, expected, "{answer}");
        }
    }

    #[test]
    fn raise_exception_is_an_error() {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}ok";
        let template = ChatTemplate::new(source, "", "").unwrap();
        let error = template.render(&[Message::assistant("x")], false).unwrap_err();
        assert!(error.to_string().contains("user first"), "{error}");
        assert_eq!(template.render(&[Message::user("x")], false).unwrap(), "ok");
    }
}
