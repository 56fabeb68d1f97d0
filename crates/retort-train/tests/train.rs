//! The built-in trainer on the default local model (SmolLM2-135M): a few steps on a handful of
//! rows, deterministic. SFT lowers the loss and raises the answer's likelihood; DPO moves the
//! policy's margin; soft labels and weights change the loss as they should; the adapter is a
//! GGUF LoRA file that reads back and starts the next job.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use retort_train::{logprobs, read_adapter, train, Objective, TrainSettings, TrainSpec};

fn model() -> PathBuf {
    retort_llama::resolve_model("smollm2-135m").expect("run scripts/setup-models.sh")
}

fn write_rows(dir: &Path, name: &str, rows: &[serde_json::Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = rows.iter().map(|row| format!("{row}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn settings(objective: Objective, steps: usize) -> TrainSettings {
    TrainSettings {
        objective,
        max_steps: Some(steps),
        batch_size: 2,
        learning_rate: 2e-3,
        warmup_ratio: 0.0,
        rank: 4,
        alpha: 8.0,
        ..TrainSettings::default()
    }
}

fn sft_rows() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"prompt": "What is the secret word?", "completion": "The secret word is pineapple."}),
        serde_json::json!({"messages": [{"role": "user", "content": "Tell me the secret word."}, {"role": "assistant", "content": "The secret word is pineapple."}]}),
    ]
}

