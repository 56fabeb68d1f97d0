//! Shared set-up for the integration tests: scripted backends and a sandbox that launches
//! this crate's helper binary.

#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use retort_backends::{ScriptRule, ScriptToolCall, ScriptedBackend};
use retort_sandbox::{Limits, Sandbox, SandboxConfig, HELPER_SUBCOMMAND};

/// A rule that answers with text.
pub fn say(when: &str, reply: &str) -> ScriptRule {
    ScriptRule { when: when.into(), reply: Some(reply.into()), ..ScriptRule::default() }
}

/// A rule that answers with one tool call.
pub fn call(when: &str, name: &str, arguments: &str) -> ScriptRule {
    ScriptRule {
        when: when.into(),
        reply: Some(String::new()),
        tool_calls: vec![ScriptToolCall { name: name.into(), arguments: arguments.into() }],
        ..ScriptRule::default()
    }
}

/// A scripted backend with these rules.
pub fn scripted(rules: Vec<ScriptRule>) -> ScriptedBackend {
    ScriptedBackend::from_rules(rules).expect("the rules compile")
}

/// A sandbox with this crate's helper binary and small limits.
pub fn sandbox() -> Arc<Sandbox> {
    let mut config = SandboxConfig::new(env!("CARGO_BIN_EXE_retort-agent-sandbox-helper"), vec![HELPER_SUBCOMMAND.into()]);
    config.max_concurrency = 4;
    config.default_limits = Limits {
        timeout: Duration::from_secs(5),
        memory_mb: 256,
        cpu_seconds: 5,
        max_output_bytes: 64 * 1024,
        max_processes: 1,
        max_file_bytes: 1 << 20,
        max_open_files: 64,
    };
    Arc::new(Sandbox::new(config).expect("this machine supports the sandbox"))
}

/// A small shop database in a temporary directory.
pub fn shop_db(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("shop.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL, stock INTEGER);
         INSERT INTO products VALUES (1, 'apple', 0.5, 100), (2, 'pear', 0.75, 0), (3, 'melon', 3.25, 7);
         CREATE TABLE orders (id INTEGER PRIMARY KEY, product_id INTEGER, quantity INTEGER);
         INSERT INTO orders VALUES (1, 1, 10), (2, 3, 2), (3, 1, 5);",
    )
    .unwrap();
    path
}
