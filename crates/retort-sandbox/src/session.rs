//! Stateful sessions: one persistent interpreter per trajectory (CodeAct, ToRA), in the
//! sandbox, driven by a small Python REPL driver over line-framed JSON on stdin/stdout.

use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::OwnedSemaphorePermit;

use crate::result::{classify, exception_status, Exit, Facts};
use crate::sandbox::{exit_of, kill_group, kill_process_and_group, read_report, HelperReport, Prepared};
use crate::{ExecResult, ExecStatus, Limits, Sandbox, SandboxError};

const DRIVER: &str = include_str!("../python/driver.py");
const DRIVER_NAME: &str = ".retort_driver.py";
const CELL_STDOUT: &str = ".retort_cell_stdout";
const CELL_STDERR: &str = ".retort_cell_stderr";

#[derive(Serialize)]
struct CellRequest<'a> {
    code: &'a str,
    max_output: usize,
}

#[derive(Deserialize)]
struct CellReply {
    stdout: String,
    stderr: String,
    truncated: bool,
    exc_type: Option<String>,
    exc_message: Option<String>,
    exit_code: Option<i32>,
}

/// A persistent interpreter inside the sandbox. Variables persist across [`Session::execute`]
/// calls; each call has the wall-clock limit of the session's [`Limits::timeout`] (a timeout
/// kills the session and says so); memory, CPU time and file limits hold for the whole
/// session. The interpreter is killed when the session is dropped. A session holds one of the
/// sandbox's concurrency slots for its whole life.
pub struct Session {
    child: Child,
    pid: i32,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    prep: Prepared,
    limits: Limits,
    sandboxed: bool,
    dead: Option<String>,
    /// A cell was sent and its reply not yet read (set while `execute` runs; still set
    /// afterwards only if that `execute` future was dropped mid-cell).
    in_flight: bool,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("pid", &self.pid).field("dead", &self.dead).finish()
    }
}

impl Sandbox {
    /// Starts a session with the sandbox's default limits.
    pub async fn session(&self) -> Result<Session, SandboxError> {
        self.session_with_limits(self.inner.config.default_limits.clone()).await
    }

