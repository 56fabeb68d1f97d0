//! `TrainError`: what went wrong, where, and what was expected.

use std::path::PathBuf;

/// Why training could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done (`read`, `create`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The base model cannot be trained here.
    #[error("the model {path}: {message}")]
    Model {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, with what was expected.
        message: String,
    },
    /// A data row does not fit the objective.
    #[error("{path} line {line}: {message}")]
    Row {
        /// The data file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// No row could be used for training.
    #[error("{path}: no usable rows for {objective} ({skipped} skipped: {first})")]
    NoRows {
        /// The data file.
        path: PathBuf,
        /// The objective.
        objective: String,
        /// Rows skipped.
        skipped: usize,
        /// The first reason.
        first: String,
    },
    /// The settings are out of range.
    #[error("train settings: {0}")]
    Settings(String),
    /// A tensor operation failed.
    #[error("tensor: {0}")]
    Tensor(#[from] candle_core::Error),
    /// Training was stopped (Ctrl-C); nothing was written under the adapter's name.
    #[error("training stopped before it finished")]
    Cancelled,
}

impl TrainError {
    /// An I/O error constructor for `map_err`.
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> TrainError {
        let path = path.into();
        move |source| TrainError::Io { action, path, source }
    }
}
