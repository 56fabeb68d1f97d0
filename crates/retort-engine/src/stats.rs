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
}

impl StepStats {
    /// Counters for a step.
    pub fn new(step: &str, kind: &str) -> StepStats {
        StepStats { step: step.to_string(), kind: kind.to_string(), ..StepStats::default() }
    }

    pub(crate) fn record_in(&self) {
        self.records_in.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_out(&self) {
        self.out.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn record_dropped(&self, reason: &str) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.reason(reason);
    }

    pub(crate) fn record_failed(&self, reason: &str) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.reason(reason);
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
        }
    }
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
}
