//! `train`: hand a round's data to a trainer and continue with the model it returns.
//!
//! Inside `repeat`, this is the hook of the self-improvement loops (STaR, SPIN, Self-Rewarding,
//! ...): the round's records are written in the shape the trainer wants, the trainer runs, and
//! the model it returns answers from the next round on (`current`; the one before becomes
//! `previous`, and steps may still ask `base`). Two kinds of trainer:
//! - `lora` (the command is that one word): retort's built-in LoRA trainer (`retort-train`),
//!   run as `retort __train SPEC` on the local model; the adapter, the step log and the
//!   report go to `rounds/round-N/`, and the next model is `MODEL+lora:ADAPTER`;
//! - any other command: run as given; its last line on stdout names the next model.
//!
//! A trainer's result is memoised in the run store by what it was given (the command or the
//! settings, the data and the adapters it starts from), so a resumed run does not train a
//! finished round again; an interrupted training is redone. Without a command the step notes
//! that, and the enclosing `repeat` stops after this round.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use tokio::io::AsyncBufReadExt;

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::llm::{Handle, Llm};
use crate::runtime::StageCx;
use crate::runtime::{Built, StreamStep};
use crate::steps::export::RowShape;
use crate::steps::StepSpec;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};

/// Which model a round's training starts from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartFrom {
    /// The model of this round (continue training its adapter).
    #[default]
    Current,
    /// The base model (a fresh adapter each round, as STaR and I-SHEEP retrain).
    Base,
}

/// DPO's frozen reference, named by handle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceModel {
    /// The model of this round, as it was before training (TRL's default; SPIN's θ_t).
    #[default]
    Current,
    /// The model of the round before.
    Previous,
    /// The base model.
    Base,
}

impl ReferenceModel {
    fn handle(self) -> Handle {
        match self {
            ReferenceModel::Current => Handle::Current,
            ReferenceModel::Previous => Handle::Previous,
            ReferenceModel::Base => Handle::Base,
        }
    }
}

/// Which rows a round trains on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataFrom {
    /// This round's rows.
    #[default]
    Round,
    /// The rows of every round so far.
    Accumulated,
    /// This round's rows and the round before's (SPIN's official code trains iteration t on
    /// the data of t and t−1).
    WithPrevious,
}

impl DataFrom {
    /// The rounds whose rows train round `round`.
    fn rounds(self, round: u32) -> std::ops::RangeInclusive<u32> {
        match self {
            DataFrom::Round => round..=round,
            DataFrom::Accumulated => 1..=round,
            DataFrom::WithPrevious => round.saturating_sub(1).max(1)..=round,
        }
    }
}

/// Settings of a `train` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The trainer: `lora` for the built-in trainer, or a list of program and arguments (or one
    /// string split like a shell would), each a template that sees `data` (the data file),
    /// `round`, `out` (a folder for the trainer's output), `model` (the current model) and
    /// `vars`. The same values arrive as RETORT_DATA, RETORT_ROUND, RETORT_OUT and
    /// RETORT_MODEL. Its last line on stdout names the next model. Absent, or empty once
    /// rendered: no training, one round.
    #[serde(default, deserialize_with = "crate::steps::prompt::one_or_many")]
    pub command: Vec<String>,
    /// How each record becomes a row of the trainer's data file.
    #[serde(default)]
    pub data: RowShape,
    /// The model to replace, by name in `llms:`; the `llm:` block by default.
    #[serde(default)]
    pub llm: Option<String>,
    /// Start from the `current` model (default) or the `base` model.
    #[serde(default)]
    pub from: StartFrom,
    /// DPO's reference: `current` (default), `previous` or `base`.
    #[serde(default)]
    pub reference: ReferenceModel,
    /// Train on this `round`'s rows (default), the `accumulated` rows of every round, or this
    /// round's `with_previous` round's.
    #[serde(default)]
    pub data_from: DataFrom,
    /// A name for this trainer's folder, `rounds/round-N/NAME/` (a command's files:
    /// `rounds/train-round-N-NAME.*`), where a round trains twice (Meta-Rewarding's actor and
    /// judge); without one, `rounds/round-N/` (`rounds/train-round-N.*`).
    #[serde(default)]
    pub name: Option<String>,
    /// The built-in trainer's settings (rank, alpha, learning_rate, epochs, batch_size, beta,
    /// objective, ...; see the README), passed to it as they are (a string with `{{ }}` is
    /// rendered first, with `round` and `vars`); the trainer checks them.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// The keys the built-in trainer's settings accept (checked by `validate`).
