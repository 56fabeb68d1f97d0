//! The retry policy: exponential backoff with full jitter, with `Retry-After` as a floor.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// How long to wait between attempts of one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts in all).
    pub max_retries: u32,
    /// The backoff ceiling of the first retry; it doubles with each retry.
    pub base: Duration,
    /// The largest backoff ceiling.
    pub cap: Duration,
    /// The longest `Retry-After` honoured; longer requests are cut to this.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            max_retries: 6,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the backoff before retry number `retry` (0 for the first retry):
    /// `min(cap, base * 2^retry)`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry number `retry`: uniform in `[0, ceiling]` (full jitter), but
    /// never less than the server's `Retry-After` (itself cut to `max_retry_after`).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(retry);
        let jittered =
            if ceiling.is_zero() { Duration::ZERO } else { Duration::from_secs_f64(rand::rng().random_range(0.0..=ceiling.as_secs_f64())) };
        match retry_after {
            Some(floor) => jittered.max(floor.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

/// Parses a `Retry-After` header value: delay seconds (integer or decimal) or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Some(Duration::from_secs_f64(seconds.min(1e6)));
        }
        return None;
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy { base: Duration::from_millis(500), cap: Duration::from_secs(30), ..RetryPolicy::default() };
        let ceilings: Vec<u128> = (0..9).map(|retry| policy.ceiling(retry).as_millis()).collect();
        assert_eq!(ceilings, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn delay_is_jittered_within_the_ceiling_and_floored_by_retry_after() {
        let policy = RetryPolicy::default();
        for retry in 0..8 {
            for _ in 0..50 {
                assert!(policy.delay(retry, None) <= policy.ceiling(retry));
                let floor = Duration::from_secs(2);
                assert!(policy.delay(retry, Some(floor)) >= floor);
            }
        }
        let huge = Duration::from_secs(100_000);
        assert!(policy.delay(0, Some(huge)) <= policy.max_retry_after.max(policy.ceiling(0)));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let cases = [
            ("3", Some(Duration::from_secs(3))),
            (" 0.25 ", Some(Duration::from_millis(250))),
            ("-1", None),
            ("soon", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", Some(Duration::ZERO)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_retry_after(text), expected, "{text}");
        }
        let future = SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(future)).expect("a date");
        assert!(parsed > Duration::from_secs(110) && parsed <= Duration::from_secs(120));
    }
}
