//! Benchmark: tokens per second of the local backend with 1 and with 8 concurrent sequences.
//!
//! Run: `cargo run -p retort-llama --example llama_bench [--release] -- [model] [tokens] [threads] [batch_threads]`
//! (model: a name or GGUF path, default smollm2-135m; tokens per sequence, default 64;
//! then optionally the CPU threads for single-token steps and for batched steps).

use std::time::Instant;

use retort_core::{Backend, ChatRequest, Message, SamplingParams};
use retort_llama::{LocalBackend, LocalConfig};

const PROMPTS: [&str; 8] = [
    "Write a short story about a lighthouse keeper.",
    "Explain how rain forms.",
    "Describe a day at the market.",
    "Write a poem about the sea.",
    "Explain why the sky is blue.",
    "Describe your favourite city.",
    "Write a letter to a friend about a trip.",
    "Explain how a bicycle works.",
];

async fn run(backend: &LocalBackend, sequences: usize, tokens: u32) -> (u64, f64) {
    let requests: Vec<ChatRequest> = (0..sequences)
        .map(|index| ChatRequest {
            messages: vec![Message::user(PROMPTS[index % PROMPTS.len()])],
            params: SamplingParams {
                temperature: Some(0.8),
                seed: Some(index as u64),
                max_tokens: Some(tokens),
                ..SamplingParams::default()
            },
            ..ChatRequest::default()
        })
        .collect();
    let start = Instant::now();
    let answers = futures::future::join_all(requests.iter().map(|request| backend.chat(request))).await;
    let elapsed = start.elapsed().as_secs_f64();
    let generated = answers.into_iter().map(|answer| answer.expect("chat").usage.completion_tokens).sum();
    (generated, elapsed)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    // Like the `retort` binary, this program is its own model worker.
    if args.peek().map(String::as_str) == Some("__llama-worker") {
        retort_llama::worker_main();
    }
    let model = args.next().unwrap_or_else(|| retort_llama::DEFAULT_MODEL.to_string());
    let tokens: u32 = args.next().map(|value| value.parse().expect("tokens: a number")).unwrap_or(64);
    let threads: Option<usize> = args.next().map(|value| value.parse().expect("threads: a number"));
    let batch_threads: Option<usize> = args.next().map(|value| value.parse().expect("batch threads: a number"));
    let config = LocalConfig { max_sequences: 8, context_size: 1024, threads, batch_threads, ..LocalConfig::for_model(model.clone()) };
    println!("threads {threads:?}, batch threads {batch_threads:?}");
    let backend = LocalBackend::new(config).unwrap_or_else(|error| panic!("{error}"));
    let load = Instant::now();
    backend.warm_up().await.expect("load the model");
    println!("model {model}: loaded in {:.2}s", load.elapsed().as_secs_f64());
    run(&backend, 1, 8).await;
    let mut rates = Vec::new();
    for sequences in [1, 8] {
        let (generated, seconds) = run(&backend, sequences, tokens).await;
        let rate = generated as f64 / seconds;
        rates.push(rate);
        println!("{sequences} sequence(s): {generated} tokens in {seconds:.2}s = {rate:.1} tokens/s");
    }
    println!("speed-up of 8 over 1: {:.2}x", rates[1] / rates[0]);
}
