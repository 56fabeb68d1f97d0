//! Shared set-up for the integration tests: a sandbox launching this crate's helper binary.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use retort_sandbox::{Limits, Sandbox, SandboxConfig};

/// Small limits that keep the suite fast.
pub fn small_limits() -> Limits {
    Limits {
        timeout: Duration::from_secs(3),
        memory_mb: 256,
        cpu_seconds: 2,
        max_output_bytes: 64 * 1024,
        max_processes: 1,
        max_file_bytes: 1 << 20,
        max_open_files: 64,
    }
}

/// A sandbox with the test helper binary and small limits.
pub fn sandbox(concurrency: usize) -> Sandbox {
    let mut cfg = SandboxConfig::new(env!("CARGO_BIN_EXE_retort-sandbox-helper"), vec![]);
    cfg.max_concurrency = concurrency;
    cfg.default_limits = small_limits();
    Sandbox::new(cfg).expect("this machine supports the sandbox")
}
