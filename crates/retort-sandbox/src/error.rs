//! Typed errors of the sandbox.

use std::path::PathBuf;

/// Everything that can go wrong around (not inside) a sandboxed execution.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel lacks a layer the sandbox needs and `allow_unsandboxed` was not set.
    #[error("refusing to run untrusted code: {0}; pass --unsafe-no-sandbox (allow_unsandboxed) to run it anyway")]
    Unsupported(String),
    /// The Python interpreter could not be found or inspected.
    #[error("inspecting the Python interpreter {path}: expected it to report its prefixes, found {found}")]
    Python {
        /// The configured interpreter.
        path: PathBuf,
        /// What happened instead.
        found: String,
    },
    /// The helper program does not exist or cannot be run.
    #[error("launching the sandbox helper {path}: {source}")]
    Spawn {
        /// The helper program.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The helper started but could not set up the sandbox (it never ran the code).
    #[error("setting up the sandbox: the helper reported {0}")]
    Helper(String),
    /// A file-system or pipe operation of the parent failed.
    #[error("{op}: {source}")]
    Io {
        /// The operation, in words.
        op: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A request was malformed (for example a function name that is not an identifier).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The session's interpreter is gone (timed out, crashed or was closed).
    #[error("executing in the session: expected a live interpreter, found it ended ({0})")]
    SessionDead(String),
    /// The session's interpreter answered something that is not the protocol.
    #[error("reading the session's reply: expected a JSON frame, found {0}")]
    Protocol(String),
}

impl SandboxError {
    pub(crate) fn io(op: impl Into<String>, source: std::io::Error) -> Self {
        SandboxError::Io { op: op.into(), source }
    }
}
