//! The helper: the process the parent launches, which restricts itself and executes Python.
//!
//! The parent is multi-threaded (tokio), so nothing is restricted between `fork` and `exec`
//! there; instead the parent launches a fresh program (retort itself, `__sandbox-helper`),
//! which is single-threaded at this point and does, in order: new session, rlimits, work
//! directory, closing inherited descriptors, dropping capabilities, Landlock, seccomp, and
//! `execve` of Python with an environment of its own making.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus,
    Scope, ABI,
};
use nix::sys::resource::{setrlimit, Resource};

use crate::spec::{HelperSpec, SPEC_ENV};

/// Exit status of the helper when it could not set up the sandbox.
pub const HELPER_FAILURE_EXIT: i32 = 125;

/// The hidden subcommand under which retort re-launches itself as the helper.
pub const HELPER_SUBCOMMAND: &str = "__sandbox-helper";

/// Whether this process was launched as the helper (`argv[1]` is [`HELPER_SUBCOMMAND`]).
/// Meant for the first line of `main`: `if is_helper_invocation() { helper_main() }`.
pub fn is_helper_invocation() -> bool {
    std::env::args_os().nth(1).is_some_and(|a| a == HELPER_SUBCOMMAND)
}

/// Entry point of the helper process (`retort __sandbox-helper`). Call it first thing in
/// `main`, before starting any runtime or thread: it reads its instructions from the
/// environment, restricts the process and replaces it with Python. It never returns; when
/// set-up fails it reports to the parent and exits with [`HELPER_FAILURE_EXIT`].
pub fn helper_main() -> ! {
    let spec = match std::env::var(SPEC_ENV)
        .map_err(|e| e.to_string())
        .and_then(|s| serde_json::from_str::<HelperSpec>(&s).map_err(|e| format!("parsing {SPEC_ENV}: {e}")))
    {
        Ok(spec) => spec,
        Err(e) => fail(None, &format!("reading the sandbox spec: {e}")),
    };
    let mut status = match File::create(&spec.status_file) {
        Ok(f) => f,
        Err(e) => fail(None, &format!("creating the status file {}: {e}", spec.status_file.display())),
    };
    match setup(&spec) {
        Ok(sandboxed) => {
            let _ = writeln!(status, "ok sandboxed={sandboxed}");
            let _ = status.flush();
            let err = exec_python(&spec);
            fail(Some(&mut status), &err)
        }
        Err(e) => fail(Some(&mut status), &e),
    }
}

fn fail(status: Option<&mut File>, msg: &str) -> ! {
    if let Some(f) = status {
        let _ = f.set_len(0);
        let _ = writeln!(f, "error {msg}");
    }
    let _ = writeln!(std::io::stderr(), "retort sandbox helper: {msg}");
    std::process::exit(HELPER_FAILURE_EXIT)
}

/// Applies every layer; returns whether Landlock and seccomp are both in force.
fn setup(spec: &HelperSpec) -> Result<bool, String> {
    // A session (and process group) of its own, so the parent can kill the whole group; the
    // seccomp filter then forbids leaving it. EPERM means it already leads a group.
    let _ = nix::unistd::setsid();
    set_rlimits(spec)?;
    nix::unistd::chdir(&spec.workdir).map_err(|e| format!("changing directory to {}: {e}", spec.workdir.display()))?;
    close_inherited_fds();
    drop_capabilities()?;
    let landlock_ok = apply_landlock(spec).or_else(|e| if spec.enforce { Err(e) } else { Ok(false) })?;
    let pid = nix::unistd::getpid().as_raw();
    let seccomp_ok =
        apply_seccomp(pid, spec.limits.max_processes > 1).map(|()| true).or_else(|e| if spec.enforce { Err(e) } else { Ok(false) })?;
    Ok(landlock_ok && seccomp_ok)
}

fn set_rlimits(spec: &HelperSpec) -> Result<(), String> {
    let l = &spec.limits;
    let mem = l.memory_mb.saturating_mul(1 << 20);
    let mut limits = vec![
        (Resource::RLIMIT_AS, mem, mem),
        (Resource::RLIMIT_CPU, l.cpu_seconds, l.cpu_seconds.saturating_add(1)),
        (Resource::RLIMIT_FSIZE, l.max_file_bytes, l.max_file_bytes),
        (Resource::RLIMIT_NOFILE, l.max_open_files, l.max_open_files),
        (Resource::RLIMIT_CORE, 0, 0),
    ];
    if l.max_processes > 1 {
        limits.push((Resource::RLIMIT_NPROC, l.max_processes, l.max_processes));
    }
    for (res, soft, hard) in limits {
        setrlimit(res, soft, hard).map_err(|e| format!("setting {res:?} to {soft}/{hard}: {e}"))?;
    }
    Ok(())
}

