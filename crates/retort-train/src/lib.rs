//! retort's built-in trainer: LoRA fine-tuning of a local GGUF model on the CPU.
//!
//! [`train`] reads a job ([`TrainSpec`]: the base model, the rows, the objective and its
//! settings), trains LoRA pairs on the model's weights (dequantized from the GGUF file, so
//! quantization included) with AdamW, and writes the adapter as a GGUF LoRA file that
//! llama.cpp loads beside the base model (`retort-llama`'s `LocalConfig::adapter`).
//! Objectives: SFT on the answer tokens, DPO against a frozen reference (the base model or a
//! previous adapter) with hard or soft labels and margins, and SFT with a weight per token.
//!
//! The `retort` binary runs a job in a process of its own (`retort __train SPEC.json`,
//! [`trainer_main`]), so a run's Ctrl-C or kill stops training without leaving a half-written
//! adapter (it is written under a `.partial` name and renamed).

mod blas;
mod data;
mod error;
mod frozen;
mod fused;
mod gguf;
mod model;
mod par;
mod softmax;
mod spec;
mod train;
mod worker;

pub use error::TrainError;
pub use gguf::{read_adapter, Adapter, Arch, Hparams};
pub use model::TARGETS;
pub use spec::{Objective, Schedule, TrainSettings, TrainSpec};
pub use train::{logprobs, train, StepLog, TrainReport};
pub use worker::{logprobs_main, trainer_main};
