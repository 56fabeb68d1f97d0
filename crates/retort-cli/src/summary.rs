//! The tables printed after a run and by `retort status`.

use std::fmt::Write;
use std::path::Path;

use retort_engine::{RunOutcome, RunReport, Status, StepSnapshot};

use crate::progress::human;

fn steps_table(steps: &[StepSnapshot]) -> String {
    let width = steps.iter().map(|step| step.step.len()).max().unwrap_or(4).max(4);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "  {:<width$}  {:>8} {:>8} {:>8} {:>8}  {:>8} {:>8}  {:>9} {:>9}",
        "step", "in", "out", "dropped", "failed", "sent", "cached", "tok in", "tok out"
    );
    for step in steps {
        let _ = writeln!(
            table,
            "  {:<width$}  {:>8} {:>8} {:>8} {:>8}  {:>8} {:>8}  {:>9} {:>9}",
            step.step,
            step.records_in,
            step.out,
            step.dropped,
            step.failed,
            step.requests,
            step.cached,
            human(step.prompt_tokens),
            human(step.completion_tokens)
        );
    }
    let reasons: Vec<String> = steps
        .iter()
        .flat_map(|step| step.reasons.iter().take(3).map(move |(reason, count)| format!("  {} × {count}: {reason}", step.step)))
        .collect();
    if !reasons.is_empty() {
        let _ = writeln!(table, "\n  why records were dropped or failed:");
        for reason in reasons {
            let _ = writeln!(table, "  {reason}");
        }
    }
    table
}

/// The report after `retort run`.
pub(crate) fn report(report: &RunReport, out_dir: &Path) -> String {
    let mut text = String::new();
    let headline = match report.outcome {
        RunOutcome::Completed => "completed",
        RunOutcome::Interrupted => "interrupted: finished work is written; run the same command again to resume",
        RunOutcome::UpToDate => "up to date: nothing to do",
    };
    let _ = writeln!(text, "\nretort: {headline} in {:.1}s", report.elapsed_s);
    for model in &report.answered_by {
        let _ = writeln!(text, "  answered by {model}");
    }
    if report.outcome != RunOutcome::UpToDate {
        text.push_str(&steps_table(&report.steps));
        let _ = writeln!(
            text,
            "\n  {} requests sent, {} answers reused from the run store; {} dropped, {} failed",
            report.requests(),
            report.cached(),
            report.dropped,
            report.failed
        );
        let prompt: u64 = report.steps.iter().map(|step| step.prompt_tokens).sum();
        let reused: u64 = report.steps.iter().map(|step| step.prompt_tokens_cached).sum();
        if reused > 0 {
            let _ = writeln!(
                text,
                "  {} prompt tokens reused from the model's prompt cache ({:.0}% of all prompt tokens)",
                human(reused),
                100.0 * reused as f64 / prompt.max(1) as f64
            );
        }
    }
    for note in &report.notes {
        let _ = writeln!(text, "  note: {note}");
    }
    for (name, rows) in &report.rows {
        let _ = writeln!(text, "  {rows} rows → {}", out_dir.join(format!("{name}.jsonl")).display());
    }
    let _ = writeln!(text, "  details: retort status {}", out_dir.display());
    text
}

/// The table of `retort status`.
pub(crate) fn status_table(status: &Status) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "recipe {}: {} ({:.1}s), {} answers stored", status.recipe, status.state, status.elapsed_s, status.answers);
    text.push_str(&steps_table(&status.steps));
    text
}
