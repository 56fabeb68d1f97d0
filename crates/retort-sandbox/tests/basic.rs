//! Normal use: results and their JSON, stdin, limits, concurrency, clean-up, sessions, and
//! the verifier conveniences.

mod common;

use std::time::{Duration, Instant};

use retort_sandbox::{probe, ExecRequest, ExecStatus, Limits, Sandbox, SandboxConfig, SandboxError};
use serde_json::json;

#[test]
fn probe_reports_this_kernel() {
    let k = probe();
    assert!(k.landlock_abi >= 1 && k.seccomp_filter, "{k:?}");
    assert!(k.sandbox_possible());
    assert!(k.missing().is_empty());
}

#[tokio::test]
async fn plain_runs() {
    let sb = common::sandbox(4);
    // (code, stdin, status, exit code, stdout contains, stderr contains)
    type Case<'a> = (&'a str, &'a str, ExecStatus, Option<i32>, &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        ("print('hello')", "", ExecStatus::Ok, Some(0), "hello\n", ""),
        ("def f():\n    raise ValueError('boom')\nf()", "", ExecStatus::Error, Some(1), "", "ValueError: boom"),
        ("import sys\nprint(sys.stdin.read().upper())", "echo me", ExecStatus::Ok, Some(0), "ECHO ME", ""),
        ("import sys\nsys.exit(3)", "", ExecStatus::Error, Some(3), "", ""),
        ("print('\\u00e9t\\u00e9 \\U0001F600')", "", ExecStatus::Ok, Some(0), "été 😀", ""),
        ("import sys\nsys.stdout.buffer.write(b'\\xff\\xfeok')", "", ExecStatus::Ok, Some(0), "ok", ""),
        ("open('notes.txt', 'w').write('x' * 10)\nprint(len(open('notes.txt').read()))", "", ExecStatus::Ok, Some(0), "10", ""),
        ("import numpy_is_not_here", "", ExecStatus::Error, Some(1), "", "ModuleNotFoundError"),
        ("import json, math, re, fractions, decimal, collections, itertools, functools, heapq, bisect, random, datetime, statistics, asyncio\nprint(math.comb(10, 3))", "", ExecStatus::Ok, Some(0), "120", ""),
    ];
    for (code, stdin, status, exit, out, err) in cases {
        let r = sb.run(ExecRequest::new(*code).with_stdin(stdin.as_bytes())).await.unwrap();
        assert_eq!(r.status, *status, "{code}: {r:?}");
        assert_eq!(r.exit_code, *exit, "{code}");
        assert!(r.stdout.contains(out), "{code}: stdout {:?}", r.stdout);
        assert!(r.stderr.contains(err), "{code}: stderr {:?}", r.stderr);
        assert!(r.sandboxed);
    }
}

#[tokio::test]
async fn result_json_shape() {
    let sb = common::sandbox(1);
    let r = sb.run(ExecRequest::new("print(1)")).await.unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["stdout"], "1\n");
    assert_eq!(v["stderr"], "");
    assert!(v["duration_ms"].as_u64().is_some());
}

#[tokio::test]
async fn wall_clock_and_cpu_limits() {
    let sb = common::sandbox(2);
    let wall = Limits { timeout: Duration::from_millis(700), ..common::small_limits() };
    let started = Instant::now();
    let r = sb.run(ExecRequest::new("import time\nprint('before', flush=True)\ntime.sleep(60)").with_limits(wall)).await.unwrap();
    assert_eq!(r.status, ExecStatus::Timeout);
    assert_eq!(r.stdout, "before\n", "output before the timeout is kept");
    assert!(started.elapsed() < Duration::from_secs(3));

    let cpu = Limits { timeout: Duration::from_secs(10), cpu_seconds: 1, ..common::small_limits() };
    let r = sb.run(ExecRequest::new("while True:\n    pass").with_limits(cpu)).await.unwrap();
    assert_eq!(r.status, ExecStatus::Timeout, "{r:?}");
    assert!(r.reason.as_deref().unwrap_or("").contains("CPU"), "{r:?}");
}

#[tokio::test]
async fn output_cap_truncates_and_says_so() {
    let sb = common::sandbox(1);
    let limits = Limits { max_output_bytes: 1000, ..common::small_limits() };
    let r = sb.run(ExecRequest::new("print('x' * 5000)").with_limits(limits)).await.unwrap();
    assert_eq!(r.status, ExecStatus::Killed);
    assert!(r.truncated);
    assert_eq!(r.stdout.len(), 1000);
}

