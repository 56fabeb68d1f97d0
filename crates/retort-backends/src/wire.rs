//! The OpenAI chat-completions wire format, both directions.
//!
//! [`OutgoingRequest`] borrows from a [`ChatRequest`] so the client serializes the body once
//! with no copies; [`IncomingRequest`] is what a server (the mock) parses; the response
//! types serve both the client (parsing) and the mock (writing).

use std::borrow::Cow;

use retort_core::{ChatRequest, Choice, FinishReason, Message, Role, SamplingParams, TokenLogprob, ToolCall, ToolSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body of `POST /chat/completions`, borrowed from a [`ChatRequest`].
#[derive(Debug, Serialize)]
pub struct OutgoingRequest<'a> {
    /// The model name.
    pub model: &'a str,
    /// The conversation.
    pub messages: Vec<OutgoingMessage<'a>>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Token budget of the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Stop strings.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub stop: &'a [String],
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Choices wanted (omitted when 1, or 0 as `SamplingParams::default()` leaves it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Whether to return token log-probabilities.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    /// Alternatives per token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u8>,
    /// Structured output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat<'a>>,
    /// Function tools.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<OutgoingTool<'a>>,
    /// A GBNF grammar, as llama.cpp's server takes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grammar: Option<&'a str>,
    /// A GBNF grammar, as vLLM takes it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guided_grammar: Option<&'a str>,
    /// Continue the last (assistant) message instead of starting a new turn: vLLM's and
    /// SGLang's field (llama.cpp's server continues a final assistant message by itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continue_final_message: Option<bool>,
    /// `false` with `continue_final_message` (vLLM asks for both).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_generation_prompt: Option<bool>,
    /// Extra fields from the config, merged into the body.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub extra: Option<&'a Map<String, Value>>,
}

/// The fields [`OutgoingRequest`] writes itself; `extra_body` may not repeat them.
pub const STANDARD_FIELDS: &[&str] = &[
    "model",
    "messages",
    "temperature",
    "top_p",
    "max_tokens",
    "stop",
    "seed",
    "n",
    "logprobs",
    "top_logprobs",
    "response_format",
    "tools",
    "grammar",
    "guided_grammar",
    "continue_final_message",
    "add_generation_prompt",
];

/// The body field a server reads a GBNF grammar from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrammarField {
    /// `grammar` (llama.cpp's server).
    Grammar,
    /// `guided_grammar` (vLLM).
    GuidedGrammar,
}

impl<'a> OutgoingRequest<'a> {
    /// The wire body for `request` sent to `model`.
    pub fn new(model: &'a str, request: &'a ChatRequest, extra: Option<&'a Map<String, Value>>) -> Self {
        OutgoingRequest::with_grammar(model, request, extra, None)
    }

    /// The wire body, with the request's grammar (if any) in `field`; without a field the
    /// grammar is not sent.
    pub fn with_grammar(
        model: &'a str,
        request: &'a ChatRequest,
        extra: Option<&'a Map<String, Value>>,
        field: Option<GrammarField>,
    ) -> Self {
        let params = &request.params;
        let grammar = request.grammar.as_deref();
        OutgoingRequest {
            model,
            messages: request.messages.iter().map(OutgoingMessage::from).collect(),
            temperature: params.temperature,
            top_p: params.top_p,
            max_tokens: params.max_tokens,
            stop: &params.stop,
            seed: params.seed,
            n: (params.n > 1).then_some(params.n),
            logprobs: params.logprobs.map(|_| true),
            top_logprobs: params.logprobs,
            response_format: request.json_schema.as_ref().map(|schema| ResponseFormat {
                kind: "json_schema",
                json_schema: JsonSchemaFormat { name: "output", schema, strict: true },
            }),
            tools: request.tools.iter().map(|tool| OutgoingTool { kind: "function", function: tool }).collect(),
            grammar: grammar.filter(|_| field == Some(GrammarField::Grammar)),
            guided_grammar: grammar.filter(|_| field == Some(GrammarField::GuidedGrammar)),
            continue_final_message: request.continue_final.then_some(true),
            add_generation_prompt: request.continue_final.then_some(false),
            extra,
        }
    }
}

