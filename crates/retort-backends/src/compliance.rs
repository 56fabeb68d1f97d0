//! The compliance suite: the same behavioural checks run against any [`Backend`].
//!
//! Every backend (`openai`, `scripted`, `local`) must pass [`check_backend`]. The checks use
//! only the public trait, so they say what the engine may rely on:
//!
//! | check | what must hold |
//! |---|---|
//! | `basic` | one choice, non-empty text, the model named, `in_flight()` back to 0 after |
//! | `n` | `n: 3` gives exactly 3 choices (skipped when `capabilities().n` is false) |
//! | `seed` | the same request with the same seed gives the same answers (when `deterministic`) |
//! | `stop` | a stop string taken from an answer never appears in the answer; when deterministic, the answer is exactly the text before it |
//! | `max_tokens` | `max_tokens: 3` shortens a longer answer, finish reason `length`, usage at most 3 |
//! | `logprobs` | asked for with `capabilities().logprobs`, every choice has non-positive logprobs with at most `k` alternatives; without the capability, an `unsupported` error |
//! | `score` | with `capabilities().score`, non-positive token logprobs; else an `unsupported` error |
//! | `concurrency` | 16 requests at once all succeed |
//! | `failure` | a request known to fail (see [`ComplianceOptions::failing`]) returns `Err` of the expected kind after the backend's own retries |
//!
//! ```no_run
//! # async fn demo(backend: std::sync::Arc<dyn retort_core::Backend>) {
//! use retort_backends::compliance::{check_backend, ComplianceOptions};
//! let report = check_backend(backend.as_ref(), &ComplianceOptions::default()).await.unwrap();
//! assert!(report.skipped.is_empty());
//! # }
//! ```

use retort_core::{Backend, BackendErrorKind, ChatRequest, ChatResponse, FinishReason, Message, ScoreRequest};

/// What the suite may assume about the backend under test.
#[derive(Debug, Clone)]
pub struct ComplianceOptions {
    /// A prompt whose answer is several words long (at least five) and contains no refusal.
    pub prompt: String,
    /// Whether the same request with the same seed always yields the same answer (true for
    /// scripted, the mock and greedy local decoding).
    pub deterministic: bool,
    /// A request that fails even after the backend's retries, with the kind it must report;
    /// `None` skips the `failure` check.
    pub failing: Option<(ChatRequest, BackendErrorKind)>,
}

impl Default for ComplianceOptions {
    fn default() -> ComplianceOptions {
        ComplianceOptions {
            prompt: "Write three sentences about the sea, its waves and its colours.".to_owned(),
            deterministic: true,
            failing: None,
        }
    }
}

/// Which checks passed and which were skipped (with why).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ComplianceReport {
    /// Names of the checks that passed.
    pub passed: Vec<&'static str>,
    /// Names of the checks skipped, with the reason.
    pub skipped: Vec<(&'static str, String)>,
}

/// A failed compliance check.
#[derive(Debug, Clone, thiserror::Error)]
#[error("compliance check `{check}` failed for the {backend} backend: {message}")]
pub struct ComplianceFailure {
    /// The check's name.
    pub check: &'static str,
    /// The backend's kind.
    pub backend: String,
    /// What was expected and what was found.
    pub message: String,
}

/// The result of one check: `Ok(None)` passed, `Ok(Some(reason))` skipped.
pub type CheckResult = Result<Option<String>, ComplianceFailure>;

struct Checker<'a> {
    backend: &'a dyn Backend,
    check: &'static str,
}

impl Checker<'_> {
    fn fail(&self, message: impl Into<String>) -> ComplianceFailure {
        ComplianceFailure { check: self.check, backend: self.backend.kind().to_owned(), message: message.into() }
    }

    fn ensure(&self, condition: bool, message: impl FnOnce() -> String) -> Result<(), ComplianceFailure> {
        if condition {
            Ok(())
        } else {
            Err(self.fail(message()))
        }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, ComplianceFailure> {
        let answer = self.backend.chat(request).await.map_err(|error| self.fail(format!("chat failed: {error}")))?;
        self.ensure(answer.choices.len() == request.params.n.max(1) as usize, || {
            format!("expected {} choices, found {}", request.params.n.max(1), answer.choices.len())
        })?;
        Ok(answer)
    }
}

fn request(options: &ComplianceOptions, seed: u64) -> ChatRequest {
    let mut request = ChatRequest::from_prompt(options.prompt.clone());
    request.params.seed = Some(seed);
    request.params.temperature = Some(0.0);
    request.params.max_tokens = Some(64);
    request
}