const SETTINGS: &[&str] = &[
    "objective",
    "rank",
    "alpha",
    "targets",
    "learning_rate",
    "epochs",
    "max_steps",
    "batch_size",
    "warmup_ratio",
    "schedule",
    "weight_decay",
    "adam_betas",
    "adam_eps",
    "max_grad_norm",
    "beta",
    "decay",
    "max_length",
    "seed",
    "threads",
];

impl StepDef for TrainConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn templates(&self) -> Vec<(String, TemplateSource)> {
        self.command
            .iter()
            .enumerate()
            .map(|(index, part)| (format!("command[{index}]"), TemplateSource::Inline(part.clone())))
            .collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        for index in 0..self.command.len() {
            cx.template(&format!("command[{index}]"), &["data", "round", "out", "model"]);
        }
        self.data.check(cx);
        cx.llm("llm", self.llm.as_deref());
        if let Some(name) = &self.name {
            if name.is_empty() || name.contains(['/', '\\', '.']) {
                cx.error("name", format!("expected a folder name without slashes or dots, found {name:?}"));
            }
        }
        for key in self.settings.keys() {
            if !SETTINGS.contains(&key.as_str()) {
                cx.error(&format!("settings.{key}"), format!("unknown setting of the built-in trainer; expected one of {}", SETTINGS.join(", ")));
            }
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        Ok(Built::Stream(Arc::new(Train { config: self.clone(), llm })))
    }
}

/// The TRL trainer script that `command: trl` runs.
const TRL_SCRIPT: &str = include_str!("train_trl.py");

struct Train {
    config: TrainConfig,
    llm: Arc<Llm>,
}

/// What a round's training needs to know about where things are.
struct RoundFiles {
    round: u32,
    /// The file the trainer reads.
    data: PathBuf,
    /// A folder for the trainer's output.
    out: PathBuf,
}

fn hash_file(path: &Path) -> Vec<u8> {
    std::fs::read(path).map(|bytes| retort_core::stable_hash(&[&bytes]).to_vec()).unwrap_or_default()
}

impl Train {
    /// The stem of a command trainer's files for a round: `train-round-N`, or
    /// `train-round-N-NAME` for a named step.
    fn command_stem(&self, round: u32) -> String {
        match &self.config.name {
            Some(name) => format!("train-round-{round}-{name}"),
            None => format!("train-round-{round}"),
        }
    }

    fn fail(cx: &StageCx, message: String) -> EngineError {
        EngineError::Step { step: cx.step.to_string(), message }
    }

    /// The trainer's command line for a round; empty when no trainer is configured.
    fn argv(&self, cx: &StageCx, files: &RoundFiles) -> Result<Vec<String>, EngineError> {
        let vars = cx.run.templates.vars();
        let context = minijinja::context! {
            data => files.data.display().to_string(),
            round => files.round,
            out => files.out.display().to_string(),
            model => self.llm.model(),
            vars => vars,
        };
        let mut argv = Vec::with_capacity(self.config.command.len());
        for index in 0..self.config.command.len() {
            let name = format!("{}.command[{index}]", cx.step);
            let mut part = cx.run.templates.render_with(&name, context.clone()).map_err(|error| Train::fail(cx, format!("command[{index}]: {error}")))?;
            // A command taken from `vars` may hold placeholders of its own (`{{ data }}`).
            if part.contains("{{") {
                part = cx.run.templates.render_str(&part, context.clone()).map_err(|error| Train::fail(cx, format!("command[{index}]: {error}")))?;
            }
            argv.push(part);
        }
        if argv.len() == 1 {
            argv = split_words(&argv[0]).map_err(|message| Train::fail(cx, format!("command: {message}")))?;
        }
        argv.retain(|part| !part.is_empty());
        Ok(argv)
    }