/// One message of an [`OutgoingRequest`].
#[derive(Debug, Serialize)]
pub struct OutgoingMessage<'a> {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: &'static str,
    /// The text; `null` for an assistant message that only calls tools.
    pub content: Option<&'a str>,
    /// Tool calls an assistant message made.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<WireToolCall<'a>>,
    /// The call a tool message answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<&'a str>,
}

impl<'a> From<&'a Message> for OutgoingMessage<'a> {
    fn from(message: &'a Message) -> Self {
        let content = if message.content.is_empty() && !message.tool_calls.is_empty() { None } else { Some(message.content.as_str()) };
        OutgoingMessage {
            role: message.role.as_str(),
            content,
            tool_calls: message.tool_calls.iter().map(WireToolCall::from).collect(),
            tool_call_id: message.tool_call_id.as_deref(),
        }
    }
}

/// `response_format` for structured output.
#[derive(Debug, Serialize)]
pub struct ResponseFormat<'a> {
    /// Always `json_schema`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The schema and its name.
    pub json_schema: JsonSchemaFormat<'a>,
}

/// The `json_schema` member of [`ResponseFormat`].
#[derive(Debug, Serialize)]
pub struct JsonSchemaFormat<'a> {
    /// The schema's name (`output`).
    pub name: &'static str,
    /// The JSON schema.
    pub schema: &'a Value,
    /// Ask for strict adherence.
    pub strict: bool,
}

/// One entry of `tools`.
#[derive(Debug, Serialize)]
pub struct OutgoingTool<'a> {
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Name, description and parameters.
    pub function: &'a ToolSpec,
}

/// A tool call on the wire (`{"id","type":"function","function":{"name","arguments"}}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireToolCall<'a> {
    /// The call's id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Always `function`.
    #[serde(rename = "type", default = "function_kind", borrow)]
    pub kind: Cow<'a, str>,
    /// The function called.
    #[serde(borrow)]
    pub function: WireFunction<'a>,
}

fn function_kind() -> Cow<'static, str> {
    Cow::Borrowed("function")
}

/// The `function` member of a [`WireToolCall`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireFunction<'a> {
    /// The function's name.
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    /// The arguments as JSON text.
    #[serde(borrow)]
    pub arguments: Cow<'a, str>,
}

impl<'a> From<&'a ToolCall> for WireToolCall<'a> {
    fn from(call: &'a ToolCall) -> Self {
        WireToolCall {
            id: Cow::Borrowed(&call.id),
            kind: Cow::Borrowed("function"),
            function: WireFunction { name: Cow::Borrowed(&call.name), arguments: Cow::Borrowed(&call.arguments) },
        }
    }
}

impl From<WireToolCall<'_>> for ToolCall {
    fn from(call: WireToolCall<'_>) -> Self {
        ToolCall { id: call.id.into_owned(), name: call.function.name.into_owned(), arguments: call.function.arguments.into_owned() }
    }
}

/// A chat-completions response body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireResponse<'a> {
    /// The completion's id.
    #[serde(default, borrow)]
    pub id: Cow<'a, str>,
    /// `chat.completion`.
    #[serde(default, borrow)]
    pub object: Cow<'a, str>,
    /// Unix seconds.
    #[serde(default)]
    pub created: u64,
    /// The model that answered.
    #[serde(default, borrow)]
    pub model: Cow<'a, str>,
    /// The answers.
    #[serde(borrow)]
    pub choices: Vec<WireChoice<'a>>,
    /// Token counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<WireUsage>,
}

