//! The scripted backend: answers by regex rules, deterministically, for tests.
//!
//! The conversation is rendered as `role: content` lines joined by `\n`, and the first rule
//! whose `when` regex matches it (and whose `times` budget is not spent) answers. A rule can
//! reply with a template (`$1`, `${name}` captures), pick one of several replies by the
//! request's seed, call tools, or inject a failure of a given kind. Sampling parameters are
//! honoured the way a model would: `n` choices (seeds `seed`, `seed+1`, ...), stop strings,
//! `max_tokens` (whitespace-separated words count as tokens) and log-probabilities.
//!
//! ```yaml
//! llm:
//!   backend: scripted
//!   rules:
//!     - when: "(?s)user: Translate (.*)"
//!       reply: "Translated: $1"
//!     - when: "rate this"
//!       replies: ["Score: 3", "Score: 4"]
//!     - when: "flaky"
//!       error: server
//!       times: 2
//!   default_reply: "I do not know"
//! ```

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use regex::{Captures, Regex};
use retort_core::{
    Backend, BackendError, BackendErrorKind, Capabilities, ChatRequest, ChatResponse, Choice, FinishReason, Message, Role, SamplingParams,
    ScoreRequest, ScoreResponse, TokenLogprob, ToolCall, Usage,
};
use serde::{Deserialize, Serialize};

use crate::BackendBuildError;

fn default_model() -> String {
    "scripted".to_owned()
}

/// The `llm:` block of a scripted backend.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptedConfig {
    /// The model name reported in answers and cache keys.
    #[serde(default = "default_model")]
    pub model: String,
    /// The rules, tried in order; the first that matches answers.
    #[serde(default)]
    pub rules: Vec<ScriptRule>,
    /// A YAML file holding a list of further rules, tried after `rules` (the engine should
    /// resolve a relative path against the recipe's folder before building).
    #[serde(default)]
    pub rules_file: Option<PathBuf>,
    /// The answer when no rule matches; without one, an unmatched request is a bad request.
    #[serde(default)]
    pub default_reply: Option<String>,
    /// Retries of retryable injected failures inside one `chat` call (no waiting between).
    #[serde(default)]
    pub max_retries: u32,
    /// Milliseconds each `chat` call waits before answering (to exercise concurrency).
    #[serde(default)]
    pub latency_ms: u64,
    /// Prices, as `openai` takes them, for tests of the cost the run counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<crate::Price>,
}

impl Default for ScriptedConfig {
    fn default() -> ScriptedConfig {
        ScriptedConfig {
            model: default_model(),
            rules: Vec::new(),
            rules_file: None,
            default_reply: None,
            max_retries: 0,
            latency_ms: 0,
            price: None,
        }
    }
}

/// One scripted rule.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptRule {
    /// A regex matched against the conversation rendered as `role: content` lines joined by
    /// `\n`; use `(?s)` to let `.` cross lines.
    pub when: String,
    /// The answer; may quote captures as `$1`, `${1}` or `${name}`.
    #[serde(default)]
    pub reply: Option<String>,
    /// Several answers; choice `i` of a request gets `replies[(seed + i) % len]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replies: Vec<String>,
    /// Inject a failure of this kind instead of answering: `rate_limited`, `server`,
    /// `timeout`, `connection`, `bad_request`, `context_length`, `auth`, `protocol`,
    /// `unsupported` or `worker_died`.
    #[serde(default)]
    pub error: Option<String>,
    /// The rule applies only to the first this-many requests it matches.
    #[serde(default)]
    pub times: Option<u32>,
    /// The log-probability of every token of this rule's answers (and of continuations it
    /// matches in score mode); without it a deterministic function of each token is used.
    #[serde(default)]
    pub logprob: Option<f64>,
    /// Tool calls the answer makes (arguments may quote captures).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ScriptToolCall>,
}

