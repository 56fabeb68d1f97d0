//! The outcome of one execution and the rule that turns an exit into a status.

use serde::{Deserialize, Serialize};

/// What became of a program, decided by [`classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecStatus {
    /// It exited with status 0 (for a session cell: it raised nothing).
    Ok,
    /// It exited non-zero for a reason of its own, typically an uncaught exception.
    Error,
    /// The wall-clock limit or the CPU-time limit ended it.
    Timeout,
    /// A resource limit ended it: a signal (memory, output cap, file size), a `MemoryError`
    /// or an `OSError` "File too large" as the final exception.
    Killed,
    /// The sandbox refused something and that ended it: the final exception is a
    /// `PermissionError` or an `OSError` with `EPERM`/`EACCES`/`EXDEV`, or seccomp killed it
    /// (`SIGSYS`).
    Denied,
}

impl ExecStatus {
    /// The status as its JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            ExecStatus::Ok => "ok",
            ExecStatus::Error => "error",
            ExecStatus::Timeout => "timeout",
            ExecStatus::Killed => "killed",
            ExecStatus::Denied => "denied",
        }
    }
}

/// The result of one execution (or of one session cell).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    /// What became of the program.
    pub status: ExecStatus,
    /// Exit status when it exited normally; `None` when a signal ended it (or, for a session
    /// cell, while the interpreter lives on).
    pub exit_code: Option<i32>,
    /// Standard output, lossily decoded as UTF-8, at most `max_output_bytes`.
    pub stdout: String,
    /// Standard error, lossily decoded as UTF-8, at most `max_output_bytes`.
    pub stderr: String,
    /// Wall-clock time from launch to exit, in milliseconds.
    pub duration_ms: u64,
    /// The signal that ended the program, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Whether stdout or stderr was cut at `max_output_bytes`.
    #[serde(default)]
    pub truncated: bool,
    /// Why the status is what it is, in words (for example "wall-clock limit of 2 s passed").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whether Landlock and seccomp were both in force (false only with `allow_unsandboxed`).
    pub sandboxed: bool,
}

/// How a process ended, as the parent saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// Exited with this status.
    Code(i32),
    /// Ended by this signal.
    Signal(i32),
}

/// Facts gathered about one run, for [`classify`].
#[derive(Debug, Clone)]
pub(crate) struct Facts<'a> {
    /// How it ended.
    pub(crate) exit: Exit,
    /// The parent killed it because the wall-clock limit passed.
    pub(crate) wall_timeout: Option<f64>,
    /// The parent killed it because output passed the cap.
    pub(crate) output_overflow: bool,
    /// The end of standard error (kept even when the rest was cut).
    pub(crate) stderr_tail: &'a str,
    /// Wall-clock seconds it ran.
    pub(crate) elapsed_secs: f64,
    /// Its CPU-time limit in seconds.
    pub(crate) cpu_seconds: u64,
}

/// The rule, in order: a wall-clock kill is `timeout`; an output-cap kill is `killed`;
/// `SIGXCPU` (or `SIGKILL` once the CPU hard limit can have been reached) is `timeout`;
/// `SIGSYS` is `denied`; any other signal is `killed`; exit 0 is `ok`; otherwise the final
/// exception of the traceback decides ([`exception_status`]), and without one it is `error`.
pub(crate) fn classify(f: &Facts<'_>) -> (ExecStatus, Option<String>) {
    if let Some(secs) = f.wall_timeout {
        return (ExecStatus::Timeout, Some(format!("wall-clock limit of {secs} s passed")));
    }
    if f.output_overflow {
        return (ExecStatus::Killed, Some("output passed max_output_bytes".to_string()));
    }
    match f.exit {
        Exit::Signal(sig) => {
            let name = signal_name(sig);
            if sig == libc_sig::SIGXCPU || (sig == libc_sig::SIGKILL && f.elapsed_secs + 0.05 >= f.cpu_seconds as f64) {
                (ExecStatus::Timeout, Some(format!("CPU limit of {} s reached ({name})", f.cpu_seconds)))
            } else if sig == libc_sig::SIGSYS {
                (ExecStatus::Denied, Some("seccomp killed it (SIGSYS)".to_string()))
            } else if sig == libc_sig::SIGXFSZ {
                (ExecStatus::Killed, Some("file size limit reached (SIGXFSZ)".to_string()))
            } else {
                (ExecStatus::Killed, Some(format!("killed by signal {name}")))
            }
        }
        Exit::Code(0) => (ExecStatus::Ok, None),
        Exit::Code(code) => match final_exception(f.stderr_tail) {
            Some((name, message)) => {
                let status = exception_status(name, message);
                (status, Some(format!("exit {code}: {name}")))
            }
            None => (ExecStatus::Error, Some(format!("exit {code}"))),
        },
    }
}

