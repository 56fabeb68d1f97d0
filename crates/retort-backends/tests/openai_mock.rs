//! The OpenAI backend against the mock server: compliance, fault handling, limits, failover.

use std::sync::Arc;
use std::time::{Duration, Instant};

use retort_backends::clock::ManualClock;
use retort_backends::compliance::{check_backend, ComplianceOptions};
use retort_backends::{OpenAiBackend, OpenAiConfig, ScriptRule, ScriptToolCall};
use retort_core::{Backend, BackendErrorKind, ChatRequest, FinishReason, Message, ScoreRequest};
use retort_mock::{Faults, MockConfig, MockServer};

async fn mock(config: MockConfig) -> MockServer {
    MockServer::start(config).await.expect("the mock starts")
}

async fn mock_with_faults(faults: Faults) -> MockServer {
    mock(MockConfig { faults, ..MockConfig::default() }).await
}

/// A config with fast retries so fault tests stay well under a second.
fn fast_config(url: String) -> OpenAiConfig {
    OpenAiConfig {
        timeout_s: 2.0,
        retry_base_s: 0.01,
        retry_max_s: 0.05,
        rate_limit_cooldown_s: 0.0,
        failover_cooldown_s: 0.5,
        ..OpenAiConfig::new(url, "test-model")
    }
}

fn backend(config: OpenAiConfig) -> OpenAiBackend {
    OpenAiBackend::with_api_key(config, Some("sk-test-secret-key".into())).expect("valid config")
}

fn prompt(text: &str) -> ChatRequest {
    let mut request = ChatRequest::from_prompt(text);
    request.params.seed = Some(1);
    request
}

#[tokio::test]
async fn openai_backend_on_the_mock_passes_the_compliance_suite() {
    let server = mock(MockConfig {
        rules: vec![ScriptRule { when: "always fails".into(), error: Some("server".into()), ..ScriptRule::default() }],
        ..MockConfig::default()
    })
    .await;
    let backend: Arc<dyn Backend> = Arc::new(backend(fast_config(server.url())));
    let options = ComplianceOptions {
        failing: Some((ChatRequest::from_prompt("always fails"), BackendErrorKind::Server)),
        ..ComplianceOptions::default()
    };
    let report = check_backend(backend.as_ref(), &options).await.expect("compliant");
    assert_eq!(report.skipped, []);
    assert!(report.passed.contains(&"logprobs") && report.passed.contains(&"score"));
}

/// The backend on a clock that records its sleeps instead of waiting them out.
fn on_manual_clock(config: OpenAiConfig) -> (OpenAiBackend, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::default());
    let backend = OpenAiBackend::with_clock(config, Some("sk-test-secret-key".into()), clock.clone()).expect("valid config");
    (backend, clock)
}

#[tokio::test]
async fn rate_limited_with_retry_after_then_success() {
    let server = mock_with_faults(Faults { fail_first: 1, fail_status: 429, retry_after_s: Some(0.3), ..Faults::default() }).await;
    let (backend, clock) = on_manual_clock(fast_config(server.url()));
    let answer = backend.chat(&prompt("hello")).await.expect("the retry succeeds");
    let slept = clock.sleeps();
    assert_eq!(slept.len(), 1, "one backoff before the retry: {slept:?}");
    assert!(slept[0] >= Duration::from_millis(300), "Retry-After is a floor: {slept:?}");
    assert!(answer.choices[0].text.starts_with("Answer "));
    assert_eq!(server.count(), 2);
    let statuses: Vec<u16> = server.requests().iter().map(|logged| logged.status).collect();
    assert_eq!(statuses, [429, 200]);
}

#[tokio::test]
async fn the_key_is_sent_only_when_there_is_one() {
    let server = mock(MockConfig::default()).await;
    backend(fast_config(server.url())).chat(&prompt("with key")).await.unwrap();
    let keyless = OpenAiBackend::with_api_key(fast_config(server.url()), None).unwrap();
    keyless.chat(&prompt("without key")).await.unwrap();
    let authorized: Vec<bool> = server.requests().iter().map(|logged| logged.authorized).collect();
    assert_eq!(authorized, [true, false]);
}

