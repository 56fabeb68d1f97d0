//! The OpenAI-compatible backend: `POST {base_url}/chat/completions` over a pooled HTTP client.
//!
//! Works with OpenAI itself and with local servers speaking the same wire format (vLLM,
//! llama.cpp's server, SGLang, the retort mock). Inside one [`Backend::chat`] call it
//! retries transient failures with exponential backoff and full jitter, adapts its
//! concurrency to rate limits (AIMD), paces requests and tokens per minute when asked, and
//! spreads requests over several endpoints with failover.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::StatusCode;
use retort_core::{Backend, BackendError, BackendErrorKind, Capabilities, ChatRequest, ChatResponse, ScoreRequest, ScoreResponse, Usage};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::balance::Balancer;
use crate::hedge::{HedgePolicy, LatencyWindow};
use crate::limiter::{AimdLimiter, TokenBucket};
use crate::retry::{parse_retry_after, RetryPolicy};
use crate::wire::{GrammarField, OutgoingRequest, WireChoice, WireResponse, STANDARD_FIELDS};
use crate::BackendBuildError;

/// The base URL used when the config names none.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

fn default_api_key_env() -> String {
    "OPENAI_API_KEY".to_owned()
}
fn default_max_concurrency() -> usize {
    64
}
fn default_timeout_s() -> f64 {
    120.0
}
fn default_connect_timeout_s() -> f64 {
    10.0
}
fn default_max_retries() -> u32 {
    6
}
fn default_retry_base_s() -> f64 {
    0.5
}
fn default_retry_max_s() -> f64 {
    30.0
}
fn default_rate_limit_cooldown_s() -> f64 {
    1.0
}
fn default_failover_cooldown_s() -> f64 {
    1.0
}

/// The `llm:` block of an OpenAI-compatible backend.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiConfig {
    /// The server's base URL, e.g. `http://127.0.0.1:8000/v1` (requests go to
    /// `{base_url}/chat/completions`). Without it and without `base_urls`, OpenAI's own.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Several base URLs serving the same model: requests go to the one with the fewest in
    /// flight, and away from one that refuses connections. Used together with `base_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub base_urls: Vec<String>,
    /// The model name sent with every request (required).
    #[serde(default)]
    pub model: String,
    /// The environment variable holding the API key, read when the backend is built; if it is
    /// unset no `Authorization` header is sent (fine for local servers).
    #[serde(default = "default_api_key_env")]
    pub api_key_env: String,
    /// The most requests in flight; the adaptive limit starts here and never exceeds it.
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Pace requests to at most this many a minute (bursts of one second's worth).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Pace tokens (prompt estimate plus `max_tokens`, corrected by reported usage) to at
    /// most this many a minute.
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    /// Seconds one attempt may take, from connecting to the last byte of the answer.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout_s")]
    pub connect_timeout_s: f64,
    /// Retries of a failed request (429, 5xx, timeouts, connection failures) inside one call.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Seconds: the backoff ceiling of the first retry (doubling each retry, full jitter).
    #[serde(default = "default_retry_base_s")]
    pub retry_base_s: f64,
    /// Seconds: the largest backoff ceiling.
    #[serde(default = "default_retry_max_s")]
    pub retry_max_s: f64,
    /// Seconds: after a 429 halves the concurrency limit, further 429s within this window do
    /// not halve it again (they come from requests sent before the cut).
    #[serde(default = "default_rate_limit_cooldown_s")]
    pub rate_limit_cooldown_s: f64,
    /// Seconds an endpoint that refused a connection is avoided (doubling while it keeps
    /// refusing, up to 30 s).
    #[serde(default = "default_failover_cooldown_s")]
    pub failover_cooldown_s: f64,
    /// Extra fields merged into every request body (e.g. `repetition_penalty`,
    /// `chat_template_kwargs`); may not repeat a field retort sets itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_body: Option<Map<String, Value>>,
    /// The body field the server reads a GBNF grammar from: `grammar` (llama.cpp's server) or
    /// `guided_grammar` (vLLM). Set, requests with a grammar send it there (and `judge` holds
    /// its verdicts to one); unset, grammars are not sent.
    #[serde(default)]
    pub grammar_field: Option<GrammarField>,
    /// Send an attempt again on another connection when it is far slower than its peers (four
    /// times the 95th percentile of recent latencies, at least 0.5 s); the first answer wins.
    #[serde(default = "default_true")]
    pub hedge: bool,
    /// Seconds after which to hedge, instead of the delay derived from latencies.
    #[serde(default)]
    pub hedge_after_s: Option<f64>,
    /// What the model's tokens cost; set, the run and its report count the cost of the
    /// requests sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<crate::Price>,
}

