//! Measures the sandbox's overhead: how long a trivial program takes end to end, one at a time
//! and with several at once. Also shows the production wiring: this example is its own helper.
//!
//! Run: `cargo run --release -p retort-sandbox --example sandbox_bench [RUNS] [CONCURRENCY]`

use std::time::Instant;

use retort_sandbox::{helper_main, is_helper_invocation, ExecRequest, Sandbox, SandboxConfig};

fn main() {
    if is_helper_invocation() {
        helper_main();
    }
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(40);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async move {
        let mut cfg = SandboxConfig::for_current_exe().expect("the current executable");
        cfg.max_concurrency = concurrency;
        let sandbox = Sandbox::new(cfg).expect("a sandbox");
        println!("kernel: {:?}", sandbox.kernel());

        let started = Instant::now();
        for _ in 0..runs.min(10) {
            let r = sandbox.run(ExecRequest::new("print(1)")).await.expect("a run");
            assert_eq!(r.stdout, "1\n");
        }
        let n = runs.min(10);
        println!("sequential: {:.1} ms per run ({n} runs)", started.elapsed().as_secs_f64() * 1000.0 / n as f64);

        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..runs {
            let sb = sandbox.clone();
            set.spawn(async move { sb.run(ExecRequest::new("print(1)")).await });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.expect("a task").expect("a run").stdout, "1\n");
        }
        let secs = started.elapsed().as_secs_f64();
        println!("concurrent ({concurrency} at once): {:.1} runs/s ({runs} runs in {secs:.2} s)", runs as f64 / secs);

        let mut session = sandbox.session().await.expect("a session");
        session.execute("x = 0").await.expect("a cell");
        let started = Instant::now();
        for _ in 0..runs {
            session.execute("x += 1").await.expect("a cell");
        }
        println!("session cell: {:.2} ms per cell", started.elapsed().as_secs_f64() * 1000.0 / runs as f64);
    });
}