#[tokio::test]
async fn server_errors_then_success() {
    let server = mock_with_faults(Faults { fail_first: 3, fail_status: 500, ..Faults::default() }).await;
    let backend = backend(fast_config(server.url()));
    backend.chat(&prompt("hello")).await.expect("the fourth attempt succeeds");
    assert_eq!(server.count(), 4);
    let keys: Vec<String> = server.requests().into_iter().map(|logged| logged.key).collect();
    assert!(keys.windows(2).all(|pair| pair[0] == pair[1]), "the same body is re-sent: {keys:?}");
}

#[tokio::test]
async fn a_hang_times_out_then_success() {
    let server = mock_with_faults(Faults { hang_first: 1, hang_s: 10.0, ..Faults::default() }).await;
    let backend = backend(OpenAiConfig { timeout_s: 0.3, ..fast_config(server.url()) });
    let started = Instant::now();
    backend.chat(&prompt("hello")).await.expect("the retry succeeds");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(300) && elapsed < Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(server.count(), 2);
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let server = mock_with_faults(Faults { drop_first: 2, ..Faults::default() }).await;
    let backend = backend(fast_config(server.url()));
    backend.chat(&prompt("hello")).await.expect("the third attempt succeeds");
    assert_eq!(server.count(), 3);
    assert_eq!(server.requests()[0].status, 0);

    let server = mock_with_faults(Faults { drop_first: 10, ..Faults::default() }).await;
    let once = self::backend(OpenAiConfig { max_retries: 0, ..fast_config(server.url()) });
    let error = once.chat(&prompt("hello")).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Server, "{error}");
    assert!(error.message.contains("closed or reset"), "{}", error.message);
}

#[tokio::test]
async fn exhausted_retries_report_the_kind_and_attempts() {
    let server = mock_with_faults(Faults { fail_first: 100, fail_status: 503, ..Faults::default() }).await;
    let backend = backend(OpenAiConfig { max_retries: 2, ..fast_config(server.url()) });
    let error = backend.chat(&prompt("hello")).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Server);
    assert!(error.message.contains("gave up after 3 attempts"), "{}", error.message);
    assert!(error.message.contains("503"), "{}", error.message);
    assert_eq!(server.count(), 3);
    assert_eq!(backend.in_flight(), 0);
}

#[tokio::test]
async fn hang_exhausting_retries_is_a_timeout() {
    let server = mock_with_faults(Faults { hang_first: 10, hang_s: 5.0, ..Faults::default() }).await;
    let backend = backend(OpenAiConfig { timeout_s: 0.1, max_retries: 1, ..fast_config(server.url()) });
    let error = backend.chat(&prompt("hello")).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Timeout);
    assert!(error.message.contains("gave up after 2 attempts"), "{}", error.message);
}

#[tokio::test]
async fn rate_limits_shrink_the_concurrency_limit_and_successes_grow_it() {
    let server = mock_with_faults(Faults { fail_first: 3, fail_status: 429, retry_after_s: Some(0.0), ..Faults::default() }).await;
    let backend = backend(OpenAiConfig { max_concurrency: 16, ..fast_config(server.url()) });
    assert_eq!(backend.concurrency_limit(), 16);
    backend.chat(&prompt("hello")).await.expect("the fourth attempt succeeds");
    // 16 -> 8 -> 4 -> 2 on three 429s, then +1 for the success.
    assert_eq!(backend.concurrency_limit(), 3);
    for _ in 0..20 {
        backend.chat(&prompt("again")).await.unwrap();
    }
    assert_eq!(backend.concurrency_limit(), 16, "grows back to the maximum, not beyond");
}

