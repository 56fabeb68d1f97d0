//! The run store at work: answers committed once, re-runs reuse them, faults are retried, interrupted runs resume.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{quickstart, read_jsonl, run_in, topics, Mock};
use retort_engine::{Overrides, PreparedRun, Recipe, RunOptions, RunOutcome};
use retort_mock::{Faults, MockConfig};
use tokio_util::sync::CancellationToken;

#[test]
fn a_finished_run_is_not_run_again() {
    let mock = Mock::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let recipe = quickstart(&mock.url(), "Answer this question in two sentences:");
    let files = [("topics.jsonl", topics(20))];
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let first = run_in(dir.path(), &recipe, &files, &Overrides::default());
    assert_eq!(first.outcome, RunOutcome::Completed);
    assert_eq!(first.requests(), 40);
    assert_eq!(mock.server().count(), 40);
    let second = run_in(dir.path(), &recipe, &files, &Overrides::default());
    assert_eq!(second.outcome, RunOutcome::UpToDate);
    assert_eq!(mock.server().count(), 40, "an up-to-date run sends nothing");
    assert_eq!(second.rows, first.rows);
}

#[test]
fn a_changed_recipe_resends_only_what_changed() {
    let mock = Mock::start(MockConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let files = [("topics.jsonl", topics(20))];
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    run_in(dir.path(), &quickstart(&mock.url(), "Answer this question in two sentences:"), &files, &Overrides::default());
    let report = run_in(dir.path(), &quickstart(&mock.url(), "Answer briefly:"), &files, &Overrides::default());
    assert_eq!(report.outcome, RunOutcome::Completed);
    // The questions are reused from the store; only the answers with the new prompt are sent.
    assert_eq!(report.steps[1].cached, 20);
    assert_eq!(report.steps[1].requests, 0);
    assert_eq!(report.steps[2].requests, 20);
    assert_eq!(mock.server().count(), 60);
}

#[test]
fn server_errors_are_retried_and_exhausted_retries_fail_only_their_records() {
    let config = MockConfig { faults: Faults { fail_first: 6, fail_status: 500, ..Faults::default() }, ..MockConfig::default() };
    let mock = Mock::start(config);
    let dir = tempfile::tempdir().unwrap();
    let files = [("topics.jsonl", topics(10))];
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let report = run_in(dir.path(), &quickstart(&mock.url(), "Answer:"), &files, &Overrides::default());
    assert_eq!(report.failed, 0, "{:?}", report.steps);
    assert_eq!(report.rows[0].1, 10);

    // A server that always fails: every record fails with the reason; the run completes.
    let config = MockConfig { faults: Faults { fail_every: Some(1), fail_status: 503, ..Faults::default() }, ..MockConfig::default() };
    let broken = Mock::start(config);
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), &quickstart(&broken.url(), "Answer:"), &files, &Overrides::default());
    assert_eq!(report.outcome, RunOutcome::Completed);
    assert_eq!(report.failed, 10);
    assert_eq!(report.rows[0].1, 0);
    let failed = read_jsonl(&dir.path().join("out/failed.jsonl"));
    let reason = failed[0]["reason"].as_str().unwrap();
    assert!(reason.starts_with("model request failed: server"), "{reason}");
    assert!(reason.contains("4 attempts"), "{reason}");
    assert_eq!(broken.server().count(), 40, "1 try and 3 retries per record");
}

#[test]
fn a_cancelled_run_resumes_without_resending_answered_requests() {
    let config = MockConfig { latency_ms: 15, ..MockConfig::default() };
    let mock = Mock::start(config);
    let files = [("topics.jsonl", topics(60))];
    let files: Vec<(&str, &str)> = files.iter().map(|(name, text)| (*name, text.as_str())).collect();
    let recipe = quickstart(&mock.url(), "Answer:");

    // The reference: an uninterrupted run elsewhere.
    let reference_dir = tempfile::tempdir().unwrap();
    run_in(reference_dir.path(), &recipe, &files, &Overrides::default());
    let reference = std::fs::read_to_string(reference_dir.path().join("out/data.jsonl")).unwrap();
    let before = mock.answered().len();

    let dir = tempfile::tempdir().unwrap();
    for (name, text) in &files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    std::fs::write(dir.path().join("recipe.yaml"), &recipe).unwrap();
    let parsed = Recipe::load(&dir.path().join("recipe.yaml"), &Overrides::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = runtime.block_on(async {
        let prepared = PreparedRun::prepare(parsed, RunOptions::new(dir.path().join("out"))).unwrap();
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(150)).await;
            canceller.cancel();
        });
        prepared.execute(cancel).await.unwrap()
    });
    assert_eq!(report.outcome, RunOutcome::Interrupted);
    let first_answers: HashSet<String> = mock.answered()[before..].iter().cloned().collect();
    assert!(!first_answers.is_empty() && first_answers.len() < 120, "interrupted part-way: {}", first_answers.len());
    let partial = read_jsonl(&dir.path().join("out/data.jsonl")).len();
    assert!(partial < 60, "the interrupted run wrote what it finished: {partial} rows");

    let sent_before_resume = mock.server().count() as usize;
    let resumed = run_in(dir.path(), &recipe, &[], &Overrides::default());
    assert_eq!(resumed.outcome, RunOutcome::Completed);
    let resent: Vec<String> = mock.server().requests()[sent_before_resume..]
        .iter()
        .map(|request| request.key.clone())
        .filter(|key| first_answers.contains(key))
        .collect();
    assert!(resent.is_empty(), "answered requests were sent again: {resent:?}");
    assert_eq!(resumed.cached() as usize, first_answers.len());
    assert_eq!(std::fs::read_to_string(dir.path().join("out/data.jsonl")).unwrap(), reference);
}