/// The status that an uncaught exception named `name` with `message` stands for.
pub(crate) fn exception_status(name: &str, message: &str) -> ExecStatus {
    let short = name.rsplit('.').next().unwrap_or(name);
    // EPERM and EACCES; EXDEV is what Landlock answers to a link or rename out of the work
    // directory (the only writable place, so no legitimate cross-device move exists).
    let errno_denied = ["[Errno 1]", "[Errno 13]", "[Errno 18]"].iter().any(|p| message.starts_with(p));
    match short {
        "PermissionError" => ExecStatus::Denied,
        "MemoryError" => ExecStatus::Killed,
        _ if message.starts_with("[Errno 27]") => ExecStatus::Killed,
        _ if errno_denied && short.ends_with("Error") => ExecStatus::Denied,
        _ => ExecStatus::Error,
    }
}

/// The final exception line of a Python traceback in `stderr`: `(type name, message)`.
pub(crate) fn final_exception(stderr: &str) -> Option<(&str, &str)> {
    let start = stderr.rfind("Traceback (most recent call last):")?;
    let last = stderr[start..].lines().rev().find(|l| !l.trim().is_empty())?;
    if last.starts_with(' ') {
        return None;
    }
    let (name, message) = match last.split_once(": ") {
        Some((n, m)) => (n, m),
        None => (last.trim_end_matches(':'), ""),
    };
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    valid.then_some((name, message))
}

/// The signal numbers used above (Linux values), kept here so classification is a pure function.
pub(crate) mod libc_sig {
    pub(crate) const SIGKILL: i32 = 9;
    pub(crate) const SIGSYS: i32 = 31;
    pub(crate) const SIGXCPU: i32 = 24;
    pub(crate) const SIGXFSZ: i32 = 25;
}

fn signal_name(sig: i32) -> String {
    match nix::sys::signal::Signal::try_from(sig) {
        Ok(s) => s.as_str().to_string(),
        Err(_) => format!("signal {sig}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(exit: Exit, tail: &str) -> Facts<'_> {
        Facts { exit, wall_timeout: None, output_overflow: false, stderr_tail: tail, elapsed_secs: 0.1, cpu_seconds: 5 }
    }

    #[test]
    fn classification_table() {
        let tb = |last: &str| format!("Traceback (most recent call last):\n  File \"x\", line 1\n{last}\n");
        let cases: Vec<(Exit, String, ExecStatus)> = vec![
            (Exit::Code(0), String::new(), ExecStatus::Ok),
            (Exit::Code(1), tb("ValueError: bad"), ExecStatus::Error),
            (Exit::Code(1), tb("PermissionError: [Errno 13] Permission denied: '/etc/shadow'"), ExecStatus::Denied),
            (Exit::Code(1), tb("OSError: [Errno 1] Operation not permitted"), ExecStatus::Denied),
            (Exit::Code(1), tb("MemoryError"), ExecStatus::Killed),
            (Exit::Code(1), tb("OSError: [Errno 27] File too large"), ExecStatus::Killed),
            (Exit::Code(1), tb("socket.gaierror: [Errno -3] Temporary failure"), ExecStatus::Error),
            (Exit::Code(3), "plain message\n".to_string(), ExecStatus::Error),
            (Exit::Signal(9), String::new(), ExecStatus::Killed),
            (Exit::Signal(24), String::new(), ExecStatus::Timeout),
            (Exit::Signal(31), String::new(), ExecStatus::Denied),
        ];
        for (exit, tail, want) in cases {
            assert_eq!(classify(&facts(exit, &tail)).0, want, "{exit:?} {tail:?}");
        }
    }

    #[test]
    fn wall_timeout_and_overflow_take_precedence() {
        let mut f = facts(Exit::Signal(9), "");
        f.wall_timeout = Some(1.0);
        assert_eq!(classify(&f).0, ExecStatus::Timeout);
        f.wall_timeout = None;
        f.output_overflow = true;
        assert_eq!(classify(&f).0, ExecStatus::Killed);
    }

    #[test]
    fn json_shape() {
        let r = ExecResult {
            status: ExecStatus::Denied,
            exit_code: Some(1),
            stdout: String::new(),
            stderr: "x".into(),
            duration_ms: 12,
            signal: None,
            truncated: false,
            reason: None,
            sandboxed: true,
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["status"], "denied");
        assert_eq!(v["exit_code"], 1);
        assert_eq!(v["duration_ms"], 12);
        assert!(v.get("signal").is_none());
    }
}
