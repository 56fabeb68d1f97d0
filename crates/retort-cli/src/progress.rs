//! Live progress bars: one line per step (records in, out, dropped, failed) and a line of totals.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use retort_engine::RunStats;

/// The bars of a run, redrawn from the engine's counters ten times a second.
pub(crate) struct Progress {
    task: tokio::task::JoinHandle<()>,
    bars: MultiProgress,
}

impl Progress {
    pub(crate) fn start(stats: RunStats) -> Progress {
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let style = ProgressStyle::with_template("{spinner:.cyan} {prefix:<34.bold} {msg}").expect("valid template");
        let lines: Vec<ProgressBar> = stats
            .snapshot()
            .iter()
            .map(|step| {
                let bar = bars.add(ProgressBar::new_spinner().with_style(style.clone()).with_prefix(step.step.clone()));
                bar.enable_steady_tick(Duration::from_millis(120));
                bar
            })
            .collect();
        let totals = bars.add(ProgressBar::new_spinner().with_style(ProgressStyle::with_template("  {msg:.dim}").expect("valid template")));
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            let mut interval = tokio::time::interval(Duration::from_millis(100));
            loop {
                interval.tick().await;
                let snapshot = stats.snapshot();
                for (bar, step) in lines.iter().zip(&snapshot) {
                    let mut message = format!("{} in → {} out", step.records_in, step.out);
                    if step.dropped > 0 {
                        message.push_str(&format!(", {} dropped", step.dropped));
                    }
                    if step.failed > 0 {
                        message.push_str(&format!(", \x1b[31m{} failed\x1b[0m", step.failed));
                    }
                    if step.requests + step.cached > 0 {
                        message.push_str(&format!(" │ {} sent, {} cached", step.requests, step.cached));
                    }
                    if step.in_flight > 0 {
                        message.push_str(&format!(", {} in flight", step.in_flight));
                    }
                    if let Some(activity) = &step.activity {
                        message.push_str(&format!(" │ {activity}"));
                    }
                    bar.set_message(message);
                }
                let requests: u64 = snapshot.iter().map(|step| step.requests).sum();
                let in_flight: i64 = snapshot.iter().map(|step| step.in_flight).sum();
                let prompt: u64 = snapshot.iter().map(|step| step.prompt_tokens).sum();
                let completion: u64 = snapshot.iter().map(|step| step.completion_tokens).sum();
                let failed: u64 = snapshot.iter().map(|step| step.failed).sum();
                let elapsed = started.elapsed().as_secs_f64().max(0.001);
                totals.set_message(format!(
                    "{requests} requests ({:.0}/s), {in_flight} in flight, tokens {} in / {} out, {failed} failed, {:.0}s",
                    requests as f64 / elapsed,
                    human(prompt),
                    human(completion),
                    elapsed
                ));
            }
        });
        Progress { task, bars }
    }

    pub(crate) fn finish(self) {
        self.task.abort();
        let _ = self.bars.clear();
    }
}

/// 1234567 → `1.2M`.
pub(crate) fn human(count: u64) -> String {
    match count {
        0..=9_999 => count.to_string(),
        10_000..=999_999 => format!("{:.1}k", count as f64 / 1e3),
        _ => format!("{:.1}M", count as f64 / 1e6),
    }
}