/// Runs every check in order, stopping at the first failure.
pub async fn check_backend(backend: &dyn Backend, options: &ComplianceOptions) -> Result<ComplianceReport, ComplianceFailure> {
    let mut report = ComplianceReport::default();
    let mut record = |name: &'static str, result: CheckResult| -> Result<(), ComplianceFailure> {
        match result? {
            None => report.passed.push(name),
            Some(reason) => report.skipped.push((name, reason)),
        }
        Ok(())
    };
    record("basic", check_basic(backend, options).await)?;
    record("n", check_n(backend, options).await)?;
    record("seed", check_seed(backend, options).await)?;
    record("stop", check_stop(backend, options).await)?;
    record("max_tokens", check_max_tokens(backend, options).await)?;
    record("logprobs", check_logprobs(backend, options).await)?;
    record("score", check_score(backend, options).await)?;
    record("concurrency", check_concurrency(backend, options).await)?;
    record("failure", check_failure(backend, options).await)?;
    Ok(report)
}

/// One plain request: one non-empty choice, the model named, nothing left in flight.
pub async fn check_basic(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "basic" };
    let answer = checker.chat(&request(options, 1)).await?;
    let choice = &answer.choices[0];
    checker.ensure(!choice.text.trim().is_empty() || !choice.tool_calls.is_empty(), || "expected an answer, found empty text".into())?;
    checker.ensure(!answer.model.is_empty(), || "expected the answering model's name, found an empty name".into())?;
    checker
        .ensure(backend.in_flight() == 0, || format!("expected 0 requests in flight after the answer, found {}", backend.in_flight()))?;
    Ok(None)
}

/// `n: 3` gives three choices.
pub async fn check_n(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    if !backend.capabilities().n {
        return Ok(Some("the backend does not claim the n capability".into()));
    }
    let checker = Checker { backend, check: "n" };
    let mut request = request(options, 2);
    request.params.n = 3;
    request.params.temperature = Some(1.0);
    let answer = checker.chat(&request).await?;
    checker.ensure(answer.choices.iter().all(|choice| !choice.text.trim().is_empty()), || {
        "expected every choice to hold an answer, found an empty one".into()
    })?;
    Ok(None)
}

/// The same seed gives the same answers.
pub async fn check_seed(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    if !options.deterministic {
        return Ok(Some("the backend is not declared deterministic".into()));
    }
    let checker = Checker { backend, check: "seed" };
    let request = request(options, 3);
    let first = checker.chat(&request).await?;
    let second = checker.chat(&request).await?;
    let texts = |answer: &ChatResponse| answer.choices.iter().map(|choice| choice.text.clone()).collect::<Vec<_>>();
    checker.ensure(texts(&first) == texts(&second), || {
        format!("expected the same answer twice for seed 3, found {:?} then {:?}", texts(&first), texts(&second))
    })?;
    Ok(None)
}

/// A stop string cuts the answer before it.
pub async fn check_stop(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "stop" };
    let base = request(options, 4);
    let full = checker.chat(&base).await?.choices.remove(0).text;
    let words: Vec<&str> = full.split_whitespace().collect();
    let Some(stop) = words.iter().skip(words.len() / 2).find(|word| word.len() >= 2 && full.find(*word).is_some_and(|at| at > 0)) else {
        return Ok(Some(format!("the answer {full:?} has no word to stop at")));
    };
    let mut stopped = base.clone();
    stopped.params.stop = vec![(*stop).to_owned()];
    let choice = checker.chat(&stopped).await?.choices.remove(0);
    checker.ensure(!choice.text.contains(stop), || format!("expected no {stop:?} in the answer, found {:?}", choice.text))?;
    checker
        .ensure(choice.finish_reason == FinishReason::Stop, || format!("expected finish reason stop, found {:?}", choice.finish_reason))?;
    if options.deterministic {
        let before = full.find(stop).map_or(full.as_str(), |at| &full[..at]);
        checker.ensure(choice.text.trim_end() == before.trim_end(), || {
            format!("expected the answer cut before {stop:?}, i.e. {before:?}, found {:?}", choice.text)
        })?;
    }
    Ok(None)
}

/// `max_tokens` shortens a longer answer, with finish reason `length`.
pub async fn check_max_tokens(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "max_tokens" };
    let base = request(options, 5);
    let full = checker.chat(&base).await?;
    let full_tokens = if full.usage.completion_tokens > 0 {
        full.usage.completion_tokens
    } else {
        full.choices[0].text.split_whitespace().count() as u64
    };
    if full_tokens <= 3 {
        return Ok(Some(format!("the answer {:?} is too short to cut", full.choices[0].text)));
    }
    let mut short = base.clone();
    short.params.max_tokens = Some(3);
    let answer = checker.chat(&short).await?;
    let choice = &answer.choices[0];
    checker.ensure(choice.finish_reason == FinishReason::Length, || {
        format!("expected finish reason length with max_tokens 3, found {:?}", choice.finish_reason)
    })?;
    checker.ensure(choice.text.len() < full.choices[0].text.len(), || {
        format!("expected an answer shorter than {:?}, found {:?}", full.choices[0].text, choice.text)
    })?;
    checker.ensure(answer.usage.completion_tokens <= 3, || {
        format!("expected at most 3 completion tokens, found {}", answer.usage.completion_tokens)
    })?;
    Ok(None)
}

