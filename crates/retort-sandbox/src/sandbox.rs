//! The parent side: resolve Python, prepare a fresh work directory, launch the helper, enforce
//! the wall clock and output caps, and turn the exit into an [`ExecResult`].

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::probe::{probe, KernelSupport};
use crate::result::{classify, Exit, Facts};
use crate::spec::{HelperSpec, SPEC_ENV};
use crate::{ExecResult, Limits, SandboxConfig, SandboxError};

/// Bytes of the end of stderr kept apart from the capped copy, to find the final exception.
pub(crate) const TAIL_BYTES: usize = 8192;

/// One piece of code to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    /// The Python source, run as the script `main.py` in the work directory.
    pub code: String,
    /// Bytes given to the program on standard input (then end of file).
    pub stdin: Vec<u8>,
    /// Limits of this run; `None` takes the sandbox's `default_limits`.
    pub limits: Option<Limits>,
}

impl ExecRequest {
    /// A request to run `code` with empty stdin and the default limits.
    pub fn new(code: impl Into<String>) -> Self {
        ExecRequest { code: code.into(), stdin: Vec::new(), limits: None }
    }

    /// The same request with `stdin` as standard input.
    pub fn with_stdin(mut self, stdin: impl Into<Vec<u8>>) -> Self {
        self.stdin = stdin.into();
        self
    }

    /// The same request with its own limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }
}

/// What `Sandbox::new` learnt about the interpreter.
#[derive(Debug, Clone)]
pub(crate) struct PythonInfo {
    /// The real executable (symlinks and shims resolved).
    pub(crate) executable: PathBuf,
    /// Directories of the installation that must be readable.
    pub(crate) dirs: Vec<PathBuf>,
}

/// The sandbox: cheap to clone (shared state); runs at most `max_concurrency` programs at once.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: SandboxConfig,
    pub(crate) kernel: KernelSupport,
    pub(crate) enforce: bool,
    pub(crate) python: PythonInfo,
    pub(crate) read_paths: Vec<PathBuf>,
    pub(crate) exec_paths: Vec<PathBuf>,
    pub(crate) slots: Arc<Semaphore>,
}

/// A fresh work directory with the helper's status file beside it (both removed on drop).
pub(crate) struct Prepared {
    pub(crate) _base: tempfile::TempDir,
    pub(crate) work: PathBuf,
    pub(crate) status_file: PathBuf,
}

/// How the helper's set-up went, from its status file.
pub(crate) enum HelperReport {
    /// It executed Python; `sandboxed` says whether every layer was in force.
    Started { sandboxed: bool },
    /// It failed before executing Python.
    Failed(String),
    /// It wrote nothing (it was killed before getting that far).
    Silent,
}

const SYSTEM_READ_PATHS: &[&str] =
    &["/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/localtime", "/dev/zero", "/dev/urandom", "/dev/random"];

const RW_DEVICES: &[&str] = &["/dev/null"];

const PYTHON_PROBE: &str = "import json, os, sys\n\
print(json.dumps({'executable': os.path.realpath(sys.executable), \
'dirs': [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix] + [p for p in sys.path if p]}))";