/// One choice of a [`WireResponse`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireChoice<'a> {
    /// Position among the choices.
    #[serde(default)]
    pub index: u32,
    /// The answer.
    #[serde(borrow)]
    pub message: WireMessage<'a>,
    /// `stop`, `length`, `tool_calls`, ...
    #[serde(default, borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
    /// Token log-probabilities, when asked for.
    #[serde(default, borrow)]
    pub logprobs: Option<WireLogprobs<'a>>,
}

/// The `message` of a [`WireChoice`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMessage<'a> {
    /// `assistant`.
    #[serde(default, borrow)]
    pub role: Cow<'a, str>,
    /// The text (may be `null` with tool calls).
    #[serde(default, borrow)]
    pub content: Option<Cow<'a, str>>,
    /// Tool calls made.
    #[serde(default, skip_serializing_if = "Vec::is_empty", borrow)]
    pub tool_calls: Vec<WireToolCall<'a>>,
}

/// The `logprobs` of a [`WireChoice`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireLogprobs<'a> {
    /// One entry per generated token.
    #[serde(default, borrow)]
    pub content: Option<Vec<WireTokenLogprob<'a>>>,
}

/// One token's log-probability on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireTokenLogprob<'a> {
    /// The token's text.
    #[serde(borrow)]
    pub token: Cow<'a, str>,
    /// Its log-probability.
    pub logprob: f64,
    /// The most likely alternatives.
    #[serde(default, borrow)]
    pub top_logprobs: Vec<WireTopLogprob<'a>>,
}

/// An alternative token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireTopLogprob<'a> {
    /// The token's text.
    #[serde(borrow)]
    pub token: Cow<'a, str>,
    /// Its log-probability.
    pub logprob: f64,
}

/// Token counts on the wire.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct WireUsage {
    /// Tokens read.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens written.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum.
    #[serde(default)]
    pub total_tokens: u64,
    /// How the prompt tokens split (a server with a prompt cache says how many it reused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<WirePromptDetails>,
}

/// The prompt tokens' details on the wire.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct WirePromptDetails {
    /// Prompt tokens taken from the server's cache.
    #[serde(default)]
    pub cached_tokens: u64,
}

/// Maps a wire `finish_reason` to a [`FinishReason`].
pub fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("stop") | Some("eos") | None => FinishReason::Stop,
        Some("length") => FinishReason::Length,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some(_) => FinishReason::Other,
    }
}

/// The wire name of a [`FinishReason`].
pub fn finish_reason_name(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
        FinishReason::Other => "other",
    }
}

impl WireChoice<'_> {
    /// Converts to a [`Choice`].
    pub fn into_choice(self) -> Choice {
        let logprobs = self.logprobs.and_then(|logprobs| logprobs.content).map(|tokens| {
            tokens
                .into_iter()
                .map(|token| TokenLogprob {
                    token: token.token.into_owned(),
                    logprob: token.logprob,
                    top: token.top_logprobs.into_iter().map(|top| (top.token.into_owned(), top.logprob)).collect(),
                })
                .collect()
        });
        Choice {
            text: self.message.content.map(Cow::into_owned).unwrap_or_default(),
            tool_calls: self.message.tool_calls.into_iter().map(ToolCall::from).collect(),
            finish_reason: finish_reason(self.finish_reason.as_deref()),
            logprobs,
        }
    }

    /// The wire form of a [`Choice`] at position `index`.
    pub fn from_choice(index: u32, choice: &Choice) -> WireChoice<'_> {
        WireChoice {
            index,
            message: WireMessage {
                role: Cow::Borrowed("assistant"),
                content: Some(Cow::Borrowed(&choice.text)),
                tool_calls: choice.tool_calls.iter().map(WireToolCall::from).collect(),
            },
            finish_reason: Some(Cow::Borrowed(finish_reason_name(choice.finish_reason))),
            logprobs: choice.logprobs.as_ref().map(|tokens| WireLogprobs {
                content: Some(
                    tokens
                        .iter()
                        .map(|token| WireTokenLogprob {
                            token: Cow::Borrowed(&token.token),
                            logprob: token.logprob,
                            top_logprobs: token
                                .top
                                .iter()
                                .map(|(text, logprob)| WireTopLogprob { token: Cow::Borrowed(text), logprob: *logprob })
                                .collect(),
                        })
                        .collect(),
                ),
            }),
        }
    }
}