#[tokio::test]
async fn a_down_endpoint_fails_over_to_the_other() {
    let server = mock(MockConfig::default()).await;
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let config = OpenAiConfig { base_url: Some(dead), base_urls: vec![server.url()], ..fast_config(String::new()) };
    let (backend, clock) = on_manual_clock(config);
    let backend = Arc::new(backend);
    let tasks: Vec<_> = (0..20)
        .map(|index| {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move { backend.chat(&prompt(&format!("question {index}"))).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every request is answered by the live endpoint");
    }
    assert_eq!(server.count(), 20);
    assert_eq!(clock.sleeps(), [], "failover does not back off");
}

#[tokio::test]
async fn every_endpoint_down_is_a_connection_error() {
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", listener.local_addr().unwrap())
    };
    let backend = backend(OpenAiConfig { max_retries: 1, ..fast_config(dead) });
    let error = backend.chat(&prompt("hello")).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Connection);
    assert!(error.message.contains("gave up after 2 attempts"), "{}", error.message);
}

#[tokio::test]
async fn requests_per_minute_are_paced() {
    let server = mock(MockConfig::default()).await;
    // 600 a minute: a burst of 10, then one every 100 ms.
    let (backend, clock) = on_manual_clock(OpenAiConfig { requests_per_minute: Some(600), ..fast_config(server.url()) });
    for index in 0..16 {
        backend.chat(&prompt(&format!("q{index}"))).await.unwrap();
    }
    // The burst goes at once; each of the 6 beyond it waits its 100 ms for the bucket to refill.
    let slept = clock.sleeps();
    assert_eq!(slept.len(), 6, "{slept:?}");
    assert!(slept.iter().all(|wait| wait.abs_diff(Duration::from_millis(100)) < Duration::from_millis(5)), "{slept:?}");
    assert_eq!(server.count(), 16);
}

#[tokio::test]
async fn client_errors_are_not_retried_and_never_show_the_key() {
    let rule = |when: &str, error: &str| ScriptRule { when: when.into(), error: Some(error.into()), ..ScriptRule::default() };
    let server = mock(MockConfig {
        rules: vec![rule("auth", "auth"), rule("long", "context_length"), rule("bad", "bad_request")],
        ..MockConfig::default()
    })
    .await;
    let backend = backend(fast_config(server.url()));
    let cases = [("auth", BackendErrorKind::Auth), ("long", BackendErrorKind::ContextLength), ("bad", BackendErrorKind::BadRequest)];
    for (index, (text, kind)) in cases.into_iter().enumerate() {
        let error = backend.chat(&prompt(text)).await.unwrap_err();
        assert_eq!(error.kind, kind, "{text}: {error}");
        assert!(!error.message.contains("sk-test-secret-key"));
        assert!(!error.message.contains("attempts"), "not retried: {}", error.message);
        assert_eq!(server.count(), index as u64 + 1);
    }
}

#[tokio::test]
async fn logprobs_from_a_server_without_them_are_unsupported() {
    let server = mock(MockConfig { logprobs: false, ..MockConfig::default() }).await;
    let backend = backend(fast_config(server.url()));
    let mut request = prompt("hello");
    request.params.logprobs = Some(1);
    let error = backend.chat(&request).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Unsupported);
    assert!(error.message.contains("returned no logprobs"), "{}", error.message);
    let error = backend.score(&ScoreRequest::chat(vec![Message::user("q")], "a")).await.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::Unsupported);
    assert!(error.message.contains("prompt log-probabilities"), "{}", error.message);
}

