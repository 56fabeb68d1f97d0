//! Adaptive concurrency (AIMD) and requests/tokens-per-minute token buckets.
//!
//! No lock is ever held across an await: the concurrency limit is a semaphore whose
//! permits are added or forgotten under a short synchronous lock, and the buckets reserve
//! their tokens under a lock, then sleep off any deficit after releasing it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::clock::{Clock, TokioClock};

/// An additive-increase, multiplicative-decrease limit on requests in flight.
///
/// It starts at `max`, halves on every rate-limit answer (at most once per `cooldown`),
/// and grows back by one per success, never above `max` nor below 1.
#[derive(Debug)]
pub struct AimdLimiter {
    semaphore: Semaphore,
    state: Mutex<AimdState>,
    in_flight: AtomicUsize,
    /// A lock-free copy of the limit, so successes at the maximum take no lock.
    limit_now: AtomicUsize,
    max: usize,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct AimdState {
    /// The allowed in-flight count.
    limit: usize,
    /// Permits still to be withheld as they come back, after a decrease.
    debt: usize,
    /// When the limit last decreased.
    last_decrease: Option<Instant>,
}

/// A slot in an [`AimdLimiter`]; the slot is given back when this is dropped.
#[derive(Debug)]
pub struct AimdPermit {
    limiter: Arc<AimdLimiter>,
}

impl Drop for AimdPermit {
    fn drop(&mut self) {
        self.limiter.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.limiter.give_back_one();
    }
}

impl AimdLimiter {
    /// A limiter allowing `max` (at least 1) requests in flight; decreases at most once per
    /// `cooldown` so one burst of 429s halves the limit once rather than to 1.
    pub fn new(max: usize, cooldown: Duration) -> AimdLimiter {
        AimdLimiter::with_clock(max, cooldown, Arc::new(TokioClock))
    }

    /// As [`AimdLimiter::new`], on the given clock.
    pub fn with_clock(max: usize, cooldown: Duration, clock: Arc<dyn Clock>) -> AimdLimiter {
        let max = max.max(1);
        AimdLimiter {
            clock,
            semaphore: Semaphore::new(max),
            state: Mutex::new(AimdState { limit: max, debt: 0, last_decrease: None }),
            in_flight: AtomicUsize::new(0),
            limit_now: AtomicUsize::new(max),
            max,
            cooldown,
        }
    }

    fn state(&self) -> MutexGuard<'_, AimdState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for a slot.
    pub async fn acquire(self: &Arc<Self>) -> AimdPermit {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = self.semaphore.acquire().await.expect("the limiter's semaphore is never closed");
        permit.forget();
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        AimdPermit { limiter: Arc::clone(self) }
    }

    fn give_back_one(&self) {
        let mut state = self.state();
        if state.debt > 0 {
            state.debt -= 1;
        } else {
            self.semaphore.add_permits(1);
        }
    }

    /// Records a success: the limit grows by one, up to the maximum.
    pub fn on_success(&self) {
        if self.limit_now.load(Ordering::Relaxed) >= self.max {
            return;
        }
        let mut state = self.state();
        if state.limit < self.max {
            state.limit += 1;
            self.limit_now.store(state.limit, Ordering::Relaxed);
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }

    /// Records a rate-limit answer: the limit halves (not below 1), unless it already
    /// decreased within the cooldown.
    pub fn on_rate_limited(&self) {
        let mut state = self.state();
        let now = self.clock.now();
        if let Some(last) = state.last_decrease {
            if now.duration_since(last) < self.cooldown {
                return;
            }
        }
        let new_limit = (state.limit / 2).max(1);
        let cut = state.limit - new_limit;
        if cut == 0 {
            return;
        }
        state.limit = new_limit;
        self.limit_now.store(new_limit, Ordering::Relaxed);
        state.last_decrease = Some(now);
        let forgotten = self.semaphore.forget_permits(cut);
        state.debt += cut - forgotten;
    }

    /// The allowed in-flight count now.
    pub fn limit(&self) -> usize {
        self.state().limit
    }

    /// The most the limit can be.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests holding a slot now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// A token bucket refilled continuously at `per_minute / 60` tokens a second.
///
/// Takers may drive the balance negative (a reservation) and then sleep until their share
/// has refilled, so waiting takers are served in arrival order without holding a lock.
#[derive(Debug)]
pub struct TokenBucket {
    state: Mutex<BucketState>,
    /// Tokens added per second.
    rate: f64,
    /// The most tokens the bucket holds (the burst size).
    capacity: f64,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A bucket allowing `per_minute` tokens a minute, with bursts of up to `burst` tokens.
    /// It starts full.
    pub fn new(per_minute: u32, burst: f64) -> TokenBucket {
        TokenBucket::with_clock(per_minute, burst, Arc::new(TokioClock))
    }

    /// As [`TokenBucket::new`], on the given clock.
    pub fn with_clock(per_minute: u32, burst: f64, clock: Arc<dyn Clock>) -> TokenBucket {
        let rate = f64::from(per_minute.max(1)) / 60.0;
        let capacity = burst.max(1.0);
        TokenBucket { state: Mutex::new(BucketState { tokens: capacity, updated: clock.now() }), rate, capacity, clock }
    }

    /// A requests-per-minute bucket: bursts of one second's worth (at least 1).
    pub fn per_minute(per_minute: u32) -> TokenBucket {
        TokenBucket::new(per_minute, f64::from(per_minute) / 60.0)
    }

    /// Reserves `cost` tokens and returns how long the caller must wait before using them.
    pub fn reserve(&self, cost: f64) -> Duration {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.clock.now();
        let elapsed = now.duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.capacity);
        state.updated = now;
        state.tokens -= cost;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.rate)
        }
    }

