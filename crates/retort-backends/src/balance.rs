//! Several endpoints serving the same model: least-in-flight balancing with failover.
//!
//! Each request goes to the endpoint with the fewest requests in flight among those not
//! marked down (ties broken round-robin). An endpoint that refuses connections is marked
//! down for a cooldown that doubles with each consecutive failure (up to 30 s); if every
//! endpoint is down, the one that comes back soonest is tried anyway.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// One endpoint's address and counters.
#[derive(Debug)]
pub struct Endpoint {
    /// The base URL as configured, without a trailing slash.
    pub base_url: String,
    /// `{base_url}/chat/completions`, computed once.
    pub chat_url: String,
    /// `chat_url` with any credentials in it redacted: the form messages show.
    pub shown_url: String,
    in_flight: AtomicUsize,
    /// Milliseconds since the balancer's epoch until which the endpoint is down (0: up).
    down_until_ms: AtomicU64,
    consecutive_failures: AtomicU32,
}

impl Endpoint {
    /// Requests in flight at this endpoint.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The set of endpoints one backend spreads its requests over.
#[derive(Debug)]
pub struct Balancer {
    endpoints: Vec<Endpoint>,
    next: AtomicUsize,
    epoch: Instant,
    base_cooldown: Duration,
}

/// A request's hold on an endpoint; the in-flight count drops when this is dropped.
#[derive(Debug)]
pub struct EndpointGuard<'a> {
    endpoint: &'a Endpoint,
    index: usize,
}

impl EndpointGuard<'_> {
    /// The endpoint held.
    pub fn endpoint(&self) -> &Endpoint {
        self.endpoint
    }

    /// The endpoint's position in the balancer.
    pub fn index(&self) -> usize {
        self.index
    }
}

impl Drop for EndpointGuard<'_> {
    fn drop(&mut self) {
        self.endpoint.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Balancer {
    /// A balancer over the given base URLs (already validated, at least one).
    pub fn new(base_urls: &[String], base_cooldown: Duration) -> Balancer {
        let endpoints = base_urls
            .iter()
            .map(|url| {
                let base_url = url.trim_end_matches('/').to_owned();
                // A query in the base URL (Azure's `?api-version=...&api-key=...`) stays after the path.
                let chat_url = match base_url.split_once('?') {
                    Some((path, query)) => format!("{}/chat/completions?{query}", path.trim_end_matches('/')),
                    None => format!("{base_url}/chat/completions"),
                };
                Endpoint {
                    shown_url: retort_core::redact_url(&chat_url),
                    chat_url,
                    base_url,
                    in_flight: AtomicUsize::new(0),
                    down_until_ms: AtomicU64::new(0),
                    consecutive_failures: AtomicU32::new(0),
                }
            })
            .collect();
        Balancer { endpoints, next: AtomicUsize::new(0), epoch: Instant::now(), base_cooldown }
    }

    /// The endpoints, in configured order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    fn now_ms(&self) -> u64 {
        // +1 so that 0 always means "up".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Picks an endpoint and counts the request in flight there.
    pub fn pick(&self) -> EndpointGuard<'_> {
        let count = self.endpoints.len();
        let index = if count == 1 {
            0
        } else {
            let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
            let now = self.now_ms();
            let mut best: Option<(usize, usize)> = None;
            let mut soonest: (usize, u64) = (start, u64::MAX);
            for offset in 0..count {
                let index = (start + offset) % count;
                let endpoint = &self.endpoints[index];
                let down_until = endpoint.down_until_ms.load(Ordering::Relaxed);
                if down_until > now {
                    if down_until < soonest.1 {
                        soonest = (index, down_until);
                    }
                    continue;
                }
                let load = endpoint.in_flight();
                if best.is_none_or(|(_, best_load)| load < best_load) {
                    best = Some((index, load));
                }
            }
            best.map_or(soonest.0, |(index, _)| index)
        };
        let endpoint = &self.endpoints[index];
        endpoint.in_flight.fetch_add(1, Ordering::Relaxed);
        EndpointGuard { endpoint, index }
    }

    /// Marks an endpoint down after a connection failure; returns whether another endpoint
    /// is up now (so a retry can go there at once).
    pub fn mark_down(&self, index: usize) -> bool {
        let endpoint = &self.endpoints[index];
        let failures = endpoint.consecutive_failures.fetch_add(1, Ordering::Relaxed).min(6);
        let cooldown = self.base_cooldown.saturating_mul(1 << failures).min(Duration::from_secs(30));
        let now = self.now_ms();
        endpoint.down_until_ms.store(now + cooldown.as_millis() as u64, Ordering::Relaxed);
        self.endpoints.iter().enumerate().any(|(other, endpoint)| other != index && endpoint.down_until_ms.load(Ordering::Relaxed) <= now)
    }

    /// Marks an endpoint up after it answered.
    pub fn mark_up(&self, index: usize) {
        let endpoint = &self.endpoints[index];
        if endpoint.consecutive_failures.load(Ordering::Relaxed) != 0 {
            endpoint.consecutive_failures.store(0, Ordering::Relaxed);
            endpoint.down_until_ms.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("http://127.0.0.1:{}/v1/", 9000 + index)).collect()
    }

    #[test]
    fn urls_are_normalised() {
        let balancer = Balancer::new(&urls(1), Duration::from_secs(1));
        assert_eq!(balancer.endpoints()[0].chat_url, "http://127.0.0.1:9000/v1/chat/completions");
    }

    #[test]
    fn picks_the_least_loaded_endpoint() {
        let balancer = Balancer::new(&urls(3), Duration::from_secs(1));
        let held: Vec<_> = (0..6).map(|_| balancer.pick()).collect();
        let loads: Vec<usize> = balancer.endpoints().iter().map(Endpoint::in_flight).collect();
        assert_eq!(loads, [2, 2, 2]);
        drop(held);
        let loads: Vec<usize> = balancer.endpoints().iter().map(Endpoint::in_flight).collect();
        assert_eq!(loads, [0, 0, 0]);
    }

    #[tokio::test(start_paused = true)]
    async fn down_endpoints_are_skipped_until_their_cooldown_ends() {
        let balancer = Balancer::new(&urls(2), Duration::from_secs(1));
        assert!(balancer.mark_down(0), "endpoint 1 is still up");
        for _ in 0..10 {
            assert_eq!(balancer.pick().index(), 1);
        }
        tokio::time::advance(Duration::from_millis(10)).await;
        assert!(!balancer.mark_down(1), "both are down now");
        // Both down: the one that comes back first (0) is tried.
        assert_eq!(balancer.pick().index(), 0);
        tokio::time::advance(Duration::from_millis(1100)).await;
        let picked: Vec<usize> = (0..4).map(|_| balancer.pick().index()).collect();
        assert!(picked.contains(&0), "{picked:?}");
        balancer.mark_up(1);
        assert_eq!(balancer.endpoints()[1].down_until_ms.load(Ordering::Relaxed), 0);
    }
}
