//! The store's single writer thread: group commit, as databases do.
//!
//! Puts go into a shared queue under a mutex. The writer commits whatever is queued as soon
//! as it is free: while one transaction commits, the next answers gather, and the writer
//! takes them all at once when it is done. There is no sleeping window, so a `kill -9` loses
//! at most the commit in progress and what arrived during it. Only a put into an empty queue
//! wakes the writer, so a busy run costs one wake-up per commit rather than one per answer.
//! A failed commit (a full disk) is kept and returned to every later caller, so the run ends
//! with the error instead of losing answers silently.

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use std::time::{Duration, Instant};

use rusqlite::{params, Connection};

/// Rows worth one transaction when answers stream in faster than commits.
const GATHER: usize = 64;
/// The longest the writer lets streaming answers gather: what a `kill -9` may lose at most
/// beyond the commit in progress, and only while answers arrive faster than one per this.
pub(crate) const GATHER_WAIT: Duration = Duration::from_millis(1);

use crate::{sql, StoreError};

/// One queued answer: kind, key, value.
type Row = (String, Vec<u8>, Vec<u8>);

/// What the writer has to do; lives as long as the store.
#[derive(Default)]
struct Queue {
    puts: Vec<Row>,
    /// Callers of `flush` waiting for the next commit.
    flushes: Vec<Sender<Result<(), String>>>,
    /// The first commit that failed: returned to every later put and flush.
    failed: Option<String>,
    /// Set by `Drop`: commit what is queued and stop.
    closed: bool,
    /// Cleared when the writer thread ends (also by a panic): puts then fail.
    stopped: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The handle to the writer thread. Dropping it commits what is queued and stops the thread.
pub struct StoreWriter {
    path: PathBuf,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    pub(crate) fn start(path: PathBuf, conn: Connection) -> Result<StoreWriter, StoreError> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), wake: Condvar::new() });
        let thread_shared = shared.clone();
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("retort-store-writer".into())
            .spawn(move || write_loop(thread_path, conn, &thread_shared))
            .map_err(|_| StoreError::WriterGone { path: path.clone() })?;
        Ok(StoreWriter { path, shared, thread: Some(thread) })
    }

    pub(crate) fn put(&self, kind: &str, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        let mut queue = self.shared.lock();
        if let Some(message) = &queue.failed {
            return Err(StoreError::CommitFailed { path: self.path.clone(), message: message.clone() });
        }
        if queue.stopped || queue.closed {
            return Err(StoreError::WriterGone { path: self.path.clone() });
        }
        queue.puts.push((kind.to_string(), key, value));
        // Only a put into an empty queue wakes the writer; later ones join its next commit.
        let wake = queue.puts.len() == 1;
        drop(queue);
        if wake {
            self.shared.wake.notify_one();
        }
        Ok(())
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        {
            let mut queue = self.shared.lock();
            if let Some(message) = &queue.failed {
                return Err(StoreError::CommitFailed { path: self.path.clone(), message: message.clone() });
            }
            if queue.stopped {
                return Err(StoreError::WriterGone { path: self.path.clone() });
            }
            queue.flushes.push(done);
        }
        self.shared.wake.notify_one();
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::CommitFailed { path: self.path.clone(), message }),
            Err(_) => Err(StoreError::WriterGone { path: self.path.clone() }),
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Marks the writer stopped when its thread ends, however it ends, and releases flush waiters.
struct StopGuard<'a>(&'a Shared);

impl Drop for StopGuard<'_> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.stopped = true;
        queue.flushes.clear();
    }
}

fn write_loop(path: PathBuf, mut conn: Connection, shared: &Shared) {
    let _stop = StopGuard(shared);
    let mut batch: Vec<Row> = Vec::new();
    let mut last_commit: Option<Instant> = None;
    let mut queue = shared.lock();
    loop {
        while queue.puts.is_empty() && queue.flushes.is_empty() && !queue.closed {
            queue = shared.wake.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        // Answers arriving one by one faster than commits (an instant server): let up to
        // GATHER of them gather, for at most GATHER_WAIT, instead of a transaction each.
        // Otherwise (the usual case) what is queued is committed at once.
        let streaming = last_commit.is_some_and(|at| at.elapsed() < GATHER_WAIT);
        if streaming && queue.puts.len() < GATHER && queue.flushes.is_empty() && !queue.closed {
            queue = shared.wake.wait_timeout(queue, GATHER_WAIT).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        last_commit = Some(Instant::now());
        std::mem::swap(&mut batch, &mut queue.puts);
        let waiting = std::mem::take(&mut queue.flushes);
        let closed = queue.closed;
        drop(queue);
        let result = commit(&path, &mut conn, &mut batch).map_err(|error| error.to_string());
        batch.clear();
        queue = shared.lock();
        if let Err(message) = result {
            tracing::error!("run store: {message}");
            queue.failed.get_or_insert(message);
        }
        // A failure is sticky, and it is settled under the lock before anyone hears of it: a
        // flush that queued while this commit ran (after `flush` found no failure) hears of it
        // now, instead of being answered by a later commit of nothing.
        let reply = queue.failed.clone().map_or(Ok(()), Err);
        let late = if reply.is_err() { std::mem::take(&mut queue.flushes) } else { Vec::new() };
        for done in waiting.into_iter().chain(late) {
            let _ = done.send(reply.clone());
        }
        if closed && queue.puts.is_empty() && queue.flushes.is_empty() {
            return;
        }
    }
}

fn commit(path: &std::path::Path, conn: &mut Connection, batch: &mut Vec<Row>) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let transaction = conn.transaction().map_err(sql(path, "begin commit"))?;
    {
        let mut statement = transaction
            .prepare_cached("INSERT OR IGNORE INTO memo (kind, key, value) VALUES (?1, ?2, ?3)")
            .map_err(sql(path, "prepare commit"))?;
        for (kind, key, value) in batch.drain(..) {
            statement.execute(params![kind, key, value]).map_err(sql(path, "write answer"))?;
        }
    }
    transaction.commit().map_err(sql(path, "commit answers"))
}