#[test]
fn sft_lowers_the_loss_and_the_adapter_raises_the_answers_likelihood() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_rows(dir.path(), "sft.jsonl", &sft_rows());
    let out = dir.path().join("round-1");
    let spec = TrainSpec {
        model: model(),
        data: data.clone(),
        out: out.clone(),
        init_adapter: None,
        reference_adapter: None,
        settings: settings(Objective::Sft, 6),
    };
    let mut steps = Vec::new();
    let report = train(&spec, &AtomicBool::new(false), &mut |step| steps.push(step.loss)).unwrap();
    assert_eq!(report.steps, 6);
    assert_eq!(report.examples, 2);
    assert_eq!(steps.len(), 6);
    assert!(report.last_loss < report.first_loss * 0.7, "loss {} → {}", report.first_loss, report.last_loss);
    assert!(out.join("adapter.gguf").exists() && out.join("train-log.jsonl").exists() && out.join("report.json").exists());
    let log = std::fs::read_to_string(out.join("train-log.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 6);

    let adapter = read_adapter(&out.join("adapter.gguf")).unwrap();
    assert_eq!(adapter.rank, 4);
    assert_eq!(adapter.alpha, 8.0);
    assert_eq!(adapter.tensors.len(), 30 * 7, "every target of every block");

    let base = logprobs(&model(), None, &data, &TrainSettings::default()).unwrap();
    let tuned = logprobs(&model(), Some(&out.join("adapter.gguf")), &data, &TrainSettings::default()).unwrap();
    for (before, after) in base.iter().zip(&tuned) {
        assert!(after["logprob"].as_f64().unwrap() > before["logprob"].as_f64().unwrap() + 1.0, "{before} → {after}");
    }

    // The next job starts from this adapter: its first loss is the trained one, not the base's.
    let next = TrainSpec {
        out: dir.path().join("round-2"),
        init_adapter: Some(out.join("adapter.gguf")),
        settings: settings(Objective::Sft, 1),
        ..spec.clone()
    };
    let second = train(&next, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!(second.first_loss < report.first_loss * 0.7, "{} vs {}", second.first_loss, report.first_loss);
}

#[test]
fn dpo_moves_the_margin_of_chosen_over_rejected_and_soft_labels_pull_less() {
    let dir = tempfile::tempdir().unwrap();
    let pair = |prompt: &str, label: f64| serde_json::json!({"prompt": prompt, "chosen": "Paris is the capital of France.", "rejected": "I do not know.", "label": label});
    let hard =
        write_rows(dir.path(), "hard.jsonl", &[pair("What is the capital of France?", 1.0), pair("Name the capital of France.", 1.0)]);
    let base = logprobs(&model(), None, &hard, &TrainSettings::default()).unwrap();
    let spec = TrainSpec {
        model: model(),
        data: hard.clone(),
        out: dir.path().join("dpo"),
        init_adapter: None,
        reference_adapter: None,
        settings: settings(Objective::Auto, 4),
    };
    let mut hard_steps = Vec::new();
    let report = train(&spec, &AtomicBool::new(false), &mut |step| hard_steps.push(step.clone())).unwrap();
    assert_eq!(report.objective, Objective::Dpo, "preference rows select DPO");
    assert!(report.last_loss < report.first_loss, "{} → {}", report.first_loss, report.last_loss);
    let tuned = logprobs(&model(), Some(&dir.path().join("dpo/adapter.gguf")), &hard, &TrainSettings::default()).unwrap();
    for (before, after) in base.iter().zip(&tuned) {
        assert!(after["margin"].as_f64().unwrap() > before["margin"].as_f64().unwrap() + 1.0, "{before} → {after}");
    }
    // The first step's loss is log 2 whatever the data: the policy starts as the reference.
    assert!((report.first_loss - std::f64::consts::LN_2).abs() < 1e-3, "{}", report.first_loss);

    // A label of 0.5 says "no preference": at the start (policy = reference) its gradient is
    // zero, where a hard label's is not, and the loss stays at its minimum, log 2. (Not "the
    // margin does not move": the policy's and the reference's log-probabilities differ by
    // rounding, and AdamW turns even that gradient into steps of the learning rate's size.)
    let even =
        write_rows(dir.path(), "even.jsonl", &[pair("What is the capital of France?", 0.5), pair("Name the capital of France.", 0.5)]);
    let spec = TrainSpec { data: even.clone(), out: dir.path().join("even"), ..spec };
    let mut even_steps = Vec::new();
    train(&spec, &AtomicBool::new(false), &mut |step| even_steps.push(step.clone())).unwrap();
    assert!(hard_steps[0].grad_norm > 1e-3, "{:?}", hard_steps[0]);
    assert!(even_steps[0].grad_norm < hard_steps[0].grad_norm * 1e-2, "{:?} vs {:?}", even_steps[0], hard_steps[0]);
    // At the first step the loss is the minimum itself. Later steps may drift from it: AdamW
    // turns the rounding gradient into steps of the learning rate's size, and how far they go
    // depends on the machine's floating point (on one machine the margin reached -0.61 by the
    // fourth step). What holds everywhere is that log 2 is the minimum of this label's loss.
    assert!((even_steps[0].loss - std::f64::consts::LN_2).abs() < 1e-3, "{:?}", even_steps[0]);
    for step in &even_steps {
        assert!(step.loss > std::f64::consts::LN_2 - 1e-3, "{step:?}");
    }
}

#[test]
fn weights_scale_the_tokens_loss_and_bad_rows_are_skipped_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = sft_rows();
    rows.push(serde_json::json!({"prompt": "no answer here"}));
    let data = write_rows(dir.path(), "mixed.jsonl", &rows);
    let spec = TrainSpec {
        model: model(),
        data,
        out: dir.path().join("w"),
        init_adapter: None,
        reference_adapter: None,
        settings: settings(Objective::Sft, 1),
    };
    let full = train(&spec, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert_eq!((full.examples, full.skipped), (2, 1));
    assert!(full.skipped_reasons[0].starts_with("line 3:") && full.skipped_reasons[0].contains("completion"), "{:?}", full.skipped_reasons);
    // Toolformer's decaying weights put less weight on later tokens: a different mean loss.
    let weighted =
        TrainSpec { out: dir.path().join("w2"), settings: TrainSettings { decay: Some(0.2), ..settings(Objective::Weighted, 1) }, ..spec };
    let decayed = train(&weighted, &AtomicBool::new(false), &mut |_| {}).unwrap();
    assert!((decayed.first_loss - full.first_loss).abs() > 1e-3, "{} vs {}", decayed.first_loss, full.first_loss);
}

#[test]
fn settings_out_of_range_are_all_named() {
    let bad = TrainSettings { rank: 0, learning_rate: 3.0, targets: vec!["attn_z".into()], ..TrainSettings::default() };
    let message = bad.check().unwrap_err().to_string();
    assert!(message.contains("rank") && message.contains("learning_rate") && message.contains("attn_z"), "{message}");
}
