//! Per-step counters, updated lock-free while a run goes and read by progress bars and reports.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

/// The live counters of one step.
#[derive(Debug, Default)]
pub struct StepStats {
    /// The step's path in the recipe.
    pub step: String,
    /// Its kind.
    pub kind: String,
    records_in: AtomicU64,
    out: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
    requests: AtomicU64,
    cached: AtomicU64,
    request_errors: AtomicU64,
    prompt_tokens: AtomicU64,
    prompt_tokens_cached: AtomicU64,
    completion_tokens: AtomicU64,
    in_flight: AtomicI64,
    /// Counts of drop and failure reasons, grouped by their first words.
    reasons: Mutex<BTreeMap<String, u64>>,
    /// What the step is doing now beyond records (a trainer's step and loss), for the bars.
    activity: Mutex<Option<String>>,
    /// Unix milliseconds of the first record in and of the last record settled (0: none yet).
    first_ms: AtomicU64,
    last_ms: AtomicU64,
    /// Requests sent, by latency: bucket `i` counts those under `2^i` ms (the last, the rest).
    latency: [AtomicU64; LATENCY_BUCKETS],
    /// The models this step asked (`backend:model`), in the order first asked.
    models: Mutex<Vec<String>>,
    /// The counters at the start of each round of an enclosing `repeat`.
    round_marks: Mutex<Vec<(u32, RoundCounts)>>,
    /// Requests in flight and records out, sampled while the run goes (see `RunStats::sample`).
    series: Mutex<Vec<Sample>>,
    /// The series keeps every `stride`-th sampling (doubled each time it is thinned).
    stride: AtomicU64,
    /// The cost of the requests sent, in billionths of a dollar, when the llm gives prices.
    cost_nano: AtomicU64,
    priced: std::sync::atomic::AtomicBool,
}

/// Latency buckets of a step: powers of two from 1 ms to about 9 minutes, then the rest.
pub const LATENCY_BUCKETS: usize = 20;

/// The most samples a step's series keeps: past it, every other one is dropped and the
/// sampling interval doubles, so a long run's memory stays flat.
const SERIES_CAP: usize = 512;

/// A step's record counts (cumulative, or for one round).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundCounts {
    /// The round (1-based) these counts are for.
    #[serde(default)]
    pub round: u32,
    /// Records that reached the step.
    pub records_in: u64,
    /// Records it passed on.
    pub out: u64,
    /// Records it dropped.
    pub dropped: u64,
    /// Records that failed in it.
    pub failed: u64,
}

/// One point of a step's series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub t: f64,
    /// Requests in flight then.
    pub in_flight: i64,
    /// Records passed on so far.
    pub out: u64,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A copy of a step's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepSnapshot {
    /// The step's path in the recipe.
    pub step: String,
    /// Its kind.
    pub kind: String,
    /// Records that reached it.
    pub records_in: u64,
    /// Records it passed on (after fan-out).
    pub out: u64,
    /// Records it removed on purpose.
    pub dropped: u64,
    /// Records that failed in it.
    pub failed: u64,
    /// Model requests sent.
    pub requests: u64,
    /// Model answers taken from the run store instead of sent.
    pub cached: u64,
    /// Requests that failed after their retries.
    pub request_errors: u64,
    /// Prompt tokens of every answer used (sent or cached).
    pub prompt_tokens: u64,
    /// Of the prompt tokens of answers sent, those the server reused from its prompt cache.
    #[serde(default)]
    pub prompt_tokens_cached: u64,
    /// Completion tokens of every answer used.
    pub completion_tokens: u64,
    /// Requests in flight now.
    pub in_flight: i64,
    /// The most common reasons for drops and failures, with counts.
    pub reasons: Vec<(String, u64)>,
    /// What the step is doing now beyond records (a trainer's step, loss and tokens/s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// When the first record reached the step (seconds since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<f64>,
    /// When the step last settled a record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<f64>,
    /// Requests sent, by latency (see `LATENCY_BUCKETS`); empty when none was sent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_ms: Vec<u64>,
    /// The models asked, as `backend:model`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Counts per round, for a step inside `repeat`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rounds: Vec<RoundCounts>,
    /// Requests in flight and records out over time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Sample>,
    /// What the requests sent cost, in dollars, when the llm gives prices per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl StepSnapshot {
    /// Seconds between the first record in and the last settled, when both happened.
    pub fn active_s(&self) -> Option<f64> {
        Some((self.finished_at? - self.started_at?).max(0.0))
    }
}

