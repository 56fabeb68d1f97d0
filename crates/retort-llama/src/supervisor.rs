//! Starts the worker process, routes frames to and from it, and restarts it when it dies.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use retort_core::{BackendError, BackendErrorKind};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::oneshot;

use crate::config::WorkerCommand;
use crate::protocol::{decode, encode, FromWorker, Load, ToWorker};

/// How many times in a row one request may see the worker die before it fails.
pub(crate) const MAX_DEATHS: u32 = 3;

/// What the worker said when it became ready.
#[derive(Debug, Clone)]
pub(crate) struct Ready {
    pub(crate) chat_template: Option<String>,
    pub(crate) bos_token: String,
    pub(crate) eos_token: String,
    pub(crate) context_per_sequence: u32,
}

type Pending = HashMap<u64, oneshot::Sender<FromWorker>>;

/// One running worker process.
struct Worker {
    stdin: tokio::sync::Mutex<ChildStdin>,
    /// Requests waiting for an answer; `None` once the worker is dead.
    pending: Arc<Mutex<Option<Pending>>>,
    /// Why it died, once it did.
    death: Arc<Mutex<Option<String>>>,
}

impl Worker {
    fn is_alive(&self) -> bool {
        self.pending.lock().expect("pending lock").is_some()
    }
}

/// Owns the worker process and restarts it as needed.
pub(crate) struct Supervisor {
    command: WorkerCommand,
    load: Load,
    current: tokio::sync::Mutex<Option<Arc<Worker>>>,
    next_id: AtomicU64,
    starts: AtomicU64,
    /// Held by a request while it retries after a death, so that retries run one at a time
    /// and a request that kills the worker takes no retried request down with it.
    retry_lock: tokio::sync::Mutex<()>,
}