/// Logprobs come when asked for and supported; otherwise an `unsupported` error.
pub async fn check_logprobs(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "logprobs" };
    let mut request = request(options, 6);
    request.params.logprobs = Some(2);
    if !backend.capabilities().logprobs {
        return match backend.chat(&request).await {
            Err(error) if error.kind == BackendErrorKind::Unsupported => Ok(None),
            Err(error) => Err(checker.fail(format!("expected an unsupported error, found {error}"))),
            Ok(_) => Err(checker.fail("the backend does not claim logprobs, expected an unsupported error, found an answer")),
        };
    }
    let answer = checker.chat(&request).await?;
    for choice in &answer.choices {
        let tokens = choice.logprobs.as_ref().ok_or_else(|| checker.fail("expected logprobs on every choice, found none"))?;
        checker.ensure(!tokens.is_empty(), || "expected at least one token logprob, found none".into())?;
        for token in tokens {
            checker.ensure(token.logprob <= 1e-6 && token.logprob.is_finite(), || {
                format!("expected a non-positive logprob, found {} for {:?}", token.logprob, token.token)
            })?;
            checker.ensure(token.top.len() <= 2, || format!("expected at most 2 alternatives, found {}", token.top.len()))?;
        }
    }
    Ok(None)
}

/// Score mode works when claimed; otherwise an `unsupported` error.
pub async fn check_score(backend: &dyn Backend, _options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "score" };
    let request = ScoreRequest::chat(vec![Message::user("Is water wet?")], "Yes, it is.");
    let result = backend.score(&request).await;
    if !backend.capabilities().score {
        return match result {
            Err(error) if error.kind == BackendErrorKind::Unsupported => Ok(None),
            Err(error) => Err(checker.fail(format!("expected an unsupported error, found {error}"))),
            Ok(_) => Err(checker.fail("the backend does not claim score, expected an unsupported error, found scores")),
        };
    }
    let scored = result.map_err(|error| checker.fail(format!("score failed: {error}")))?;
    checker.ensure(!scored.tokens.is_empty(), || "expected token logprobs, found none".into())?;
    checker.ensure(scored.tokens.iter().all(|token| token.logprob <= 1e-6), || {
        format!("expected non-positive logprobs, found {:?}", scored.tokens)
    })?;
    Ok(None)
}

/// Sixteen requests at once all succeed.
pub async fn check_concurrency(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let checker = Checker { backend, check: "concurrency" };
    let requests: Vec<ChatRequest> = (0..16).map(|seed| request(options, 100 + seed)).collect();
    let answers = futures::future::join_all(requests.iter().map(|request| backend.chat(request))).await;
    for answer in answers {
        answer.map_err(|error| checker.fail(format!("a concurrent request failed: {error}")))?;
    }
    checker.ensure(backend.in_flight() == 0, || format!("expected 0 in flight afterwards, found {}", backend.in_flight()))?;
    Ok(None)
}

/// A request known to fail returns `Err` of the expected kind.
pub async fn check_failure(backend: &dyn Backend, options: &ComplianceOptions) -> CheckResult {
    let Some((request, kind)) = &options.failing else {
        return Ok(Some("no failing request was given".into()));
    };
    let checker = Checker { backend, check: "failure" };
    match backend.chat(request).await {
        Err(error) if error.kind == *kind => Ok(None),
        Err(error) => Err(checker.fail(format!("expected a {kind:?} error, found {error}"))),
        Ok(answer) => Err(checker.fail(format!("expected a {kind:?} error, found an answer {:?}", answer.choices[0].text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::{ScriptRule, ScriptedBackend, ScriptedConfig};

    #[tokio::test]
    async fn scripted_backend_passes_every_check() {
        let backend = ScriptedBackend::new(ScriptedConfig {
            rules: vec![
                ScriptRule { when: "always fails".into(), error: Some("server".into()), ..ScriptRule::default() },
                ScriptRule {
                    when: "sea".into(),
                    replies: vec![
                        "The sea is wide and grey, its waves roll in slowly.".into(),
                        "Blue waves break on the shore under a pale sky.".into(),
                    ],
                    ..ScriptRule::default()
                },
            ],
            max_retries: 2,
            ..ScriptedConfig::default()
        })
        .unwrap();
        let options = ComplianceOptions {
            failing: Some((ChatRequest::from_prompt("always fails"), BackendErrorKind::Server)),
            ..ComplianceOptions::default()
        };
        let report = check_backend(&backend, &options).await.unwrap();
        assert_eq!(report.skipped, []);
        assert_eq!(report.passed.len(), 9);
    }

    #[tokio::test]
    async fn a_misbehaving_backend_fails_with_the_check_named() {
        // No rule matches the prompt: the very first check must fail and say so.
        let backend = ScriptedBackend::from_rules(vec![]).unwrap();
        let failure = check_backend(&backend, &ComplianceOptions::default()).await.unwrap_err();
        assert_eq!(failure.check, "basic");
        assert!(failure.message.contains("no scripted rule matched"), "{}", failure.message);
    }
}
