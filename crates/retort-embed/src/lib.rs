//! Sentence embeddings for retort: the [`Embedder`] trait and [`MiniLmEmbedder`], a CPU
//! implementation of sentence-transformers' all-MiniLM-L6-v2 (384 dimensions, mean pooling,
//! L2-normalised).
//!
//! The model files are not fetched at run time: `scripts/setup-models.sh --embed` installs them in
//! `$RETORT_MODELS/all-minilm-l6-v2/` (see [`default_model_dir`]).

mod error;
mod minilm;

use std::path::PathBuf;

pub use error::EmbedError;
pub use minilm::{MiniLmEmbedder, MiniLmOptions};

/// Turns texts into fixed-size vectors. Calls are synchronous and batched; async callers
/// should run them on a blocking thread (`tokio::task::spawn_blocking`).
pub trait Embedder: Send + Sync {
    /// Length of every vector this embedder returns.
    fn dim(&self) -> usize;

    /// One vector of length [`dim`](Self::dim) per text, in input order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Directory name of the all-MiniLM-L6-v2 files under the models directory.
pub const MINILM_DIR_NAME: &str = "all-minilm-l6-v2";

/// Environment variable naming the models directory.
pub const MODELS_ENV: &str = "RETORT_MODELS";

/// The models directory: `$RETORT_MODELS` when set and non-empty, else `models/` at the root
/// of the workspace this crate was built in.
pub fn models_dir() -> PathBuf {
    match std::env::var_os(MODELS_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"),
    }
}

/// Where [`MiniLmEmbedder::load`] expects all-MiniLM-L6-v2 by default:
/// [`models_dir`]`/all-minilm-l6-v2`.
pub fn default_model_dir() -> PathBuf {
    models_dir().join(MINILM_DIR_NAME)
}