/// A tool call a scripted rule makes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptToolCall {
    /// The function's name.
    pub name: String,
    /// The arguments as JSON text; may quote captures.
    #[serde(default = "empty_object")]
    pub arguments: String,
}

fn empty_object() -> String {
    "{}".to_owned()
}

#[derive(Debug)]
struct CompiledRule {
    regex: Regex,
    rule: ScriptRule,
    error: Option<BackendErrorKind>,
    used: AtomicU32,
}

/// A backend that answers by rules; see the module docs.
#[derive(Debug)]
pub struct ScriptedBackend {
    model: String,
    rules: Vec<CompiledRule>,
    default_reply: Option<String>,
    max_retries: u32,
    latency: Duration,
    calls: AtomicU64,
    in_flight: AtomicUsize,
}

/// Parses an error kind name as rules write it.
pub fn parse_error_kind(name: &str) -> Option<BackendErrorKind> {
    Some(match name {
        "rate_limited" => BackendErrorKind::RateLimited,
        "server" => BackendErrorKind::Server,
        "timeout" => BackendErrorKind::Timeout,
        "connection" => BackendErrorKind::Connection,
        "bad_request" => BackendErrorKind::BadRequest,
        "context_length" => BackendErrorKind::ContextLength,
        "auth" => BackendErrorKind::Auth,
        "protocol" => BackendErrorKind::Protocol,
        "malformed" => BackendErrorKind::Malformed,
        "unsupported" => BackendErrorKind::Unsupported,
        "worker_died" => BackendErrorKind::WorkerDied,
        _ => return None,
    })
}

/// Renders a conversation the way rules see it: `role: content` lines joined by `\n`.
pub fn render_conversation(messages: &[Message]) -> String {
    let mut rendered = String::with_capacity(messages.iter().map(|m| m.content.len() + 12).sum());
    for (index, message) in messages.iter().enumerate() {
        if index > 0 {
            rendered.push('\n');
        }
        rendered.push_str(message.role.as_str());
        rendered.push_str(": ");
        rendered.push_str(&message.content);
    }
    rendered
}

/// A deterministic log-probability for a token, in `[-2.05, -0.05)`.
pub fn token_logprob(token: &str) -> f64 {
    let fraction = (fnv1a(token.as_bytes()) % 10_000) as f64 / 10_000.0;
    -(0.05 + 2.0 * fraction)
}

/// FNV-1a, 64 bits: a fast, stable hash for deterministic choices.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Shapes a raw answer the way a model would honour the sampling parameters: cut at the
/// first stop string, cut to `max_tokens` words (finish `length`), log-probabilities per
/// word (with `logprob` or [`token_logprob`]) when asked for.
pub fn shape_choice(text: &str, params: &SamplingParams, logprob: Option<f64>, tool_calls: Vec<ToolCall>) -> Choice {
    let mut text = text;
    let mut finish_reason = if tool_calls.is_empty() { FinishReason::Stop } else { FinishReason::ToolCalls };
    if let Some(cut) = params.stop.iter().filter(|stop| !stop.is_empty()).filter_map(|stop| text.find(stop.as_str())).min() {
        text = &text[..cut];
    }
    let mut text = text.to_owned();
    if let Some(max_tokens) = params.max_tokens {
        let max_tokens = max_tokens as usize;
        if text.split_whitespace().nth(max_tokens).is_some() {
            text = text.split_whitespace().take(max_tokens).collect::<Vec<_>>().join(" ");
            finish_reason = FinishReason::Length;
        }
    }
    let logprobs = params.logprobs.map(|top| {
        text.split_whitespace()
            .map(|word| {
                let value = logprob.unwrap_or_else(|| token_logprob(word));
                let top = (0..top as usize)
                    .map(|rank| if rank == 0 { (word.to_owned(), value) } else { (format!("{word}~{rank}"), value - rank as f64) })
                    .collect();
                TokenLogprob { token: word.to_owned(), logprob: value, top }
            })
            .collect()
    });
    Choice { text, tool_calls, finish_reason, logprobs }
}

