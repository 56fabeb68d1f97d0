//! Helpers the `retort` binary's tests share: the mock server, a quickstart folder, running the binary.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::process::Command;

use retort_mock::{MockConfig, MockServer};

pub const RETORT: &str = env!("CARGO_BIN_EXE_retort");

pub struct Mock {
    server: Option<MockServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Mock {
    pub fn start(latency_ms: u64) -> Mock {
        Mock::with(MockConfig { latency_ms, ..MockConfig::default() })
    }

    pub fn with(config: MockConfig) -> Mock {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = runtime.block_on(MockServer::start(config)).unwrap();
        Mock { server: Some(server), runtime: Some(runtime) }
    }

    pub fn server(&self) -> &MockServer {
        self.server.as_ref().unwrap()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.take()) {
            runtime.block_on(server.shutdown());
            runtime.shutdown_background();
        }
    }
}

pub fn quickstart_dir(records: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/quickstart/recipe.yaml");
    std::fs::copy(example, dir.path().join("recipe.yaml")).unwrap();
    let topics: String = (0..records).map(|index| format!("{{\"topic\": \"topic {index}\"}}\n")).collect();
    std::fs::write(dir.path().join("topics.jsonl"), topics).unwrap();
    dir
}

pub fn retort(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(RETORT).args(args).current_dir(dir).env_remove("OPENAI_API_KEY").output().unwrap()
}

pub fn run_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["run", "recipe.yaml", "--out", "out", "--base-url", url, "--model", "my-model", "--quiet"];
    args.extend_from_slice(extra);
    args
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}
