//! Chat templates from a model's GGUF metadata (`tokenizer.chat_template`), rendered with minijinja.
//!
//! Hugging Face templates are Jinja2 written for Python: they call `raise_exception`,
//! `strftime_now` and Python string methods (`.strip()`, `.startswith()`), and expect
//! `trim_blocks` and `lstrip_blocks`. This module registers all of that.

use minijinja::{context, Environment, Error, ErrorKind, Value};
use retort_core::{Message, Role};
use serde::Serialize;

/// A compiled chat template with the model's special tokens.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
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
        Ok(ChatTemplate { env, bos_token: bos_token.to_string(), eos_token: eos_token.to_string() })
    }

    /// Renders a conversation; with `add_generation_prompt` it ends where the assistant's answer begins.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, Error> {
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
        template.render(context! {
            messages => Value::from_serialize(&messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        })
    }
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
    let (year, month, day) = civil_from_days(days);
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

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
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
    fn raise_exception_is_an_error() {
        let source = "{% if messages[0].role != 'user' %}{{ raise_exception('user first') }}{% endif %}ok";
        let template = ChatTemplate::new(source, "", "").unwrap();
        let error = template.render(&[Message::assistant("x")], false).unwrap_err();
        assert!(error.to_string().contains("user first"), "{error}");
        assert_eq!(template.render(&[Message::user("x")], false).unwrap(), "ok");
    }
}