/// A chat-completions request as a server parses it (only the fields retort uses).
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingRequest {
    /// The model asked for.
    #[serde(default)]
    pub model: String,
    /// The conversation.
    pub messages: Vec<IncomingMessage>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Nucleus mass.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Token budget (`max_completion_tokens` is read too).
    #[serde(default, alias = "max_completion_tokens")]
    pub max_tokens: Option<u32>,
    /// Stop strings: one string or a list.
    #[serde(default)]
    pub stop: Option<StopField>,
    /// Sampling seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Choices wanted.
    #[serde(default)]
    pub n: Option<u32>,
    /// Whether to return log-probabilities.
    #[serde(default)]
    pub logprobs: Option<bool>,
    /// Alternatives per token.
    #[serde(default)]
    pub top_logprobs: Option<u8>,
    /// Structured output request.
    #[serde(default)]
    pub response_format: Option<Value>,
    /// Function tools.
    #[serde(default)]
    pub tools: Vec<Value>,
    /// A GBNF grammar (llama.cpp's server's field).
    #[serde(default)]
    pub grammar: Option<String>,
    /// A GBNF grammar (vLLM's field).
    #[serde(default)]
    pub guided_grammar: Option<String>,
    /// Continue the last message (vLLM's field).
    #[serde(default)]
    pub continue_final_message: Option<bool>,
}

/// `stop`: a single string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StopField {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

/// A message as a server parses it.
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingMessage {
    /// The speaker.
    pub role: Role,
    /// Text, a list of content parts, or `null`.
    #[serde(default)]
    pub content: Option<IncomingContent>,
    /// Tool calls of an assistant message.
    #[serde(default)]
    pub tool_calls: Vec<IncomingToolCall>,
    /// The call a tool message answers.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool call as a server parses it.
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingToolCall {
    /// The call's id.
    pub id: String,
    /// The function called.
    pub function: IncomingFunction,
}

/// The `function` member of an [`IncomingToolCall`].
#[derive(Debug, Clone, Deserialize)]
pub struct IncomingFunction {
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text.
    pub arguments: String,
}

impl From<IncomingToolCall> for ToolCall {
    fn from(call: IncomingToolCall) -> Self {
        ToolCall { id: call.id, name: call.function.name, arguments: call.function.arguments }
    }
}

/// Message content: text or a list of parts (only text parts are kept).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum IncomingContent {
    /// Plain text.
    Text(String),
    /// Content parts such as `{"type":"text","text":"..."}`.
    Parts(Vec<Value>),
}

