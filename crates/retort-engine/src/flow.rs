//! What travels between two steps: records with their place in the stream order, and
//! watermarks, so records may overtake a slow one and still leave the pipeline in order.
//!
//! A record step works on many records at once and sends each one on as soon as it is done;
//! a slow answer (a request that hangs until its timeout) holds back no other record. Each
//! record carries an [`OrderKey`]: its source position, with one more part per fan-out. A
//! record step also sends watermarks ("every key below this one has been sent"), and the
//! [`Inbox`] of a step that needs the stream in order (a stream step: dedup, pair, vote,
//! export, ...) holds records back until the watermark passes them. Records sent in order
//! need no watermark: each is its own.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use retort_core::Record;
use smallvec::SmallVec;
use tokio::sync::mpsc;

/// A record's place in the stream order: compared part by part, so the children of a fan-out
/// (`[4, 0]`, `[4, 1]`) sit after their parent's place (`[4]`) and before the next (`[5]`).
pub(crate) type OrderKey = SmallVec<[u32; 4]>;

/// The most records an inbox holds back waiting for a slow one; beyond it, the oldest is
/// released out of order (and the run notes it) rather than memory growing without bound.
pub(crate) const REORDER_LIMIT: usize = 65_536;

/// One message between steps.
#[derive(Debug)]
pub(crate) enum Flow {
    /// A record. `ordered`: every record with a smaller key was sent before it.
    Record { key: OrderKey, record: Record, ordered: bool },
    /// Every record with a key below this one has been sent.
    Watermark(OrderKey),
}

/// A channel between two steps.
pub(crate) fn channel(capacity: usize) -> (Outbox, Inbox) {
    let (sender, receiver) = mpsc::channel(capacity);
    (Outbox { sender, next: AtomicU32::new(0) }, Inbox::new(receiver))
}

/// The sending half. Stream steps send records in order ([`Outbox::send`]); record steps send
/// keyed records and watermarks ([`Outbox::send_flow`]).
#[derive(Debug)]
pub(crate) struct Outbox {
    sender: mpsc::Sender<Flow>,
    /// The key of the next record sent in order.
    next: AtomicU32,
}

/// The other side stopped reading: the run is ending.
#[derive(Debug)]
pub(crate) struct Closed;

impl Outbox {
    /// Sends a record after every record sent before it, under the next key of this outbox.
    pub(crate) async fn send(&self, record: Record) -> Result<(), Closed> {
        let position = self.next.fetch_add(1, Ordering::Relaxed);
        let key: OrderKey = SmallVec::from_slice(&[position]);
        self.send_flow(Flow::Record { key, record, ordered: true }).await
    }

    /// Sends a message as it is.
    pub(crate) async fn send_flow(&self, flow: Flow) -> Result<(), Closed> {
        self.sender.send(flow).await.map_err(|_| Closed)
    }
}

/// The receiving half: records in order ([`Inbox::recv`]), or messages as they come
/// ([`Inbox::recv_flow`]).
pub(crate) struct Inbox {
    receiver: mpsc::Receiver<Flow>,
    /// Records that arrived before one with a smaller key, by key.
    waiting: BTreeMap<OrderKey, Record>,
    /// Every key below this one has arrived.
    watermark: OrderKey,
    closed: bool,
    /// Told once when the inbox had to give up the order (see [`REORDER_LIMIT`]).
    on_disorder: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl Inbox {
    fn new(receiver: mpsc::Receiver<Flow>) -> Inbox {
        Inbox { receiver, waiting: BTreeMap::new(), watermark: OrderKey::new(), closed: false, on_disorder: None }
    }

    /// An inbox with nothing in it, already closed: the input of a source.
    pub(crate) fn empty() -> Inbox {
        let (_, receiver) = mpsc::channel(1);
        Inbox::new(receiver)
    }

    /// Calls `notify` once if this inbox ever releases a record out of order.
    pub(crate) fn on_disorder(mut self, notify: Arc<dyn Fn() + Send + Sync>) -> Inbox {
        self.on_disorder = Some(notify);
        self
    }

    /// The next message as it comes, without reordering (for record steps, which keep their
    /// own watermark). Cancel-safe.
    pub(crate) async fn recv_flow(&mut self) -> Option<Flow> {
        self.receiver.recv().await
    }

    /// The next record in stream order, or `None` at the end of the stream.
    pub(crate) async fn recv(&mut self) -> Option<Record> {
        loop {
            match self.ready() {
                Ready::Record(record) => return Some(record),
                Ready::End => return None,
                Ready::Wait => {}
            }
            match self.receiver.recv().await {
                None => self.closed = true,
                Some(flow) => {
                    if let Some(record) = self.take(flow) {
                        return Some(record);
                    }
                }
            }
        }
    }

    /// The next record in stream order if it is here already, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Record> {
        loop {
            match self.ready() {
                Ready::Record(record) => return Some(record),
                Ready::End => return None,
                Ready::Wait => {}
            }
            match self.receiver.try_recv() {
                Err(mpsc::error::TryRecvError::Empty) => return None,
                Err(mpsc::error::TryRecvError::Disconnected) => self.closed = true,
                Ok(flow) => {
                    if let Some(record) = self.take(flow) {
                        return Some(record);
                    }
                }
            }
        }
    }

