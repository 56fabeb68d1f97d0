//! What to train: the model, the data, the objective and the settings, as one JSON-able spec
//! (the `train` step writes it; `retort __train` reads it).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// The loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// From the rows: preference pairs train DPO, the rest SFT.
    #[default]
    Auto,
    /// Maximum likelihood of the answer tokens.
    Sft,
    /// Direct preference optimisation against a frozen reference; rows may carry a soft
    /// `label` (P(chosen preferred)) and a `margin`.
    Dpo,
    /// SFT with a weight per answer token (the row's `weights`, or `decay`).
    Weighted,
}

/// The learning-rate schedule after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Linear decay to zero (TRL's default).
    #[default]
    Linear,
    /// Cosine decay to zero.
    Cosine,
    /// Constant.
    Constant,
}

/// The trainer's settings; every one has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSettings {
    /// The loss.
    pub objective: Objective,
    /// LoRA rank.
    pub rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    pub alpha: f32,
    /// The weights adapted, by GGUF name within a block.
    pub targets: Vec<String>,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Passes over the data.
    pub epochs: f64,
    /// Stop after this many optimiser steps (overrides `epochs`).
    pub max_steps: Option<usize>,
    /// Rows per optimiser step (gradients accumulated over them).
    pub batch_size: usize,
    /// Fraction of the steps spent warming up linearly.
    pub warmup_ratio: f64,
    /// The schedule after warm-up.
    pub schedule: Schedule,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// AdamW's betas and epsilon.
    pub adam_betas: (f64, f64),
    /// AdamW's epsilon.
    pub adam_eps: f64,
    /// Clip the gradient's global norm to this (0: no clipping).
    pub max_grad_norm: f64,
    /// DPO's β.
    pub beta: f64,
    /// Weighted objective: weight `max(0, 1 − decay·t)` of the t-th answer token when a row
    /// gives no weights (Toolformer's weighting with 0.2).
    pub decay: Option<f32>,
    /// Rows longer than this (tokens) are skipped.
    pub max_length: usize,
    /// Seed of the LoRA initialisation and of the data order.
    pub seed: u64,
    /// CPU threads (all cores when unset).
    pub threads: Option<usize>,
}

impl Default for TrainSettings {
    fn default() -> TrainSettings {
        TrainSettings {
            objective: Objective::Auto,
            rank: 8,
            alpha: 16.0,
            targets: crate::model::TARGETS.iter().map(|name| name.to_string()).collect(),
            learning_rate: 2e-4,
            epochs: 1.0,
            max_steps: None,
            batch_size: 8,
            warmup_ratio: 0.1,
            schedule: Schedule::Linear,
            weight_decay: 0.0,
            adam_betas: (0.9, 0.999),
            adam_eps: 1e-8,
            max_grad_norm: 1.0,
            beta: 0.1,
            decay: None,
            max_length: 1024,
            seed: 0,
            threads: None,
        }
    }
}

impl TrainSettings {
    /// Every setting out of range, named.
    pub fn check(&self) -> Result<(), TrainError> {
        let mut problems = Vec::new();
        if self.rank == 0 || self.rank > 256 {
            problems.push(format!("rank: expected 1 to 256, found {}", self.rank));
        }
        if self.learning_rate.is_nan() || self.learning_rate <= 0.0 || self.learning_rate >= 1.0 {
            problems.push(format!("learning_rate: expected a number in (0, 1), found {}", self.learning_rate));
        }
        if self.batch_size == 0 {
            problems.push("batch_size: expected at least 1".to_string());
        }
        if self.epochs.is_nan() || self.epochs <= 0.0 {
            problems.push(format!("epochs: expected more than 0, found {}", self.epochs));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            problems.push(format!("warmup_ratio: expected [0, 1), found {}", self.warmup_ratio));
        }
        if self.beta.is_nan() || self.beta <= 0.0 {
            problems.push(format!("beta: expected more than 0, found {}", self.beta));
        }
        for target in &self.targets {
            if !crate::model::TARGETS.contains(&target.as_str()) {
                problems.push(format!("targets: unknown weight {target:?}; expected some of {}", crate::model::TARGETS.join(", ")));
            }
        }
        if self.targets.is_empty() {
            problems.push("targets: expected at least one weight".to_string());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TrainError::Settings(problems.join("; ")))
        }
    }
}

/// One training job.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// The base model (GGUF).
    pub model: PathBuf,
    /// The rows (JSON lines).
    pub data: PathBuf,
    /// The folder for `adapter.gguf`, `train-log.jsonl` and `report.json`.
    pub out: PathBuf,
    /// Start from this adapter instead of a fresh one (`from: current`).
    #[serde(default)]
    pub init_adapter: Option<PathBuf>,
    /// DPO's frozen reference: the base model with this adapter (none: the base model).
    #[serde(default)]
    pub reference_adapter: Option<PathBuf>,
    /// The settings.
    #[serde(default)]
    pub settings: TrainSettings,
}
