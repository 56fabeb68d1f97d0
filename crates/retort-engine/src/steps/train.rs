//! `train`: hand a round's data to a trainer command and continue with the model it returns.
//!
//! Inside `repeat`, this is the hook of the self-improvement loops (STaR, SPIN, Self-Rewarding,
//! ...): the round's records are written in the shape the trainer wants, the command runs,
//! and the last line it prints names the next model (a GGUF path for `local`, a model name
//! for a server), which answers from the next round on. A trainer's result is memoised in the
//! run store by its command and data, so a resumed run does not train again. Without a
//! command the step notes that, and the enclosing `repeat` stops after this round.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::llm::Llm;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::export::RowShape;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, StreamStep};

/// Settings of a `train` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The trainer: a list of program and arguments, or one string split like a shell would,
    /// each a template that sees `data` (the data file), `round`, `out` (a folder for the
    /// trainer's output), `model` (the current model) and `vars`. The same values arrive as
    /// RETORT_DATA, RETORT_ROUND, RETORT_OUT and RETORT_MODEL. Its last line on stdout names
    /// the next model. Absent, or empty once rendered: no training, one round.
    #[serde(default, deserialize_with = "crate::steps::prompt::one_or_many")]
    pub command: Vec<String>,
    /// How each record becomes a row of the trainer's data file.
    #[serde(default)]
    pub data: RowShape,
    /// The model to replace, by name in `llms:`; the `llm:` block by default.
    #[serde(default)]
    pub llm: Option<String>,
}

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
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        Ok(Built::Stream(Arc::new(Train { config: self.clone(), llm })))
    }
}

struct Train {
    config: TrainConfig,
    llm: Arc<Llm>,
}

impl Train {
    fn fail(cx: &StageCx, message: String) -> EngineError {
        EngineError::Step { step: cx.step.to_string(), message }
    }

    /// The trainer's command line for a round; empty when no trainer is configured.
    fn argv(&self, cx: &StageCx, data: &std::path::Path, round: u32, out: &std::path::Path) -> Result<Vec<String>, EngineError> {
        let vars = cx.run.templates.vars();
        let context = minijinja::context! {
            data => data.display().to_string(),
            round => round,
            out => out.display().to_string(),
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

    /// Runs the trainer (or takes its remembered answer) and returns the next model.
    async fn train(&self, cx: &StageCx, argv: &[String], data: &std::path::Path, round: u32, out: &std::path::Path) -> Result<String, EngineError> {
        let data_bytes = std::fs::read(data).map_err(EngineError::io("read", data))?;
        let argv_text = argv.join("\u{1f}");
        let key = retort_core::stable_hash(&[argv_text.as_bytes(), &data_bytes]).to_vec();
        if let Some(model) = cx.run.store.get("train", &key)? {
            return Ok(String::from_utf8_lossy(&model).to_string());
        }
        let log_path = cx.run.out_dir.join("rounds").join(format!("train-round-{round}.log"));
        let log = std::fs::File::create(&log_path).map_err(EngineError::io("create", &log_path))?;
        let output = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("RETORT_DATA", data)
            .env("RETORT_ROUND", round.to_string())
            .env("RETORT_OUT", out)
            .env("RETORT_MODEL", self.llm.model())
            .current_dir(&cx.run.out_dir)
            .stdin(std::process::Stdio::null())
            .stderr(log)
            .output()
            .await
            .map_err(|error| Train::fail(cx, format!("cannot start the trainer `{}`: {error}", argv[0])))?;
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
        let data = rounds_dir.join(format!("train-round-{round}.jsonl"));
        let mut file = std::io::BufWriter::new(std::fs::File::create(&data).map_err(EngineError::io("create", &data))?);
        let mut rows = 0usize;
        for record in &records {
            if let Ok(row) = self.config.data.row(record) {
                serde_json::to_writer(&mut file, &row).map_err(std::io::Error::from).map_err(EngineError::io("write", &data))?;
                file.write_all(b"\n").map_err(EngineError::io("write", &data))?;
                rows += 1;
            }
        }
        file.flush().map_err(EngineError::io("write", &data))?;
        drop(file);
        let out = rounds_dir.join(format!("model-round-{round}"));
        let argv = self.argv(&cx, &data, round, &out)?;
        if cx.run.cancel.is_cancelled() {
            // An interrupted round does not train; the resumed run will.
        } else if argv.is_empty() {
            cx.run.note(format!("{}: no trainer configured, so the loop ran one round (data of round {round}: {})", cx.step, data.display()));
            cx.run.stop_rounds.store(true, std::sync::atomic::Ordering::SeqCst);
        } else if rows == 0 {
            cx.run.note(format!("{}: round {round} produced no training data; the model stays as it was", cx.step));
        } else {
            std::fs::create_dir_all(&out).map_err(EngineError::io("create", &out))?;
            let model = self.train(&cx, &argv, &data, round, &out).await?;
            self.llm.switch_model(&model)?;
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
