//! Throughput of the OpenAI backend against the mock server (or any URL), in requests/s.
//!
//! `cargo run --release -p retort-backends --example backend_bench -- [REQUESTS] [CONCURRENCY] [URL]`
//!
//! Without a URL an in-process mock is started; with one (e.g. a `retort-mock` binary on
//! another core set) the client alone is measured. Each request is distinct (its own prompt
//! and seed), as the engine would send them.

use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt};
use retort_backends::{OpenAiBackend, OpenAiConfig};
use retort_core::{Backend, ChatRequest};
use retort_mock::{MockConfig, MockServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests: usize = args.first().map(|arg| arg.parse()).transpose()?.unwrap_or(100_000);
    let concurrency: usize = args.get(1).map(|arg| arg.parse()).transpose()?.unwrap_or(256);
    let (url, server) = match args.get(2) {
        Some(url) => (url.clone(), None),
        None => {
            let server = MockServer::start(MockConfig { record: false, ..MockConfig::default() }).await?;
            (server.url(), Some(server))
        }
    };
    let backend = Arc::new(OpenAiBackend::with_api_key(
        OpenAiConfig { max_concurrency: concurrency, ..OpenAiConfig::new(url.clone(), "mock") },
        None,
    )?);
    let started = Instant::now();
    let failures = stream::iter(0..requests)
        .map(|index| {
            let backend = Arc::clone(&backend);
            async move {
                let mut request = ChatRequest::from_prompt(format!("Question number {index}: tell me something."));
                request.params.seed = Some(index as u64);
                request.params.max_tokens = Some(64);
                backend.chat(&request).await.is_err()
            }
        })
        .buffer_unordered(concurrency)
        .filter(|failed| std::future::ready(*failed))
        .count()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{requests} requests, concurrency {concurrency}, {failures} failed, {elapsed:.2} s, {:.0} requests/s ({})",
        requests as f64 / elapsed,
        if server.is_some() { "client and in-process mock" } else { url.as_str() }
    );
    Ok(())
}