    /// Reserves `cost` tokens and sleeps until they are available.
    pub async fn take(&self, cost: f64) {
        let wait = self.reserve(cost);
        if !wait.is_zero() {
            self.clock.sleep(wait).await;
        }
    }

    /// Gives back (positive) or takes more (negative) tokens after the true cost is known.
    pub fn adjust(&self, refund: f64) {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.tokens = (state.tokens + refund).min(self.capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn aimd_halves_on_rate_limits_and_grows_back_by_one() {
        let limiter = Arc::new(AimdLimiter::new(8, Duration::ZERO));
        let held: Vec<AimdPermit> = futures_join(&limiter, 8).await;
        assert_eq!(limiter.in_flight(), 8);
        limiter.on_rate_limited();
        assert_eq!(limiter.limit(), 4);
        limiter.on_rate_limited();
        limiter.on_rate_limited();
        limiter.on_rate_limited();
        assert_eq!(limiter.limit(), 1, "never below 1");
        drop(held);
        assert_eq!(limiter.in_flight(), 0);
        // Only one slot is free now.
        let first = limiter.acquire().await;
        assert!(tokio::time::timeout(Duration::from_millis(20), limiter.acquire()).await.is_err());
        drop(first);
        for expected in 2..=8 {
            limiter.on_success();
            assert_eq!(limiter.limit(), expected);
        }
        limiter.on_success();
        assert_eq!(limiter.limit(), 8, "never above the maximum");
        let all = futures_join(&limiter, 8).await;
        assert_eq!(all.len(), 8);
        assert!(tokio::time::timeout(Duration::from_millis(20), limiter.acquire()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn aimd_decreases_once_per_cooldown() {
        let limiter = AimdLimiter::new(64, Duration::from_secs(1));
        limiter.on_rate_limited();
        limiter.on_rate_limited();
        assert_eq!(limiter.limit(), 32);
        tokio::time::advance(Duration::from_millis(1001)).await;
        limiter.on_rate_limited();
        assert_eq!(limiter.limit(), 16);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_paces_takers_at_the_rate() {
        let bucket = Arc::new(TokenBucket::per_minute(600)); // 10 a second, burst 10
        let start = Instant::now();
        for _ in 0..30 {
            bucket.take(1.0).await;
        }
        let elapsed = start.elapsed();
        // 10 at once, then 20 more at 10 a second.
        assert!(elapsed >= Duration::from_millis(1990) && elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_adjust_refunds_unused_tokens() {
        let bucket = TokenBucket::new(60_000, 1000.0); // 1000 a second
        assert_eq!(bucket.reserve(1000.0), Duration::ZERO);
        assert_eq!(bucket.reserve(500.0), Duration::from_millis(500));
        bucket.adjust(500.0);
        assert_eq!(bucket.reserve(0.0), Duration::ZERO);
    }

    async fn futures_join(limiter: &Arc<AimdLimiter>, count: usize) -> Vec<AimdPermit> {
        let mut permits = Vec::with_capacity(count);
        for _ in 0..count {
            permits.push(limiter.acquire().await);
        }
        permits
    }
}