impl StepStats {
    /// Counters for a step.
    pub fn new(step: &str, kind: &str) -> StepStats {
        StepStats { step: step.to_string(), kind: kind.to_string(), ..StepStats::default() }
    }

    pub(crate) fn record_in(&self) {
        if self.records_in.fetch_add(1, Ordering::Relaxed) == 0 {
            let _ = self.first_ms.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    pub(crate) fn record_out(&self) {
        self.out.fetch_add(1, Ordering::Relaxed);
        self.settled();
    }

    pub(crate) fn record_dropped(&self, reason: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.reason(reason);
        self.settled();
    }

    pub(crate) fn record_failed(&self, reason: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.reason(reason);
        self.settled();
    }

    fn settled(&self) {
        self.last_ms.fetch_max(now_ms(), Ordering::Relaxed);
    }

    fn counts(&self, round: u32) -> RoundCounts {
        RoundCounts {
            round,
            records_in: self.records_in.load(Ordering::Relaxed),
            out: self.out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }

    /// Marks the start of round `round` of an enclosing `repeat` (rounds run one after
    /// another, so what the step counts until the next mark is this round's).
    pub(crate) fn begin_round(&self, round: u32) {
        let mut marks = self.round_marks.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if marks.last().is_none_or(|(last, _)| *last != round) {
            marks.push((round, self.counts(round)));
        }
    }

    /// Adds a point to the step's series at the run's `tick`-th sampling, unless the series
    /// has been thinned to every `stride`-th.
    fn sample(&self, t: f64, tick: u64) {
        let mut series = self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let stride = self.stride.load(Ordering::Relaxed).max(1);
        if !tick.is_multiple_of(stride) {
            return;
        }
        if series.len() >= SERIES_CAP {
            let halved: Vec<Sample> = series.iter().step_by(2).copied().collect();
            *series = halved;
            self.stride.store(stride * 2, Ordering::Relaxed);
        }
        series.push(Sample { t, in_flight: self.in_flight.load(Ordering::Relaxed), out: self.out.load(Ordering::Relaxed) });
    }

    /// Adds what a request sent cost, in dollars.
    pub(crate) fn cost(&self, dollars: f64) {
        self.priced.store(true, Ordering::Relaxed);
        self.cost_nano.fetch_add((dollars * 1e9).round() as u64, Ordering::Relaxed);
    }

    /// Counts a request's latency (a request sent, not one answered from the store).
    pub(crate) fn latency(&self, elapsed: std::time::Duration) {
        let ms = elapsed.as_millis() as u64;
        let bucket = if ms == 0 { 0 } else { (64 - ms.leading_zeros() as usize).min(LATENCY_BUCKETS - 1) };
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// Notes that this step asked `model` (`backend:model`).
    pub(crate) fn asked(&self, model: &str) {
        let mut models = self.models.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if !models.iter().any(|known| known == model) {
            models.push(model.to_string());
        }
    }

    fn reason(&self, reason: &str) {
        // Reasons are grouped by their text up to 400 characters: long enough to keep the
        // cause, which often comes last ("model request failed: POST URL: ...: 503 ...").
        let key: String = reason.chars().take(400).collect();
        let mut reasons = self.reasons.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if reasons.len() < 1000 || reasons.contains_key(&key) {
            *reasons.entry(key).or_insert(0) += 1;
        }
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn request_ended(&self, ok: bool, usage: Option<retort_core::Usage>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.request_errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(usage) = usage {
            self.prompt_tokens.fetch_add(usage.prompt_tokens, Ordering::Relaxed);
            self.prompt_tokens_cached.fetch_add(usage.cached_tokens, Ordering::Relaxed);
            self.completion_tokens.fetch_add(usage.completion_tokens, Ordering::Relaxed);
        }
    }

    pub(crate) fn cache_hit(&self, usage: retort_core::Usage) {
        self.cached.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens.fetch_add(usage.prompt_tokens, Ordering::Relaxed);
        self.completion_tokens.fetch_add(usage.completion_tokens, Ordering::Relaxed);
    }

    /// Says what the step is doing now (none: records only).
    pub fn set_activity(&self, activity: Option<String>) {
        *self.activity.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = activity;
    }

    /// The counters now.
    pub fn snapshot(&self) -> StepSnapshot {
        let mut reasons: Vec<(String, u64)> = self
            .reasons
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .iter()
            .map(|(reason, count)| (reason.clone(), *count))
            .collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        reasons.truncate(5);
        StepSnapshot {
            step: self.step.clone(),
            kind: self.kind.clone(),
            records_in: self.records_in.load(Ordering::Relaxed),
            out: self.out.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
            request_errors: self.request_errors.load(Ordering::Relaxed),
            prompt_tokens: self.prompt_tokens.load(Ordering::Relaxed),
            prompt_tokens_cached: self.prompt_tokens_cached.load(Ordering::Relaxed),
            completion_tokens: self.completion_tokens.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            reasons,
            activity: self.activity.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            started_at: millis(self.first_ms.load(Ordering::Relaxed)),
            finished_at: millis(self.last_ms.load(Ordering::Relaxed)),
            latency_ms: {
                let buckets: Vec<u64> = self.latency.iter().map(|bucket| bucket.load(Ordering::Relaxed)).collect();
                if buckets.iter().all(|count| *count == 0) {
                    Vec::new()
                } else {
                    buckets
                }
            },
            models: self.models.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            rounds: self.rounds(),
            series: self.series.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone(),
            cost_usd: self.priced.load(Ordering::Relaxed).then(|| self.cost_nano.load(Ordering::Relaxed) as f64 / 1e9),
        }
    }

    /// Each round's counts: the difference between its mark and the next (or now).
    fn rounds(&self) -> Vec<RoundCounts> {
        let marks = self.round_marks.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let now = self.counts(0);
        let ends = marks.iter().skip(1).map(|(_, counts)| *counts).chain(std::iter::once(now));
        marks
            .iter()
            .zip(ends)
            .map(|((round, start), end)| RoundCounts {
                round: *round,
                records_in: end.records_in - start.records_in,
                out: end.out - start.out,
                dropped: end.dropped - start.dropped,
                failed: end.failed - start.failed,
            })
            .collect()
    }
}

fn millis(ms: u64) -> Option<f64> {
    (ms > 0).then(|| ms as f64 / 1000.0)
}

/// The counters of every step of a run, in recipe order (steps inside `repeat` follow it).
#[derive(Debug, Default, Clone)]
pub struct RunStats {
    steps: Vec<Arc<StepStats>>,
}

impl RunStats {
    pub(crate) fn register(&mut self, step: &str, kind: &str) -> Arc<StepStats> {
        let stats = Arc::new(StepStats::new(step, kind));
        self.steps.push(stats.clone());
        stats
    }

    /// Every step's counters now.
    pub fn snapshot(&self) -> Vec<StepSnapshot> {
        self.steps.iter().map(|step| step.snapshot()).collect()
    }

    /// Adds a point to every step's series (the run calls it every couple of seconds). Past
    /// `SERIES_CAP` points the series keeps every other one and then every other call.
    pub(crate) fn sample(&self, tick: u64) {
        let t = now_ms() as f64 / 1000.0;
        for step in &self.steps {
            step.sample(t, tick);
        }
    }
}
