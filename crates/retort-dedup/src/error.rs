//! Typed errors of the deduplication indexes.

use thiserror::Error;

/// An error raised while configuring or feeding a deduplication index.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum DedupError {
    /// A configuration value is out of range or inconsistent.
    #[error("invalid dedup config: {field} expected {expected}, found {found}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What was expected.
        expected: String,
        /// What was found.
        found: String,
    },
    /// An embedding has a different dimension from the vectors already in the index.
    #[error("{operation}: expected an embedding of dimension {expected}, found {found}")]
    DimensionMismatch {
        /// The operation that was attempted.
        operation: &'static str,
        /// The index's dimension.
        expected: usize,
        /// The offered vector's dimension.
        found: usize,
    },
    /// An embedding cannot be normalised (zero, empty or non-finite).
    #[error("{operation}: expected a finite non-zero embedding, found {found}")]
    BadEmbedding {
        /// The operation that was attempted.
        operation: &'static str,
        /// What was wrong with it.
        found: String,
    },
}
