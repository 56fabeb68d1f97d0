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
    let has_root =
        grammar.lines().any(|line| line.trim_start().strip_prefix("root").is_some_and(|rest| rest.trim_start().starts_with("::=")));
    if !has_root {
        cx.error("grammar", "expected a GBNF grammar with a `root ::= ...` rule, found none");
    }
}

/// Checks that exactly one way of giving the prompt is used and its templates are sound.
pub(crate) fn check(settings: &dyn PromptSettings, cx: &mut CheckCx<'_>, extra: &[&str]) {
    let given = [settings.prompt().is_some(), settings.template_file().is_some(), !settings.messages().is_empty()];
    match given.iter().filter(|given| **given).count() {
        0 if settings.messages_from().is_none() => cx.error("", "no prompt; give `prompt`, `template_file`, `messages` or `messages_from`"),
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
        let earlier: Vec<Message> =
            serde_json::from_value(value.clone()).map_err(|error| format!("field `{field}` is not a list of chat messages: {error}"))?;
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

/// Declares the config struct of a step that asks a model, with the shared prompt fragment
/// (`prompt`, `template_file`, `system`, `messages`, `messages_from`, `llm`) first, and with
/// `sampling;` also the shared sampling fragment (`temperature`, `top_p`, `max_tokens`,
/// `stop`, `seed`, `grammar`, `constrain`, `allow_empty`, `allow_truncated`) last. The
/// fields stay flat (a recipe writes `temperature:` beside `prompt:`), so unknown keys are
/// still named with "did you mean", and every key's error keeps its path.
macro_rules! asks_a_model {
    ($(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::steps::prompt::asks_a_model!(@struct [$(#[$meta])*] $name [$($body)*] []);
        $crate::steps::prompt::impl_prompt_settings!($name);
    };
    (sampling; $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $crate::steps::prompt::asks_a_model!(@struct [$(#[$meta])*] $name [$($body)*] [
            /// Sampling temperature.
            #[serde(default)]
            pub temperature: Option<f32>,
            /// Nucleus sampling mass.
            #[serde(default)]
            pub top_p: Option<f32>,
            /// The most tokens to generate.
            #[serde(default)]
            pub max_tokens: Option<u32>,
            /// Strings that end the answer.
            #[serde(default, deserialize_with = "crate::steps::prompt::one_or_many")]
            pub stop: Vec<String>,
            /// A fixed seed for every request, instead of one derived per record and sample.
            #[serde(default)]
            pub seed: Option<u64>,
            /// A GBNF grammar (root rule `root`) that sampling is held to where the backend can
            /// (the local one; a server with `grammar_field`); elsewhere the prompt alone asks
            /// for the shape, and the parser reads it.
            #[serde(default)]
            pub grammar: Option<String>,
            /// Send the grammar (or `parse`'s JSON schema) where the backend holds sampling to it;
            /// on by default.
            #[serde(default)]
            pub constrain: Option<bool>,
            /// Keep an empty answer instead of failing the record.
            #[serde(default)]
            pub allow_empty: bool,
            /// Keep an answer cut by `max_tokens` (`finish_reason: length`) instead of failing the record.
            #[serde(default)]
            pub allow_truncated: bool,
        ]);
        $crate::steps::prompt::impl_prompt_settings!($name);
        impl $crate::steps::prompt::SamplingSettings for $name {
            fn sampling(&self) -> retort_core::SamplingParams {
                retort_core::SamplingParams {
                    temperature: self.temperature,
                    top_p: self.top_p,
                    max_tokens: self.max_tokens,
                    stop: self.stop.clone(),
                    seed: self.seed,
                    n: 1,
                    logprobs: None,
                }
            }

            fn accept(&self) -> $crate::steps::generate::Accept {
                $crate::steps::generate::Accept { empty: self.allow_empty, truncated: self.allow_truncated }
            }
        }
    };
    (@struct [$($meta:tt)*] $name:ident [$($body:tt)*] [$($sampling:tt)*]) => {
        $($meta)*
        pub struct $name {
            /// The user message: a Jinja template over the record's fields.
            #[serde(default)]
            pub prompt: Option<String>,
            /// The user message from a template file beside the recipe (instead of `prompt`).
            #[serde(default)]
            pub template_file: Option<String>,
            /// A system message template.
            #[serde(default)]
            pub system: Option<String>,
            /// A whole conversation of templates (instead of `prompt`), e.g. few-shot turns.
            #[serde(default)]
            pub messages: Vec<$crate::steps::prompt::MessageTemplate>,
            /// A field holding earlier chat messages to continue; `prompt` (if any) is appended.
            #[serde(default)]
            pub messages_from: Option<String>,
            /// The model, by name in `llms:`; the `llm:` block by default.
            #[serde(default)]
            pub llm: Option<String>,
            $($body)*
            $($sampling)*
        }
    };
}
pub(crate) use asks_a_model;

/// The sampling fragment's settings, as a request sends them.
pub(crate) trait SamplingSettings {
    /// The sampling parameters of one request (the seed is derived per request unless fixed).
    fn sampling(&self) -> retort_core::SamplingParams;
    /// Which damaged answers the step takes.
    fn accept(&self) -> crate::steps::generate::Accept;
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