#[tokio::test]
async fn work_dir_is_fresh_and_removed() {
    let sb = common::sandbox(2);
    let code = "import os\nprint(os.getcwd())\nprint(sorted(os.listdir('.')))\nopen('left.txt', 'w').write('x')";
    let a = sb.run(ExecRequest::new(code)).await.unwrap();
    let b = sb.run(ExecRequest::new(code)).await.unwrap();
    let dir_a = a.stdout.lines().next().unwrap().to_string();
    let dir_b = b.stdout.lines().next().unwrap().to_string();
    assert_ne!(dir_a, dir_b);
    assert_eq!(a.stdout.lines().nth(1), Some("['main.py']"));
    assert_eq!(b.stdout.lines().nth(1), Some("['main.py']"), "no file survives from the previous run");
    assert!(!std::path::Path::new(&dir_a).exists(), "{dir_a} was not removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded() {
    let sb = common::sandbox(1);
    let code = "import time\ntime.sleep(0.4)";
    let started = Instant::now();
    let (a, b) = tokio::join!(sb.run(ExecRequest::new(code)), sb.run(ExecRequest::new(code)));
    assert_eq!(a.unwrap().status, ExecStatus::Ok);
    assert_eq!(b.unwrap().status, ExecStatus::Ok);
    assert!(started.elapsed() >= Duration::from_millis(800), "two runs overlapped with one slot");
}

#[test]
fn missing_helper_is_an_error() {
    let cfg = SandboxConfig::new("/nonexistent/retort-helper", vec![]);
    assert!(matches!(Sandbox::new(cfg), Err(SandboxError::Spawn { .. })));
    let mut cfg = SandboxConfig::new(env!("CARGO_BIN_EXE_retort-sandbox-helper"), vec![]);
    cfg.python = "/nonexistent/python3".into();
    assert!(matches!(Sandbox::new(cfg), Err(SandboxError::Python { .. })));
}

#[tokio::test]
async fn session_keeps_state_and_reports_each_cell() {
    let sb = common::sandbox(2);
    let mut s = sb.session().await.unwrap();
    let r = s.execute("x = 41\nprint('set')").await.unwrap();
    assert_eq!((r.status, r.stdout.as_str()), (ExecStatus::Ok, "set\n"));
    let r = s.execute("x + 1").await.unwrap();
    assert_eq!(r.stdout, "42\n", "a bare final expression is echoed");
    let r = s.execute("def g(n):\n    return n * x\nprint(g(2))").await.unwrap();
    assert_eq!(r.stdout, "82\n");
    let r = s.execute("1 / 0").await.unwrap();
    assert_eq!(r.status, ExecStatus::Error);
    assert!(r.stderr.contains("ZeroDivisionError"), "{r:?}");
    let r = s.execute("open('/etc/shadow')").await.unwrap();
    assert_eq!(r.status, ExecStatus::Denied);
    let r = s.execute("import os, sys\nos.write(1, b'raw fd\\n')\nprint('err', file=sys.stderr)\ninput()").await.unwrap();
    assert_eq!(r.stdout, "raw fd\n", "C-level writes are captured per cell");
    assert!(r.stderr.contains("err\n") && r.stderr.contains("EOFError"), "{r:?}");
    let r = s.execute("print(x)").await.unwrap();
    assert_eq!(r.stdout, "41\n", "state survives errors");
    let r = s.execute("raise SystemExit(0)").await.unwrap();
    assert_eq!((r.status, r.exit_code), (ExecStatus::Ok, Some(0)));
    assert!(s.is_alive());
    s.close().await;
}

#[tokio::test]
async fn session_timeout_kills_it() {
    let sb = common::sandbox(1);
    let limits = Limits { timeout: Duration::from_millis(600), ..common::small_limits() };
    let mut s = sb.session_with_limits(limits).await.unwrap();
    s.execute("y = 1").await.unwrap();
    let r = s.execute("import time\nprint('partial', flush=True)\ntime.sleep(30)").await.unwrap();
    assert_eq!(r.status, ExecStatus::Timeout);
    assert!(r.reason.as_deref().unwrap().contains("session was killed"), "{r:?}");
    assert_eq!(r.stdout, "partial\n");
    assert!(!s.is_alive());
    assert!(matches!(s.execute("y").await, Err(SandboxError::SessionDead(_))));
    drop(s);
    // The slot came back: a new session starts at once.
    let mut s2 = tokio::time::timeout(Duration::from_secs(3), sb.session()).await.unwrap().unwrap();
    assert_eq!(s2.execute("'fresh'").await.unwrap().stdout, "'fresh'\n");
}

#[tokio::test]
async fn session_crash_is_reported() {
    let sb = common::sandbox(1);
    let mut s = sb.session().await.unwrap();
    let r = s.execute("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)").await.unwrap();
    assert_eq!(r.status, ExecStatus::Killed, "{r:?}");
    assert!(!s.is_alive());
}

#[tokio::test]
async fn call_function_returns_json() {
    let sb = common::sandbox(2);
    let code = "def add(a, b=0):\n    print('noise')\n    return {'sum': a + b, 'set': {3, 1}, 'tuple': (a, b)}";
    let (r, v) = sb.call_function(code, "add", &json!([2, 3])).await.unwrap();
    assert_eq!(r.status, ExecStatus::Ok, "{r:?}");
    assert_eq!(v, Some(json!({"sum": 5, "set": [1, 3], "tuple": [2, 3]})));
    assert_eq!(r.stdout, "noise\n", "the marker line is removed");
    let (_, v) = sb.call_function(code, "add", &json!({"a": 1, "b": 1})).await.unwrap();
    assert_eq!(v.unwrap()["sum"], 2);
    let (_, v) = sb.call_function("def sq(x):\n    return x * x", "sq", &json!(7)).await.unwrap();
    assert_eq!(v, Some(json!(49)));
    let (r, v) = sb.call_function("def bad(s):\n    return int(s)", "bad", &json!(["x\"\n'"])).await.unwrap();
    assert_eq!((r.status, v), (ExecStatus::Error, None));
    assert!(matches!(sb.call_function(code, "add()", &json!([])).await, Err(SandboxError::Invalid(_))));
}

#[tokio::test]
async fn humaneval_style_tests() {
    let sb = common::sandbox(3);
    let test = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n";
    // (solution, passes)
    let cases = [
        ("def add(a, b):\n    return a + b", true),
        ("def add(a, b):\n    return a - b", false),
        ("import sys\nsys.exit(0)\ndef add(a, b):\n    return 0", false),
        ("import os\nos._exit(0)", false),
        ("def add(a, b):\n    while True:\n        pass", false),
    ];
    let runs = cases.iter().map(|(sol, _)| sb.run_tests(sol, test, "add"));
    let outcomes = futures::future::join_all(runs).await;
    for ((sol, want), got) in cases.iter().zip(outcomes) {
        let got = got.unwrap();
        assert_eq!(got.passed, *want, "{sol}: {:?}", got.result);
    }
}

#[tokio::test]
async fn unread_stdin_does_not_hang() {
    let sb = common::sandbox(1);
    let r = sb.run(ExecRequest::new("print('done')").with_stdin(vec![b'x'; 4 << 20])).await.unwrap();
    assert_eq!((r.status, r.stdout.as_str()), (ExecStatus::Ok, "done\n"));
}

#[tokio::test]
async fn helper_set_up_failure_is_an_error_not_a_result() {
    let sb = common::sandbox(1);
    // More open files than the kernel allows anyone: setrlimit fails in the helper.
    let limits = Limits { max_open_files: u64::MAX - 1, ..common::small_limits() };
    let err = sb.run(ExecRequest::new("print(1)").with_limits(limits)).await.unwrap_err();
    assert!(matches!(&err, SandboxError::Helper(m) if m.contains("RLIMIT_NOFILE")), "{err}");
}

#[tokio::test]
async fn dropping_a_session_kills_its_interpreter() {
    let sb = common::sandbox(1);
    let mut s = sb.session().await.unwrap();
    let pid: i32 = s.execute("import os\nos.getpid()").await.unwrap().stdout.trim().parse().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for tokio's reaper.
        if stat.is_empty() || stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z') {
            break;
        }
        assert!(Instant::now() < deadline, "the interpreter {pid} still runs: {stat}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_cancelled_cell_ends_the_session() {
    let sb = common::sandbox(1);
    let mut s = sb.session().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(200), s.execute("import time\ntime.sleep(1)\n'late'")).await;
    assert!(cancelled.is_err());
    assert!(matches!(s.execute("'next'").await, Err(SandboxError::SessionDead(_))), "a late reply must not be taken for the next cell's");
}
