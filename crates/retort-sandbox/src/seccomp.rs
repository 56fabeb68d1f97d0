//! The seccomp filter the helper installs on itself before executing Python.
//!
//! It is a deny-list (the default action is to allow) aimed at what lets code leave the
//! sandbox or harm the host: sockets, process tracing, namespaces, mounts, kernel modules,
//! keyrings, BPF, io_uring, System V IPC and message queues, changing identity, signalling or re-prioritising other processes,
//! leaving the process group and (by default) creating child processes. Denied calls fail with
//! `EPERM`; `clone3` fails with `ENOSYS` so that the C library falls back to `clone`, whose
//! flags the filter can see. A call from another architecture (32-bit `int 0x80`) kills the
//! process.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond, SeccompFilter, SeccompRule,
    TargetArch,
};

/// Syscalls denied whatever their arguments.
const ALWAYS_DENIED: &[i64] = &[
    libc::SYS_socket,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_quotactl,
    libc::SYS_name_to_handle_at,
    libc::SYS_open_by_handle_at,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_syslog,
    libc::SYS_vhangup,
    libc::SYS_fanotify_init,
    libc::SYS_lookup_dcookie,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_setuid,
    libc::SYS_setgid,
    libc::SYS_setreuid,
    libc::SYS_setregid,
    libc::SYS_setresuid,
    libc::SYS_setresgid,
    libc::SYS_setfsuid,
    libc::SYS_setfsgid,
    libc::SYS_setgroups,
    libc::SYS_capset,
    libc::SYS_setsid,
    libc::SYS_setpgid,
    libc::SYS_tkill,
    libc::SYS_ioprio_set,
    libc::SYS_migrate_pages,
    libc::SYS_move_pages,
    libc::SYS_process_madvise,
    libc::SYS_personality,
    libc::SYS_uselib,
    libc::SYS_nfsservctl,
    // System V IPC and POSIX message queues live outside Landlock's reach and are shared
    // with the host (a database's shared memory, for one).
    libc::SYS_shmget,
    libc::SYS_shmat,
    libc::SYS_shmctl,
    libc::SYS_shmdt,
    libc::SYS_msgget,
    libc::SYS_msgsnd,
    libc::SYS_msgrcv,
    libc::SYS_msgctl,
    libc::SYS_semget,
    libc::SYS_semop,
    libc::SYS_semtimedop,
    libc::SYS_semctl,
    libc::SYS_mq_open,
    libc::SYS_mq_unlink,
    libc::SYS_mq_timedsend,
    libc::SYS_mq_timedreceive,
    libc::SYS_mq_notify,
    libc::SYS_mq_getsetattr,
    // Watching files outside (access patterns of /etc/shadow, ...) tells more than stat.
    libc::SYS_inotify_init,
    libc::SYS_inotify_init1,
    libc::SYS_inotify_add_watch,
    libc::SYS_quotactl_fd,
    // Executing a descriptor (fexecve) would run a memfd, which Landlock's path rules
    // cannot see; the helper itself uses plain execve.
    libc::SYS_execveat,
];

/// Process-creating syscalls denied outright when child processes are not allowed.
const FORK_DENIED: &[i64] = &[libc::SYS_fork, libc::SYS_vfork];

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Cond {
    Cond::new(arg, len, op, value).expect("argument index is below 6")
}

fn rule(conds: Vec<Cond>) -> SeccompRule {
    SeccompRule::new(conds).expect("a rule has at least one condition")
}

/// Builds the two filters (the `EPERM` deny-list and the `clone3` → `ENOSYS` one).
/// `self_pid` is the helper's pid, which Python keeps across `execve`.
pub(crate) fn build(self_pid: i32, allow_fork: bool) -> Result<Vec<BpfProgram>, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("seccomp has no support for architecture {}: {e}", std::env::consts::ARCH))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for &nr in ALWAYS_DENIED {
        rules.insert(nr, vec![]);
    }
    // socketpair is harmless (an anonymous connected pair, asyncio needs it) for AF_UNIX only.
    rules.insert(libc::SYS_socketpair, vec![rule(vec![cond(0, Len::Dword, Op::Ne, libc::AF_UNIX as u64)])]);
    // Namespaces through clone, always; child processes unless allowed.
    let ns_flags = [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWCGROUP,
    ];
    let mut clone_rules: Vec<SeccompRule> =
        ns_flags.iter().map(|&f| rule(vec![cond(0, Len::Qword, Op::MaskedEq(f as u64), f as u64)])).collect();
    if !allow_fork {
        let thread = libc::CLONE_THREAD as u64;
        clone_rules.push(rule(vec![cond(0, Len::Qword, Op::MaskedEq(thread), 0)]));
        for &nr in FORK_DENIED {
            rules.insert(nr, vec![]);
        }
    }
    rules.insert(libc::SYS_clone, clone_rules);
    // Signals, priorities, limits and scheduling only for itself (pid 0 means the caller).
    // With child processes allowed, Landlock's signal scope is what confines kill().
    let me = self_pid as u64;
    let minus_me = (-(self_pid as i64)) as u32 as u64;
    let not_self = |arg: u8| vec![cond(arg, Len::Dword, Op::Ne, 0), cond(arg, Len::Dword, Op::Ne, me)];
    if !allow_fork {
        let mut kill_conds = not_self(0);
        kill_conds.push(cond(0, Len::Dword, Op::Ne, minus_me));
        rules.insert(libc::SYS_kill, vec![rule(kill_conds)]);
        for nr in [libc::SYS_tgkill, libc::SYS_rt_sigqueueinfo, libc::SYS_rt_tgsigqueueinfo, libc::SYS_pidfd_open] {
            rules.insert(nr, vec![rule(not_self(0))]);
        }
    }
    for nr in
        [libc::SYS_prlimit64, libc::SYS_sched_setaffinity, libc::SYS_sched_setscheduler, libc::SYS_sched_setparam, libc::SYS_sched_setattr]
    {
        if allow_fork {
            // Children have other pids; only the caller itself (0) stays allowed.
            rules.insert(nr, vec![rule(vec![cond(0, Len::Dword, Op::Ne, 0)])]);
        } else {
            rules.insert(nr, vec![rule(not_self(0))]);
        }
    }
    // setpriority(which, who, prio): only who == 0 (the caller) or itself.
    rules.insert(libc::SYS_setpriority, vec![rule(not_self(1))]);
    // No terminal input injection. (The request type differs between C libraries, hence
    // the casts.)
    #[allow(clippy::unnecessary_cast)]
    rules.insert(
        libc::SYS_ioctl,
        vec![
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCSTI as u64)]),
            rule(vec![cond(1, Len::Dword, Op::Eq, libc::TIOCLINUX as u64)]),
        ],
    );
    let deny = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| format!("building the seccomp deny-list: {e}"))?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, vec![]);
    let clone3 = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch)
        .map_err(|e| format!("building the seccomp clone3 filter: {e}"))?;
    let mut out = Vec::new();
    for f in [deny, clone3] {
        out.push(BpfProgram::try_from(f).map_err(|e| format!("compiling the seccomp filter: {e}"))?);
    }
    Ok(out)
}
