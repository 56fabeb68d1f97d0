//! The store's single writer thread: batches puts into transactions a few milliseconds apart.
//!
//! Puts go into a shared queue under a mutex. Only the first put of a batch wakes the writer
//! (to start the window), so a busy run costs one thread wake-up per commit rather than one
//! per answer; the writer sleeps out the window and takes the whole queue at once. A flush, a
//! full batch or closing the store wakes it early.

use std::path::PathBuf;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::{sql, StoreError, COMMIT_WINDOW};

/// Rows that make the writer commit before the window ends.
const MAX_BATCH: usize = 4096;

/// One queued answer: kind, key, value.
type Row = (String, Vec<u8>, Vec<u8>);

/// What the writer has to do; lives as long as the store.
#[derive(Default)]
struct Queue {
    puts: Vec<Row>,
    /// Callers of `flush` waiting for the next commit.
    flushes: Vec<Sender<Result<(), String>>>,
    /// When the oldest queued put arrived: the window ends `COMMIT_WINDOW` later.
    first_queued: Option<Instant>,
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
        if queue.stopped || queue.closed {
            return Err(StoreError::WriterGone { path: self.path.clone() });
        }
        queue.puts.push((kind.to_string(), key, value));
        let wake = match queue.first_queued {
            None => {
                queue.first_queued = Some(Instant::now());
                true
            }
            Some(_) => queue.puts.len() == MAX_BATCH,
        };
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
            if queue.stopped {
                return Err(StoreError::WriterGone { path: self.path.clone() });
            }
            queue.flushes.push(done);
        }
        self.shared.wake.notify_one();
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(StoreError::WriterGone { path: self.path.clone() }),
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
    let mut queue = shared.lock();
    loop {
        // Sleep until there is work, then until it is due: the window ends, the batch is full,
        // someone flushes or the store closes. Puts in between do not wake this thread.
        loop {
            let urgent = !queue.flushes.is_empty() || queue.closed || queue.puts.len() >= MAX_BATCH;
            match queue.first_queued {
                _ if urgent => break,
                Some(since) if since.elapsed() >= COMMIT_WINDOW => break,
                Some(since) => {
                    let remaining = COMMIT_WINDOW.saturating_sub(since.elapsed());
                    queue = shared.wake.wait_timeout(queue, remaining).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
                }
                None => queue = shared.wake.wait(queue).unwrap_or_else(|poisoned| poisoned.into_inner()),
            }
        }
        std::mem::swap(&mut batch, &mut queue.puts);
        let waiting = std::mem::take(&mut queue.flushes);
        queue.first_queued = None;
        let closed = queue.closed;
        drop(queue);
        let result = commit(&path, &mut conn, &mut batch).map_err(|error| error.to_string());
        if let Err(message) = &result {
            eprintln!("retort: {message}");
        }
        // A failed commit has been reported (to stderr and to any flush); its rows are not retried.
        batch.clear();
        for done in waiting {
            let _ = done.send(result.clone());
        }
        queue = shared.lock();
        if closed && queue.puts.is_empty() && queue.flushes.is_empty() {
            return;
        }
    }
}

fn commit(path: &PathBuf, conn: &mut Connection, batch: &mut Vec<Row>) -> Result<(), StoreError> {
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
