//! The hostile-code suite: escape attempts, resource bombs and tricks, run concurrently; each
//! must be contained and reported with the right status, and the host must be unchanged after.

mod common;

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use retort_sandbox::{ExecRequest, ExecResult, ExecStatus, Limits};

use ExecStatus::{Denied, Error, Killed, Ok as Fine, Timeout};

/// Values substituted into the programs (`{PORT}`, `{OUT}`, ...) and checked afterwards.
struct Ctx {
    secret: String,
    out: String,
    unix: String,
    canary: String,
    canary_text: String,
}

type Check = fn(&ExecResult, &Ctx) -> Result<(), String>;

fn no_secret(r: &ExecResult, c: &Ctx) -> Result<(), String> {
    if r.stdout.contains(&c.secret) || r.stderr.contains(&c.secret) {
        return Err("the parent's secret leaked".into());
    }
    if r.stdout.contains(&c.canary_text) || r.stderr.contains(&c.canary_text) {
        return Err("the canary file's content leaked".into());
    }
    Ok(())
}

fn truncated(r: &ExecResult, c: &Ctx) -> Result<(), String> {
    no_secret(r, c)?;
    if !r.truncated || r.stdout.len() + r.stderr.len() > 2 * 32 * 1024 {
        return Err(format!("expected output cut at the cap, found truncated={} len={}", r.truncated, r.stdout.len()));
    }
    Ok(())
}

fn prints_contained(r: &ExecResult, c: &Ctx) -> Result<(), String> {
    no_secret(r, c)?;
    if !r.stdout.contains("contained") {
        return Err("expected the program to report it was contained".into());
    }
    Ok(())
}

