//! The mock's HTTP server: an accept loop over hyper connections, axum routes, faults and
//! the request log.
//!
//! Connections are served by hand (not `axum::serve`) so that a handler can drop its own
//! connection without answering, which is how the "connection reset" fault works.

use std::fs::File;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use retort_backends::scripted::fnv1a;
use retort_backends::wire::{IncomingRequest, WireChoice, WireResponse, WireUsage};
use retort_backends::{ScriptedBackend, ScriptedConfig};
use retort_core::{BackendErrorKind, ChatRequest, ChatResponse, Role};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::{responder, Faults, LoggedRequest, MixedFault, MockConfig, MockError};

/// A running mock server; it stops when shut down or dropped.
#[derive(Debug)]
pub struct MockServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    token: CancellationToken,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    model: String,
    latency: Duration,
    scripted: Option<ScriptedBackend>,
    logprobs: bool,
    record: bool,
    /// Answers ignore the request's seed (see [`MockConfig::ignore_seed`]).
    ignore_seed: bool,
    faults: RwLock<Faults>,
    fault_seq: AtomicU64,
    /// How many times each request body has come, for the mixed-fault draw.
    seen: Mutex<std::collections::HashMap<u64, u32>>,
    seq: AtomicU64,
    log: Mutex<Vec<LoggedRequest>>,
    log_file: Option<Mutex<File>>,
}

/// Lets a handler drop the connection its request came on.
#[derive(Debug, Clone)]
struct Connection(Arc<Notify>);

enum Plan {
    Drop,
    Hang(Duration),
    Fail(StatusCode),
    Answer,
    Mixed(MixedFault),
}

impl MockServer {
    /// Binds and starts serving in the background.
    pub async fn start(config: MockConfig) -> Result<MockServer, MockError> {
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .map_err(|source| MockError::Bind { addr: format!("{}:{}", config.host, config.port), source })?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind { addr: format!("{}:{}", config.host, config.port), source })?;
        let scripted = if config.rules.is_empty() && config.default_reply.is_none() {
            None
        } else {
            Some(ScriptedBackend::new(ScriptedConfig {
                model: config.model.clone(),
                rules: config.rules,
                default_reply: config.default_reply,
                ..ScriptedConfig::default()
            })?)
        };
        let log_file = match &config.log_file {
            None => None,
            Some(path) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| MockError::LogFile { path: path.clone(), source })?,
            )),
        };
        let shared = Arc::new(Shared {
            model: config.model,
            latency: Duration::from_millis(config.latency_ms),
            scripted,
            logprobs: config.logprobs,
            record: config.record,
            ignore_seed: config.ignore_seed,
            faults: RwLock::new(config.faults),
            fault_seq: AtomicU64::new(0),
            seen: Mutex::new(std::collections::HashMap::new()),
            seq: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            log_file,
        });
        let router = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .route("/v1/models", get(models))
            .route("/models", get(models))
            .route("/health", get(health))
            .with_state(Arc::clone(&shared));
        let token = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, router, token.clone()));
        Ok(MockServer { addr, shared, token, task: Some(task) })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to give a client, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every chat request so far, in arrival order (empty when `record` is off).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// How many chat requests have arrived.
    pub fn count(&self) -> u64 {
        self.shared.seq.load(Ordering::Relaxed)
    }

    /// Replaces the faults and restarts their request numbering at 1.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = faults;
        self.shared.fault_seq.store(0, Ordering::Relaxed);
    }

    /// Stops accepting, closes every connection and waits for the server to end.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn accept_loop(listener: TcpListener, router: Router, token: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of file descriptors or similar: back off briefly rather than spin.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let token = token.clone();
        tokio::spawn(async move {
            let kill = Arc::new(Notify::new());
            let connection = Connection(Arc::clone(&kill));
            let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(connection.clone());
                let mut router = router.clone();
                async move { router.call(request).await }
            });
            let serve = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = serve => {}
                _ = kill.notified() => {}
                _ = token.cancelled() => {}
            }
        });
    }
}

async fn health() -> &'static str {
    "ok"
}