    /// Runs a trainer command (or takes its remembered answer) and returns the next model.
    async fn run_command(&self, cx: &StageCx, argv: &[String], files: &RoundFiles) -> Result<String, EngineError> {
        let data_bytes = std::fs::read(&files.data).map_err(EngineError::io("read", &files.data))?;
        let argv_text = argv.join("\u{1f}");
        let key = retort_core::stable_hash(&[argv_text.as_bytes(), &data_bytes]).to_vec();
        if let Some(model) = cx.run.store.get("train", &key)? {
            return Ok(String::from_utf8_lossy(&model).to_string());
        }
        let round = files.round;
        let log_path = cx.run.out_dir.join("rounds").join(format!("{}.log", self.command_stem(round)));
        let log = std::fs::File::create(&log_path).map_err(EngineError::io("create", &log_path))?;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("RETORT_DATA", &files.data)
            .env("RETORT_ROUND", round.to_string())
            .env("RETORT_OUT", &files.out)
            .env("RETORT_MODEL", self.llm.model())
            .current_dir(&cx.run.out_dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true);
        // `spawn` and `wait_with_output`, not `output`, which would pipe stderr away from the log.
        let child = command.spawn().map_err(|error| Train::fail(cx, format!("cannot start the trainer `{}`: {error}", argv[0])))?;
        let output = tokio::select! {
            output = child.wait_with_output() => output.map_err(|error| Train::fail(cx, format!("waiting for the trainer `{}`: {error}", argv[0])))?,
            _ = cx.run.cancel.cancelled() => return Err(EngineError::Cancelled),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        let _ = std::fs::OpenOptions::new().append(true).open(&log_path).and_then(|mut file| file.write_all(stdout.as_bytes()));
        if !output.status.success() {
            return Err(Train::fail(cx, format!("the trainer failed in round {round} ({}); its output is in {}", output.status, log_path.display())));
        }
        let model = stdout.lines().map(str::trim).rfind(|line| !line.is_empty()).unwrap_or_default().to_string();
        if model.is_empty() {
            return Err(Train::fail(cx, format!("the trainer printed no model in round {round}; its last line on stdout must name the next model")));
        }
        cx.run.store.put("train", key, model.clone().into_bytes())?;
        Ok(model)
    }

    /// Trains with the built-in LoRA trainer in a process of its own; returns the next model
    /// (`BASE+lora:ADAPTER`) and a line for the run's notes.
    #[cfg(feature = "local")]
    async fn run_builtin(&self, cx: &StageCx, files: &RoundFiles) -> Result<(String, String), EngineError> {
        use retort_llama::ADAPTER_SEPARATOR;
        let crate::llm::LlmConfig::Local(local) = self.llm.config() else {
            return Err(Train::fail(
                cx,
                "the built-in trainer (`lora`) trains the local model (`backend: local`); for a server use `--set vars.trainer=trl` on a GPU machine, or a trainer command of your own".into(),
            ));
        };
        let base = retort_llama::resolve_model(&local.model).map_err(|error| Train::fail(cx, error.to_string()))?;
        let adapter_of = |handle: Handle| self.llm.model_of(handle).split_once(ADAPTER_SEPARATOR).map(|(_, adapter)| PathBuf::from(adapter));
        let init = match self.config.from {
            StartFrom::Current => adapter_of(Handle::Current),
            StartFrom::Base => None,
        };
        let reference = adapter_of(self.config.reference.handle());
        let mut settings = self.config.settings.clone();
        // A setting may be a template of the round (STaR's steps grow by 20% a round):
        // `max_steps: "{{ (40 * 1.2 ** (round - 1)) | int }}"`; a number it renders is a number.
        let context = minijinja::context! { round => files.round, vars => cx.run.templates.vars() };
        for (key, value) in settings.iter_mut() {
            if let serde_json::Value::String(text) = value {
                if text.contains("{{") {
                    let rendered = cx.run.templates.render_str(text, context.clone()).map_err(|error| Train::fail(cx, format!("settings.{key}: {error}")))?;
                    *value = serde_json::from_str(&rendered).unwrap_or(serde_json::Value::String(rendered));
                }
            }
        }
        settings.entry("seed").or_insert_with(|| serde_json::json!(cx.run.seed.wrapping_add(files.round as u64)));
        let spec = serde_json::json!({
            "model": base,
            "data": files.data,
            "out": files.out,
            "init_adapter": init,
            "reference_adapter": reference,
            "settings": settings,
        });
        let spec_text = serde_json::to_string_pretty(&spec).map_err(|error| Train::fail(cx, error.to_string()))?;
        let data_bytes = std::fs::read(&files.data).map_err(EngineError::io("read", &files.data))?;
        let init_hash = init.as_deref().map(hash_file).unwrap_or_default();
        let reference_hash = reference.as_deref().map(hash_file).unwrap_or_default();
        let key = retort_core::stable_hash(&[b"lora", spec_text.as_bytes(), &data_bytes, &init_hash, &reference_hash, &hash_file(&base)]).to_vec();
        let adapter = files.out.join("adapter.gguf");
        let model = format!("{}{ADAPTER_SEPARATOR}{}", local.model, adapter.display());
        if let Some(remembered) = cx.run.store.get("train", &key)? {
            if adapter.exists() {
                return Ok((String::from_utf8_lossy(&remembered).to_string(), format!("round {}: trained before (remembered)", files.round)));
            }
        }
        std::fs::create_dir_all(&files.out).map_err(EngineError::io("create", &files.out))?;
        let spec_path = files.out.join("train-spec.json");
        std::fs::write(&spec_path, &spec_text).map_err(EngineError::io("write", &spec_path))?;
        let program = match std::env::var_os("RETORT_TRAINER_EXE") {
            Some(program) => PathBuf::from(program),
            None => std::env::current_exe().map_err(|error| Train::fail(cx, format!("finding the running binary to start the trainer: {error}")))?,
        };
        let log_path = files.out.join("trainer.log");
        let log = std::fs::File::create(&log_path).map_err(EngineError::io("create", &log_path))?;
        let mut child = tokio::process::Command::new(&program)
            .arg("__train")
            .arg(&spec_path)
            // The trainer frees and takes back large buffers every step: keep them mapped.
            .env("MIMALLOC_PURGE_DELAY", std::env::var("MIMALLOC_PURGE_DELAY").unwrap_or_else(|_| "-1".into()))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| Train::fail(cx, format!("cannot start the trainer {}: {error}", program.display())))?;
        let stdout = child.stdout.take().ok_or_else(|| Train::fail(cx, "the trainer has no stdout".into()))?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut report = serde_json::Value::Null;
        let round = files.round;
        let read = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else { continue };
                if let Some(step) = value.get("step") {
                    let number = |key: &str| step.get(key).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                    cx.stats.set_activity(Some(format!(
                        "training round {round}: step {}/{} loss {:.4} {:.0} tok/s",
                        number("step"),
                        number("steps"),
                        number("loss"),
                        number("tokens_per_second")
                    )));
                } else if let Some(done) = value.get("report") {
                    report = done.clone();
                }
            }
            child.wait().await
        };
        let status = tokio::select! {
            status = read => status.map_err(|error| Train::fail(cx, format!("waiting for the trainer: {error}")))?,
            _ = cx.run.cancel.cancelled() => {
                cx.stats.set_activity(None);
                return Err(EngineError::Cancelled);
            }
        };
        cx.stats.set_activity(None);
        if !status.success() {
            let said = std::fs::File::open(&log_path).map(|file| std::io::BufReader::new(file).lines().map_while(Result::ok).filter(|line| !line.trim().is_empty()).last().unwrap_or_default()).unwrap_or_default();
            return Err(Train::fail(cx, format!("the built-in trainer failed in round {round} ({status}): {said} (its log: {})", log_path.display())));
        }
        cx.run.store.put("train", key, model.clone().into_bytes())?;
        let number = |key: &str| report.get(key).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
        let note = format!(
            "round {round}: {} on {} rows, {} steps, loss {:.4} → {:.4}, {:.0} tokens/s, {:.1} s",
            report.get("objective").and_then(serde_json::Value::as_str).unwrap_or("?"),
            number("examples"),
            number("steps"),
            number("first_loss"),
            number("last_loss"),
            number("tokens_per_second"),
            number("seconds"),
        );
        Ok((model, note))
    }

    /// `trl`: the shipped TRL script (SFT or DPO with PEFT LoRA, for GPU machines), written
    /// into the run directory and run as the round's trainer command.
    fn trl_command(&self, files: &RoundFiles) -> Result<Vec<String>, EngineError> {
        let script = files.out.parent().unwrap_or(&files.out).join("train_trl.py");
        std::fs::write(&script, TRL_SCRIPT).map_err(EngineError::io("write", &script))?;
        let python = std::env::var("RETORT_PYTHON").unwrap_or_else(|_| "python3".into());
        #[cfg_attr(not(feature = "local"), allow(unused_mut))]
        let mut argv = vec![
            python,
            script.display().to_string(),
            "--data".into(),
            files.data.display().to_string(),
            "--out".into(),
            files.out.display().to_string(),
            "--model".into(),
            self.llm.model(),
            "--round".into(),
            files.round.to_string(),
        ];
        // The local model's file, which the script cannot find from an alias.
        #[cfg(feature = "local")]
        if let crate::llm::LlmConfig::Local(local) = self.llm.config() {
            if let Ok(path) = retort_llama::resolve_model(&local.model) {
                argv.extend(["--gguf".into(), path.display().to_string()]);
            }
        }
        Ok(argv)
    }

    #[cfg(not(feature = "local"))]
    async fn run_builtin(&self, cx: &StageCx, _files: &RoundFiles) -> Result<(String, String), EngineError> {
        Err(Train::fail(cx, "the built-in trainer needs the `local` feature, which this build of retort lacks".into()))
    }
}

