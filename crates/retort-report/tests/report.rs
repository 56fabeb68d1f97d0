//! The report of runs on the scripted backend: its sections and figures agree with what
//! `retort status` says, and nothing a model wrote reaches the page as markup.

mod common;

use common::run_recipe;

fn cell(value: impl std::fmt::Display) -> String {
    format!("<td>{value}</td>")
}

#[test]
fn the_report_shows_what_status_says() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_recipe(dir.path(), false);
    let out = dir.path().join("out");
    let status = retort_engine::status(&out).unwrap().expect("a run");
    assert_eq!(status.state, "completed");
    let path = retort_report::write_report(&out, None).unwrap();
    assert_eq!(path, out.join("report.html"));
    let page = std::fs::read_to_string(&path).unwrap();
    for section in ["identity", "funnel", "requests", "distributions", "dedup", "samples"] {
        assert!(page.contains(&format!("<section id=\"{section}\">")), "no {section} section");
    }
    // Every step's row of the funnel carries the counts status gives.
    for step in &status.steps {
        let row = format!(
            "<tr><td>{}</td><td>{}</td>{}{}{}{}",
            retort_report::html::escape(&step.step),
            step.kind,
            cell(step.records_in),
            cell(step.out),
            cell(step.dropped),
            cell(step.failed)
        );
        assert!(page.contains(&row), "no funnel row {row}");
    }
    // The cost: the scripted llm's prices times the tokens of the requests sent.
    let expected: f64 = status.steps.iter().map(|step| (step.prompt_tokens as f64 * 0.5 + step.completion_tokens as f64 * 2.0) / 1e6).sum();
    let counted: f64 = status.steps.iter().filter_map(|step| step.cost_usd).sum();
    assert!((counted - expected).abs() < 1e-9 && counted > 0.0, "cost {counted}, expected {expected}");
    assert!(page.contains(&format!("<tr><th>all steps</th><th>{counted:.6}</th></tr>")));
    let requests: u64 = status.steps.iter().map(|step| step.requests).sum();
    assert_eq!(requests, report.requests());
    assert!(requests > 0);
    // Per round: the generate step ran in both rounds.
    let generate = status.steps.iter().find(|step| step.kind == "generate").unwrap();
    assert_eq!(generate.rounds.iter().map(|round| round.round).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(generate.rounds.iter().map(|round| round.records_in).sum::<u64>(), generate.records_in);
    assert!(page.contains("<h3>Per round</h3>"));
    // The run's identity.
    assert!(page.contains("report-test") && page.contains("scripted"));
    assert!(page.contains("&lt;b&gt;not bold&lt;/b&gt;"));
    // Model output is text: no script and no markup of its own anywhere on the page.
    assert!(!page.contains("<script") && !page.contains("<b>bold"), "markup from a model reached the page");
    assert!(page.contains("&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;"));
    // Distributions: the judge's scores, counted once per kept row.
    let data = retort_report::collect(&out).unwrap();
    let export = data.exports.iter().find(|export| export.name == "data").unwrap();
    let rows = std::fs::read_to_string(out.join("data.jsonl")).unwrap().lines().count() as u64;
    assert_eq!(export.rows, rows);
    let score = export.fields.iter().find(|field| field.field == "score").expect("a score distribution");
    assert_eq!(score.count, rows);
    assert_eq!(score.step.as_deref(), Some(status.steps.iter().find(|step| step.kind == "judge").unwrap().step.as_str()));
    assert_eq!(score.bars.iter().map(|bar| bar.1).sum::<u64>(), rows);
    // The duplicates: the second round repeats the first's answers.
    let dedup = status.steps.iter().find(|step| step.kind == "dedup").unwrap();
    assert_eq!(data.dedup.removed, dedup.dropped);
    assert!(dedup.dropped > 0);
    // Samples: kept, dropped and failed, with the prompt sent and the reason.
    let failed = data.samples.iter().flat_map(|step| &step.failed).next().expect("a failed sample");
    assert!(failed.reason.is_some());
    let kept = data.samples.iter().flat_map(|step| &step.kept).next().expect("a kept sample");
    assert!(kept.prompt.iter().any(|(role, content)| role == "user" && content.starts_with("Answer about") || content.starts_with("Rate")));
    assert!(page.contains("<details class=\"sample dropped\">") && page.contains("<details class=\"sample failed\">"));
    // A report of a run that wrote nothing is a clear error.
    let empty = tempfile::tempdir().unwrap();
    let error = retort_report::write_report(empty.path(), None).unwrap_err().to_string();
    assert!(error.contains("no run in"), "{error}");
}

#[test]
fn an_interrupted_run_has_a_report_too() {
    let dir = tempfile::tempdir().unwrap();
    let report = run_recipe(dir.path(), true);
    assert_eq!(report.outcome, retort_engine::RunOutcome::Interrupted);
    let out = dir.path().join("out");
    let page = std::fs::read_to_string(retort_report::write_report(&out, None).unwrap()).unwrap();
    assert!(page.contains("<td>interrupted</td>"), "the state is shown");
    let identity = retort_engine::RunIdentity::read(&out).expect("run.json");
    assert_eq!(identity.outcome, Some(retort_engine::RunOutcome::Interrupted));
    assert_eq!(identity.seed, 7);
}
