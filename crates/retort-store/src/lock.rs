//! The run directory's lock: one `retort run` at a time per directory.
//!
//! The lock is an advisory `flock` on `run.lock`, held for as long as the run lives. The kernel
//! releases it when the process ends however it ends (`kill -9` included), so a lock left by a
//! dead run never blocks the next one; the file's text (pid, start time) only names the holder
//! in messages. `retort status` takes the lock shared to tell a live run from a dead one.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = "run.lock";

/// Who holds a run directory's lock, as its lock file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// The process id of the run.
    pub pid: u32,
    /// Seconds since the Unix epoch when it started.
    pub started_at: u64,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}, started {} s ago", self.pid, crate::now().max(self.started_at as f64) as u64 - self.started_at)
    }
}

/// The exclusive lock of a run directory; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct RunLock {
    /// Kept open: closing the file releases the lock.
    _file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock of `dir` (creating the directory), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir { path: dir.to_path_buf(), source })?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|source| StoreError::Lock { path: path.clone(), source })?;
        // A `retort status` looking at the directory holds the lock shared for an instant:
        // a few short retries keep it from turning a run away.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempts < 10 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    let holder = read_holder(&mut file);
                    return Err(StoreError::Busy { dir: dir.to_path_buf(), holder });
                }
                Err(TryLockError::Error(source)) => return Err(StoreError::Lock { path, source }),
            }
        }
        let text = format!("{} {}\n", std::process::id(), crate::now() as u64);
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(text.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(|source| StoreError::Lock { path: path.clone(), source })?;
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether a live process holds the lock of `dir`, and who: `None` when nobody does (no run,
    /// or a run that died).
    pub fn holder(dir: &Path) -> Option<LockHolder> {
        let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => read_holder(&mut file).or(Some(LockHolder { pid: 0, started_at: 0 })),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    let mut words = text.split_whitespace();
    let pid = words.next()?.parse().ok()?;
    let started_at = words.next()?.parse().ok()?;
    Some(LockHolder { pid, started_at })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder_and_a_released_lock_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let holder = RunLock::holder(dir.path()).expect("held");
        assert_eq!(holder.pid, std::process::id());
        let error = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(error.contains(&format!("pid {}", std::process::id())), "{error}");
        assert!(error.contains("in use by another retort run"), "{error}");
        drop(first);
        assert_eq!(RunLock::holder(dir.path()), None);
        // The stale text of a released lock does not block the next run.
        let again = RunLock::acquire(dir.path()).unwrap();
        assert!(again.path().ends_with(LOCK_FILE));
    }
}
