//! The `retort` binary as a user runs it: validate, run, status, and surviving Ctrl-C and `kill -9`.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{lines, quickstart_dir, retort, run_args, Mock, RETORT};

#[test]
fn the_quickstart_runs_as_written_and_again_sends_nothing() {
    let mock = Mock::start(0);
    let dir = quickstart_dir(12);
    let url = mock.server().url();
    let output = retort(dir.path(), &run_args(&url, &["--api-key-env", "RETORT_TEST_KEY"]));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let rows = lines(&dir.path().join("out/data.jsonl"));
    assert_eq!(rows.len(), 12);
    let first: serde_json::Value = serde_json::from_str(&rows[0]).unwrap();
    let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["topic", "question", "answer"]);
    assert!(dir.path().join("out/data.parquet").exists());
    assert_eq!(lines(&dir.path().join("out/data.lineage.jsonl")).len(), 12);
    assert_eq!(mock.server().count(), 24);

    let again = retort(dir.path(), &run_args(&url, &["--api-key-env", "RETORT_TEST_KEY"]));
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("up to date"));
    assert_eq!(mock.server().count(), 24, "the second run sends nothing");

    let status = retort(dir.path(), &["status", "out"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.starts_with("recipe quickstart: completed"), "{text}");
    assert!(text.contains("steps[1].generate"), "{text}");
}

#[test]
fn secrets_never_reach_the_run_directory() {
    let mock = Mock::start(0);
    let dir = quickstart_dir(3);
    let url = mock.server().url();
    let secret = "sk-test-THIS-MUST-NOT-LEAK-123";
    let output = Command::new(RETORT)
        .args(run_args(&url, &["--api-key-env", "RETORT_SECRET_KEY"]))
        .current_dir(dir.path())
        .env("RETORT_SECRET_KEY", secret)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains(secret));
    for entry in std::fs::read_dir(dir.path().join("out")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|window| window == secret.as_bytes());
            assert!(!found, "the key is in {}", path.display());
        }
    }
}