    /// What waiting records allow now.
    fn ready(&mut self) -> Ready {
        if let Some(entry) = self.waiting.first_entry() {
            if self.closed || *entry.key() < self.watermark {
                return Ready::Record(entry.remove());
            }
            if self.waiting.len() > REORDER_LIMIT {
                if let Some(notify) = self.on_disorder.take() {
                    notify();
                }
                return self.waiting.pop_first().map_or(Ready::Wait, |(_, record)| Ready::Record(record));
            }
            Ready::Wait
        } else if self.closed {
            Ready::End
        } else {
            Ready::Wait
        }
    }

    /// Takes in one message; returns the record that may go on at once, if any.
    fn take(&mut self, flow: Flow) -> Option<Record> {
        match flow {
            Flow::Watermark(key) => {
                self.raise(key);
                None
            }
            Flow::Record { key, record, ordered } => {
                if ordered {
                    // Everything below it has arrived, so it comes right after what waits:
                    // the watermark moves just past it (no key lies between `K` and `K.0`).
                    let mut past = key.clone();
                    past.push(0);
                    self.raise(past);
                    if self.waiting.is_empty() {
                        return Some(record);
                    }
                }
                self.waiting.insert(key, record);
                None
            }
        }
    }

    /// Reads the stream to its end, discarding it.
    pub(crate) async fn drain(&mut self) {
        while self.receiver.recv().await.is_some() {}
    }

    fn raise(&mut self, key: OrderKey) {
        if key > self.watermark {
            self.watermark = key;
        }
    }
}

enum Ready {
    Record(Record),
    Wait,
    End,
}

/// The key of one outcome of the record with `key`: the same key for a single outcome, the
/// `index`-th child's for a fan-out.
pub(crate) fn outcome_key(key: &OrderKey, index: usize, count: usize) -> OrderKey {
    let mut child = key.clone();
    if count > 1 {
        child.push(index as u32);
    }
    child
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn key(parts: &[u32]) -> OrderKey {
        SmallVec::from_slice(parts)
    }

    fn record(id: &str) -> Record {
        Record::new(id, Map::new())
    }

    /// Sends `messages` into a channel and returns the ids an ordered reader sees.
    async fn read_in_order(messages: Vec<Flow>) -> Vec<String> {
        let (outbox, mut inbox) = channel(64);
        for message in messages {
            outbox.send_flow(message).await.unwrap();
        }
        drop(outbox);
        let mut ids = Vec::new();
        while let Some(record) = inbox.recv().await {
            ids.push(record.id);
        }
        ids
    }

    #[tokio::test]
    async fn records_that_overtook_a_slow_one_come_out_behind_it() {
        use Flow::{Record as R, Watermark as W};
        let unordered = |parts: &[u32], id: &str| R { key: key(parts), record: record(id), ordered: false };
        let cases: Vec<(Vec<Flow>, &[&str])> = vec![
            // In order already: passed straight through.
            (
                vec![R { key: key(&[0]), record: record("0"), ordered: true }, R { key: key(&[1]), record: record("1"), ordered: true }],
                &["0", "1"],
            ),
            // 2 and 1 overtook 0; the watermark after 0 releases all three in order.
            (vec![unordered(&[2], "2"), unordered(&[1], "1"), unordered(&[0], "0"), W(key(&[3]))], &["0", "1", "2"]),
            // Children of a fan-out sit between their parent's place and the next one.
            (vec![unordered(&[1], "1"), unordered(&[0, 1], "0.1"), unordered(&[0, 0], "0.0"), W(key(&[2]))], &["0.0", "0.1", "1"]),
            // The end of the stream releases whatever still waits.
            (vec![unordered(&[5], "5"), unordered(&[3], "3")], &["3", "5"]),
        ];
        for (messages, expected) in cases {
            assert_eq!(read_in_order(messages).await, expected);
        }
    }

    #[tokio::test]
    async fn a_record_behind_the_watermark_is_not_held() {
        // A watermark of [1] releases [0] at once, before the stream ends.
        let (outbox, mut inbox) = channel(8);
        outbox.send_flow(Flow::Record { key: key(&[0]), record: record("0"), ordered: false }).await.unwrap();
        outbox.send_flow(Flow::Watermark(key(&[1]))).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_secs(5), inbox.recv()).await.unwrap();
        assert_eq!(first.unwrap().id, "0");
        drop(outbox);
    }
}