fn default_true() -> bool {
    true
}

impl OpenAiConfig {
    /// A config for `model` at `base_url` with every other field at its default.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> OpenAiConfig {
        OpenAiConfig { base_url: Some(base_url.into()), model: model.into(), ..OpenAiConfig::default() }
    }

    /// Applies command-line overrides: a base URL replaces every configured one.
    pub fn apply_overrides(&mut self, base_url: Option<String>, model: Option<String>, api_key_env: Option<String>) {
        if let Some(base_url) = base_url {
            self.base_url = Some(base_url);
            self.base_urls.clear();
        }
        if let Some(model) = model {
            self.model = model;
        }
        if let Some(api_key_env) = api_key_env {
            self.api_key_env = api_key_env;
        }
    }

    /// Every problem of these settings, found without building the backend (no network):
    /// what `retort validate` reports and what building would refuse.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, found: String, message: String| problems.push(Problem { key: key.to_string(), found, message });
        if self.model.trim().is_empty() {
            problem(
                "model",
                String::new(),
                "model must name the model to request, found an empty name; give `model:` or --model NAME".to_owned(),
            );
        }
        let urls: Vec<(&str, &String)> =
            self.base_url.iter().map(|url| ("base_url", url)).chain(self.base_urls.iter().map(|url| ("base_urls", url))).collect();
        for (key, url) in urls {
            let shown = retort_core::redact_url(url);
            match reqwest::Url::parse(url) {
                Err(error) => problem(
                    key,
                    shown.clone(),
                    format!("expected an http(s) base URL such as http://127.0.0.1:8000/v1, found {shown:?}: {error}"),
                ),
                Ok(parsed) if !matches!(parsed.scheme(), "http" | "https") => problem(
                    key,
                    shown.clone(),
                    format!("expected an http(s) base URL, found {shown:?}: the scheme is {:?}", parsed.scheme()),
                ),
                Ok(parsed) if parsed.cannot_be_a_base() || parsed.host_str().is_none_or(str::is_empty) => {
                    problem(key, shown.clone(), format!("expected an http(s) base URL with a host, found {shown:?}"))
                }
                Ok(_) => {}
            }
        }
        if self.max_concurrency == 0 {
            problem("max_concurrency", "0".into(), "max_concurrency must be at least 1, found 0".to_owned());
        }
        for (key, value) in [("requests_per_minute", self.requests_per_minute), ("tokens_per_minute", self.tokens_per_minute)] {
            if value == Some(0) {
                problem(key, "0".into(), format!("{key} must be at least 1 when set, found 0"));
            }
        }
        let positive = [("timeout_s", self.timeout_s), ("connect_timeout_s", self.connect_timeout_s)];
        for (key, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                problem(key, value.to_string(), format!("{key} must be a positive number of seconds, found {value}"));
            }
        }
        let non_negative = [
            ("retry_base_s", self.retry_base_s),
            ("retry_max_s", self.retry_max_s),
            ("rate_limit_cooldown_s", self.rate_limit_cooldown_s),
            ("failover_cooldown_s", self.failover_cooldown_s),
        ];
        for (key, value) in non_negative.into_iter().chain(self.hedge_after_s.map(|value| ("hedge_after_s", value))) {
            if !(value.is_finite() && value >= 0.0) {
                problem(key, value.to_string(), format!("{key} must be a non-negative number of seconds, found {value}"));
            }
        }
        for (key, message) in self.price.iter().flat_map(crate::Price::problems) {
            problem(&key, String::new(), message);
        }
        if self.max_retries > 100 {
            problem("max_retries", self.max_retries.to_string(), format!("max_retries must be at most 100, found {}", self.max_retries));
        }
        if let Some(extra) = &self.extra_body {
            if let Some(clash) = extra.keys().find(|key| STANDARD_FIELDS.contains(&key.as_str())) {
                problem("extra_body", clash.clone(), format!("extra_body may not set {clash:?}, which retort sets from the request"));
            }
        }
        problems
    }

    /// Every base URL, `base_url` first, or OpenAI's when none is configured.
    pub fn all_base_urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.base_url.iter().chain(&self.base_urls).cloned().collect();
        if urls.is_empty() {
            urls.push(DEFAULT_BASE_URL.to_owned());
        }
        urls
    }
}

