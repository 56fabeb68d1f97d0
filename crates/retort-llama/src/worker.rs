//! The worker process: loads the model and runs the scheduler, speaking frames on stdin/stdout.

use std::io::{BufRead, Write};

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::{send_logs_to_tracing, LogOptions};

use crate::protocol::{decode, encode, FromWorker, Load, ToWorker};
use crate::scheduler::{self, Sink};

/// Writes frames to stdout, one flushed line each.
struct StdoutSink {
    out: std::io::Stdout,
}

impl Sink for StdoutSink {
    fn send(&mut self, frame: &FromWorker) {
        let mut out = self.out.lock();
        // A closed stdout means the backend is gone; the worker ends when stdin closes too.
        let _ = out.write_all(encode(frame).as_bytes());
        let _ = out.flush();
    }
}

/// The entry point of the model worker process; never returns.
///
/// The `retort` binary calls this from its hidden `__llama-worker` subcommand. The process
/// reads frames from stdin, answers on stdout and exits when stdin closes.
pub fn worker_main() -> ! {
    let code = match serve() {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("retort-llama worker: {message}");
            1
        }
    };
    std::process::exit(code)
}

fn serve() -> Result<(), String> {
    // llama.cpp logs to stderr; keep it quiet unless asked, and never on stdout.
    let verbose = std::env::var("RETORT_LLAMA_LOG").is_ok_and(|value| value == "1");
    send_logs_to_tracing(LogOptions::default().with_logs_enabled(verbose));
    let mut sink = StdoutSink { out: std::io::stdout() };
    let stdin = std::io::stdin();
    let load = loop {
        let mut line = String::new();
        let read = stdin.read_line(&mut line).map_err(|error| format!("reading the load frame from stdin: {error}"))?;
        if read == 0 {
            return Ok(());
        }
        match decode::<ToWorker>(&line) {
            Some(Ok(ToWorker::Load(load))) => break load,
            Some(Ok(other)) => return Err(format!("expected a load frame first, found {other:?}")),
            Some(Err(error)) => return Err(format!("reading the load frame: {error}")),
            None => continue,
        }
    };
    let (backend, mut model) = match load_model(&load) {
        Ok(loaded) => loaded,
        Err(message) => {
            sink.send(&FromWorker::LoadFailed { message: message.clone() });
            return Err(message);
        }
    };
    let mut adapter = match &load.adapter {
        None => None,
        Some(path) => match model.lora_adapter_init(path) {
            Ok(adapter) => Some(adapter),
            Err(error) => {
                let message = format!("loading the LoRA adapter {path}: {error} (is it an adapter for {}?)", load.model_path);
                sink.send(&FromWorker::LoadFailed { message: message.clone() });
                return Err(message);
            }
        },
    };
    let model = model;
    let vocab = model.vocab();
    let token_text = |token| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None)).into_owned();
    let ready = |context_per_sequence| FromWorker::Ready {
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        bos_token: token_text(vocab.bos()),
        eos_token: token_text(vocab.eos()),
        context_per_sequence,
    };

    // Jobs arrive on a reader thread so that decoding never waits for stdin.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let frame = match decode::<ToWorker>(&line) {
                Some(Ok(frame)) => frame,
                Some(Err(error)) => {
                    eprintln!("retort-llama worker: ignoring a malformed frame: {error}");
                    continue;
                }
                None => continue,
            };
            if sender.send(frame).is_err() {
                break;
            }
        }
    });
    let profile = scheduler::run(&backend, &model, adapter.as_mut(), &load, receiver, &mut sink, &ready)?;
    if let Some(report) = profile {
        eprintln!("{report}");
    }
    Ok(())
}

fn load_model(load: &Load) -> Result<(LlamaBackend, LlamaModel), String> {
    let backend = LlamaBackend::init().map_err(|error| format!("starting llama.cpp: {error}"))?;
    let model = LlamaModel::load_from_file(&backend, &load.model_path, &LlamaModelParams::default())
        .map_err(|error| format!("loading the model {}: {error}", load.model_path))?;
    Ok((backend, model))
}