#[test]
fn validate_lists_problems_and_exits_2() {
    let dir = quickstart_dir(1);
    std::fs::write(
        dir.path().join("bad.yaml"),
        "name: bad\nllm: {backend: openai, base_url: 'http://127.0.0.1:1/v1', model: m}\nsteps:\n  - load: {path: topics.jsonl}\n  - generate: {prompt: '{{ topc }}', into: q}\n  - filter: {kep: 'q'}\n",
    )
    .unwrap();
    let output = retort(dir.path(), &["validate", "bad.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    expect_test::expect![[r#"
        bad.yaml: 2 problems
          steps[2].filter.kep: unknown key `kep`; did you mean `keep`? expected one of: keep, drop, when, concurrency
          steps[1].generate.prompt: unknown variable `topc`; fields available here: topic
    "#]]
    .assert_eq(&stderr);
    let ok = retort(dir.path(), &["validate", "recipe.yaml"]);
    assert!(ok.status.success());
    // A built-in recipe by its name, as `run` takes it, with the same overrides.
    let builtin = retort(dir.path(), &["validate", "toolllm", "--base-url", "http://127.0.0.1:1/v1", "--model", "m"]);
    assert!(builtin.status.success(), "{}", String::from_utf8_lossy(&builtin.stderr));
    assert!(String::from_utf8_lossy(&builtin.stdout).contains("recipe `toolllm`"));
    // A run of a broken recipe sends nothing and says why.
    let run = retort(dir.path(), &["run", "bad.yaml", "--out", "out"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(!dir.path().join("out").exists());
    // A folder stands for its recipe.yaml (what `retort init` writes); a folder without one
    // says so, and that it hides the built-in recipe of its name.
    let copy = retort(dir.path(), &["init", "spin", "my-spin"]);
    assert!(copy.status.success(), "{}", String::from_utf8_lossy(&copy.stderr));
    let folder = retort(dir.path(), &["validate", "my-spin"]);
    assert!(folder.status.success(), "{}", String::from_utf8_lossy(&folder.stderr));
    assert!(String::from_utf8_lossy(&folder.stdout).contains("recipe `spin`"));
    std::fs::create_dir(dir.path().join("matrix")).unwrap();
    let hidden = retort(dir.path(), &["validate", "matrix"]);
    assert!(!hidden.status.success());
    let message = String::from_utf8_lossy(&hidden.stderr);
    assert!(
        message.contains("matrix is a folder without a recipe.yaml in it; a folder of that name here hides the built-in recipe `matrix`"),
        "{message}"
    );
}

/// Runs the quickstart in a child, stops it part-way with `signal`, and resumes it; the
/// resumed run must not send again what the first had answered (beyond the commit window for
/// `kill -9`) and must end with the same data as an uninterrupted run.
fn interrupt_and_resume(signal: &str) {
    let mock = Mock::start(20);
    let url = mock.server().url();
    let reference = quickstart_dir(80);
    assert!(retort(reference.path(), &run_args(&url, &[])).status.success());
    let expected = lines(&reference.path().join("out/data.jsonl"));
    let before = mock.server().count() as usize;

    let dir = quickstart_dir(80);
    let mut args = run_args(&url, &[]);
    args.extend_from_slice(&["--set", "llm.max_concurrency=4"]);
    let mut child = Command::new(RETORT).args(&args).current_dir(dir.path()).stderr(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (mock.server().count() as usize) < before + 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    // Answers logged this long before the signal have reached retort and been committed.
    let settled: HashSet<String> =
        mock.server().requests()[before..].iter().filter(|request| request.status == 200).map(|request| request.key.clone()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let answered: HashSet<String> =
        mock.server().requests()[before..].iter().filter(|request| request.status == 200).map(|request| request.key.clone()).collect();
    Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    if signal != "-KILL" {
        assert_eq!(status.code(), Some(130), "{signal} ends as an interrupted run, with 130");
    }
    assert!(answered.len() < 160, "the run was stopped part-way ({} answers)", answered.len());

    let resume_from = mock.server().count() as usize;
    let resumed = retort(dir.path(), &run_args(&url, &[]));
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let resent: Vec<String> =
        mock.server().requests()[resume_from..].iter().map(|request| request.key.clone()).filter(|key| settled.contains(key)).collect();
    assert!(resent.is_empty(), "{signal}: answers committed before the stop were requested again: {}", resent.len());
    if signal != "-KILL" {
        let requests = mock.server().requests();
        let again: Vec<&String> =
            requests[resume_from..].iter().map(|request| &request.key).filter(|key| answered.contains(*key)).collect();
        assert!(again.is_empty(), "after Ctrl-C every answer that arrived was committed");
    }
    assert_eq!(lines(&dir.path().join("out/data.jsonl")), expected);
}

#[test]
fn kill_9_loses_at_most_the_commit_window() {
    interrupt_and_resume("-KILL");
}

#[test]
fn ctrl_c_stops_cleanly_and_resumes() {
    interrupt_and_resume("-INT");
}

/// Regression (issue 11): SIGTERM killed the run outright: no card, no Parquet, the run left
/// "running", answered requests sent again. It now stops as Ctrl-C does.
#[test]
fn sigterm_stops_cleanly_and_resumes() {
    interrupt_and_resume("-TERM");
}

#[test]
fn dedup_can_embed_with_a_gguf_model() {
    // `gguf:` embeds through llama.cpp's worker (this binary as `__llama-worker`) instead of MiniLM:
    // a second copy of a sentence (cosine 1) is dropped;
    // sentences that differ are kept at a threshold above what any two distinct texts reach.
    let dir = tempfile::tempdir().unwrap();
    let recipe = r#"
name: gguf-dedup
steps:
  - load:
      records:
        - {q: "How do tides form on the coast of Maine?"}
        - {q: "How do tides form on the coast of Maine?"}
        - {q: "What is the capital of France?"}
        - {q: "Name three prime numbers below twenty."}
  - dedup: {field: q, method: embedding, gguf: smollm2-135m, threshold: 0.9999, similarity_into: nearest}
"#;
    std::fs::write(dir.path().join("recipe.yaml"), recipe).unwrap();
    let output = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let kept: Vec<serde_json::Value> =
        lines(&dir.path().join("out/data.jsonl")).iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    let questions: Vec<&str> = kept.iter().map(|row| row["q"].as_str().unwrap()).collect();
    assert_eq!(
        questions,
        ["How do tides form on the coast of Maine?", "What is the capital of France?", "Name three prime numbers below twenty."]
    );
    // Distinct sentences are similar (a language model's mean-pooled states), but not equal.
    for row in &kept[1..] {
        let nearest = row["nearest"].as_f64().unwrap();
        assert!(nearest > 0.0 && nearest < 0.9999, "{row}");
    }
    let dropped = lines(&dir.path().join("out/dropped.jsonl"));
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0].contains("same meaning as kept record #0"), "{}", dropped[0]);

    // A `gguf` that names no model is a validation problem, not a failed run.
    std::fs::write(dir.path().join("bad.yaml"), recipe.replace("gguf: smollm2-135m", "gguf: no-such-model.gguf")).unwrap();
    let output = retort(dir.path(), &["validate", "bad.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("steps[1].dedup.gguf"), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_judge_and_a_grammar_hold_the_local_models_answers_to_their_shape() {
    // SmolLM2-135M rarely ends a judgment with `Score: N` on its own; on the local backend the
    // judge samples under a grammar of its verdict's shape, so every judgment parses and lies
    // within `scale`, and a `generate` with `grammar:` gives text its regex reads.
    let dir = tempfile::tempdir().unwrap();
    let recipe = r#"
name: local-judge
llm: {backend: local, model: smollm2-135m, max_sequences: 4}
steps:
  - load:
      records:
        - {q: "What makes the sky blue?", a: "Sunlight scatters off air molecules; blue light scatters most.", b: "Because it is."}
        - {q: "Name a prime number.", a: "7", b: "Seven is a prime number: its only divisors are 1 and 7."}
        - {q: "How do bees make honey?", a: "They eat flowers.", b: "Bees collect nectar, break it down with enzymes and evaporate it in the comb."}
  - judge:
      prompt: "Rate the answer from 1 to 5.\nQuestion: {{ q }}\nAnswer: {{ a }}\nExplain briefly, then write `Score: N`."
      scale: [1, 5]
      temperature: 0.8
      max_tokens: 120
      reason_into: why
  - judge:
      mode: pairwise
      a: a
      b: b
      swap: true
      prompt: "Which answer to `{{ q }}` is better?\nA: {{ a }}\nB: {{ b }}"
      into: better
      temperature: 0.8
      max_tokens: 120
  - generate:
      prompt: "Write one new instruction about {{ q }} and its response."
      grammar: |
        root ::= "Instruction: " line "\nResponse: " line
        line ::= [^\n]{5,120}
      parse: {regex: '(?s)^Instruction: (?P<instruction>[^\n]+)\nResponse: (?P<response>.+)$'}
      into: pair
      # The grammar's longest answer (two lines of 120 characters) fits, whatever the sample.
      max_tokens: 300
"#;
    std::fs::write(dir.path().join("recipe.yaml"), recipe).unwrap();
    let output = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--quiet"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let failed = dir.path().join("out/failed.jsonl");
    let failed = if failed.exists() { lines(&failed) } else { Vec::new() };
    assert!(failed.is_empty(), "{failed:?}");
    let kept: Vec<serde_json::Value> =
        lines(&dir.path().join("out/data.jsonl")).iter().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(kept.len(), 3);
    for row in &kept {
        let score = row["score"].as_f64().unwrap();
        assert!((1.0..=5.0).contains(&score) && score.fract() == 0.0, "{row}");
        let why = row["why"].as_str().unwrap();
        assert!(why.ends_with(&format!("Score: {score}")), "{why:?}");
        assert!(["a", "b", "tie"].contains(&row["better"].as_str().unwrap()), "{row}");
        let pair = &row["pair"];
        assert!(pair["instruction"].as_str().unwrap().trim().len() >= 5, "{row}");
        assert!(pair["response"].as_str().unwrap().trim().len() >= 5, "{row}");
    }
}