/// (name, program, expected status, extra check).
const CASES: &[(&str, &str, ExecStatus, Check)] = &[
    ("read /etc/shadow", "print(open('/etc/shadow').read())", Denied, no_secret),
    ("read /etc/passwd", "print(open('/etc/passwd').read())", Denied, no_secret),
    ("list /root", "import os\nprint(os.listdir('/root'))", Denied, no_secret),
    ("read ~/.ssh via /root", "import os\nfor d, _, fs in os.walk('/root', onerror=lambda e: (_ for _ in ()).throw(e)):\n    print(d, fs)", Denied, no_secret),
    ("list /home", "import os\nprint(os.listdir('/home'))", Denied, no_secret),
    ("read a canary file outside", "print(open('{CANARY}').read())", Denied, no_secret),
    ("dump the environment", "import os\nprint(dict(os.environ))\nprint('contained')", Fine, prints_contained),
    ("read the parent's /proc environ", "import os\nprint(open(f'/proc/{os.getppid()}/environ', 'rb').read())", Denied, no_secret),
    ("read /proc/1/environ", "print(open('/proc/1/environ', 'rb').read())", Denied, no_secret),
    ("escape through /proc/self/root", "print(open('/proc/self/root/etc/shadow').read())", Denied, no_secret),
    ("list /proc", "import os\nprint(os.listdir('/proc'))", Denied, no_secret),
    ("write /tmp outside the work dir", "open('{OUT}-tmp', 'w').write('pwned')", Denied, no_secret),
    ("write into /work/main", "open('/work/main/RETORT_SANDBOX_PWNED', 'w').write('pwned')", Denied, no_secret),
    ("chdir / and write", "import os\nos.chdir('/')\nopen('RETORT_SANDBOX_PWNED', 'w').write('pwned')", Denied, no_secret),
    ("list the parent of the work dir", "import os\nprint(os.listdir('..'))", Denied, no_secret),
    ("symlink escape (read)", "import os\nos.symlink('/etc/shadow', 'link')\nprint(open('link').read())", Denied, no_secret),
    ("symlink escape (write)", "import os\nos.symlink('{OUT}-sym', 'link')\nopen('link', 'w').write('pwned')", Denied, no_secret),
    ("hard link out of /etc", "import os\nos.link('/etc/passwd', 'h')\nprint(open('h').read())", Denied, no_secret),
    ("TCP connect to a host listener", "import socket\nsocket.create_connection(('127.0.0.1', {PORT}), timeout=1)", Denied, no_secret),
    ("UDP send to a host socket", "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'x', ('127.0.0.1', {UDP}))", Denied, no_secret),
    ("IPv6 connect", "import socket\ns = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)\ns.connect(('::1', {PORT}))", Denied, no_secret),
    ("unix socket connect", "import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('{UNIX}')", Denied, no_secret),
    ("netlink raw socket", "import socket\nsocket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)", Denied, no_secret),
    ("socket via ctypes syscall", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nfd = libc.syscall(41, 2, 1, 0)\nif fd < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\nprint('got socket', fd)", Denied, no_secret),
    ("io_uring setup via ctypes", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nbuf = ctypes.create_string_buffer(120)\nr = libc.syscall(425, 8, buf)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("bpf via ctypes", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(321, 0, None, 0)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("ptrace the parent via ctypes", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.ptrace(16, os.getppid(), None, None)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("unshare a user namespace", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.unshare(0x10000000)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("mount tmpfs", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.mount(b'none', b'.', b'tmpfs', 0, None)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("keyctl via ctypes", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.syscall(250, 0, -3, 0)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))", Denied, no_secret),
    ("attach host System V shared memory", "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.shmget(0, 4096, 0o600)\nif r < 0:\n    e = ctypes.get_errno(); raise OSError(e, os.strerror(e))\nprint('segment', r)", Denied, no_secret),
    ("chroot", "import os\nos.chroot('.')", Denied, no_secret),
    ("setuid", "import os\nos.setuid(1000)", Denied, no_secret),
    ("setgid", "import os\nos.setgid(1000)", Denied, no_secret),
    ("setsid to leave the group", "import os\nos.setsid()", Denied, no_secret),
    ("mknod a char device", "import os, stat\nos.mknod('mem', stat.S_IFCHR | 0o600, os.makedev(1, 1))", Denied, no_secret),
    ("kill the parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)", Denied, no_secret),
    ("kill pid 1", "import os, signal\nos.kill(1, signal.SIGTERM)", Denied, no_secret),
    ("kill every process (-1)", "import os, signal\nos.kill(-1, signal.SIGKILL)", Denied, no_secret),
    ("lower the parent's rlimit", "import os, resource\nresource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (3, 3))", Denied, no_secret),
    ("renice the parent", "import os\nos.setpriority(os.PRIO_PROCESS, os.getppid(), 19)", Denied, no_secret),
    ("terminal injection (TIOCSTI)", "import fcntl, termios\nfcntl.ioctl(0, termios.TIOCSTI, b'x')", Denied, no_secret),
    ("fork bomb", "import os\nwhile True:\n    os.fork()", Denied, no_secret),
    ("subprocess /bin/sh", "import subprocess\nsubprocess.run(['/bin/sh', '-c', 'echo pwned > {OUT}-sh'])", Denied, no_secret),
    ("subprocess curl", "import subprocess\nsubprocess.run(['curl', 'http://127.0.0.1:{PORT}/'])", Denied, no_secret),
    ("os.system", "import os\nr = os.system('echo pwned > {OUT}-system')\nif r != 0:\n    raise PermissionError('os.system could not start a shell: %d' % r)", Denied, no_secret),
    ("exec /bin/sh in place", "import os\nos.execv('/bin/sh', ['sh', '-c', 'echo pwned > {OUT}-exec'])", Denied, no_secret),
    ("exec a memfd copy of python", "import os, sys\nfd = os.memfd_create('x', 0)\nos.write(fd, open(sys.executable, 'rb').read())\nos.execve(fd, ['python', '-c', 'print(1)'], {})", Denied, no_secret),
    ("exec a script written to the work dir", "import os\nopen('x.sh', 'w').write('#!/bin/sh\\necho pwned > {OUT}-script\\n')\nos.chmod('x.sh', 0o755)\nos.execv('./x.sh', ['x.sh'])", Denied, no_secret),
    ("list /tmp (other work dirs)", "import os\nprint(os.listdir('/tmp'))", Denied, no_secret),
    ("write /dev/shm", "open('/dev/shm/retort-pwned', 'w').write('x')", Denied, no_secret),
    ("rename the script out of the work dir", "import os\nos.rename('main.py', '{OUT}-renamed')", Denied, no_secret),
    ("memory bomb", "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024 * 1024))", Killed, no_secret),
    ("one huge allocation", "x = bytearray(8 * 1024 * 1024 * 1024)", Killed, no_secret),
    ("disk fill", "with open('fill', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)", Killed, no_secret),
    ("huge stdout", "while True:\n    print('A' * 1000)", Killed, truncated),
    ("huge stderr", "import sys\nwhile True:\n    sys.stderr.write('E' * 1000)", Killed, truncated),
    ("infinite loop", "while True:\n    pass", Timeout, no_secret),
    ("busy CPU in threads", "import threading\ndef spin():\n    while True:\n        pass\nfor _ in range(4):\n    threading.Thread(target=spin).start()", Timeout, no_secret),
    ("sleep forever", "import time\ntime.sleep(3600)", Timeout, no_secret),
    ("ignore SIGXCPU and spin", "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass", Timeout, no_secret),
    ("thread bomb", "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()", Error, no_secret),
    ("catch the denial and carry on", "try:\n    open('/etc/shadow')\nexcept PermissionError:\n    print('contained')", Fine, prints_contained),
    ("kill its own process group", "import os, signal\nos.kill(0, signal.SIGKILL)", Killed, no_secret),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_are_contained() {
    let secret = format!("retort-secret-{:x}", std::process::id() as u64 * 7919 + 17);
    // Safe: set before any thread of this test reads the environment.
    std::env::set_var("RETORT_TEST_SECRET", &secret);
    let host_dir = tempfile::tempdir().unwrap();
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let unix_path = host_dir.path().join("host.sock");
    let unix = UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let canary = host_dir.path().join("canary.txt");
    let canary_text = format!("canary-{secret}");
    std::fs::write(&canary, &canary_text).unwrap();
    let ctx = Ctx {
        secret: secret.clone(),
        out: host_dir.path().join("escaped").display().to_string(),
        unix: unix_path.display().to_string(),
        canary: canary.display().to_string(),
        canary_text,
    };
    let limits = Limits {
        timeout: Duration::from_millis(2500),
        memory_mb: 256,
        cpu_seconds: 1,
        max_output_bytes: 32 * 1024,
        max_processes: 1,
        max_file_bytes: 1 << 20,
        max_open_files: 64,
    };
    let before_nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    let sandbox = common::sandbox(4);
    let names: HashSet<&str> = CASES.iter().map(|c| c.0).collect();
    assert_eq!(names.len(), CASES.len(), "case names are unique");
    assert!(CASES.len() >= 30);

    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, (_, code, _, _)) in CASES.iter().enumerate() {
        let code = code
            .replace("{PORT}", &tcp.local_addr().unwrap().port().to_string())
            .replace("{UDP}", &udp.local_addr().unwrap().port().to_string())
            .replace("{OUT}", &ctx.out)
            .replace("{UNIX}", &ctx.unix)
            .replace("{CANARY}", &ctx.canary);
        let sandbox = sandbox.clone();
        let req = ExecRequest::new(code).with_limits(limits.clone());
        set.spawn(async move { (i, sandbox.run(req).await) });
    }
    let mut failures = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, result) = joined.unwrap();
        let (name, _, want, check) = CASES[i];
        let r = result.unwrap_or_else(|e| panic!("{name}: the sandbox failed: {e}"));
        if std::env::var_os("RETORT_SANDBOX_TEST_VERBOSE").is_some() {
            eprintln!("{name:40} {:8} {:5} ms  {}", r.status.as_str(), r.duration_ms, r.reason.as_deref().unwrap_or(""));
        }
        if r.status != want {
            failures.push(format!("{name}: expected {want:?}, found {:?} ({:?})\n{}", r.status, r.reason, r.stderr));
        } else if let Err(e) = check(&r, &ctx) {
            failures.push(format!("{name}: {e}"));
        }
        assert!(r.sandboxed, "{name}: ran without the sandbox");
    }
    let elapsed = started.elapsed();
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n\n"));
    eprintln!("{} hostile programs contained in {:.1} s", CASES.len(), elapsed.as_secs_f64());

    // The host is unchanged.
    for suffix in ["-tmp", "-sym", "-sh", "-system", "-exec", "-script", "-renamed"] {
        let p = PathBuf::from(format!("{}{suffix}", ctx.out));
        assert!(!p.exists(), "{} was created", p.display());
    }
    for p in ["/work/main/RETORT_SANDBOX_PWNED", "/RETORT_SANDBOX_PWNED", "/dev/shm/retort-pwned"] {
        assert!(!std::path::Path::new(p).exists(), "{p} was created");
    }
    assert_eq!(tcp.accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock, "the TCP listener got a connection");
    let mut buf = [0u8; 16];
    assert_eq!(udp.recv_from(&mut buf).map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock, "the UDP socket got a datagram");
    assert_eq!(unix.accept().map(|_| ()).unwrap_err().kind(), ErrorKind::WouldBlock, "the unix listener got a connection");
    assert_eq!(std::fs::read_to_string(&canary).unwrap(), format!("canary-{secret}"));
    let after_nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(before_nofile, after_nofile, "the test process's rlimit changed");
    // This process is alive (we are here) and its priority is untouched.
    assert_eq!(nix::unistd::getpid().as_raw() as u32, std::process::id());
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("retort-sbx-"))
        .collect();
    assert!(leftovers.is_empty() || leftovers.len() < 4, "work directories left behind: {leftovers:?}");
}