#[tokio::test]
async fn tool_calls_and_structured_output_round_trip() {
    let server = mock(MockConfig {
        rules: vec![ScriptRule {
            when: r"weather in (\w+)".into(),
            tool_calls: vec![ScriptToolCall { name: "weather".into(), arguments: r#"{"city":"$1"}"#.into() }],
            ..ScriptRule::default()
        }],
        ..MockConfig::default()
    })
    .await;
    let backend = backend(fast_config(server.url()));
    let mut request = prompt("what is the weather in Paris");
    request.tools = vec![retort_core::ToolSpec {
        name: "weather".into(),
        description: "looks up the weather".into(),
        parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }];
    let choice = backend.chat(&request).await.unwrap().choices.remove(0);
    assert_eq!(choice.finish_reason, FinishReason::ToolCalls);
    assert_eq!(choice.tool_calls[0].name, "weather");
    assert_eq!(choice.tool_calls[0].arguments, r#"{"city":"Paris"}"#);

    let mut structured = prompt("describe a fruit");
    structured.json_schema = Some(serde_json::json!({
        "type": "object", "properties": {"name": {"type": "string"}, "sweet": {"type": "boolean"}}
    }));
    let text = backend.chat(&structured).await.unwrap().choices.remove(0).text;
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON text");
    assert!(value["name"].is_string() && value["sweet"].is_boolean(), "{value}");
}

#[tokio::test]
async fn in_flight_counts_requests_being_answered() {
    let server = mock(MockConfig { latency_ms: 300, ..MockConfig::default() }).await;
    let backend = Arc::new(backend(fast_config(server.url())));
    let tasks: Vec<_> = (0..3)
        .map(|index| {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move { backend.chat(&prompt(&format!("q{index}"))).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(backend.in_flight(), 3);
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(backend.in_flight(), 0);
}

/// Regression (issue 11): a 200 whose body was not JSON, was cut off, or had no `choices`
/// failed the record at its first attempt, as if the request itself were wrong. These are
/// faults of the moment: retried like a 5xx.
#[tokio::test]
async fn malformed_truncated_and_choiceless_answers_are_retried() {
    let server = mock(MockConfig { rules: vec![], ..MockConfig::default() }).await;
    let backend = backend(fast_config(server.url()));
    // Mixed faults draw a kind per (body, attempt); 300 requests meet every kind.
    let mut met = std::collections::BTreeSet::new();
    server.set_faults(Faults { mixed_rate: 0.3, mixed_seed: 7, hang_s: 0.2, ..Faults::default() });
    for index in 0..300 {
        let answer = backend.chat(&prompt(&format!("question {index}"))).await;
        if answer.is_err() {
            let log: Vec<String> =
                server.requests().iter().rev().take(12).map(|r| format!("{} {} {:?} {}", r.seq, r.status, r.fault, r.last_user)).collect();
            panic!("request {index}: {:?}\n{}", answer.err(), log.join("\n"));
        }
    }
    for request in server.requests() {
        if let Some(fault) = request.fault {
            met.insert(format!("{fault:?}"));
        }
    }
    for kind in ["Malformed", "Truncated", "NoChoices", "Reset", "ServerError", "Unavailable", "RateLimited", "Drip"] {
        assert!(met.contains(kind), "no request met {kind}: {met:?}");
    }
}

/// Regression (issue 11): one request hanging until the timeout held its record for the whole
/// timeout. After a warm-up, an attempt far slower than its peers is sent again on another
/// connection, and the first answer wins.
#[tokio::test]
async fn a_hung_attempt_is_hedged_and_the_first_answer_wins() {
    let server = mock(MockConfig::default()).await;
    let config = OpenAiConfig { timeout_s: 30.0, max_retries: 0, ..fast_config(server.url()) };
    let backend = backend(config);
    for index in 0..30 {
        backend.chat(&prompt(&format!("warm {index}"))).await.unwrap();
    }
    server.set_faults(Faults { hang_first: 1, hang_s: 20.0, ..Faults::default() });
    let started = std::time::Instant::now();
    let answer = backend.chat(&prompt("this one hangs")).await.unwrap();
    assert!(!answer.choices[0].text.is_empty());
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "hedged after {:?}", started.elapsed());
    assert_eq!(backend.hedged(), 1);
    // The hung attempt and its hedge both reached the server; only the hedge has answered.
    assert_eq!(server.count(), 32);
}