impl Default for OpenAiConfig {
    fn default() -> OpenAiConfig {
        OpenAiConfig {
            base_url: None,
            base_urls: Vec::new(),
            model: String::new(),
            api_key_env: default_api_key_env(),
            max_concurrency: default_max_concurrency(),
            requests_per_minute: None,
            tokens_per_minute: None,
            timeout_s: default_timeout_s(),
            connect_timeout_s: default_connect_timeout_s(),
            max_retries: default_max_retries(),
            retry_base_s: default_retry_base_s(),
            retry_max_s: default_retry_max_s(),
            rate_limit_cooldown_s: default_rate_limit_cooldown_s(),
            failover_cooldown_s: default_failover_cooldown_s(),
            extra_body: None,
            grammar_field: None,
            hedge: true,
            hedge_after_s: None,
            price: None,
        }
    }
}

/// A backend for any server speaking OpenAI chat completions.
#[derive(Debug)]
pub struct OpenAiBackend {
    client: reqwest::Client,
    model: String,
    authorization: Option<HeaderValue>,
    api_key: Option<ApiKey>,
    balancer: Balancer,
    /// Each endpoint's `chat/completions` URL, parsed once (by the balancer's index), so a
    /// request does not parse it again.
    chat_urls: Vec<reqwest::Url>,
    limiter: Arc<AimdLimiter>,
    requests_per_minute: Option<TokenBucket>,
    tokens_per_minute: Option<TokenBucket>,
    policy: RetryPolicy,
    timeout: Duration,
    extra_body: Option<Map<String, Value>>,
    grammar_field: Option<GrammarField>,
    hedge: HedgePolicy,
    latencies: LatencyWindow,
    /// Attempts sent again because the first was slow.
    hedges: std::sync::atomic::AtomicU64,
    /// Backoff and pacing sleep on it.
    clock: Arc<dyn crate::clock::Clock>,
}

/// A problem of an [`OpenAiConfig`]: the key, the value found (credentials redacted), and
/// what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The settings key.
    pub key: String,
    /// The value found, as it may be shown.
    pub found: String,
    /// What was expected and what was found.
    pub message: String,
}

impl Problem {
    /// As the shared vocabulary's problem.
    pub fn into_config_problem(self) -> retort_core::ConfigProblem {
        retort_core::ConfigProblem::new(self.key, self.message)
    }
}

/// The most extra attempts one slow attempt gets (a hedge that meets a hung server too is
/// hedged again).
const MAX_HEDGES: u32 = 3;

/// An API key that never shows itself in `Debug` output.
struct ApiKey(String);

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn seconds_or_zero(value: f64) -> Duration {
    if value.is_finite() && value > 0.0 {
        Duration::from_secs_f64(value)
    } else {
        Duration::ZERO
    }
}

fn seconds(field: &str, value: f64) -> Result<Duration, BackendBuildError> {
    if value.is_finite() && value >= 0.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(BackendBuildError::InvalidConfig {
            backend: "openai",
            message: format!("{field} must be a non-negative number of seconds, found {value}"),
        })
    }
}

impl OpenAiBackend {
    /// Builds the backend, reading the API key from the environment variable the config names.
    pub fn new(config: OpenAiConfig) -> Result<OpenAiBackend, BackendBuildError> {
        let api_key = std::env::var(&config.api_key_env).ok().filter(|key| !key.trim().is_empty());
        OpenAiBackend::with_api_key(config, api_key)
    }

