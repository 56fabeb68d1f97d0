//! Sandbox for untrusted, model-written Python code.
//!
//! The parent ([`Sandbox`]) launches a helper program (retort re-launched as
//! `__sandbox-helper`, which calls [`helper_main`]) that restricts itself — new session,
//! rlimits, dropped capabilities, Landlock, seccomp, an empty environment — and then executes
//! CPython on the code in a fresh work directory. See the crate's README for the layers.

mod config;
mod error;
mod helper;
mod probe;
mod result;
mod seccomp;
mod spec;

pub use config::{HelperCommand, Limits, SandboxConfig};
pub use error::SandboxError;
pub use helper::{helper_main, is_helper_invocation, HELPER_FAILURE_EXIT, HELPER_SUBCOMMAND};
pub use probe::{probe, KernelSupport};
pub use result::{ExecResult, ExecStatus};
pub use sandbox::{ExecRequest, Sandbox};

mod sandbox;
pub use session::Session;

mod session;
pub use verify::TestOutcome;

mod verify;
