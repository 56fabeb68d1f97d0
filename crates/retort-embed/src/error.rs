//! Typed errors of embedding.

use std::path::PathBuf;

use thiserror::Error;

/// An error raised while loading an embedding model or embedding texts.
#[derive(Debug, Error)]
pub enum EmbedError {
    /// A model file is absent.
    #[error(
        "load embedding model: expected {file} in {dir}, found no such file; \
         run scripts/setup-models.sh --embed (or set RETORT_MODELS to the directory holding {model})"
    )]
    ModelMissing {
        /// The model's directory name (e.g. `all-minilm-l6-v2`).
        model: String,
        /// The directory searched.
        dir: PathBuf,
        /// The missing file's name.
        file: String,
    },
    /// A model file exists but could not be read or parsed.
    #[error("load embedding model: expected a valid {what} at {path}, found: {message}")]
    Load {
        /// Which part of the model (config, tokenizer, weights).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        message: String,
    },
    /// Options are out of range.
    #[error("configure embedder: {field} expected {expected}, found {found}")]
    InvalidOptions {
        /// The offending field.
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// Tokenisation failed.
    #[error("tokenize texts: expected encodable text, found error: {0}")]
    Tokenize(String),
    /// The forward pass failed.
    #[error("embed texts: expected a forward pass, found error: {0}")]
    Inference(String),
}