    /// Builds the backend with an explicit API key (or none), ignoring `api_key_env`.
    pub fn with_api_key(config: OpenAiConfig, api_key: Option<String>) -> Result<OpenAiBackend, BackendBuildError> {
        OpenAiBackend::with_clock(config, api_key, Arc::new(crate::clock::TokioClock))
    }

    /// As [`OpenAiBackend::with_api_key`], with the clock its backoff and pacing use (tests
    /// give it a [`crate::clock::ManualClock`]).
    pub fn with_clock(
        config: OpenAiConfig,
        api_key: Option<String>,
        clock: Arc<dyn crate::clock::Clock>,
    ) -> Result<OpenAiBackend, BackendBuildError> {
        if let Some(problem) = config.problems().into_iter().next() {
            return Err(BackendBuildError::InvalidConfig { backend: "openai", message: format!("{}: {}", problem.key, problem.message) });
        }
        let urls = config.all_base_urls();
        let timeout = seconds("timeout_s", config.timeout_s)?;
        let connect_timeout = seconds("connect_timeout_s", config.connect_timeout_s)?;
        let policy = RetryPolicy {
            max_retries: config.max_retries,
            base: seconds("retry_base_s", config.retry_base_s)?,
            cap: seconds("retry_max_s", config.retry_max_s)?,
            ..RetryPolicy::default()
        };
        let cooldown = seconds("rate_limit_cooldown_s", config.rate_limit_cooldown_s)?;
        let failover_cooldown = seconds("failover_cooldown_s", config.failover_cooldown_s)?;
        let authorization = match &api_key {
            None => None,
            Some(key) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| BackendBuildError::InvalidConfig {
                    backend: "openai",
                    message: format!("the API key in ${} contains characters not allowed in a header", config.api_key_env),
                })?;
                value.set_sensitive(true);
                Some(value)
            }
        };
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(config.max_concurrency)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .connect_timeout(connect_timeout.min(timeout.max(Duration::from_millis(1))))
            .user_agent(concat!("retort/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| BackendBuildError::Client(error.to_string()))?;
        let balancer = Balancer::new(&urls, failover_cooldown);
        let chat_urls = balancer
            .endpoints()
            .iter()
            .map(|endpoint| {
                reqwest::Url::parse(&endpoint.chat_url).map_err(|error| BackendBuildError::InvalidBaseUrl {
                    url: retort_core::redact_url(&endpoint.base_url),
                    reason: error.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OpenAiBackend {
            client,
            chat_urls,
            model: config.model,
            authorization,
            api_key: api_key.map(ApiKey),
            balancer,
            limiter: Arc::new(AimdLimiter::with_clock(config.max_concurrency, cooldown, clock.clone())),
            requests_per_minute: config
                .requests_per_minute
                .map(|per_minute| TokenBucket::with_clock(per_minute, f64::from(per_minute) / 60.0, clock.clone())),
            tokens_per_minute: config
                .tokens_per_minute
                .map(|per_minute| TokenBucket::with_clock(per_minute, f64::from(per_minute) / 60.0 * 5.0, clock.clone())),
            clock,
            policy,
            timeout,
            extra_body: config.extra_body,
            grammar_field: config.grammar_field,
            hedge: HedgePolicy { enabled: config.hedge, fixed: config.hedge_after_s.map(seconds_or_zero), ..HedgePolicy::default() },
            latencies: LatencyWindow::default(),
            hedges: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Attempts sent again because the first one was far slower than its peers.
    pub fn hedged(&self) -> u64 {
        self.hedges.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One attempt, hedged: while it runs far longer than recent attempts took and there is
    /// room under the concurrency limit, the same request goes out again on another
    /// connection (up to [`MAX_HEDGES`] times, one delay apart); the first answer wins and
    /// the others are dropped. The engine commits only the answer returned, so the run store
    /// holds one.
    async fn hedged_attempt(&self, body: &Bytes, request: &ChatRequest, estimate: f64) -> Result<ChatResponse, (BackendError, bool)> {
        use futures::stream::{FuturesUnordered, StreamExt};
        use std::time::{Duration, Instant};
        // Latencies and hedge delays count from the moment an attempt holds its slot: the
        // wait for a slot says how busy retort is, not how slow the server is.
        let permit = self.admit(estimate).await;
        let started = Instant::now();
        if !self.hedge.enabled {
            let result = self.send(permit, body, request, estimate).await;
            if result.is_ok() {
                self.latencies.observe(started.elapsed());
            }
            return result;
        }
        // The first attempt's slot is held here, not by the attempt: when the attempt is
        // hedged it is presumed lost and its slot goes to the hedge, so a hung request never
        // holds the concurrency limit (which 429s may have cut to one) against the others.
        let mut first_permit = Some(permit);
        let first = async move { (started, self.send_unheld(body, request, estimate).await) };
        // The usual case: the answer comes before any hedge is due, with one timer and no
        // set of attempts to manage.
        let mut first = Box::pin(first);
        if let Some(delay) = self.hedge.delay(&self.latencies, self.timeout) {
            if let Ok((sent, result)) = tokio::time::timeout(delay, &mut first).await {
                if result.is_ok() {
                    self.latencies.observe(sent.elapsed());
                }
                return result;
            }
        }
        let hedge = || async move {
            let permit = self.admit(estimate).await;
            let sent = Instant::now();
            (sent, self.send(permit, body, request, estimate).await)
        };
        let mut attempts: FuturesUnordered<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send + '_>>> = FuturesUnordered::new();
        attempts.push(first);
        let mut last_sent = started;
        let mut hedges = 0;
        let mut first_error = None;
        loop {
            // The delay is looked up again while waiting: the first requests of a run have no
            // latencies to go by yet, and a hang among them is hedged once there are.
            let delay = self.hedge.delay(&self.latencies, self.timeout);
            let wait = delay.map_or(Duration::from_millis(250), |delay| delay.saturating_sub(last_sent.elapsed()));
            tokio::select! {
                finished = attempts.next() => match finished {
                    Some((sent, Ok(answer))) => {
                        self.latencies.observe(sent.elapsed());
                        return Ok(answer);
                    }
                    Some((_, Err(error))) => {
                        first_error.get_or_insert(error);
                        if attempts.is_empty() {
                            return Err(first_error.expect("set above"));
                        }
                    }
                    None => return Err(first_error.expect("an attempt ran")),
                },
                () = tokio::time::sleep(wait), if hedges < MAX_HEDGES => {
                    let due = delay.is_some_and(|delay| last_sent.elapsed() >= delay);
                    if due {
                        drop(first_permit.take());
                        hedges += 1;
                        last_sent = Instant::now();
                        self.hedges.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::debug!(after_s = started.elapsed().as_secs_f64(), hedges, "hedging a slow chat request");
                        attempts.push(Box::pin(hedge()));
                    }
                }
            }
        }
    }

    /// The adaptive concurrency limit now (halved by 429s, grown back by successes).
    pub fn concurrency_limit(&self) -> usize {
        self.limiter.limit()
    }

    /// The base URLs requests are spread over, in configured order.
    pub fn base_urls(&self) -> Vec<&str> {
        self.balancer.endpoints().iter().map(|endpoint| endpoint.base_url.as_str()).collect()
    }

    /// Removes the API key, and any credentials in the base URLs, from a text that is about
    /// to become an error message.
    fn scrub(&self, text: String) -> String {
        let mut text = match &self.api_key {
            Some(ApiKey(key)) if key.len() >= 4 && text.contains(key.as_str()) => text.replace(key.as_str(), "[redacted]"),
            _ => text,
        };
        for endpoint in self.balancer.endpoints() {
            if endpoint.shown_url != endpoint.chat_url {
                text = retort_core::scrub_url_secrets(&text, &endpoint.chat_url);
            }
        }
        text
    }

    /// The base URLs as messages may show them, credentials redacted.
    pub fn shown_base_urls(&self) -> Vec<String> {
        self.balancer.endpoints().iter().map(|endpoint| retort_core::redact_url(&endpoint.base_url)).collect()
    }

    fn estimate_tokens(request: &ChatRequest) -> f64 {
        let prompt_bytes: usize = request.messages.iter().map(|message| message.content.len() + 4).sum();
        let completion = request.params.max_tokens.unwrap_or(256) as usize * request.params.n.max(1) as usize;
        (prompt_bytes / 4 + completion) as f64
    }

    /// Waits for the rate limits and a slot under the concurrency limit.
    async fn admit(&self, estimate: f64) -> crate::limiter::AimdPermit {
        if let Some(bucket) = &self.requests_per_minute {
            bucket.take(1.0).await;
        }
        if let Some(bucket) = &self.tokens_per_minute {
            bucket.take(estimate).await;
        }
        self.limiter.acquire().await
    }

    /// Sends one attempt on a slot already held; the flag says an immediate failover to
    /// another endpoint is possible.
    async fn send(
        &self,
        _permit: crate::limiter::AimdPermit,
        body: &Bytes,
        request: &ChatRequest,
        estimate: f64,
    ) -> Result<ChatResponse, (BackendError, bool)> {
        self.send_unheld(body, request, estimate).await
    }

    /// Sends one attempt; its caller holds the slot.
    async fn send_unheld(&self, body: &Bytes, request: &ChatRequest, estimate: f64) -> Result<ChatResponse, (BackendError, bool)> {
        let endpoint = self.balancer.pick();
        let url = endpoint.endpoint().shown_url.as_str();
        let mut builder = self
            .client
            .post(self.chat_urls[endpoint.index()].clone())
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .timeout(self.timeout)
            .body(body.clone());
        if let Some(authorization) = &self.authorization {
            builder = builder.header(AUTHORIZATION, authorization.clone());
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(error) => {
                let error = self.transport_error(url, &error);
                let failover = error.kind == BackendErrorKind::Connection && self.balancer.mark_down(endpoint.index());
                return Err((error, failover));
            }
        };
        self.balancer.mark_up(endpoint.index());
        let status = response.status();
        let retry_after = response.headers().get(RETRY_AFTER).and_then(|value| value.to_str().ok()).and_then(parse_retry_after);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(error) => return Err((self.transport_error(url, &error), false)),
        };
        if !status.is_success() {
            if status == StatusCode::TOO_MANY_REQUESTS {
                self.limiter.on_rate_limited();
            }
            let mut error = self.status_error(url, status, &bytes);
            error.retry_after = retry_after;
            return Err((error, false));
        }
        self.limiter.on_success();
        let answer = self.parse_answer(url, &bytes, request).map_err(|error| (error, false))?;
        if let Some(bucket) = &self.tokens_per_minute {
            let used = answer.usage.prompt_tokens + answer.usage.completion_tokens;
            if used > 0 {
                bucket.adjust(estimate - used as f64);
            }
        }
        Ok(answer)
    }

    fn parse_answer(&self, url: &str, bytes: &[u8], request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        let wire: WireResponse<'_> = serde_json::from_slice(bytes).map_err(|error| {
            BackendError::new(
                BackendErrorKind::Malformed,
                self.scrub(format!(
                    "POST {url}: expected a chat completion, the body did not parse ({error}); it starts {:?}",
                    snippet(bytes)
                )),
            )
        })?;
        if wire.choices.is_empty() {
            return Err(BackendError::new(BackendErrorKind::Malformed, format!("POST {url}: expected at least one choice, found none")));
        }
        let model = if wire.model.is_empty() { self.model.clone() } else { wire.model.into_owned() };
        let usage = wire
            .usage
            .map(|usage| Usage {
                prompt_tokens: usage.prompt_tokens,
                completion_tokens: usage.completion_tokens,
                cached_tokens: usage.prompt_tokens_details.map_or(0, |details| details.cached_tokens),
            })
            .unwrap_or_default();
        let mut wire_choices = wire.choices;
        if wire_choices.windows(2).any(|pair| pair[0].index > pair[1].index) {
            wire_choices.sort_by_key(|choice| choice.index);
        }
        let choices: Vec<_> = wire_choices.into_iter().map(WireChoice::into_choice).collect();
        if request.params.logprobs.is_some()
            && choices.iter().any(|choice| choice.logprobs.as_ref().is_none_or(|tokens| tokens.is_empty() && !choice.text.is_empty()))
        {
            return Err(BackendError::new(
                BackendErrorKind::Unsupported,
                format!("POST {url}: logprobs were asked for but the server returned no logprobs"),
            ));
        }
        Ok(ChatResponse { choices, usage, model })
    }

    fn transport_error(&self, url: &str, error: &reqwest::Error) -> BackendError {
        let mut detail = String::new();
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
        while let Some(cause) = source {
            let _ = write!(detail, ": {cause}");
            source = cause.source();
        }
        let (kind, what) = if error.is_timeout() {
            (BackendErrorKind::Timeout, format!("no complete answer within {:.1} s", self.timeout.as_secs_f64()))
        } else if error.is_connect() {
            (BackendErrorKind::Connection, "could not connect".to_owned())
        } else if error.is_body() || error.is_decode() {
            (BackendErrorKind::Server, "the connection broke while reading the answer".to_owned())
        } else {
            (BackendErrorKind::Server, "the connection was closed or reset before the answer".to_owned())
        };
        BackendError::new(kind, self.scrub(format!("POST {url}: {what}{detail}")))
    }

    fn status_error(&self, url: &str, status: StatusCode, body: &[u8]) -> BackendError {
        let message = server_message(body);
        let lowered = message.to_lowercase();
        let kind = match status.as_u16() {
            429 => BackendErrorKind::RateLimited,
            401 | 403 => BackendErrorKind::Auth,
            408 => BackendErrorKind::Timeout,
            400 | 413 | 422
                if ["context length", "context_length", "maximum context", "context window", "too many tokens", "prompt is too long"]
                    .iter()
                    .any(|wording| lowered.contains(wording)) =>
            {
                BackendErrorKind::ContextLength
            }
            400..=499 => BackendErrorKind::BadRequest,
            500..=599 => BackendErrorKind::Server,
            _ => BackendErrorKind::Protocol,
        };
        BackendError::new(kind, self.scrub(format!("POST {url}: the server answered {status}: {message}")))
    }
}

/// Whether every choice of an answer has no text and no tool calls.
fn is_empty(answer: &ChatResponse) -> bool {
    answer.choices.iter().all(|choice| choice.text.trim().is_empty() && choice.tool_calls.is_empty())
}

/// The server's own error message: `error.message` of an OpenAI error body, else the text.
fn server_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let message = value
            .get("error")
            .and_then(|error| error.get("message").or(Some(error)))
            .or_else(|| value.get("message"))
            .or_else(|| value.get("detail"));
        if let Some(message) = message {
            return match message.as_str() {
                Some(text) => truncate(text, 500),
                None => truncate(&message.to_string(), 500),
            };
        }
    }
    snippet(body)
}

fn snippet(bytes: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]), 200)
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl Backend for OpenAiBackend {
    fn kind(&self) -> &str {
        "openai"
    }

    fn model(&self) -> &str {
        &self.model
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { n: true, logprobs: true, score: false, json_schema: true, grammar: self.grammar_field.is_some(), tools: true }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        let body = serde_json::to_vec(&OutgoingRequest::with_grammar(&self.model, request, self.extra_body.as_ref(), self.grammar_field))
            .map(Bytes::from)
            .map_err(|error| BackendError::new(BackendErrorKind::BadRequest, format!("serializing the chat request: {error}")))?;
        let estimate = if self.tokens_per_minute.is_some() { Self::estimate_tokens(request) } else { 0.0 };
        let mut attempts: u32 = 0;
        let mut empty_retried = false;
        loop {
            attempts += 1;
            match self.hedged_attempt(&body, request, estimate).await {
                // An empty answer is asked once more (a server's hiccup more often than the
                // model's word); a second one is returned, and the step decides.
                Ok(answer) if !empty_retried && is_empty(&answer) => {
                    empty_retried = true;
                    tracing::debug!("the server answered an empty text; asking once more");
                }
                Ok(answer) => return Ok(answer),
                Err((mut error, failover)) => {
                    if !error.is_retryable() || attempts > self.policy.max_retries {
                        if error.is_retryable() {
                            error.message = format!("{} (gave up after {attempts} attempts)", error.message);
                        }
                        return Err(error);
                    }
                    tracing::debug!(attempt = attempts, error = %error, "retrying chat request");
                    if !failover {
                        self.clock.sleep(self.policy.delay(attempts - 1, error.retry_after)).await;
                    }
                }
            }
        }
    }

    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        let _ = request;
        Err(BackendError::new(
            BackendErrorKind::Unsupported,
            "the openai backend cannot score a continuation: the chat-completions API returns no prompt \
             log-probabilities; use the local backend for score mode",
        ))
    }

    fn in_flight(&self) -> usize {
        self.limiter.in_flight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_unknown_fields() {
        let config: OpenAiConfig = serde_yaml::from_str("model: m\nbase_url: http://127.0.0.1:1/v1\n").unwrap();
        assert_eq!(config.api_key_env, "OPENAI_API_KEY");
        assert_eq!(config.max_concurrency, 64);
        assert_eq!(config.timeout_s, 120.0);
        assert_eq!(config.max_retries, 6);
        assert!(serde_yaml::from_str::<OpenAiConfig>("model: m\nbackend: openai\n").is_err());
        assert_eq!(OpenAiConfig { model: "m".into(), ..OpenAiConfig::default() }.all_base_urls(), [DEFAULT_BASE_URL]);
    }

    #[test]
    fn overrides_replace_urls_model_and_key_variable() {
        let mut config = OpenAiConfig::new("http://a/v1", "m");
        config.base_urls = vec!["http://b/v1".into()];
        config.apply_overrides(Some("http://c/v1".into()), Some("n".into()), Some("KEY".into()));
        assert_eq!(config.all_base_urls(), ["http://c/v1"]);
        assert_eq!((config.model.as_str(), config.api_key_env.as_str()), ("n", "KEY"));
    }

    #[test]
    fn invalid_configs_are_build_errors() {
        let cases: Vec<(OpenAiConfig, &str)> = vec![
            (OpenAiConfig::new("http://127.0.0.1/v1", ""), "model must name"),
            (OpenAiConfig::new("ftp://x/v1", "m"), "scheme"),
            (OpenAiConfig::new("not a url", "m"), "expected an http(s) base URL"),
            (OpenAiConfig { max_concurrency: 0, ..OpenAiConfig::new("http://x/v1", "m") }, "max_concurrency"),
            (OpenAiConfig { timeout_s: -1.0, ..OpenAiConfig::new("http://x/v1", "m") }, "timeout_s"),
            (OpenAiConfig { requests_per_minute: Some(0), ..OpenAiConfig::new("http://x/v1", "m") }, "requests_per_minute"),
            (
                OpenAiConfig {
                    extra_body: Some(serde_json::from_str(r#"{"model": "x"}"#).unwrap()),
                    ..OpenAiConfig::new("http://x/v1", "m")
                },
                "extra_body may not set \"model\"",
            ),
        ];
        for (config, expected) in cases {
            let error = OpenAiBackend::with_api_key(config, None).unwrap_err().to_string();
            assert!(error.contains(expected), "{error} should mention {expected}");
        }
    }

    #[test]
    fn status_errors_map_to_kinds_and_never_show_the_key() {
        let backend = OpenAiBackend::with_api_key(OpenAiConfig::new("http://127.0.0.1:1/v1", "m"), Some("sk-secret-123".into())).unwrap();
        let cases = [
            (429, r#"{"error":{"message":"slow down"}}"#, BackendErrorKind::RateLimited),
            (500, "oops", BackendErrorKind::Server),
            (503, "", BackendErrorKind::Server),
            (400, r#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#, BackendErrorKind::ContextLength),
            (400, r#"{"error":{"message":"bad temperature"}}"#, BackendErrorKind::BadRequest),
            (404, "no such model", BackendErrorKind::BadRequest),
            (401, r#"{"error":{"message":"Incorrect API key provided: sk-secret-123"}}"#, BackendErrorKind::Auth),
            (403, "forbidden", BackendErrorKind::Auth),
            (408, "", BackendErrorKind::Timeout),
        ];
        for (status, body, kind) in cases {
            let error = backend.status_error("u", StatusCode::from_u16(status).unwrap(), body.as_bytes());
            assert_eq!(error.kind, kind, "{status} {body}");
            assert!(!error.message.contains("sk-secret-123"), "{}", error.message);
            assert!(error.message.contains(&status.to_string()), "{}", error.message);
        }
        let debug = format!("{backend:?}");
        assert!(!debug.contains("sk-secret-123"), "{debug}");
    }
}
