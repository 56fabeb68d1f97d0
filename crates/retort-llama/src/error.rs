//! Errors of the local backend that happen before any request: finding and checking the model.

use std::path::PathBuf;

/// Why the local backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// A model named by the recipe is not installed.
    #[error("local model '{name}' is not installed: expected {path}; run scripts/setup-models.sh{flag} to install it")]
    ModelNotInstalled {
        /// The model's name as the recipe gave it.
        name: String,
        /// Where it was looked for.
        path: PathBuf,
        /// The setup script's flag that installs it (empty for the default model).
        flag: &'static str,
    },
    /// A model given by path does not exist.
    #[error("local model file {path} does not exist; give the path of a GGUF file, or a model name such as smollm2-135m (installed by scripts/setup-models.sh)")]
    MissingFile {
        /// The path given.
        path: PathBuf,
    },
    /// The model file is not GGUF.
    #[error("local model file {path} is not a GGUF file: expected the magic bytes 'GGUF', found {found:?}; convert the model to GGUF or run scripts/setup-models.sh for the default models")]
    NotGguf {
        /// The file.
        path: PathBuf,
        /// Its first bytes.
        found: String,
    },
    /// The model file could not be read.
    #[error("reading local model file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A configuration value is out of range.
    #[error("local backend config: {0}")]
    Config(String),
}
