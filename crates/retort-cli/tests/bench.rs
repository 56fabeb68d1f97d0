//! The benchmark in `bench/` stays runnable: its recipe runs here on a few hundred records
//! against the mock server (as `bench/run.sh` runs it on a million), and its scripts parse.
//! The long scenarios themselves run only from `bench/run.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;

use retort_mock::{MockConfig, MockServer};

const RETORT: &str = env!("CARGO_BIN_EXE_retort");

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench").canonicalize().unwrap()
}

fn report(output: &std::process::Output) -> serde_json::Value {
    assert!(output.status.success(), "retort failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn requests(report: &serde_json::Value) -> u64 {
    report["steps"].as_array().unwrap().iter().map(|step| step["requests"].as_u64().unwrap_or(0)).sum()
}

#[test]
fn the_bench_recipe_runs_with_two_requests_per_record_and_reruns_as_a_no_op() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let config = MockConfig { ignore_seed: true, record: false, ..MockConfig::default() };
    let server = runtime.block_on(MockServer::start(config)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path().join("seeds.jsonl");
    let records = 300;
    let lines: String = (0..records).map(|index| format!("{{\"i\":{index},\"topic\":\"topic {index}\"}}\n")).collect();
    std::fs::write(&seeds, lines).unwrap();
    let out = dir.path().join("out");
    let recipe = bench_dir().join("pipeline.yaml");
    let run = || {
        Command::new(RETORT)
            .arg("run")
            .arg(&recipe)
            .arg("--out")
            .arg(&out)
            .args(["--base-url", &server.url(), "--quiet", "--json"])
            .arg("--set")
            .arg(format!("steps[0].load.path={}", seeds.display()))
            .args(["--set", "llm.max_concurrency=16"])
            .env_remove("OPENAI_API_KEY")
            .output()
            .unwrap()
    };

    let first = report(&run());
    assert_eq!(first["outcome"], "completed");
    assert_eq!(requests(&first), 2 * records);
    assert_eq!(server.count(), 2 * records);
    let count = |name: &str| std::fs::read_to_string(out.join(name)).unwrap().lines().count() as u64;
    let (kept, dropped) = (count("data.jsonl"), count("dropped.jsonl"));
    assert_eq!((kept + dropped, count("failed.jsonl")), (records, 0));
    // Scores 1 to 5 from a hash: the filter (score >= 2) keeps most records, not all.
    assert!(kept > records / 2 && dropped > 0, "kept {kept}, dropped {dropped}");
    let row: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(out.join("data.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    for field in ["i", "topic", "question", "score"] {
        assert!(row.get(field).is_some(), "row lacks `{field}`: {row}");
    }

    let again = report(&run());
    assert_eq!(again["outcome"], "up_to_date");
    assert_eq!(server.count(), 2 * records, "a completed run sends nothing again");
    runtime.block_on(server.shutdown());
}

#[test]
fn the_bench_scripts_parse() {
    let bench = bench_dir();
    let shell = Command::new("bash").arg("-n").arg(bench.join("run.sh")).output().unwrap();
    assert!(shell.status.success(), "bench/run.sh: {}", String::from_utf8_lossy(&shell.stderr));
    for script in ["distilabel_pipeline.py", "measure.py", "report.py"] {
        let source = std::fs::read_to_string(bench.join(script)).unwrap();
        let check = Command::new("python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(source.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert!(check.status.success(), "bench/{script}: {}", String::from_utf8_lossy(&check.stderr));
    }
}
