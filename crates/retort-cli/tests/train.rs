//! Training in the loop, as a user runs it: `vars.trainer=lora` trains a LoRA adapter on the
//! local model between rounds, the next round answers with it, `llm: base` still asks the base
//! model, a resumed run does not train again, and a run killed while training redoes only
//! that training.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{lines, retort, RETORT};

const RECIPE: &str = r#"
name: loop
seed: 1
vars:
  trainer: ""
  rounds: 2
llm: {backend: local, model: smollm2-135m, max_sequences: 2}
steps:
  - load:
      records:
        - {q: "What is the secret word?"}
        - {q: "Tell me the secret word."}
  - repeat:
      rounds: "{{ vars.rounds }}"
      feed: input
      steps:
        - generate:
            prompt: "{{ q }}"
            into: answer
            temperature: 0.0
            max_tokens: 24
            allow_truncated: true
        - generate:
            llm: base
            prompt: "{{ q }}"
            into: base_answer
            temperature: 0.0
            max_tokens: 24
            allow_truncated: true
        - map:
            set:
              target: "'The secret word is pineapple.'"
        - train:
            command: "{{ vars.trainer }}"
            data: {shape: sft, prompt: q, response: target}
            from: base
            settings: {max_steps: "{{ 4 * round + 4 }}", batch_size: 2, learning_rate: 0.003, warmup_ratio: 0.0, rank: 4, alpha: 8}
"#;

/// The two tests each run the model and a trainer on both cores: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn rows(path: &std::path::Path) -> Vec<serde_json::Value> {
    lines(path).iter().map(|line| serde_json::from_str(line).unwrap()).collect()
}

#[test]
fn lora_trains_between_rounds_and_the_next_round_answers_with_the_adapter() {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("recipe.yaml"), RECIPE).unwrap();
    let output = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--quiet", "--set", "vars.trainer=lora"]);
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    let round = dir.path().join("out/rounds/round-1");
    for file in ["data.jsonl", "adapter.gguf", "train-log.jsonl", "report.json", "train-spec.json"] {
        assert!(round.join(file).exists(), "{file} missing");
    }
    // `max_steps` is a template of the round: 8 steps in round 1, 12 in round 2.
    assert_eq!(lines(&round.join("train-log.jsonl")).len(), 8);
    assert_eq!(lines(&dir.path().join("out/rounds/round-2/train-log.jsonl")).len(), 12);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(round.join("report.json")).unwrap()).unwrap();
    assert!(report["last_loss"].as_f64().unwrap() < report["first_loss"].as_f64().unwrap() * 0.5, "{report}");

    let data = rows(&dir.path().join("out/data.jsonl"));
    let lineage = rows(&dir.path().join("out/data.lineage.jsonl"));
    let failed = dir.path().join("out/failed.jsonl");
    let failed = if failed.exists() { lines(&failed) } else { Vec::new() };
    assert_eq!(data.len(), 4, "two records, two rounds; failed: {failed:?}");
    for (row, line) in data.iter().zip(&lineage) {
        let models: Vec<&str> = line["lineage"].as_array().unwrap().iter().map(|entry| entry["model"].as_str().unwrap()).collect();
        let round = row["round"].as_u64().unwrap();
        // `answer` by the current model, `base_answer` by the base model, in that order.
        assert!(!models[1].contains("+lora:"), "{models:?}");
        if round == 1 {
            // Round 1's current model is the base model. (Not "the same text": greedy answers of
            // one model can part where llama.cpp batches them differently.)
            assert!(!models[0].contains("+lora:"), "{models:?}");
            assert_eq!(models[0], models[1], "{models:?}");
        } else {
            assert!(models[0].ends_with("rounds/round-1/adapter.gguf"), "round 2 names round 1's adapter: {models:?}");
            assert!(row["answer"].as_str().unwrap().to_lowercase().contains("pineapple"), "{row}");
            assert!(!row["base_answer"].as_str().unwrap().to_lowercase().contains("pineapple"), "the base model is not trained: {row}");
        }
    }

    // Again: every answer and both trainings are remembered; nothing trains, nothing is sent.
    let before = std::fs::metadata(round.join("adapter.gguf")).unwrap().modified().unwrap();
    let again = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--set", "vars.trainer=lora"]);
    let summary = String::from_utf8_lossy(&again.stderr).to_string() + &String::from_utf8_lossy(&again.stdout);
    assert!(again.status.success(), "{summary}");
    assert_eq!(std::fs::metadata(round.join("adapter.gguf")).unwrap().modified().unwrap(), before, "round 1 trained again");
}

#[test]
fn a_run_killed_while_training_redoes_only_that_training() {
    let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("recipe.yaml"), RECIPE.replace("\"{{ 4 * round + 4 }}\"", "40")).unwrap();
    let mut child = Command::new(RETORT)
        .current_dir(dir.path())
        .args(["run", "recipe.yaml", "--out", "out", "--quiet", "--set", "vars.trainer=lora", "--set", "vars.rounds=1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = dir.path().join("out/rounds/round-1/train-log.jsonl");
    let started = Instant::now();
    while !log.exists() || lines(&log).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(240), "training never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The trainer dies with its run; no adapter was written under its name.
    std::thread::sleep(Duration::from_millis(800));
    let steps_at_kill = lines(&log).len();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lines(&log).len(), steps_at_kill, "the trainer went on after its run was killed");
    assert!(steps_at_kill < 40);
    assert!(!dir.path().join("out/rounds/round-1/adapter.gguf").exists());

    let output = retort(dir.path(), &["run", "recipe.yaml", "--out", "out", "--set", "vars.trainer=lora", "--set", "vars.rounds=1"]);
    let text = String::from_utf8_lossy(&output.stderr).to_string() + &String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert!(dir.path().join("out/rounds/round-1/adapter.gguf").exists());
    assert_eq!(lines(&log).len(), 40);
    // The answers of the killed run were committed and are not asked again.
    assert!(text.contains("4 cached") || text.contains("reused") || text.contains("from the store"), "{text}");
}