impl Sandbox {
    /// Checks the kernel (refusing, unless `allow_unsandboxed`, where Landlock or seccomp is
    /// missing), resolves the interpreter and checks that the helper exists. Blocks briefly
    /// while it runs the interpreter once to ask for its prefixes.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let kernel = probe();
        let missing = kernel.missing();
        if !missing.is_empty() && !config.allow_unsandboxed {
            return Err(SandboxError::Unsupported(missing.join("; ")));
        }
        if !config.helper.program.is_file() {
            return Err(SandboxError::Spawn {
                path: config.helper.program.clone(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let python = resolve_python(&config.python)?;
        let mut read_paths: Vec<PathBuf> = Vec::new();
        let mut push = |p: PathBuf| {
            if let Ok(real) = std::fs::canonicalize(&p) {
                if !read_paths.contains(&real) {
                    read_paths.push(real);
                }
            }
        };
        for p in SYSTEM_READ_PATHS {
            push(PathBuf::from(p));
        }
        for p in python.dirs.iter().chain(config.extra_read_paths.iter()) {
            push(p.clone());
        }
        if let Some(p) = read_paths.iter().find(|p| p.parent().is_none()) {
            return Err(SandboxError::Python {
                path: config.python.clone(),
                found: format!("a search path of {} that would expose the whole file system", p.display()),
            });
        }
        let mut exec_paths = vec![python.executable.clone()];
        if let Some(interp) = elf_interpreter(&python.executable) {
            if let Ok(real) = std::fs::canonicalize(interp) {
                exec_paths.push(real);
            }
        }
        let slots = Arc::new(Semaphore::new(config.max_concurrency.max(1)));
        Ok(Sandbox { inner: Arc::new(Inner { enforce: missing.is_empty(), config, kernel, python, read_paths, exec_paths, slots }) })
    }

    /// What the kernel supports (as probed at `new`).
    pub fn kernel(&self) -> &KernelSupport {
        &self.inner.kernel
    }

    /// Whether runs are fully sandboxed (false only when `allow_unsandboxed` let a kernel
    /// without Landlock or seccomp through).
    pub fn enforcing(&self) -> bool {
        self.inner.enforce
    }

    /// The real Python executable that runs the code.
    pub fn python_executable(&self) -> &Path {
        &self.inner.python.executable
    }

    /// The limits used when a request names none.
    pub fn default_limits(&self) -> &Limits {
        &self.inner.config.default_limits
    }

    /// Runs one program in a fresh work directory (removed afterwards) and reports what became
    /// of it. An `Err` means the sandbox itself failed; anything the program does is an `Ok`.
    pub async fn run(&self, req: ExecRequest) -> Result<ExecResult, SandboxError> {
        let limits = req.limits.clone().unwrap_or_else(|| self.inner.config.default_limits.clone());
        let _permit = self.slot().await?;
        let prep = self.prepare()?;
        let script = prep.work.join("main.py");
        std::fs::write(&script, req.code.as_bytes()).map_err(|e| SandboxError::io(format!("writing {}", script.display()), e))?;
        let args = vec!["-B".into(), "-s".into(), "-u".into(), script.display().to_string()];
        let mut child = self.spawn(&prep, args, &limits)?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        // If this future is dropped mid-run, the whole process group still goes.
        let mut guard = GroupGuard(pid);
        let started = Instant::now();

        let stdin = child.stdin.take();
        let input = req.stdin;
        tokio::spawn(async move {
            if let Some(mut s) = stdin {
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        });
        let overflow = Arc::new(Notify::new());
        let out_task = tokio::spawn(read_capped(child.stdout.take(), limits.max_output_bytes, overflow.clone()));
        let err_task = tokio::spawn(read_capped(child.stderr.take(), limits.max_output_bytes, overflow.clone()));

        let mut wall_timeout = None;
        let mut output_overflow = false;
        let status = tokio::select! {
            st = child.wait() => st,
            _ = tokio::time::sleep(limits.timeout) => {
                wall_timeout = Some(limits.timeout.as_secs_f64());
                kill_process_and_group(pid);
                child.wait().await
            }
            _ = overflow.notified() => {
                output_overflow = true;
                kill_process_and_group(pid);
                child.wait().await
            }
        }
        .map_err(|e| SandboxError::io("waiting for the sandboxed program", e))?;
        let elapsed = started.elapsed();
        // Anything it left behind in its process group goes too.
        kill_group(pid);
        guard.0 = 0;
        let out = join_capture(out_task).await;
        let err = join_capture(err_task).await;
        let exit = exit_of(&status);

        let sandboxed = match read_report(&prep.status_file) {
            HelperReport::Started { sandboxed } => sandboxed,
            HelperReport::Failed(msg) => return Err(SandboxError::Helper(msg)),
            HelperReport::Silent if wall_timeout.is_some() || output_overflow => self.inner.enforce,
            HelperReport::Silent => {
                return Err(SandboxError::Helper(format!(
                    "nothing: it ended ({exit:?}) before executing Python; stderr: {}",
                    String::from_utf8_lossy(&err.head)
                )))
            }
        };
        let tail = String::from_utf8_lossy(&err.tail).into_owned();
        let (status, reason) = classify(&Facts {
            exit,
            wall_timeout,
            output_overflow: output_overflow || out.overflowed || err.overflowed,
            stderr_tail: &tail,
            elapsed_secs: elapsed.as_secs_f64(),
            cpu_seconds: limits.cpu_seconds,
        });
        Ok(ExecResult {
            status,
            exit_code: match exit {
                Exit::Code(c) => Some(c),
                Exit::Signal(_) => None,
            },
            stdout: String::from_utf8_lossy(&out.head).into_owned(),
            stderr: String::from_utf8_lossy(&err.head).into_owned(),
            duration_ms: elapsed.as_millis() as u64,
            signal: match exit {
                Exit::Signal(s) => Some(s),
                Exit::Code(_) => None,
            },
            truncated: out.overflowed || err.overflowed,
            reason,
            sandboxed,
        })
    }

    pub(crate) async fn slot(&self) -> Result<OwnedSemaphorePermit, SandboxError> {
        self.inner.slots.clone().acquire_owned().await.map_err(|_| SandboxError::Invalid("the sandbox's slots were closed".into()))
    }

    pub(crate) fn prepare(&self) -> Result<Prepared, SandboxError> {
        let root = self.inner.config.temp_root.clone().unwrap_or_else(std::env::temp_dir);
        let base = tempfile::Builder::new()
            .prefix("retort-sbx-")
            .tempdir_in(&root)
            .map_err(|e| SandboxError::io(format!("creating a work directory under {}", root.display()), e))?;
        let base_path =
            std::fs::canonicalize(base.path()).map_err(|e| SandboxError::io(format!("resolving {}", base.path().display()), e))?;
        let work = base_path.join("work");
        std::fs::create_dir(&work).map_err(|e| SandboxError::io(format!("creating {}", work.display()), e))?;
        Ok(Prepared { _base: base, status_file: base_path.join("helper-status"), work })
    }

    pub(crate) fn spawn(&self, prep: &Prepared, args: Vec<String>, limits: &Limits) -> Result<Child, SandboxError> {
        let work = prep.work.display().to_string();
        let env: Vec<(String, String)> = [
            ("PATH", "/usr/local/bin:/usr/bin:/bin"),
            ("HOME", work.as_str()),
            ("TMPDIR", work.as_str()),
            ("LANG", "C.UTF-8"),
            ("LC_ALL", "C.UTF-8"),
            ("PYTHONDONTWRITEBYTECODE", "1"),
            ("PYTHONNOUSERSITE", "1"),
            ("PYTHONIOENCODING", "utf-8"),
            ("PYTHONHASHSEED", "0"),
            ("OMP_NUM_THREADS", "1"),
            ("OPENBLAS_NUM_THREADS", "1"),
            ("MKL_NUM_THREADS", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let spec = HelperSpec {
            python: self.inner.python.executable.clone(),
            args,
            env,
            workdir: prep.work.clone(),
            status_file: prep.status_file.clone(),
            read_paths: self.inner.read_paths.clone(),
            exec_paths: self.inner.exec_paths.clone(),
            rw_devices: RW_DEVICES.iter().map(PathBuf::from).collect(),
            limits: limits.clone(),
            enforce: self.inner.enforce,
        };
        let spec = serde_json::to_string(&spec).map_err(|e| SandboxError::Invalid(format!("encoding the helper spec: {e}")))?;
        let helper = &self.inner.config.helper;
        Command::new(&helper.program)
            .args(&helper.args)
            .env_clear()
            .env(SPEC_ENV, spec)
            .current_dir(&prep.work)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| SandboxError::Spawn { path: helper.program.clone(), source })
    }
}

/// Runs the configured interpreter once (trusted code, outside the sandbox) to learn its real
/// executable and the directories it loads from.
fn resolve_python(python: &Path) -> Result<PythonInfo, SandboxError> {
    let err = |found: String| SandboxError::Python { path: python.to_path_buf(), found };
    let out = std::process::Command::new(python)
        .args(["-E", "-s", "-c", PYTHON_PROBE])
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| err(format!("an error launching it: {e}")))?;
    if !out.status.success() {
        return Err(err(format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| err(format!("unparsable output {line:?}: {e}")))?;
    let executable = v["executable"].as_str().map(PathBuf::from).ok_or_else(|| err(format!("no executable in {line}")))?;
    let dirs = v["dirs"]
        .as_array()
        .map(|a| a.iter().filter_map(|d| d.as_str()).map(PathBuf::from).filter(|p| p.exists()).collect())
        .unwrap_or_default();
    Ok(PythonInfo { executable, dirs })
}

/// The ELF program interpreter (`PT_INTERP`) of a 64-bit little-endian executable.
fn elf_interpreter(path: &Path) -> Option<PathBuf> {
    let data = std::fs::read(path).ok()?;
    if data.get(0..4)? != b"\x7fELF" || *data.get(4)? != 2 || *data.get(5)? != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(data.get(o..o + 2)?.try_into().ok()?) as usize);
    let u32_at = |o: usize| Some(u32::from_le_bytes(data.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(data.get(o..o + 8)?.try_into().ok()?) as usize);
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..phnum).find_map(|i| {
        let ph = phoff + i * phentsize;
        if u32_at(ph)? != 3 {
            return None;
        }
        let (off, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let raw = data.get(off..off + size)?;
        let s = raw.split(|&b| b == 0).next()?;
        Some(PathBuf::from(std::str::from_utf8(s).ok()?))
    })
}

/// Kills a process group when dropped (unless disarmed by setting the pid to 0).
struct GroupGuard(i32);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_process_and_group(self.0);
    }
}

/// Kills the helper/Python process (not yet reaped) and its whole process group.
pub(crate) fn kill_process_and_group(pid: i32) {
    if pid > 0 {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Kills what is left of the process group (after the leader was reaped).
pub(crate) fn kill_group(pid: i32) {
    if pid > 0 {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

pub(crate) fn exit_of(status: &std::process::ExitStatus) -> Exit {
    match (status.code(), status.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        (None, None) => Exit::Code(-1),
    }
}

pub(crate) fn read_report(path: &Path) -> HelperReport {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(msg) = text.strip_prefix("error ") {
        HelperReport::Failed(msg.trim().to_string())
    } else if let Some(rest) = text.strip_prefix("ok ") {
        HelperReport::Started { sandboxed: rest.trim() == "sandboxed=true" }
    } else {
        HelperReport::Silent
    }
}

/// Output of one stream: the first `cap` bytes, the last [`TAIL_BYTES`], and whether it overflowed.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    pub(crate) head: Vec<u8>,
    pub(crate) tail: Vec<u8>,
    pub(crate) overflowed: bool,
}

async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, cap: usize, overflow: Arc<Notify>) -> Captured {
    let mut c = Captured::default();
    let Some(mut reader) = reader else { return c };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        c.tail.extend_from_slice(chunk);
        if c.tail.len() > 2 * TAIL_BYTES {
            c.tail.drain(..c.tail.len() - TAIL_BYTES);
        }
        let room = cap.saturating_sub(c.head.len());
        c.head.extend_from_slice(&chunk[..room.min(n)]);
        if n > room {
            c.overflowed = true;
            overflow.notify_one();
            break;
        }
    }
    if c.tail.len() > TAIL_BYTES {
        c.tail.drain(..c.tail.len() - TAIL_BYTES);
    }
    c
}

/// Waits for a capture task; stragglers holding the pipe open do not hold us past a second.
async fn join_capture(task: tokio::task::JoinHandle<Captured>) -> Captured {
    let abort = task.abort_handle();
    match tokio::time::timeout(Duration::from_secs(1), task).await {
        Ok(Ok(c)) => c,
        _ => {
            abort.abort();
            Captured::default()
        }
    }
}