impl ScriptedConfig {
    /// Every problem of the inline rules (a `when` that is not a regex, an unknown error
    /// kind), found without building the backend. The rules file is read at build time.
    pub fn problems(&self) -> Vec<retort_core::ConfigProblem> {
        let mut problems: Vec<retort_core::ConfigProblem> = self
            .price
            .iter()
            .flat_map(crate::Price::problems)
            .map(|(key, message)| retort_core::ConfigProblem::new(key, message))
            .collect();
        for (index, rule) in self.rules.iter().enumerate() {
            if let Err(error) = Regex::new(&rule.when) {
                problems.push(retort_core::ConfigProblem::new(
                    format!("rules[{index}].when"),
                    format!("invalid regex {:?}: {error}", rule.when),
                ));
            }
            if let Some(name) = &rule.error {
                if parse_error_kind(name).is_none() {
                    problems.push(retort_core::ConfigProblem::new(
                        format!("rules[{index}].error"),
                        format!("unknown error kind {name:?}; expected one of rate_limited, server, timeout, connection, bad_request, context_length, auth, protocol, malformed, unsupported, worker_died"),
                    ));
                }
            }
        }
        problems
    }
}

impl ScriptedBackend {
    /// Builds the backend, compiling every rule (and reading `rules_file` if set).
    pub fn new(config: ScriptedConfig) -> Result<ScriptedBackend, BackendBuildError> {
        let mut rules = config.rules;
        if let Some(path) = &config.rules_file {
            let text = std::fs::read_to_string(path)
                .map_err(|error| BackendBuildError::RulesFile { path: path.clone(), error: error.to_string() })?;
            let more: Vec<ScriptRule> = serde_yaml::from_str(&text)
                .map_err(|error| BackendBuildError::RulesFile { path: path.clone(), error: error.to_string() })?;
            rules.extend(more);
        }
        let rules = rules
            .into_iter()
            .enumerate()
            .map(|(index, rule)| {
                let regex = Regex::new(&rule.when).map_err(|error| BackendBuildError::InvalidRegex {
                    index,
                    pattern: rule.when.clone(),
                    error: error.to_string(),
                })?;
                let error = match &rule.error {
                    None => None,
                    Some(name) => {
                        Some(parse_error_kind(name).ok_or_else(|| BackendBuildError::UnknownErrorKind { index, found: name.clone() })?)
                    }
                };
                Ok(CompiledRule { regex, rule, error, used: AtomicU32::new(0) })
            })
            .collect::<Result<Vec<_>, BackendBuildError>>()?;
        Ok(ScriptedBackend {
            model: config.model,
            rules,
            default_reply: config.default_reply,
            max_retries: config.max_retries,
            latency: Duration::from_millis(config.latency_ms),
            calls: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    /// A backend with these rules and otherwise default settings.
    pub fn from_rules(rules: Vec<ScriptRule>) -> Result<ScriptedBackend, BackendBuildError> {
        ScriptedBackend::new(ScriptedConfig { rules, ..ScriptedConfig::default() })
    }

    /// How many `chat` calls this backend has received.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Answers by the rules, at once: `None` when no rule matches and there is no default
    /// reply (the mock server then falls back to its own answer). Spends `times` budgets.
    pub fn respond(&self, request: &ChatRequest) -> Option<Result<ChatResponse, BackendError>> {
        let rendered = render_conversation(&request.messages);
        let mut matched: Option<(usize, &CompiledRule, Captures<'_>)> = None;
        for (index, compiled) in self.rules.iter().enumerate() {
            let Some(captures) = compiled.regex.captures(&rendered) else {
                continue;
            };
            if let Some(times) = compiled.rule.times {
                if compiled.used.fetch_add(1, Ordering::Relaxed) >= times {
                    continue;
                }
            }
            matched = Some((index, compiled, captures));
            break;
        }
        let n = request.params.n.max(1);
        let seed = request.params.seed.unwrap_or(0);
        let mut choices = Vec::with_capacity(n as usize);
        match matched {
            Some((index, compiled, captures)) => {
                if let Some(kind) = compiled.error {
                    let name = compiled.rule.error.as_deref().unwrap_or("error");
                    return Some(Err(BackendError::new(
                        kind,
                        format!("scripted rule {index} (`{}`) injected a {name} failure", compiled.rule.when),
                    )));
                }
                let rule = &compiled.rule;
                for sample in 0..u64::from(n) {
                    let template = if rule.replies.is_empty() {
                        rule.reply.as_deref().unwrap_or("")
                    } else {
                        let pick = seed.wrapping_add(sample) % rule.replies.len() as u64;
                        &rule.replies[pick as usize]
                    };
                    let mut text = String::with_capacity(template.len() + 16);
                    captures.expand(template, &mut text);
                    let tool_calls = rule
                        .tool_calls
                        .iter()
                        .enumerate()
                        .map(|(position, call)| {
                            let mut arguments = String::new();
                            captures.expand(&call.arguments, &mut arguments);
                            ToolCall { id: format!("call_{sample}_{position}"), name: call.name.clone(), arguments }
                        })
                        .collect();
                    choices.push(shape_choice(&text, &request.params, rule.logprob, tool_calls));
                }
            }
            None => {
                let reply = self.default_reply.as_deref()?;
                for _ in 0..n {
                    choices.push(shape_choice(reply, &request.params, None, Vec::new()));
                }
            }
        }
        let usage = Usage {
            prompt_tokens: request.messages.iter().map(|message| word_count(&message.content)).sum(),
            completion_tokens: choices.iter().map(|choice| word_count(&choice.text)).sum(),
            cached_tokens: 0,
        };
        Some(Ok(ChatResponse { choices, usage, model: self.model.clone() }))
    }

    fn respond_or_reject(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        self.respond(request).unwrap_or_else(|| {
            let last_user =
                request.messages.iter().rev().find(|message| message.role == Role::User).map_or("", |message| message.content.as_str());
            Err(BackendError::new(
                BackendErrorKind::BadRequest,
                format!(
                    "no scripted rule matched the conversation and there is no default_reply; last user message: {:?}",
                    truncate(last_user, 120)
                ),
            ))
        })
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Backend for ScriptedBackend {
    fn kind(&self) -> &str {
        "scripted"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { n: true, logprobs: true, score: true, json_schema: true, grammar: false, tools: true }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _in_flight = InFlight(&self.in_flight);
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.respond_or_reject(request) {
                Err(error) if error.is_retryable() && attempts <= self.max_retries => continue,
                Err(mut error) if attempts > 1 => {
                    error.message = format!("{} (after {attempts} attempts)", error.message);
                    return Err(error);
                }
                other => return other,
            }
        }
    }

    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        let mut rendered = if request.raw { request.raw_prompt() } else { render_conversation(&request.messages) + "\nassistant: " };
        rendered.push_str(&request.continuation);
        let rule_logprob = self
            .rules
            .iter()
            .filter(|compiled| compiled.rule.logprob.is_some())
            .find(|compiled| compiled.regex.is_match(&rendered))
            .and_then(|compiled| compiled.rule.logprob);
        let tokens = request
            .continuation
            .split_whitespace()
            .map(|word| TokenLogprob {
                token: word.to_owned(),
                logprob: rule_logprob.unwrap_or_else(|| token_logprob(word)),
                top: Vec::new(),
            })
            .collect();
        Ok(ScoreResponse { tokens })
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(when: &str, reply: &str) -> ScriptRule {
        ScriptRule { when: when.into(), reply: Some(reply.into()), ..ScriptRule::default() }
    }

    fn backend(rules: Vec<ScriptRule>) -> ScriptedBackend {
        ScriptedBackend::from_rules(rules).expect("valid rules")
    }

    #[tokio::test]
    async fn first_matching_rule_answers_with_captures() {
        let backend = backend(vec![
            rule(r"(?s)system: (?<persona>\w+).*user: translate (\w+)", "${persona} says ${2}!"),
            rule("translate", "never reached"),
        ]);
        let mut request = ChatRequest::from_prompt("translate cheese");
        request.messages.insert(0, Message::system("pirate"));
        let answer = backend.chat(&request).await.unwrap();
        assert_eq!(answer.choices[0].text, "pirate says cheese!");
        assert_eq!(answer.model, "scripted");
        assert_eq!(answer.usage, Usage { prompt_tokens: 3, completion_tokens: 3, cached_tokens: 0 });
        assert_eq!(backend.calls(), 1);
    }

    #[tokio::test]
    async fn replies_are_picked_by_seed_and_n_uses_consecutive_seeds() {
        let backend =
            backend(vec![ScriptRule { when: "pick".into(), replies: vec!["a".into(), "b".into(), "c".into()], ..ScriptRule::default() }]);
        let mut request = ChatRequest::from_prompt("pick one");
        request.params.seed = Some(4);
        request.params.n = 4;
        let texts: Vec<String> = backend.chat(&request).await.unwrap().choices.into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["b", "c", "a", "b"]);
    }

    #[tokio::test]
    async fn times_limits_a_rule_and_injected_errors_have_their_kind() {
        let backend = backend(vec![
            ScriptRule { when: "flaky".into(), error: Some("server".into()), times: Some(2), ..ScriptRule::default() },
            rule("flaky", "fine"),
        ]);
        let request = ChatRequest::from_prompt("flaky");
        for _ in 0..2 {
            let error = backend.chat(&request).await.unwrap_err();
            assert_eq!(error.kind, BackendErrorKind::Server);
        }
        assert_eq!(backend.chat(&request).await.unwrap().choices[0].text, "fine");
    }

    #[tokio::test]
    async fn retries_absorb_transient_injected_failures() {
        let config = ScriptedConfig {
            rules: vec![
                ScriptRule { when: "x".into(), error: Some("rate_limited".into()), times: Some(2), ..ScriptRule::default() },
                rule("x", "ok"),
            ],
            max_retries: 2,
            ..ScriptedConfig::default()
        };
        let backend = ScriptedBackend::new(config).unwrap();
        assert_eq!(backend.chat(&ChatRequest::from_prompt("x")).await.unwrap().choices[0].text, "ok");
        let config = ScriptedConfig {
            rules: vec![ScriptRule { when: "x".into(), error: Some("timeout".into()), ..ScriptRule::default() }],
            max_retries: 2,
            ..ScriptedConfig::default()
        };
        let error = ScriptedBackend::new(config).unwrap().chat(&ChatRequest::from_prompt("x")).await.unwrap_err();
        assert_eq!(error.kind, BackendErrorKind::Timeout);
        assert!(error.message.contains("after 3 attempts"), "{}", error.message);
    }

    #[tokio::test]
    async fn unmatched_requests_are_bad_requests_quoting_the_last_user_message() {
        let backend = backend(vec![rule("^never$", "x")]);
        let long = format!("please help {}", "very ".repeat(100));
        let error = backend.chat(&ChatRequest::from_prompt(long)).await.unwrap_err();
        assert_eq!(error.kind, BackendErrorKind::BadRequest);
        assert!(error.message.contains("no scripted rule matched"));
        assert!(error.message.contains("please help very"));
        assert!(error.message.len() < 300, "truncated: {}", error.message.len());
    }

    #[tokio::test]
    async fn stop_max_tokens_and_logprobs_are_honoured() {
        let cases: [(&[&str], Option<u32>, &str, FinishReason); 4] = [
            (&[], None, "one two three four. five six", FinishReason::Stop),
            (&["."], None, "one two three four", FinishReason::Stop),
            (&["five", "two"], None, "one ", FinishReason::Stop),
            (&[], Some(3), "one two three", FinishReason::Length),
        ];
        let backend = backend(vec![ScriptRule {
            when: "count".into(),
            reply: Some("one two three four. five six".into()),
            logprob: Some(-0.25),
            ..ScriptRule::default()
        }]);
        for (stop, max_tokens, expected, finish) in cases {
            let mut request = ChatRequest::from_prompt("count");
            request.params.stop = stop.iter().map(|s| s.to_string()).collect();
            request.params.max_tokens = max_tokens;
            request.params.logprobs = Some(2);
            let choice = backend.chat(&request).await.unwrap().choices.remove(0);
            assert_eq!((choice.text.as_str(), choice.finish_reason), (expected, finish));
            let logprobs = choice.logprobs.unwrap();
            assert_eq!(logprobs.len(), expected.split_whitespace().count());
            assert!(logprobs.iter().all(|token| token.logprob == -0.25 && token.top.len() == 2));
        }
    }

    #[tokio::test]
    async fn tool_calls_and_default_reply() {
        let backend = ScriptedBackend::new(ScriptedConfig {
            rules: vec![ScriptRule {
                when: r"add (\d+)".into(),
                tool_calls: vec![ScriptToolCall { name: "add".into(), arguments: r#"{"a": $1}"#.into() }],
                ..ScriptRule::default()
            }],
            default_reply: Some("default".into()),
            ..ScriptedConfig::default()
        })
        .unwrap();
        let choice = backend.chat(&ChatRequest::from_prompt("add 5")).await.unwrap().choices.remove(0);
        assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
        assert_eq!(choice.tool_calls[0].arguments, r#"{"a": 5}"#);
        assert_eq!(backend.chat(&ChatRequest::from_prompt("hello")).await.unwrap().choices[0].text, "default");
    }

    #[tokio::test]
    async fn score_uses_rule_logprobs_else_the_token_function() {
        let backend = backend(vec![ScriptRule { when: "assistant: yes".into(), logprob: Some(-0.1), ..ScriptRule::default() }]);
        let messages = vec![Message::user("is it?")];
        let yes = backend.score(&ScoreRequest::chat(messages.clone(), "yes it is")).await.unwrap();
        assert_eq!(yes.tokens.len(), 3);
        assert!((yes.total() + 0.3).abs() < 1e-9);
        let no = backend.score(&ScoreRequest::chat(messages, "no way")).await.unwrap();
        assert_eq!(no.tokens[0].logprob, token_logprob("no"));
        assert!(no.tokens.iter().all(|token| token.logprob < 0.0));
    }

    #[test]
    fn bad_rules_are_build_errors() {
        let error = ScriptedBackend::from_rules(vec![rule("(", "x")]).unwrap_err();
        assert!(error.to_string().contains("rule 0 has an invalid `when` regex"), "{error}");
        let error = ScriptedBackend::from_rules(vec![ScriptRule { when: "x".into(), error: Some("boom".into()), ..ScriptRule::default() }])
            .unwrap_err();
        assert!(error.to_string().contains("rule 0 has error \"boom\""), "{error}");
    }

    #[test]
    fn config_deserializes_from_yaml_and_rejects_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rules.yaml");
        std::fs::write(&file, "- when: later\n  reply: from file\n").unwrap();
        let yaml = format!("model: m\nrules:\n  - when: hi\n    reply: hello\n    times: 1\nrules_file: {}\n", file.display());
        let config: ScriptedConfig = serde_yaml::from_str(&yaml).unwrap();
        let backend = ScriptedBackend::new(config).unwrap();
        assert_eq!(backend.rules.len(), 2);
        assert_eq!(backend.model(), "m");
        assert!(serde_yaml::from_str::<ScriptedConfig>("modle: m\n").is_err());
        assert!(serde_yaml::from_str::<ScriptRule>("when: x\nreplly: y\n").is_err());
    }
}
