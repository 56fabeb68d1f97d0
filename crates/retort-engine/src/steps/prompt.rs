//! The prompt settings that `generate` and `judge` share, and how they become chat messages.

use retort_core::{Message, Record, Role};
use serde::Deserialize;

use crate::runtime::StageCx;
use crate::steps::{CheckCx, TemplateSource};

/// One message of a `messages:` list; `content` is a template.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageTemplate {
    /// `system`, `user` or `assistant`.
    pub role: Role,
    /// The message text, a Jinja template over the record's fields.
    pub content: String,
}

/// Read access to the prompt settings of a step config.
pub(crate) trait PromptSettings {
    fn prompt(&self) -> Option<&str>;
    fn template_file(&self) -> Option<&str>;
    fn system(&self) -> Option<&str>;
    fn messages(&self) -> &[MessageTemplate];
    fn messages_from(&self) -> Option<&str>;
}

/// The templates a prompt declares.
pub(crate) fn templates(settings: &dyn PromptSettings) -> Vec<(String, TemplateSource)> {
    let mut templates = Vec::new();
    if let Some(prompt) = settings.prompt() {
        templates.push(("prompt".to_string(), TemplateSource::Inline(prompt.to_string())));
    }
    if let Some(file) = settings.template_file() {
        templates.push(("prompt".to_string(), TemplateSource::File(file.to_string())));
    }
    if let Some(system) = settings.system() {
        templates.push(("system".to_string(), TemplateSource::Inline(system.to_string())));
    }
    for (index, message) in settings.messages().iter().enumerate() {
        templates.push((format!("messages[{index}].content"), TemplateSource::Inline(message.content.clone())));
    }
    templates
}

/// Checks a step's `grammar`: a GBNF grammar needs its `root` rule (llama.cpp checks the rest
/// when it compiles it).
pub(crate) fn check_grammar(cx: &mut CheckCx<'_>, grammar: &str) {
    let has_root = grammar.lines().any(|line| {
        line.trim_start().strip_prefix("root").is_some_and(|rest| rest.trim_start().starts_with("::="))
    });
    if !has_root {
        cx.error("grammar", "expected a GBNF grammar with a `root ::= ...` rule, found none");
    }
}

/// Checks that exactly one way of giving the prompt is used and its templates are sound.
pub(crate) fn check(settings: &dyn PromptSettings, cx: &mut CheckCx<'_>, extra: &[&str]) {
    let given = [settings.prompt().is_some(), settings.template_file().is_some(), !settings.messages().is_empty()];
    match given.iter().filter(|given| **given).count() {
        0 if settings.messages_from().is_none() => {
            cx.error("", "no prompt; give `prompt`, `template_file`, `messages` or `messages_from`")
        }
        0 | 1 => {}
        _ => cx.error("", "give only one of `prompt`, `template_file` and `messages`"),
    }
    if let Some(file) = settings.template_file() {
        cx.file("template_file", file);
    }
    if settings.prompt().is_some() || settings.template_file().is_some() {
        cx.template("prompt", extra);
    }
    if settings.system().is_some() {
        cx.template("system", extra);
    }
    for index in 0..settings.messages().len() {
        cx.template(&format!("messages[{index}].content"), extra);
    }
    if let Some(field) = settings.messages_from() {
        cx.read("messages_from", field);
    }
}

/// Renders the messages for one record. `context` overrides the record's own context.
pub(crate) fn render(
    settings: &dyn PromptSettings,
    record: &Record,
    cx: &StageCx,
    context: Option<minijinja::Value>,
) -> Result<Vec<Message>, String> {
    let templates = &cx.run.templates;
    let context = context.unwrap_or_else(|| templates.context(record, cx.round));
    let render = |key: &str| {
        let name = format!("{}.{key}", cx.step);
        templates.render_with(&name, context.clone()).map_err(|error| format!("template `{key}` failed: {error}"))
    };
    let mut messages = Vec::new();
    if settings.system().is_some() {
        messages.push(Message::system(render("system")?));
    }
    if let Some(field) = settings.messages_from() {
        let value = record.get(field).ok_or_else(|| format!("field `{field}` is missing"))?;
        let earlier: Vec<Message> = serde_json::from_value(value.clone())
            .map_err(|error| format!("field `{field}` is not a list of chat messages: {error}"))?;
        messages.extend(earlier);
    }
    for (index, message) in settings.messages().iter().enumerate() {
        messages.push(Message::new(message.role, render(&format!("messages[{index}].content"))?));
    }
    if settings.prompt().is_some() || settings.template_file().is_some() {
        messages.push(Message::user(render("prompt")?));
    }
    Ok(messages)
}

macro_rules! impl_prompt_settings {
    ($config:ty) => {
        impl $crate::steps::prompt::PromptSettings for $config {
            fn prompt(&self) -> Option<&str> {
                self.prompt.as_deref()
            }
            fn template_file(&self) -> Option<&str> {
                self.template_file.as_deref()
            }
            fn system(&self) -> Option<&str> {
                self.system.as_deref()
            }
            fn messages(&self) -> &[$crate::steps::prompt::MessageTemplate] {
                &self.messages
            }
            fn messages_from(&self) -> Option<&str> {
                self.messages_from.as_deref()
            }
        }
    };
}
pub(crate) use impl_prompt_settings;

/// Accepts `stop: "x"` as well as `stop: ["x", "y"]`.
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}
