//! The training loop: rows → examples, reference log-probabilities for DPO, AdamW steps with
//! accumulated gradients, a learning-rate schedule and gradient clipping; the adapter, the
//! log (one JSON line per step) and the report are written to the job's folder.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Tensor, Var};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;

use crate::data::{self, Example, RowKind, Sequence, Tokenizer};
use crate::error::TrainError;
use crate::gguf;
use crate::model::Model;
use crate::spec::{Objective, Schedule, TrainSpec};

/// One optimiser step, as logged.
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    /// From 1.
    pub step: usize,
    /// Of this many.
    pub steps: usize,
    /// The batch's loss.
    pub loss: f64,
    /// The learning rate used.
    pub learning_rate: f64,
    /// The gradient's norm before clipping.
    pub grad_norm: f64,
    /// Tokens put through the model in this step.
    pub tokens: usize,
    /// Training tokens per second so far.
    pub tokens_per_second: f64,
    /// DPO: mean implicit reward margin β·((π_c − r_c) − (π_r − r_r)).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_margin: Option<f64>,
    /// DPO: fraction of pairs with a positive margin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reward_accuracy: Option<f64>,
}

/// What a finished job reports (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The adapter written.
    pub adapter: std::path::PathBuf,
    /// The objective that ran.
    pub objective: Objective,
    /// Rows read.
    pub rows: usize,
    /// Rows trained on.
    pub examples: usize,
    /// Rows skipped, with the first reasons.
    pub skipped: usize,
    /// Up to 5 reasons, with line numbers.
    pub skipped_reasons: Vec<String>,
    /// Optimiser steps.
    pub steps: usize,
    /// Loss of the first and the last step.
    pub first_loss: f64,
    /// The last step's loss.
    pub last_loss: f64,
    /// Tokens put through the model in training steps.
    pub tokens: usize,
    /// Seconds in training steps.
    pub train_seconds: f64,
    /// tokens / train_seconds.
    pub tokens_per_second: f64,
    /// Seconds in all (loading, reference pass, writing).
    pub seconds: f64,
    /// What multiplied the frozen weights: `openblas` (the system's, loaded at run time) or
    /// `candle`.
    pub matmul: String,
}

/// Tokens packed into one forward pass at most (a longer example goes alone).
const PACK_TOKENS: usize = 1024;

/// The sequences an example puts through the model.
fn sequences(example: &Example) -> Vec<&Sequence> {
    match example {
        Example::Sft(sequence) => vec![sequence],
        Example::Pair { chosen, rejected, .. } => vec![chosen, rejected],
    }
}

/// Groups example indices into packs of at most `PACK_TOKENS` tokens, in order.
fn packs(examples: &[Example], indices: &[usize]) -> Vec<Vec<usize>> {
    let mut packs: Vec<Vec<usize>> = Vec::new();
    let mut tokens = 0;
    for &index in indices {
        let size = examples[index].tokens();
        match packs.last_mut() {
            Some(pack) if tokens + size <= PACK_TOKENS => {
                pack.push(index);
                tokens += size;
            }
            _ => {
                packs.push(vec![index]);
                tokens = size;
            }
        }
    }
    packs
}

/// The weighted log-probability sums of the sequences of a pack's examples, in order.
fn pack_logprobs(model: &Model, examples: &[Example], pack: &[usize]) -> candle_core::Result<Vec<Tensor>> {
    let all: Vec<&Sequence> = pack.iter().flat_map(|&index| sequences(&examples[index])).collect();
    model.sequence_logprobs(&all)
}

/// log σ(z) for a scalar tensor, in the stable form for its sign.
fn log_sigmoid(z: &Tensor) -> candle_core::Result<Tensor> {
    let value = z.to_scalar::<f32>()?;
    if value >= 0.0 {
        (z.neg()?.exp()? + 1.0)?.log()?.neg()
    } else {
        z - (z.exp()? + 1.0)?.log()?
    }
}

struct AdamW {
    vars: Vec<Var>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    t: i32,
}

impl AdamW {
    fn new(vars: Vec<Var>) -> candle_core::Result<AdamW> {
        let m = vars.iter().map(|var| var.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW { vars, m, v, t: 0 })
    }