    /// Starts a session with these limits (`timeout` is per call; the rest hold for the
    /// whole session). Waits for a free slot, then for the interpreter to be ready.
    pub async fn session_with_limits(&self, limits: Limits) -> Result<Session, SandboxError> {
        let permit = self.slot().await?;
        let prep = self.prepare()?;
        let driver = prep.work.join(DRIVER_NAME);
        std::fs::write(&driver, DRIVER).map_err(|e| SandboxError::io(format!("writing {}", driver.display()), e))?;
        let args = vec!["-B".into(), "-s".into(), "-u".into(), driver.display().to_string()];
        let mut child = self.spawn(&prep, args, &limits)?;
        let pid = child.id().map(|p| p as i32).unwrap_or(0);
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or_else(|| SandboxError::Protocol("no stdout pipe".into()))?);
        // The driver's own stderr (outside cells) is drained and discarded so it never blocks.
        if let Some(mut err) = child.stderr.take() {
            tokio::spawn(async move {
                let mut sink = vec![0u8; 4096];
                while matches!(err.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
        let mut session = Session {
            child,
            pid,
            stdin,
            stdout,
            prep,
            limits,
            sandboxed: self.inner.enforce,
            dead: None,
            in_flight: false,
            _permit: permit,
        };
        let ready = tokio::time::timeout(session.limits.timeout, session.read_frame()).await;
        match read_report(&session.prep.status_file) {
            HelperReport::Failed(msg) => return Err(SandboxError::Helper(msg)),
            HelperReport::Started { sandboxed } => session.sandboxed = sandboxed,
            HelperReport::Silent => {}
        }
        match ready {
            Ok(Ok(Some(line))) if line.contains("\"ready\"") => Ok(session),
            Ok(Ok(other)) => Err(SandboxError::Protocol(format!("{other:?} instead of the ready line"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SandboxError::Helper("no ready line from the session driver in time".into())),
        }
    }
}

impl Session {
    /// Whether the interpreter is still alive (no timeout, crash or close so far).
    pub fn is_alive(&self) -> bool {
        self.dead.is_none()
    }

    /// Runs one cell in the persistent namespace and returns its stdout/stderr and status
    /// (`ok`, or `error`/`denied`/`killed` by its exception; `exit_code` is `None` unless the
    /// cell raised `SystemExit`). A bare final expression is echoed like a REPL. When the call
    /// times out or the interpreter dies, the result says so and the session is dead: later
    /// calls return [`SandboxError::SessionDead`].
    pub async fn execute(&mut self, code: &str) -> Result<ExecResult, SandboxError> {
        if self.in_flight && self.dead.is_none() {
            // The reply to an abandoned cell would be taken for this one's: end the session.
            self.kill("a previous execute was cancelled while its cell ran".into()).await;
        }
        if let Some(why) = &self.dead {
            return Err(SandboxError::SessionDead(why.clone()));
        }
        let started = Instant::now();
        self.in_flight = true;
        let mut line = serde_json::to_vec(&CellRequest { code, max_output: self.limits.max_output_bytes })
            .map_err(|e| SandboxError::Invalid(format!("encoding the cell: {e}")))?;
        line.push(b'\n');
        let sent = match self.stdin.as_mut() {
            Some(s) => s.write_all(&line).await.is_ok() && s.flush().await.is_ok(),
            None => false,
        };
        let reply = if sent { tokio::time::timeout(self.limits.timeout, self.read_frame()).await } else { Ok(Ok(None)) };
        self.in_flight = false;
        match reply {
            Ok(Ok(Some(text))) => {
                let r: CellReply =
                    serde_json::from_str(&text).map_err(|e| SandboxError::Protocol(format!("{e} in {:?}", truncate(&text, 200))))?;
                let (status, reason) = match (&r.exc_type, r.exit_code) {
                    (Some(t), _) => {
                        let msg = r.exc_message.clone().unwrap_or_default();
                        (exception_status(t, &msg), Some(format!("{t}: {}", truncate(&msg, 200))))
                    }
                    (None, Some(c)) => (ExecStatus::Ok, Some(format!("SystemExit({c})"))),
                    (None, None) => (ExecStatus::Ok, None),
                };
                Ok(ExecResult {
                    status,
                    exit_code: r.exit_code,
                    stdout: r.stdout,
                    stderr: r.stderr,
                    duration_ms: started.elapsed().as_millis() as u64,
                    signal: None,
                    truncated: r.truncated,
                    reason,
                    sandboxed: self.sandboxed,
                })
            }
            Ok(Err(e)) => {
                self.kill("its reply was not a protocol frame".into()).await;
                Err(e)
            }
            Ok(Ok(None)) => Ok(self.died(started, None).await),
            Err(_) => {
                let secs = self.limits.timeout.as_secs_f64();
                kill_process_and_group(self.pid);
                Ok(self.died(started, Some(secs)).await)
            }
        }
    }

    /// Kills the interpreter and waits for it.
    pub async fn close(mut self) {
        self.kill("closed".into()).await;
    }

    async fn kill(&mut self, why: String) {
        kill_process_and_group(self.pid);
        let _ = self.child.wait().await;
        kill_group(self.pid);
        self.dead.get_or_insert(why);
    }

    /// The interpreter ended (or was killed for `wall_timeout`): report the cell's output so
    /// far and what ended it, and mark the session dead.
    async fn died(&mut self, started: Instant, wall_timeout: Option<f64>) -> ExecResult {
        let status = self.child.wait().await;
        kill_group(self.pid);
        let exit = status.as_ref().map(exit_of).unwrap_or(Exit::Signal(9));
        let cap = self.limits.max_output_bytes;
        let (stdout, t1) = read_capped_file(self.prep.work.join(CELL_STDOUT), cap);
        let (stderr, t2) = read_capped_file(self.prep.work.join(CELL_STDERR), cap);
        let (status, reason) = classify(&Facts {
            exit,
            wall_timeout,
            output_overflow: false,
            stderr_tail: tail_of(&stderr),
            elapsed_secs: started.elapsed().as_secs_f64(),
            cpu_seconds: self.limits.cpu_seconds,
        });
        let reason = format!("{}; the session was killed", reason.unwrap_or_else(|| "the interpreter ended".into()));
        self.dead = Some(reason.clone());
        ExecResult {
            status,
            exit_code: match exit {
                Exit::Code(c) => Some(c),
                Exit::Signal(_) => None,
            },
            stdout,
            stderr,
            duration_ms: started.elapsed().as_millis() as u64,
            signal: match exit {
                Exit::Signal(s) => Some(s),
                Exit::Code(_) => None,
            },
            truncated: t1 || t2,
            reason: Some(reason),
            sandboxed: self.sandboxed,
        }
    }

    /// Reads one line; the line may not exceed what a capped reply can be.
    async fn read_frame(&mut self) -> Result<Option<String>, SandboxError> {
        let limit = (self.limits.max_output_bytes as u64) * 12 + 64 * 1024;
        let mut buf = Vec::new();
        let n = (&mut self.stdout)
            .take(limit)
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| SandboxError::io("reading the session's reply", e))?;
        if n == 0 {
            return Ok(None);
        }
        if buf.last() != Some(&b'\n') {
            if (n as u64) >= limit {
                return Err(SandboxError::Protocol(format!("a reply longer than {limit} bytes")));
            }
            return Ok(None);
        }
        Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if self.dead.is_none() {
            kill_process_and_group(self.pid);
        }
    }
}

fn read_capped_file(path: PathBuf, cap: usize) -> (String, bool) {
    match std::fs::read(path) {
        Ok(mut data) => {
            let over = data.len() > cap;
            data.truncate(cap);
            (String::from_utf8_lossy(&data).into_owned(), over)
        }
        Err(_) => (String::new(), false),
    }
}

fn tail_of(s: &str) -> &str {
    let mut start = s.len().saturating_sub(crate::sandbox::TAIL_BYTES);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn truncate(s: &str, n: usize) -> &str {
    let mut end = s.len().min(n);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