impl Supervisor {
    pub(crate) fn new(command: WorkerCommand, load: Load) -> Supervisor {
        Supervisor {
            command,
            load,
            current: tokio::sync::Mutex::new(None),
            next_id: AtomicU64::new(1),
            starts: AtomicU64::new(0),
            retry_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// How many worker processes have been started so far.
    pub(crate) fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// The live worker, started (and its readiness returned) when there is none.
    async fn worker(&self) -> Result<(Arc<Worker>, Option<Ready>), BackendError> {
        let mut current = self.current.lock().await;
        if let Some(worker) = current.as_ref().filter(|worker| worker.is_alive()) {
            return Ok((worker.clone(), None));
        }
        *current = None;
        let (worker, ready) = self.spawn().await?;
        let worker = Arc::new(worker);
        *current = Some(worker.clone());
        Ok((worker, Some(ready)))
    }

    async fn spawn(&self) -> Result<(Worker, Ready), BackendError> {
        self.starts.fetch_add(1, Ordering::Relaxed);
        let mut command = Command::new(&self.command.program);
        command
            .args(&self.command.args)
            .envs(self.command.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|error| {
            BackendError::new(BackendErrorKind::Server, format!("starting the model worker {}: {error}", self.command.program.display()))
        })?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let died = |what: String| BackendError::new(BackendErrorKind::WorkerDied, what);
        stdin
            .write_all(encode(&ToWorker::Load(self.load.clone())).as_bytes())
            .await
            .map_err(|error| died(format!("sending the load frame to the model worker: {error}")))?;
        stdin.flush().await.map_err(|error| died(format!("sending the load frame to the model worker: {error}")))?;
        let ready = loop {
            let line = lines.next_line().await.map_err(|error| died(format!("reading from the model worker: {error}")))?;
            let Some(line) = line else {
                let status = child.wait().await.map(|status| status.to_string()).unwrap_or_default();
                return Err(died(format!("the model worker exited while loading {} ({status})", self.load.model_path)));
            };
            match decode::<FromWorker>(&line) {
                None => tracing::debug!(target: "retort_llama::worker", "{line}"),
                Some(Err(error)) => {
                    return Err(BackendError::new(BackendErrorKind::Protocol, format!("reading the model worker's ready frame: {error}")))
                }
                Some(Ok(FromWorker::Ready { chat_template, bos_token, eos_token, context_per_sequence })) => {
                    break Ready { chat_template, bos_token, eos_token, context_per_sequence };
                }
                Some(Ok(FromWorker::LoadFailed { message })) => {
                    return Err(BackendError::new(BackendErrorKind::BadRequest, message));
                }
                Some(Ok(other)) => {
                    return Err(BackendError::new(
                        BackendErrorKind::Protocol,
                        format!("expected the model worker's ready frame, found {other:?}"),
                    ))
                }
            }
        };
        let pending = Arc::new(Mutex::new(Some(Pending::new())));
        let death = Arc::new(Mutex::new(None));
        tokio::spawn(read_answers(lines, child, pending.clone(), death.clone()));
        Ok((Worker { stdin: tokio::sync::Mutex::new(stdin), pending, death }, ready))
    }

    /// Sends one job and waits for its answer, restarting the worker and retrying when it
    /// dies; after [`MAX_DEATHS`] deaths in a row the request fails with `WorkerDied`.
    ///
    /// `on_start` sees the readiness of each worker this call starts.
    pub(crate) async fn call(
        &self,
        make: impl Fn(u64) -> ToWorker,
        on_start: impl Fn(&Ready) -> Result<(), BackendError>,
    ) -> Result<FromWorker, BackendError> {
        let mut deaths = 0;
        loop {
            let _retrying = if deaths > 0 { Some(self.retry_lock.lock().await) } else { None };
            let (worker, ready) = match self.worker().await {
                Ok(started) => started,
                Err(error) if error.kind == BackendErrorKind::WorkerDied => {
                    deaths += 1;
                    if deaths >= MAX_DEATHS {
                        return Err(error);
                    }
                    continue;
                }
                Err(error) => return Err(error),
            };
            if let Some(ready) = ready {
                on_start(&ready)?;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (sender, receiver) = oneshot::channel();
            {
                let mut pending = worker.pending.lock().expect("pending lock");
                match pending.as_mut() {
                    Some(pending) => {
                        pending.insert(id, sender);
                    }
                    None => continue,
                }
            }
            let line = encode(&make(id));
            let sent = {
                let mut stdin = worker.stdin.lock().await;
                match stdin.write_all(line.as_bytes()).await {
                    Ok(()) => stdin.flush().await,
                    Err(error) => Err(error),
                }
            };
            if sent.is_err() {
                // The reader sees the death too and drops our sender; fall through to the wait.
                tracing::debug!("the model worker's stdin is closed");
            }
            match receiver.await {
                Ok(answer) => return Ok(answer),
                Err(_) => {
                    deaths += 1;
                    let cause = worker.death.lock().expect("death lock").clone().unwrap_or_default();
                    tracing::warn!("the model worker died ({cause}); death {deaths} of this request");
                    if deaths >= MAX_DEATHS {
                        return Err(BackendError::new(
                            BackendErrorKind::WorkerDied,
                            format!("the model worker died {deaths} times in a row while answering this request ({cause})"),
                        ));
                    }
                }
            }
        }
    }
}

/// Routes answers to their requests until the worker's stdout closes, then fails the rest.
async fn read_answers(
    mut lines: tokio::io::Lines<BufReader<ChildStdout>>,
    mut child: Child,
    pending: Arc<Mutex<Option<Pending>>>,
    death: Arc<Mutex<Option<String>>>,
) {
    let cause = loop {
        match lines.next_line().await {
            Ok(Some(line)) => match decode::<FromWorker>(&line) {
                None => tracing::debug!(target: "retort_llama::worker", "{line}"),
                Some(Err(error)) => {
                    tracing::warn!("ignoring a malformed frame from the model worker: {error}")
                }
                Some(Ok(frame)) => {
                    let Some(id) = frame.id() else { continue };
                    let sender = pending.lock().expect("pending lock").as_mut().and_then(|map| map.remove(&id));
                    if let Some(sender) = sender {
                        let _ = sender.send(frame);
                    }
                }
            },
            Ok(None) => break String::from("its output closed"),
            Err(error) => break format!("reading its output: {error}"),
        }
    };
    let _ = child.start_kill();
    let status = child.wait().await.map(|status| status.to_string()).unwrap_or_default();
    *death.lock().expect("death lock") = Some(format!("{cause}; {status}"));
    // Dropping the senders fails every request in flight on this worker.
    pending.lock().expect("pending lock").take();
}
