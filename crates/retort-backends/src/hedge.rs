//! Hedged requests: an attempt far slower than its peers is sent again on another connection,
//! and the first answer wins.
//!
//! A server that stalls one request in a hundred (a wedged worker, a dropped packet) would
//! otherwise hold that record for the whole request timeout. The delay before a hedge is
//! derived from the latencies observed: a multiple of a high quantile of recent successful
//! attempts, so a uniformly slow server is never hedged, and only one hedge runs per attempt.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// Recent successful attempts kept for the quantile.
const WINDOW: usize = 256;
/// Attempts observed before any hedge is sent.
const WARM_UP: usize = 8;

/// How an OpenAI-compatible backend hedges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgePolicy {
    /// Off: never hedge.
    pub enabled: bool,
    /// A fixed delay instead of the one derived from latencies.
    pub fixed: Option<Duration>,
    /// The derived delay is this many times the 95th percentile of recent latencies...
    pub factor: f64,
    /// ...but at least this long.
    pub floor: Duration,
}

impl Default for HedgePolicy {
    fn default() -> HedgePolicy {
        HedgePolicy { enabled: true, fixed: None, factor: 4.0, floor: Duration::from_millis(500) }
    }
}

/// Latencies of recent successful attempts, and their 95th percentile, recomputed every
/// [`REFRESH`] observations (sorting the window on every request would cost more than the
/// request itself against a fast server).
#[derive(Debug, Default)]
pub struct LatencyWindow {
    recent: Mutex<Recent>,
}

#[derive(Debug, Default)]
struct Recent {
    latencies: VecDeque<Duration>,
    since_refresh: usize,
    p95: Option<Duration>,
}

/// Observations between two recomputations of the quantile.
const REFRESH: usize = 16;

impl LatencyWindow {
    /// Notes one successful attempt's latency.
    pub fn observe(&self, latency: Duration) {
        let mut recent = self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if recent.latencies.len() == WINDOW {
            recent.latencies.pop_front();
        }
        recent.latencies.push_back(latency);
        recent.since_refresh += 1;
        let warm = recent.latencies.len() >= WARM_UP;
        if warm && (recent.p95.is_none() || recent.since_refresh >= REFRESH) {
            recent.since_refresh = 0;
            recent.p95 = Some(quantile_of(&recent.latencies, 0.95));
        }
    }

    /// The 95th percentile of the recent latencies, once enough were observed.
    pub fn p95(&self) -> Option<Duration> {
        self.recent.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).p95
    }
}

fn quantile_of(latencies: &VecDeque<Duration>, quantile: f64) -> Duration {
    let mut sorted: Vec<Duration> = latencies.iter().copied().collect();
    sorted.sort_unstable();
    let index = ((sorted.len() - 1) as f64 * quantile.clamp(0.0, 1.0)).round() as usize;
    sorted[index]
}

impl HedgePolicy {
    /// How long an attempt may run before a second one is sent, or `None` for no hedge now.
    /// A hedge is never later than `timeout` allows for the second attempt to finish.
    pub fn delay(&self, latencies: &LatencyWindow, timeout: Duration) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        let delay = match self.fixed {
            Some(fixed) => fixed,
            None => latencies.p95()?.mul_f64(self.factor).max(self.floor),
        };
        (delay < timeout / 2).then_some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_follows_the_observed_latencies() {
        let policy = HedgePolicy::default();
        let latencies = LatencyWindow::default();
        let timeout = Duration::from_secs(120);
        assert_eq!(policy.delay(&latencies, timeout), None, "no hedge before the warm-up");
        for millis in 1..=88 {
            latencies.observe(Duration::from_millis(millis * 10));
        }
        // Recomputed at the 8th observation and every 16th after: at the 88th, p95 of
        // 10..880 ms is 840 ms; four times that.
        assert_eq!(policy.delay(&latencies, timeout), Some(Duration::from_millis(3360)));
        // Fast servers are hedged no sooner than the floor.
        let fast = LatencyWindow::default();
        (0..50).for_each(|_| fast.observe(Duration::from_millis(2)));
        assert_eq!(policy.delay(&fast, timeout), Some(Duration::from_millis(500)));
        // A delay the timeout leaves no room after is no hedge.
        assert_eq!(policy.delay(&latencies, Duration::from_secs(5)), None);
        assert_eq!(HedgePolicy { enabled: false, ..policy }.delay(&latencies, timeout), None);
        let fixed = HedgePolicy { fixed: Some(Duration::from_secs(2)), ..policy };
        assert_eq!(fixed.delay(&LatencyWindow::default(), timeout), Some(Duration::from_secs(2)));
    }
}