#[async_trait]
impl StreamStep for Train {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut records = Vec::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            records.push(record);
        }
        let round = cx.round.unwrap_or(1);
        let rounds_dir = cx.run.out_dir.join("rounds");
        std::fs::create_dir_all(&rounds_dir).map_err(EngineError::io("create", &rounds_dir))?;
        let argv_probe = self.argv(&cx, &RoundFiles { round, data: PathBuf::new(), out: PathBuf::new() })?;
        let builtin = argv_probe == ["lora"];
        // The built-in trainer keeps each round in a folder of its own; a command's files keep
        // the names they have always had.
        let (round_data, out) = if builtin {
            let mut dir = rounds_dir.join(format!("round-{round}"));
            if let Some(name) = &self.config.name {
                dir = dir.join(name);
            }
            std::fs::create_dir_all(&dir).map_err(EngineError::io("create", &dir))?;
            (dir.join("data.jsonl"), dir)
        } else {
            let suffix = self.config.name.as_ref().map(|name| format!("-{name}")).unwrap_or_default();
            (rounds_dir.join(format!("{}.jsonl", self.command_stem(round))), rounds_dir.join(format!("model-round-{round}{suffix}")))
        };
        let mut file = std::io::BufWriter::new(std::fs::File::create(&round_data).map_err(EngineError::io("create", &round_data))?);
        let mut rows = 0usize;
        for record in &records {
            if let Ok(row) = self.config.data.row(record) {
                serde_json::to_writer(&mut file, &row).map_err(std::io::Error::from).map_err(EngineError::io("write", &round_data))?;
                file.write_all(b"\n").map_err(EngineError::io("write", &round_data))?;
                rows += 1;
            }
        }
        file.flush().map_err(EngineError::io("write", &round_data))?;
        drop(file);
        let rounds = self.config.data_from.rounds(round);
        let data = if rounds.start() == rounds.end() {
            round_data.clone()
        } else {
            // The rows of the rounds it names, oldest first, as each round wrote them.
            let all = if builtin {
                out.join("data-accumulated.jsonl")
            } else {
                rounds_dir.join(format!("{}.jsonl", self.command_stem(round).replacen("train-round-", "train-accumulated-", 1)))
            };
            let mut text = Vec::new();
            for earlier in rounds {
                let folder = match &self.config.name {
                    Some(name) => rounds_dir.join(format!("round-{earlier}")).join(name),
                    None => rounds_dir.join(format!("round-{earlier}")),
                };
                let path = if builtin { folder.join("data.jsonl") } else { rounds_dir.join(format!("{}.jsonl", self.command_stem(earlier))) };
                if let Ok(bytes) = std::fs::read(&path) {
                    text.extend_from_slice(&bytes);
                }
            }
            rows = text.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()).count();
            std::fs::write(&all, &text).map_err(EngineError::io("write", &all))?;
            all
        };
        let files = RoundFiles { round, data: data.clone(), out: out.clone() };
        let mut argv = if builtin { argv_probe } else { self.argv(&cx, &files)? };
        if argv == ["trl"] {
            argv = self.trl_command(&files)?;
        }
        if cx.run.cancel.is_cancelled() {
            // An interrupted round does not train; the resumed run will.
        } else if argv.is_empty() {
            cx.run.note(format!("{}: no trainer configured, so the loop ran one round (data of round {round}: {})", cx.step, data.display()));
            cx.run.stop_rounds.store(true, std::sync::atomic::Ordering::SeqCst);
        } else if rows == 0 {
            cx.run.note(format!("{}: round {round} produced no training data; the model stays as it was", cx.step));
        } else if builtin {
            let (model, note) = self.run_builtin(&cx, &files).await?;
            self.llm.switch_model(&model, self.config.reference.handle())?;
            cx.run.note(format!("{}: {note} → model {model}", cx.step));
        } else {
            std::fs::create_dir_all(&out).map_err(EngineError::io("create", &out))?;
            let model = self.run_command(&cx, &argv, &files).await?;
            self.llm.switch_model(&model, self.config.reference.handle())?;
            cx.run.note(format!("{}: round {round} trained on {rows} rows → model {model}", cx.step));
        }
        for record in records {
            cx.stats.record_out();
            if output.send(record).await.is_err() {
                break;
            }
        }
        Ok(())
    }
}

/// Splits a command line into words as a POSIX shell would for plain words and quotes
/// (no variables, globs or escapes beyond `\` outside single quotes).
pub(crate) fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(character) = chars.next() {
        match character {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(inner) => current.push(inner),
                        None => return Err(format!("unclosed single quote in `{line}`")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => current.extend(chars.next()),
                        Some(inner) => current.push(inner),
                        None => return Err(format!("unclosed double quote in `{line}`")),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.extend(chars.next());
            }
            space if space.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                current.push(other);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::split_words;

    #[test]
    fn command_lines_split_like_a_shell() {
        assert_eq!(split_words("python train.py --lr 1e-5").unwrap(), ["python", "train.py", "--lr", "1e-5"]);
        assert_eq!(split_words("a 'b c' \"d \\\" e\" f\\ g").unwrap(), ["a", "b c", "d \" e", "f g"]);
        assert_eq!(split_words("  ").unwrap(), Vec::<String>::new());
        assert!(split_words("'open").is_err());
    }
}
