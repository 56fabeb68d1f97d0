//! What the parent tells the helper: passed as JSON in one environment variable.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Limits;

/// The environment variable that carries the [`HelperSpec`] from parent to helper.
pub(crate) const SPEC_ENV: &str = "RETORT_SANDBOX_SPEC";

/// Everything the helper needs to restrict itself and execute Python.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HelperSpec {
    /// The real Python executable.
    pub(crate) python: PathBuf,
    /// Arguments after `argv[0]`.
    pub(crate) args: Vec<String>,
    /// The whole environment of Python.
    pub(crate) env: Vec<(String, String)>,
    /// The fresh work directory: the only writable place, and the current directory.
    pub(crate) workdir: PathBuf,
    /// A file outside the work directory where the helper reports how set-up went.
    pub(crate) status_file: PathBuf,
    /// Paths readable (files and directory trees), never writable.
    pub(crate) read_paths: Vec<PathBuf>,
    /// Files that may be executed (Python and its ELF interpreter).
    pub(crate) exec_paths: Vec<PathBuf>,
    /// Device files readable and writable (such as `/dev/null`).
    pub(crate) rw_devices: Vec<PathBuf>,
    /// Resource limits.
    pub(crate) limits: Limits,
    /// Fail when Landlock or seccomp cannot be put in force (false: `allow_unsandboxed`).
    pub(crate) enforce: bool,
}
