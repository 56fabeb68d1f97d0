//! Configuration of the sandbox: resource limits and how to launch the helper and Python.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Resource limits of one execution (or of one whole session, for the process-wide ones).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Wall-clock limit; when it passes, the whole process group is killed (`status: "timeout"`).
    /// For a session this is the limit of each `execute` call.
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    /// Address-space limit in MiB (`RLIMIT_AS`); allocations beyond it fail (`MemoryError`).
    pub memory_mb: u64,
    /// CPU-time limit in seconds (`RLIMIT_CPU`, soft; the hard limit is one second more).
    /// For a session it bounds the CPU time of the whole session.
    pub cpu_seconds: u64,
    /// Most bytes kept of stdout and of stderr each; more output kills the program
    /// (`status: "killed"`, `truncated: true`).
    pub max_output_bytes: usize,
    /// Most processes the program may have. 1 (the default) forbids creating child processes
    /// at all (seccomp makes `fork`/`vfork`/`clone` without `CLONE_THREAD` fail with `EPERM`).
    /// Above 1, child processes are allowed and `RLIMIT_NPROC` is set to this value; the kernel
    /// counts that limit per real user and does not enforce it for root.
    pub max_processes: u64,
    /// Largest file the program may write, in bytes (`RLIMIT_FSIZE`).
    pub max_file_bytes: u64,
    /// Most open file descriptors (`RLIMIT_NOFILE`).
    pub max_open_files: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            memory_mb: 512,
            cpu_seconds: 10,
            max_output_bytes: 1 << 20,
            max_processes: 1,
            max_file_bytes: 16 << 20,
            max_open_files: 256,
        }
    }
}

/// The program the parent launches as the sandbox helper; it must end up calling
/// [`crate::helper_main`] (in production: `retort __sandbox-helper`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HelperCommand {
    /// Path of the executable (for retort: `std::env::current_exe()`).
    pub program: PathBuf,
    /// Arguments placed before anything else (for retort: `["__sandbox-helper"]`).
    #[serde(default)]
    pub args: Vec<String>,
}

/// How to build a [`crate::Sandbox`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxConfig {
    /// The helper program that restricts itself and then executes Python.
    pub helper: HelperCommand,
    /// The Python interpreter; a bare name is looked up on `PATH`. It is resolved once, at
    /// [`crate::Sandbox::new`], to the real executable and its prefixes (so a pyenv shim works).
    #[serde(default = "default_python")]
    pub python: PathBuf,
    /// Directory under which each execution's fresh work directory is created
    /// (default: the system temporary directory).
    #[serde(default)]
    pub temp_root: Option<PathBuf>,
    /// Most executions and sessions alive at once; more wait for a free slot.
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Run even where the kernel lacks Landlock or seccomp, with only the layers that exist
    /// (CLI `--unsafe-no-sandbox`). Without it, such a kernel makes `Sandbox::new` fail.
    #[serde(default)]
    pub allow_unsandboxed: bool,
    /// Further paths the program may read (for example a data directory), besides the system
    /// directories and the Python installation.
    #[serde(default)]
    pub extra_read_paths: Vec<PathBuf>,
    /// Limits used when a request does not name its own.
    #[serde(default)]
    pub default_limits: Limits,
}

fn default_python() -> PathBuf {
    PathBuf::from("python3")
}

fn default_concurrency() -> usize {
    4
}

impl SandboxConfig {
    /// A configuration with defaults whose helper is this very executable run with
    /// [`crate::HELPER_SUBCOMMAND`] (what the `retort` binary uses).
    pub fn for_current_exe() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, vec![crate::HELPER_SUBCOMMAND.to_string()]))
    }

    /// A configuration with defaults that launches `program args...` as the helper.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        SandboxConfig {
            helper: HelperCommand { program: program.into(), args },
            python: default_python(),
            temp_root: None,
            max_concurrency: default_concurrency(),
            allow_unsandboxed: false,
            extra_read_paths: Vec::new(),
            default_limits: Limits::default(),
        }
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}