    fn step(&mut self, grads: &[Tensor], lr: f64, (b1, b2): (f64, f64), eps: f64, weight_decay: f64) -> candle_core::Result<()> {
        self.t += 1;
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        for (index, var) in self.vars.iter().enumerate() {
            let grad = &grads[index];
            self.m[index] = ((&self.m[index] * b1)? + (grad * (1.0 - b1))?)?;
            self.v[index] = ((&self.v[index] * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
            let update = ((&self.m[index] / c1)? / ((&self.v[index] / c2)?.sqrt()? + eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }
}

fn learning_rate(step: usize, steps: usize, warmup: usize, peak: f64, schedule: Schedule) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let rest = (steps - warmup).max(1) as f64;
    let progress = (step - warmup) as f64 / rest;
    match schedule {
        Schedule::Constant => peak,
        Schedule::Linear => peak * (1.0 - progress),
        Schedule::Cosine => peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
    }
}

/// Reads the rows and makes the examples; rows that do not fit are skipped with their reason.
fn examples(
    spec: &TrainSpec,
    tokenizer: &Tokenizer,
    objective: Objective,
) -> Result<(Vec<Example>, usize, Vec<String>, usize), TrainError> {
    let text = std::fs::read_to_string(&spec.data).map_err(TrainError::io("read", &spec.data))?;
    let decay = match objective {
        Objective::Weighted => Some(spec.settings.decay.unwrap_or(0.2)),
        _ => None,
    };
    let mut examples = Vec::new();
    let mut skipped = 0;
    let mut reasons = Vec::new();
    let mut rows = 0;
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        rows += 1;
        let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).map_err(|error| TrainError::Row {
            path: spec.data.clone(),
            line: index + 1,
            message: format!("expected a JSON object: {error}"),
        })?;
        let kind = data::row_kind(&row);
        let wanted = match objective {
            Objective::Dpo => RowKind::Pair,
            _ => RowKind::Sft,
        };
        if kind != wanted {
            return Err(TrainError::Row {
                path: spec.data.clone(),
                line: index + 1,
                message: format!(
                    "the objective {objective:?} needs {} rows, found a {} row",
                    if wanted == RowKind::Pair { "prompt/chosen/rejected" } else { "messages or prompt/completion" },
                    if kind == RowKind::Pair { "preference" } else { "SFT" }
                ),
            });
        }
        match data::example(tokenizer, &row, decay, spec.settings.max_length) {
            Ok(example) => examples.push(example),
            Err(reason) => {
                skipped += 1;
                if reasons.len() < 5 {
                    reasons.push(format!("line {}: {reason}", index + 1));
                }
            }
        }
    }
    Ok((examples, skipped, reasons, rows))
}

/// The objective a job runs: `auto` looks at the first row.
fn resolve_objective(spec: &TrainSpec) -> Result<Objective, TrainError> {
    if spec.settings.objective != Objective::Auto {
        return Ok(spec.settings.objective);
    }
    let text = std::fs::read_to_string(&spec.data).map_err(TrainError::io("read", &spec.data))?;
    let Some(line) = text.lines().find(|line| !line.trim().is_empty()) else { return Ok(Objective::Sft) };
    let row: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).map_err(|error| TrainError::Row {
        path: spec.data.clone(),
        line: 1,
        message: format!("expected a JSON object: {error}"),
    })?;
    Ok(match data::row_kind(&row) {
        RowKind::Pair => Objective::Dpo,
        RowKind::Sft if row.contains_key("weights") => Objective::Weighted,
        RowKind::Sft => Objective::Sft,
    })
}

/// Runs a job: trains, writes `adapter.gguf`, `train-log.jsonl` and `report.json` into
/// `spec.out`, and calls `progress` after every step. `cancel` stops it between examples.
pub fn train(spec: &TrainSpec, cancel: &AtomicBool, progress: &mut dyn FnMut(&StepLog)) -> Result<TrainReport, TrainError> {
    let started = Instant::now();
    let settings = &spec.settings;
    settings.check()?;
    let matmul = if crate::blas::init(settings.threads) { "openblas" } else { "candle" };
    let objective = resolve_objective(spec)?;
    std::fs::create_dir_all(&spec.out).map_err(TrainError::io("create", &spec.out))?;
    let tokenizer = Tokenizer::load(&spec.model)?;
    let (examples, skipped, skipped_reasons, rows) = examples(spec, &tokenizer, objective)?;
    if examples.is_empty() {
        return Err(TrainError::NoRows {
            path: spec.data.clone(),
            objective: format!("{objective:?}"),
            skipped,
            first: skipped_reasons.first().cloned().unwrap_or_else(|| "the file is empty".into()),
        });
    }
    let model = Model::load(&spec.model, settings.rank, settings.alpha, &settings.targets, settings.seed)?;
    // A fresh adapter's A matrices, kept to restore after the reference pass.
    let fresh: Vec<Tensor> = model.vars().iter().map(|var| var.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
    let init = spec.init_adapter.as_deref().map(gguf::read_adapter).transpose()?;

    // DPO's reference log-probabilities, once, without gradients.
    let mut reference = Vec::new();
    if objective == Objective::Dpo {
        let adapter = spec.reference_adapter.as_deref().map(gguf::read_adapter).transpose()?;
        model.set_adapter(adapter.as_ref())?;
        let all: Vec<usize> = (0..examples.len()).collect();
        for pack in packs(&examples, &all) {
            if cancel.load(Ordering::SeqCst) {
                return Err(TrainError::Cancelled);
            }
            let sums = pack_logprobs(&model, &examples, &pack)?;
            for pair in sums.chunks(2) {
                reference.push((pair[0].to_scalar::<f32>()? as f64, pair[1].to_scalar::<f32>()? as f64));
            }
        }
    }
    for (var, value) in model.vars().iter().zip(&fresh) {
        var.set(value)?;
    }
    // From `init`, or fresh: A as drawn, B zero.
    model.set_adapter(init.as_ref())?;

    let vars = model.vars();
    let mut optimizer = AdamW::new(vars.clone())?;
    let per_epoch = examples.len().div_ceil(settings.batch_size);
    let steps = settings.max_steps.unwrap_or_else(|| ((per_epoch as f64) * settings.epochs).ceil() as usize).max(1);
    let warmup = ((steps as f64) * settings.warmup_ratio).ceil() as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(settings.seed);
    let mut order: Vec<usize> = Vec::new();
    let log_path = spec.out.join("train-log.jsonl");
    let mut log = std::io::BufWriter::new(std::fs::File::create(&log_path).map_err(TrainError::io("create", &log_path))?);
    let (mut first_loss, mut last_loss) = (f64::NAN, f64::NAN);
    let (mut total_tokens, mut train_seconds) = (0usize, 0f64);
    for step in 0..steps {
        let step_started = Instant::now();
        let mut batch = Vec::with_capacity(settings.batch_size);
        while batch.len() < settings.batch_size.min(examples.len()) {
            if order.is_empty() {
                order = (0..examples.len()).collect();
                order.shuffle(&mut rng);
                order.reverse();
            }
            batch.push(order.pop().unwrap_or(0));
        }
        // SFT losses are a mean over the batch's trained tokens (weighted); DPO's over pairs.
        let denominator: f64 = match objective {
            Objective::Dpo => batch.len() as f64,
            _ => batch
                .iter()
                .map(|&index| match &examples[index] {
                    Example::Sft(sequence) => sequence.weights.iter().map(|&w| (w as f64).abs()).sum::<f64>(),
                    Example::Pair { .. } => 0.0,
                })
                .sum::<f64>()
                .max(1e-6),
        };
        let mut grads: Vec<Option<Tensor>> = vec![None; vars.len()];
        let (mut loss_sum, mut tokens, mut margins, mut wins) = (0f64, 0usize, 0f64, 0usize);
        for pack in packs(&examples, &batch) {
            if cancel.load(Ordering::SeqCst) {
                return Err(TrainError::Cancelled);
            }
            let sums = pack_logprobs(&model, &examples, &pack)?;
            let mut sums = sums.into_iter();
            let mut loss: Option<Tensor> = None;
            for &index in &pack {
                let example = &examples[index];
                tokens += example.tokens();
                let term = match example {
                    Example::Sft(_) => (sums.next().expect("one sum per sequence").neg()? / denominator)?,
                    Example::Pair { label, margin, .. } => {
                        let (ref_c, ref_r) = reference[pair_index(&examples, index)];
                        let c = sums.next().expect("one sum per sequence");
                        let r = sums.next().expect("one sum per sequence");
                        let h = (((c - ref_c)? - (r - ref_r)?)? * settings.beta)?;
                        let hv = h.to_scalar::<f32>()? as f64;
                        margins += hv;
                        wins += usize::from(hv > 0.0);
                        let z = (h - *margin as f64)?;
                        let p = *label as f64;
                        let loss = ((log_sigmoid(&z)? * p)? + (log_sigmoid(&z.neg()?)? * (1.0 - p))?)?.neg()?;
                        (loss / denominator)?
                    }
                };
                loss = Some(match loss {
                    Some(sum) => (sum + term)?,
                    None => term,
                });
            }
            let Some(loss) = loss else { continue };
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let store = loss.backward()?;
            for (slot, var) in grads.iter_mut().zip(&vars) {
                if let Some(grad) = store.get(var.as_tensor()) {
                    *slot = Some(match slot.take() {
                        Some(sum) => (sum + grad)?,
                        None => grad.clone(),
                    });
                }
            }
        }
        let mut grads: Vec<Tensor> = grads
            .into_iter()
            .zip(&vars)
            .map(|(grad, var)| grad.map_or_else(|| var.zeros_like(), Ok))
            .collect::<candle_core::Result<_>>()?;
        let mut norm_sq = 0f64;
        for grad in &grads {
            norm_sq += grad.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
        let grad_norm = norm_sq.sqrt();
        if settings.max_grad_norm > 0.0 && grad_norm > settings.max_grad_norm {
            let factor = settings.max_grad_norm / (grad_norm + 1e-6);
            grads = grads.iter().map(|grad| grad * factor).collect::<candle_core::Result<_>>()?;
        }
        let lr = learning_rate(step, steps, warmup, settings.learning_rate, settings.schedule);
        optimizer.step(&grads, lr, settings.adam_betas, settings.adam_eps, settings.weight_decay)?;
        train_seconds += step_started.elapsed().as_secs_f64();
        total_tokens += tokens;
        if step == 0 {
            first_loss = loss_sum;
        }
        last_loss = loss_sum;
        let entry = StepLog {
            step: step + 1,
            steps,
            loss: loss_sum,
            learning_rate: lr,
            grad_norm,
            tokens,
            tokens_per_second: total_tokens as f64 / train_seconds.max(1e-9),
            reward_margin: (objective == Objective::Dpo).then(|| margins / batch.len() as f64),
            reward_accuracy: (objective == Objective::Dpo).then(|| wins as f64 / batch.len() as f64),
        };
        serde_json::to_writer(&mut log, &entry).map_err(std::io::Error::from).map_err(TrainError::io("write", &log_path))?;
        log.write_all(b"\n").map_err(TrainError::io("write", &log_path))?;
        log.flush().map_err(TrainError::io("write", &log_path))?;
        progress(&entry);
    }
    let adapter = spec.out.join("adapter.gguf");
    let (alpha, _) = model.alpha_rank();
    gguf::write_adapter(&adapter, model.hparams.arch, alpha, &model.adapter())?;
    let report = TrainReport {
        adapter,
        objective,
        rows,
        examples: examples.len(),
        skipped,
        skipped_reasons,
        steps,
        first_loss,
        last_loss,
        tokens: total_tokens,
        train_seconds,
        tokens_per_second: total_tokens as f64 / train_seconds.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
        matmul: matmul.to_string(),
    };
    let report_path = spec.out.join("report.json");
    let text = serde_json::to_string_pretty(&report).map_err(std::io::Error::from).map_err(TrainError::io("write", &report_path))?;
    std::fs::write(&report_path, text).map_err(TrainError::io("write", &report_path))?;
    Ok(report)
}

/// The index of a pair among the pairs (the reference table's order).
fn pair_index(examples: &[Example], index: usize) -> usize {
    examples[..index].iter().filter(|example| matches!(example, Example::Pair { .. })).count()
}

/// The summed log-probability of each example's trained tokens under the base model with
/// `adapter` (none: the base model): for measuring a trained model on held-out rows.
pub fn logprobs(
    model_path: &std::path::Path,
    adapter: Option<&std::path::Path>,
    rows: &std::path::Path,
    settings: &crate::spec::TrainSettings,
) -> Result<Vec<serde_json::Value>, TrainError> {
    let spec = TrainSpec {
        model: model_path.to_path_buf(),
        data: rows.to_path_buf(),
        out: std::env::temp_dir(),
        init_adapter: None,
        reference_adapter: None,
        settings: settings.clone(),
    };
    crate::blas::init(settings.threads);
    let tokenizer = Tokenizer::load(model_path)?;
    let objective = resolve_objective(&spec)?;
    let (examples, _, _, _) = examples(&spec, &tokenizer, objective)?;
    let loaded = adapter.map(gguf::read_adapter).transpose()?;
    let (rank, alpha) = match &loaded {
        Some(adapter) if !adapter.tensors.is_empty() => (adapter.rank, adapter.alpha),
        _ => (settings.rank, settings.alpha),
    };
    let model = Model::load(model_path, rank, alpha, &settings.targets, settings.seed)?;
    model.set_adapter(loaded.as_ref())?;
    let mut out = Vec::with_capacity(examples.len());
    let all: Vec<usize> = (0..examples.len()).collect();
    for pack in packs(&examples, &all) {
        let sums = pack_logprobs(&model, &examples, &pack)?;
        let mut sums = sums.into_iter();
        for &index in &pack {
            let mut next = || -> candle_core::Result<f64> { Ok(sums.next().expect("one sum per sequence").to_scalar::<f32>()? as f64) };
            out.push(match &examples[index] {
                Example::Sft(sequence) => serde_json::json!({"logprob": next()?, "tokens": sequence.positions.len()}),
                Example::Pair { .. } => {
                    let c = next()?;
                    let r = next()?;
                    serde_json::json!({"chosen": c, "rejected": r, "margin": c - r})
                }
            });
        }
    }
    Ok(out)
}
