//! Time as the OpenAI backend sees it: now, and sleeping (backoff, `Retry-After`, pacing).
//!
//! Injected, so the retry and rate-limit tests run on a [`ManualClock`] that advances the
//! moment something sleeps and records every sleep: they check the delays retort chose
//! (`Retry-After` honoured, a burst paced to its rate) without waiting for them or bounding
//! wall-clock time.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// A source of time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The time now.
    fn now(&self) -> Instant;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Tokio's clock: real time (or tokio's paused time in tests that pause it).
#[derive(Debug, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock for tests: a sleep returns at once, moving the clock forward by its duration, and
/// is recorded.
#[derive(Debug)]
pub struct ManualClock {
    start: Instant,
    state: Mutex<ManualState>,
}

#[derive(Debug, Default)]
struct ManualState {
    elapsed: Duration,
    sleeps: Vec<Duration>,
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock { start: Instant::now(), state: Mutex::new(ManualState::default()) }
    }
}

impl ManualClock {
    /// Every sleep so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).sleeps.clone()
    }

    /// The time the clock has moved forward.
    pub fn elapsed(&self) -> Duration {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).elapsed
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + self.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.elapsed += duration;
        state.sleeps.push(duration);
        Box::pin(std::future::ready(()))
    }
}