impl IncomingContent {
    /// The text, with text parts joined.
    pub fn into_text(self) -> String {
        match self {
            IncomingContent::Text(text) => text,
            IncomingContent::Parts(parts) => {
                parts.iter().filter_map(|part| part.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
            }
        }
    }
}

impl IncomingRequest {
    /// Converts to a [`ChatRequest`] (tools keep name, description and parameters).
    pub fn into_chat_request(self) -> ChatRequest {
        let messages = self
            .messages
            .into_iter()
            .map(|message| Message {
                role: message.role,
                content: message.content.map(IncomingContent::into_text).unwrap_or_default(),
                tool_calls: message.tool_calls.into_iter().map(ToolCall::from).collect(),
                tool_call_id: message.tool_call_id,
            })
            .collect();
        let json_schema = self.response_format.and_then(|format| format.get("json_schema").and_then(|inner| inner.get("schema")).cloned());
        let tools = self
            .tools
            .into_iter()
            .filter_map(|tool| tool.get("function").cloned())
            .filter_map(|function| serde_json::from_value::<ToolSpec>(function).ok())
            .collect();
        ChatRequest {
            messages,
            params: SamplingParams {
                temperature: self.temperature,
                top_p: self.top_p,
                max_tokens: self.max_tokens,
                stop: match self.stop {
                    None => Vec::new(),
                    Some(StopField::One(stop)) => vec![stop],
                    Some(StopField::Many(stops)) => stops,
                },
                seed: self.seed,
                n: self.n.unwrap_or(1).max(1),
                logprobs: if self.logprobs == Some(true) { Some(self.top_logprobs.unwrap_or(0)) } else { None },
            },
            json_schema,
            grammar: self.grammar.or(self.guided_grammar),
            tools,
            continue_final: self.continue_final_message == Some(true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_continued_answer_asks_vllm_to_continue_the_last_message() {
        let mut request = ChatRequest::from_prompt("2 + 2?");
        let plain = serde_json::to_value(OutgoingRequest::new("m", &request, None)).unwrap();
        assert!(plain.get("continue_final_message").is_none() && plain.get("add_generation_prompt").is_none(), "{plain}");
        request.messages.push(Message::assistant("```python\nprint(2 + 2)\n```\n```output\n4\n```\n"));
        request.continue_final = true;
        let body = serde_json::to_value(OutgoingRequest::new("m", &request, None)).unwrap();
        assert_eq!(body["continue_final_message"], json!(true));
        assert_eq!(body["add_generation_prompt"], json!(false));
        let incoming: IncomingRequest = serde_json::from_value(body).unwrap();
        let back = incoming.into_chat_request();
        assert!(back.continue_final);
        assert_eq!(back.messages.last().unwrap().role, Role::Assistant);
    }

    #[test]
    fn outgoing_request_maps_every_field() {
        let mut request = ChatRequest::from_prompt("hi");
        request.messages.insert(0, Message::system("be brief"));
        request.messages.push(Message {
            role: Role::Assistant,
            content: String::new(),
            tool_calls: vec![ToolCall { id: "c1".into(), name: "add".into(), arguments: "{\"a\":1}".into() }],
            tool_call_id: None,
        });
        request.messages.push(Message { role: Role::Tool, content: "2".into(), tool_calls: vec![], tool_call_id: Some("c1".into()) });
        request.params = SamplingParams {
            temperature: Some(0.5),
            top_p: Some(0.9),
            max_tokens: Some(10),
            stop: vec!["\n".into()],
            seed: Some(7),
            n: 2,
            logprobs: Some(3),
        };
        request.json_schema = Some(json!({"type": "object"}));
        request.tools = vec![ToolSpec { name: "add".into(), description: "adds".into(), parameters: json!({}) }];
        let mut extra = Map::new();
        extra.insert("repetition_penalty".into(), json!(1.1));
        let bytes = serde_json::to_vec(&OutgoingRequest::new("m", &request, Some(&extra))).unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = json!({
            "model": "m",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": null,
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "add", "arguments": "{\"a\":1}"}}]},
                {"role": "tool", "content": "2", "tool_call_id": "c1"}
            ],
            "temperature": 0.5, "top_p": 0.9, "max_tokens": 10, "stop": ["\n"], "seed": 7, "n": 2,
            "logprobs": true, "top_logprobs": 3,
            "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": {"type": "object"}, "strict": true}},
            "tools": [{"type": "function", "function": {"name": "add", "description": "adds", "parameters": {}}}],
            "repetition_penalty": 1.1
        });
        assert_eq!(body, expected);
        let minimal = serde_json::to_value(OutgoingRequest::new("m", &ChatRequest::from_prompt("x"), None)).unwrap();
        assert_eq!(minimal, json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
    }

    #[test]
    fn a_grammar_goes_to_the_field_the_server_reads_or_nowhere() {
        let mut request = ChatRequest::from_prompt("x");
        request.grammar = Some("root ::= \"A\" | \"B\"".into());
        let cases =
            [(None, None), (Some(GrammarField::Grammar), Some("grammar")), (Some(GrammarField::GuidedGrammar), Some("guided_grammar"))];
        for (field, expected) in cases {
            let body = serde_json::to_value(OutgoingRequest::with_grammar("m", &request, None, field)).unwrap();
            let sent: Vec<&str> = ["grammar", "guided_grammar"].into_iter().filter(|key| body.get(*key).is_some()).collect();
            assert_eq!(sent, expected.into_iter().collect::<Vec<_>>(), "{field:?}: {body}");
            if let Some(key) = expected {
                assert_eq!(body[key], "root ::= \"A\" | \"B\"");
                // A server (the mock) reads it back.
                let incoming: IncomingRequest = serde_json::from_value(body.clone()).unwrap();
                assert_eq!(incoming.into_chat_request().grammar, request.grammar);
            }
        }
    }

    #[test]
    fn incoming_request_round_trips_through_outgoing() {
        let mut request = ChatRequest::from_prompt("hello");
        request.params.n = 3;
        request.params.seed = Some(5);
        request.params.stop = vec!["x".into()];
        request.params.logprobs = Some(2);
        request.params.max_tokens = Some(4);
        request.json_schema = Some(json!({"type": "string"}));
        let body = serde_json::to_vec(&OutgoingRequest::new("m", &request, None)).unwrap();
        let parsed: IncomingRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.into_chat_request(), request);
        let parts: IncomingRequest = serde_json::from_value(json!({
            "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}],
            "stop": "z"
        }))
        .unwrap();
        let parts = parts.into_chat_request();
        assert_eq!(parts.messages[0].content, "ab");
        assert_eq!(parts.params.stop, ["z"]);
    }

    #[test]
    fn response_parses_tool_calls_logprobs_and_finish_reasons() {
        let body = json!({
            "id": "x", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [
                {"index": 1, "message": {"role": "assistant", "content": null,
                  "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                 "finish_reason": "tool_calls"},
                {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "length",
                 "logprobs": {"content": [{"token": "hi", "logprob": -0.5, "bytes": [104, 105],
                   "top_logprobs": [{"token": "hi", "logprob": -0.5}, {"token": "ho", "logprob": -1.5}]}]}}
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        })
        .to_string();
        let parsed: WireResponse<'_> = serde_json::from_str(&body).unwrap();
        let choices: Vec<Choice> = parsed.choices.into_iter().map(WireChoice::into_choice).collect();
        assert_eq!(choices[0].finish_reason, FinishReason::ToolCalls);
        assert_eq!(choices[0].tool_calls, [ToolCall { id: "c".into(), name: "f".into(), arguments: "{}".into() }]);
        assert_eq!(choices[1].finish_reason, FinishReason::Length);
        let logprobs = choices[1].logprobs.as_ref().unwrap();
        assert_eq!(logprobs[0].top, [("hi".to_owned(), -0.5), ("ho".to_owned(), -1.5)]);
        let back = serde_json::to_value(WireChoice::from_choice(0, &choices[1])).unwrap();
        assert_eq!(back["logprobs"]["content"][0]["top_logprobs"][1]["token"], "ho");
        assert_eq!(finish_reason(Some("content_filter")), FinishReason::Other);
    }

    #[test]
    fn usage_reads_the_prompt_tokens_a_server_took_from_its_cache() {
        // llama-server, vLLM and OpenAI say how many prompt tokens came from a prompt cache.
        let usage: WireUsage = serde_json::from_value(json!({
            "prompt_tokens": 120, "completion_tokens": 5, "total_tokens": 125,
            "prompt_tokens_details": {"cached_tokens": 96}
        }))
        .unwrap();
        assert_eq!((usage.prompt_tokens, usage.prompt_tokens_details.map(|details| details.cached_tokens)), (120, Some(96)));
        let plain: WireUsage = serde_json::from_value(json!({"prompt_tokens": 3, "completion_tokens": 1})).unwrap();
        assert!(plain.prompt_tokens_details.is_none());
        assert!(!serde_json::to_string(&plain).unwrap().contains("prompt_tokens_details"));
    }
}
