//! Tests that the local backend survives its worker process dying.

mod common;

use common::{backend_with, config};
use retort_core::{Backend, BackendErrorKind, ChatRequest, Message, SamplingParams};

fn greedy(prompt: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(prompt)],
        params: SamplingParams {
            temperature: Some(0.0),
            max_tokens: Some(4),
            ..SamplingParams::default()
        },
        ..ChatRequest::default()
    }
}

#[tokio::test]
async fn a_request_that_kills_the_worker_fails_alone_and_others_go_on() {
    let backend = backend_with(config(), true);
    backend.warm_up().await.unwrap();
    let poison = greedy("<<retort-llama:abort>>");
    let innocent = greedy("Name a fruit.");
    let (poisoned, answered) = tokio::join!(backend.chat(&poison), backend.chat(&innocent));
    let error = poisoned.unwrap_err();
    assert_eq!(error.kind, BackendErrorKind::WorkerDied, "{error}");
    assert!(error.is_retryable());
    assert!(error.message.contains("3 times"), "{error}");
    answered.unwrap();
    // The worker died three times; the next request gets a fresh one.
    backend.chat(&innocent).await.unwrap();
    assert!(
        backend.worker_starts() >= 4,
        "starts: {}",
        backend.worker_starts()
    );
    assert_eq!(backend.in_flight(), 0);
}

#[tokio::test]
async fn a_request_in_flight_when_the_worker_dies_is_retried() {
    let backend = backend_with(config(), true);
    let marker = tempfile::tempdir().unwrap();
    let path = marker.path().join("aborted");
    let request = greedy(&format!(
        "<<retort-llama:abort-once:{}>> Name a fruit.",
        path.display()
    ));
    let response = backend.chat(&request).await.unwrap();
    assert!(path.exists(), "the worker should have aborted once");
    assert_eq!(response.choices.len(), 1);
    assert_eq!(backend.worker_starts(), 2);
}
