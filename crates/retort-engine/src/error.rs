//! The engine's errors: recipe problems (a list, each with its path) and run failures.

use std::fmt;
use std::path::PathBuf;

/// One problem in a recipe, at a path such as `steps[2].generate.prompt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Where in the recipe.
    pub path: String,
    /// What is wrong: what was expected and what was found.
    pub message: String,
}

impl Diagnostic {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Diagnostic {
        Diagnostic { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a recipe, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The recipe file, when it came from one.
    pub file: Option<PathBuf>,
    /// The problems; never empty.
    pub items: Vec<Diagnostic>,
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.items.len();
        match &self.file {
            Some(file) => writeln!(f, "{}: {count} problem{}", file.display(), if count == 1 { "" } else { "s" })?,
            None => writeln!(f, "recipe: {count} problem{}", if count == 1 { "" } else { "s" })?,
        }
        for item in &self.items {
            writeln!(f, "  {item}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// A failure of a run as a whole (a failed record is data, not an error).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The recipe has problems; nothing was started.
    #[error("{0}")]
    Recipe(#[from] Diagnostics),
    /// The run store failed.
    #[error(transparent)]
    Store(#[from] retort_store::StoreError),
    /// A backend could not be built.
    #[error("llm `{name}`: {source}")]
    Backend {
        /// The backend's name in the recipe (`default` for `llm:`).
        name: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The run was cancelled (Ctrl-C) and its work in flight abandoned after the grace period.
    #[error("the run was stopped before its work in flight finished")]
    Cancelled,
    /// Reading or writing a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An input file could not be read as records.
    #[error("{path}: {message}")]
    Input {
        /// The file.
        path: PathBuf,
        /// Where and what.
        message: String,
    },
    /// Writing an output format failed.
    #[error("export {path}: {message}")]
    Export {
        /// The output file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A step failed as a whole (for example its trainer command failed).
    #[error("{step}: {message}")]
    Step {
        /// The step's path.
        step: String,
        /// What went wrong.
        message: String,
    },
}

impl EngineError {
    /// An I/O error on a path.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> EngineError {
        let path = path.into();
        move |source| EngineError::Io { op, path, source }
    }
}
