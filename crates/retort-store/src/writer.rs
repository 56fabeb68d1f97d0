//! The store's single writer thread: batches puts into transactions a few milliseconds apart.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use rusqlite::{params, Connection};

use crate::{sql, StoreError, COMMIT_WINDOW};

/// Most rows in one transaction; a larger backlog is committed in several.
const MAX_BATCH: usize = 4096;

enum Command {
    Put { kind: String, key: Vec<u8>, value: Vec<u8> },
    Flush(Sender<Result<(), String>>),
}

/// The handle to the writer thread. Dropping it commits what is queued and stops the thread.
pub struct StoreWriter {
    path: PathBuf,
    sender: Option<Sender<Command>>,
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    pub(crate) fn start(path: PathBuf, conn: Connection) -> Result<StoreWriter, StoreError> {
        let (sender, receiver) = mpsc::channel();
        let thread_path = path.clone();
        let thread = std::thread::Builder::new()
            .name("retort-store-writer".into())
            .spawn(move || write_loop(thread_path, conn, receiver))
            .map_err(|_| StoreError::WriterGone { path: path.clone() })?;
        Ok(StoreWriter { path, sender: Some(sender), thread: Some(thread) })
    }

    pub(crate) fn put(&self, kind: &str, key: Vec<u8>, value: Vec<u8>) -> Result<(), StoreError> {
        self.send(Command::Put { kind: kind.to_string(), key, value })
    }

    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let (done, wait) = mpsc::channel();
        self.send(Command::Flush(done))?;
        match wait.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(StoreError::WriterGone { path: self.path.clone() }),
        }
    }

    fn send(&self, command: Command) -> Result<(), StoreError> {
        self.sender
            .as_ref()
            .and_then(|sender| sender.send(command).ok())
            .ok_or_else(|| StoreError::WriterGone { path: self.path.clone() })
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_loop(path: PathBuf, mut conn: Connection, receiver: Receiver<Command>) {
    let mut batch: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    let mut waiting: Vec<Sender<Result<(), String>>> = Vec::new();
    let mut first_queued: Option<Instant> = None;
    loop {
        let timeout = match first_queued {
            Some(since) => COMMIT_WINDOW.saturating_sub(since.elapsed()),
            None => std::time::Duration::from_secs(3600),
        };
        let mut closed = false;
        match receiver.recv_timeout(timeout) {
            Ok(Command::Put { kind, key, value }) => {
                first_queued.get_or_insert_with(Instant::now);
                batch.push((kind, key, value));
            }
            Ok(Command::Flush(done)) => waiting.push(done),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => closed = true,
        }
        let due = first_queued.is_some_and(|since| since.elapsed() >= COMMIT_WINDOW);
        if due || batch.len() >= MAX_BATCH || !waiting.is_empty() || closed {
            let result = commit(&path, &mut conn, &mut batch).map_err(|error| error.to_string());
            if let Err(message) = &result {
                eprintln!("retort: {message}");
            }
            first_queued = None;
            for done in waiting.drain(..) {
                let _ = done.send(result.clone());
            }
        }
        if closed {
            return;
        }
    }
}

fn commit(path: &PathBuf, conn: &mut Connection, batch: &mut Vec<(String, Vec<u8>, Vec<u8>)>) -> Result<(), StoreError> {
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
