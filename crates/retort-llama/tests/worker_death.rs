//! Tests that the local backend survives its worker process dying.

mod common;

use common::{backend_with, config};
use retort_core::{Backend, BackendErrorKind, ChatRequest, Message, SamplingParams};

fn greedy(prompt: &str) -> ChatRequest {
    ChatRequest {
        messages: vec![Message::user(prompt)],
        params: SamplingParams { temperature: Some(0.0), max_tokens: Some(4), ..SamplingParams::default() },
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
    assert!(backend.worker_starts() >= 4, "starts: {}", backend.worker_starts());
    assert_eq!(backend.in_flight(), 0);
}

#[tokio::test]
async fn a_request_in_flight_when_the_worker_dies_is_retried() {
    let backend = backend_with(config(), true);
    let marker = tempfile::tempdir().unwrap();
    let path = marker.path().join("aborted");
    let request = greedy(&format!("<<retort-llama:abort-once:{}>> Name a fruit.", path.display()));
    let response = backend.chat(&request).await.unwrap();
    assert!(path.exists(), "the worker should have aborted once");
    assert_eq!(response.choices.len(), 1);
    assert_eq!(backend.worker_starts(), 2);
}

#[test]
fn a_worker_whose_backend_is_gone_stops_at_once() {
    // The backend's process killed (kill -9 skips every destructor) leaves the worker's stdin
    // closed with work queued: the worker exits instead of decoding for nobody.
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let model = retort_llama::resolve_model("smollm2-135m").expect("the default model is installed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_retort-llama-worker"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let load = serde_json::json!({"type": "load", "model_path": model, "context_size": 512, "max_sequences": 2,
        "threads": 1, "batch_threads": 1, "batch_size": 512});
    writeln!(stdin, "@retort-llama {load}").unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("\"ready\"") {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the worker ended before it was ready");
    }
    // About a minute of decoding on one thread.
    for id in 0..6 {
        let job = serde_json::json!({"type": "generate", "id": id, "job": {"prompt": "Tell a long story about the sea.",
            "temperature": 0.8, "top_p": 1.0, "max_tokens": 480, "stop": [], "seed": id, "logprobs": null, "json_schema": null}});
        writeln!(stdin, "@retort-llama {job}").unwrap();
    }
    stdin.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            panic!("the worker still ran 10 s after its stdin closed");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
