//! `retort-mock`: runs the mock OpenAI-compatible server until interrupted.
//!
//! Prints `listening on http://HOST:PORT/v1` as its first line of output.

use std::io::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;
use retort_backends::ScriptRule;
use retort_mock::{Faults, MockConfig, MockServer};
use serde::Deserialize;

/// A fast local server speaking the OpenAI chat-completions wire format.
#[derive(Debug, Parser)]
#[command(name = "retort-mock", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Model name to report.
    #[arg(long, default_value = "mock")]
    model: String,
    /// Milliseconds every chat request waits before its answer.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// YAML file of scripted rules: a list of rules, or a map with `rules` and `default_reply`.
    #[arg(long)]
    rules: Option<PathBuf>,
    /// The answer when no rule matches (instead of the hash-derived default).
    #[arg(long)]
    default_reply: Option<String>,
    /// Answer from the conversation alone, ignoring the request's seed (clients that send
    /// different seeds, or none, get the same answers).
    #[arg(long)]
    ignore_seed: bool,
    /// Append one line per chat request to this file (seq, body hash, status, last user message).
    #[arg(long)]
    log: Option<PathBuf>,
    /// Fail the first K chat requests.
    #[arg(long, default_value_t = 0)]
    fail_first: u32,
    /// Also fail every Nth chat request.
    #[arg(long)]
    fail_every: Option<u32>,
    /// Status of failed requests.
    #[arg(long, default_value_t = 500)]
    fail_status: u16,
    /// Seconds sent as Retry-After with failures.
    #[arg(long)]
    retry_after: Option<f64>,
    /// Hang the first K chat requests.
    #[arg(long, default_value_t = 0)]
    hang_first: u32,
    /// Seconds a hang lasts.
    #[arg(long, default_value_t = 60.0)]
    hang_s: f64,
    /// Drop the connection of the first K chat requests.
    #[arg(long, default_value_t = 0)]
    drop_first: u32,
    /// Also drop every Nth chat request.
    #[arg(long)]
    drop_every: Option<u32>,
    /// A share (0 to 1) of chat requests that meet a mixed fault: resets, hangs (`--hang-s`),
    /// 429/500/503, malformed and truncated bodies, no choices, empty or length-cut answers,
    /// dripped bodies; drawn per request body and attempt, the same in every run.
    #[arg(long, default_value_t = 0.0)]
    mixed_faults: f64,
    /// The seed of the mixed-fault draw.
    #[arg(long, default_value_t = 0)]
    fault_seed: u64,
    /// Answer no logprobs even when asked (imitates servers without them).
    #[arg(long)]
    no_logprobs: bool,
    /// Worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RulesFile {
    List(Vec<ScriptRule>),
    Map {
        #[serde(default)]
        rules: Vec<ScriptRule>,
        #[serde(default)]
        default_reply: Option<String>,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (rules, file_default) = match &args.rules {
        None => (Vec::new(), None),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|error| format!("reading rules file {}: {error}", path.display()))?;
            match serde_yaml::from_str::<RulesFile>(&text).map_err(|error| format!("parsing rules file {}: {error}", path.display()))? {
                RulesFile::List(rules) => (rules, None),
                RulesFile::Map { rules, default_reply } => (rules, default_reply),
            }
        }
    };
    let config = MockConfig {
        host: args.host,
        port: args.port,
        model: args.model,
        latency_ms: args.latency_ms,
        rules,
        default_reply: args.default_reply.or(file_default),
        ignore_seed: args.ignore_seed,
        faults: Faults {
            fail_first: args.fail_first,
            fail_every: args.fail_every,
            fail_status: args.fail_status,
            retry_after_s: args.retry_after,
            hang_first: args.hang_first,
            hang_s: args.hang_s,
            drop_first: args.drop_first,
            drop_every: args.drop_every,
            mixed_rate: args.mixed_faults,
            mixed_seed: args.fault_seed,
        },
        logprobs: !args.no_logprobs,
        record: false,
        log_file: args.log,
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    runtime.build()?.block_on(async move {
        let server = MockServer::start(config).await?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening on {}", server.url())?;
        stdout.flush()?;
        tokio::signal::ctrl_c().await?;
        server.shutdown().await;
        Ok(())
    })
}