async fn models(State(shared): State<Arc<Shared>>) -> Response<Body> {
    let body = serde_json::json!({
        "object": "list",
        "data": [{"id": shared.model, "object": "model", "created": 0, "owned_by": "retort-mock"}]
    });
    json_response(StatusCode::OK, body.to_string().into_bytes(), None)
}

fn json_response(status: StatusCode, body: Vec<u8>, retry_after: Option<f64>) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(seconds) = retry_after {
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
    }
    response
}

/// SplitMix64's finaliser: every input bit reaches every output bit, so draws from related
/// inputs (one body's successive attempts) are independent.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}

/// A 200 whose body breaks off half-way: the first half, then an error that makes hyper
/// close the connection mid-body.
fn broken_body(bytes: Vec<u8>) -> Response<Body> {
    let half = Bytes::from(bytes[..bytes.len() / 2].to_vec());
    let parts: Vec<Result<Bytes, std::io::Error>> =
        vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected truncation"))];
    let mut response = Response::new(Body::from_stream(futures::stream::iter(parts)));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A 200 whose body arrives one byte every 2 ms.
fn dripped_body(bytes: Vec<u8>) -> Response<Body> {
    let stream = futures::stream::unfold((Bytes::from(bytes), 0usize), |(bytes, at)| async move {
        if at >= bytes.len() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        Some((Ok::<Bytes, std::io::Error>(bytes.slice(at..at + 1)), (bytes, at + 1)))
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn error_body(status: StatusCode, message: &str) -> Vec<u8> {
    let kind = if status == StatusCode::TOO_MANY_REQUESTS { "rate_limit_error" } else { "mock_error" };
    serde_json::json!({"error": {"message": message, "type": kind, "code": status.as_u16()}}).to_string().into_bytes()
}

impl Shared {
    fn plan(&self, body: &[u8]) -> (Plan, Option<f64>) {
        let faults = *self.faults.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let number = self.fault_seq.fetch_add(1, Ordering::Relaxed) + 1;
        if faults.mixed_rate > 0.0 {
            let body_hash = fnv1a(body);
            let attempt = {
                let mut seen = self.seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                let count = seen.entry(body_hash).or_insert(0);
                *count += 1;
                *count
            };
            let draw = mix(body_hash ^ mix(u64::from(attempt) ^ mix(faults.mixed_seed)));
            let uniform = (draw >> 11) as f64 / (1u64 << 53) as f64;
            if uniform < faults.mixed_rate {
                let kind = MixedFault::ALL[(draw % MixedFault::ALL.len() as u64) as usize];
                return (Plan::Mixed(kind), None);
            }
        }
        let hits = |first: u32, every: Option<u32>| {
            number <= u64::from(first) || every.is_some_and(|every| every > 0 && number % u64::from(every) == 0)
        };
        let plan = if hits(faults.drop_first, faults.drop_every) {
            Plan::Drop
        } else if number <= u64::from(faults.hang_first) {
            Plan::Hang(Duration::from_secs_f64(faults.hang_s.max(0.0)))
        } else if hits(faults.fail_first, faults.fail_every) {
            Plan::Fail(StatusCode::from_u16(faults.fail_status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        } else {
            Plan::Answer
        };
        (plan, faults.retry_after_s)
    }

    fn log(&self, seq: u64, body: &[u8], status: u16, last_user: &str, authorized: bool) {
        self.log_entry(seq, body, status, last_user, authorized, None);
    }

    fn log_fault(&self, seq: u64, body: &[u8], status: u16, last_user: &str, authorized: bool, fault: MixedFault) {
        self.log_entry(seq, body, status, last_user, authorized, Some(fault));
    }

    fn log_entry(&self, seq: u64, body: &[u8], status: u16, last_user: &str, authorized: bool, fault: Option<MixedFault>) {
        if !self.record && self.log_file.is_none() {
            return;
        }
        let key = format!("{:016x}", fnv1a(body));
        if let Some(file) = &self.log_file {
            let line = format!("{seq}\t{key}\t{status}\t{}\n", serde_json::to_string(last_user).unwrap_or_default());
            let mut file = file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let _ = file.write_all(line.as_bytes());
            let _ = file.flush();
        }
        if self.record {
            let entry = LoggedRequest { seq, key, status, last_user: last_user.to_owned(), authorized, fault };
            self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(entry);
        }
    }

    /// Answers a parsed request: scripted rules first, else the default responder.
    fn answer(&self, request: &ChatRequest, model: &str) -> Result<ChatResponse, (BackendErrorKind, String)> {
        if request.params.logprobs.is_some() && !self.logprobs {
            // Imitate a server that ignores `logprobs`.
            let mut plain = request.clone();
            plain.params.logprobs = None;
            return self.answer(&plain, model);
        }
        if let Some(scripted) = &self.scripted {
            if let Some(result) = scripted.respond(request) {
                return result.map_err(|error| (error.kind, error.message));
            }
        }
        let choices = responder::default_choices(request);
        let completion_tokens = choices.iter().map(|choice| choice.text.split_whitespace().count() as u64).sum();
        let prompt_tokens = request.messages.iter().map(|message| message.content.split_whitespace().count() as u64).sum();
        Ok(ChatResponse {
            choices,
            usage: retort_core::Usage { prompt_tokens, completion_tokens, cached_tokens: 0 },
            model: model.to_owned(),
        })
    }
}

fn status_for(kind: BackendErrorKind) -> Option<StatusCode> {
    Some(match kind {
        BackendErrorKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        BackendErrorKind::Server | BackendErrorKind::WorkerDied => StatusCode::INTERNAL_SERVER_ERROR,
        BackendErrorKind::Timeout => StatusCode::REQUEST_TIMEOUT,
        BackendErrorKind::BadRequest | BackendErrorKind::ContextLength | BackendErrorKind::Unsupported => StatusCode::BAD_REQUEST,
        BackendErrorKind::Auth => StatusCode::UNAUTHORIZED,
        BackendErrorKind::Connection | BackendErrorKind::Protocol | BackendErrorKind::Malformed | BackendErrorKind::Cancelled => {
            return None
        }
    })
}

async fn chat(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Connection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let authorized = headers.contains_key(header::AUTHORIZATION);
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed) + 1;
    let parsed: Result<IncomingRequest, _> = serde_json::from_slice(&body);
    let request = match parsed {
        Ok(parsed) => {
            let model = if parsed.model.is_empty() { None } else { Some(parsed.model.clone()) };
            let mut request = parsed.into_chat_request();
            if shared.ignore_seed {
                request.params.seed = None;
            }
            (request, model)
        }
        Err(error) => {
            shared.log(seq, &body, 400, "", authorized);
            let message = format!("expected a chat-completions request body, found invalid JSON: {error}");
            return json_response(StatusCode::BAD_REQUEST, error_body(StatusCode::BAD_REQUEST, &message), None);
        }
    };
    let (request, model) = request;
    let last_user = request.messages.iter().rev().find(|message| message.role == Role::User).map_or("", |message| message.content.as_str());
    let (plan, retry_after) = shared.plan(&body);
    let mut fault = None;
    match plan {
        Plan::Drop => {
            shared.log(seq, &body, 0, last_user, authorized);
            connection.0.notify_one();
            std::future::pending::<()>().await;
            unreachable!("the connection task drops this handler")
        }
        Plan::Fail(status) => {
            shared.log(seq, &body, status.as_u16(), last_user, authorized);
            let message = format!("injected failure {} of request {seq}", status.as_u16());
            return json_response(status, error_body(status, &message), retry_after);
        }
        Plan::Hang(duration) => tokio::time::sleep(duration).await,
        Plan::Answer => {}
        Plan::Mixed(kind) => {
            fault = Some(kind);
            let hang_s = shared.faults.read().unwrap_or_else(|poisoned| poisoned.into_inner()).hang_s;
            let status = |code: u16| StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let early = match kind {
                MixedFault::Reset => {
                    shared.log_fault(seq, &body, 0, last_user, authorized, kind);
                    connection.0.notify_one();
                    std::future::pending::<()>().await;
                    unreachable!("the connection task drops this handler")
                }
                MixedFault::Hang => {
                    let seconds = if hang_s > 0.0 { hang_s } else { 3600.0 };
                    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
                    None
                }
                MixedFault::RateLimited => Some((status(429), Some(0.2))),
                MixedFault::ServerError => Some((status(500), None)),
                MixedFault::Unavailable => Some((status(503), Some(0.1))),
                MixedFault::Malformed => {
                    shared.log_fault(seq, &body, 200, last_user, authorized, kind);
                    return json_response(
                        StatusCode::OK,
                        b"{\"id\": \"chatcmpl-mock\", \"choices\": [{\"index\": 0, \"mess".to_vec(),
                        None,
                    );
                }
                MixedFault::NoChoices => {
                    shared.log_fault(seq, &body, 200, last_user, authorized, kind);
                    let bytes = serde_json::json!({"id": format!("chatcmpl-mock-{seq}"), "object": "chat.completion", "created": 0, "model": shared.model, "choices": []});
                    return json_response(StatusCode::OK, bytes.to_string().into_bytes(), None);
                }
                MixedFault::Truncated | MixedFault::Empty | MixedFault::Length | MixedFault::Drip => None,
            };
            if let Some((status, retry_after)) = early {
                shared.log_fault(seq, &body, status.as_u16(), last_user, authorized, kind);
                let message = format!("injected {kind:?} fault on request {seq}");
                return json_response(status, error_body(status, &message), retry_after);
            }
        }
    }
    let model = model.as_deref().unwrap_or(&shared.model);
    // The latency comes before the answer is logged, so a log line means the answer is on
    // its way (tests and benchmarks count what had reached the client by the log).
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let result = shared.answer(&request, model);
    let response = match result {
        Ok(mut answer) => {
            match fault {
                Some(MixedFault::Empty) => answer.choices.iter_mut().for_each(|choice| choice.text.clear()),
                Some(MixedFault::Length) => answer.choices.iter_mut().for_each(|choice| {
                    let words: Vec<&str> = choice.text.split_whitespace().collect();
                    choice.text = words[..words.len() / 2].join(" ");
                    choice.finish_reason = retort_core::FinishReason::Length;
                }),
                _ => {}
            }
            match fault {
                Some(kind) => shared.log_fault(seq, &body, 200, last_user, authorized, kind),
                None => shared.log(seq, &body, 200, last_user, authorized),
            }
            let wire = WireResponse {
                id: format!("chatcmpl-mock-{seq}").into(),
                object: "chat.completion".into(),
                created: 0,
                model: answer.model.as_str().into(),
                choices: answer.choices.iter().enumerate().map(|(index, choice)| WireChoice::from_choice(index as u32, choice)).collect(),
                usage: Some(WireUsage {
                    prompt_tokens: answer.usage.prompt_tokens,
                    completion_tokens: answer.usage.completion_tokens,
                    total_tokens: answer.usage.prompt_tokens + answer.usage.completion_tokens,
                    prompt_tokens_details: None,
                }),
            };
            match serde_json::to_vec(&wire) {
                Ok(bytes) if fault == Some(MixedFault::Truncated) => broken_body(bytes),
                Ok(bytes) if fault == Some(MixedFault::Drip) => dripped_body(bytes),
                Ok(bytes) => json_response(StatusCode::OK, bytes, None),
                Err(error) => {
                    let message = format!("serializing the answer: {error}");
                    json_response(StatusCode::INTERNAL_SERVER_ERROR, error_body(StatusCode::INTERNAL_SERVER_ERROR, &message), None)
                }
            }
        }
        Err((kind, message)) => match status_for(kind) {
            Some(status) => {
                shared.log(seq, &body, status.as_u16(), last_user, authorized);
                let message = if kind == BackendErrorKind::ContextLength {
                    format!("This model's maximum context length is exceeded ({message})")
                } else {
                    message
                };
                let retry_after = if kind == BackendErrorKind::RateLimited { retry_after } else { None };
                json_response(status, error_body(status, &message), retry_after)
            }
            None if matches!(kind, BackendErrorKind::Protocol | BackendErrorKind::Malformed) => {
                shared.log(seq, &body, 200, last_user, authorized);
                let mut response = Response::new(Body::from("this is not a chat completion"));
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                response
            }
            None => {
                shared.log(seq, &body, 0, last_user, authorized);
                connection.0.notify_one();
                std::future::pending::<()>().await;
                unreachable!("the connection task drops this handler")
            }
        },
    };
    response
}