/// Closes every descriptor above 2 (the status file is close-on-exec already and kept).
fn close_inherited_fds() {
    let fds: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(rd) => rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).filter(|&fd| fd > 2).collect(),
        Err(_) => return,
    };
    for fd in fds {
        // Descriptors Rust opened are close-on-exec; only inherited ones need closing, and
        // closing our own (the status file, the directory iterator's) would break us.
        if let Ok(flags) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) {
            let cloexec = flags
                .lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
                .is_some_and(|f| f & (libc::O_CLOEXEC as u32) != 0);
            if !cloexec {
                let _ = nix::unistd::close(fd);
            }
        }
    }
}

fn drop_capabilities() -> Result<(), String> {
    use caps::CapSet;
    let any = |set| caps::read(None, set).map(|s| !s.is_empty()).unwrap_or(false);
    if any(CapSet::Bounding) && caps::has_cap(None, CapSet::Effective, caps::Capability::CAP_SETPCAP).unwrap_or(false) {
        caps::clear(None, CapSet::Bounding).map_err(|e| format!("dropping the bounding capabilities: {e}"))?;
    }
    for set in [CapSet::Ambient, CapSet::Inheritable, CapSet::Effective, CapSet::Permitted] {
        if any(set) {
            caps::clear(None, set).map_err(|e| format!("dropping the {set:?} capabilities: {e}"))?;
        }
    }
    Ok(())
}

fn apply_landlock(spec: &HelperSpec) -> Result<bool, String> {
    let abi = ABI::V6;
    // Best effort: each right the kernel lacks is dropped (an older kernel gets fewer
    // layers); a ruleset that enforces nothing at all is refused below.
    let level = CompatLevel::BestEffort;
    let err = |what: &str, e: &dyn std::fmt::Display| format!("Landlock: {what}: {e}");
    let read_dir = AccessFs::ReadFile | AccessFs::ReadDir;
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(abi))
        .map_err(|e| err("handling file-system access", &e))?
        .handle_access(AccessNet::from_all(abi))
        .map_err(|e| err("handling network access", &e))?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)
        .map_err(|e| err("scoping signals and abstract sockets", &e))?
        .create()
        .map_err(|e| err("creating the ruleset", &e))?;
    let add = |ruleset: landlock::RulesetCreated, path: &Path, dir: landlock::BitFlags<AccessFs>, file: landlock::BitFlags<AccessFs>| {
        let Ok(meta) = std::fs::metadata(path) else { return Ok(ruleset) };
        let access = if meta.is_dir() { dir } else { file };
        let fd = PathFd::new(path).map_err(|e| err(&format!("opening {}", path.display()), &e))?;
        ruleset.add_rule(PathBeneath::new(fd, access)).map_err(|e| err(&format!("allowing {}", path.display()), &e))
    };
    for p in &spec.read_paths {
        ruleset = add(ruleset, p, read_dir, AccessFs::ReadFile.into())?;
    }
    for p in &spec.exec_paths {
        ruleset = add(ruleset, p, read_dir, AccessFs::ReadFile | AccessFs::Execute)?;
    }
    let dev_rw = AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate;
    for p in &spec.rw_devices {
        ruleset = add(ruleset, p, dev_rw, dev_rw)?;
    }
    let work =
        AccessFs::from_all(abi) & !(AccessFs::Execute | AccessFs::MakeChar | AccessFs::MakeBlock | AccessFs::MakeSock | AccessFs::IoctlDev);
    ruleset = add(ruleset, &spec.workdir, work, work)?;
    let status = ruleset.restrict_self().map_err(|e| err("restricting the process", &e))?;
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(true),
        _ => Err("Landlock: the kernel enforced no rule (is Landlock enabled?)".to_string()),
    }
}

fn apply_seccomp(pid: i32, allow_fork: bool) -> Result<(), String> {
    for prog in crate::seccomp::build(pid, allow_fork)? {
        seccompiler::apply_filter(&prog).map_err(|e| format!("installing the seccomp filter: {e}"))?;
    }
    Ok(())
}

fn exec_python(spec: &HelperSpec) -> String {
    let cstr = |s: &[u8]| CString::new(s).map_err(|_| "an argument contains a NUL byte".to_string());
    let build = || -> Result<(CString, Vec<CString>, Vec<CString>), String> {
        let path = cstr(spec.python.as_os_str().as_bytes())?;
        let mut argv = vec![path.clone()];
        for a in &spec.args {
            argv.push(cstr(a.as_bytes())?);
        }
        let env = spec.env.iter().map(|(k, v)| cstr(format!("{k}={v}").as_bytes())).collect::<Result<Vec<_>, _>>()?;
        Ok((path, argv, env))
    };
    match build() {
        Ok((path, argv, env)) => match nix::unistd::execve(&path, &argv, &env) {
            Ok(never) => match never {},
            Err(e) => format!("executing {}: {e}", spec.python.display()),
        },
        Err(e) => e,
    }
}
