//! The report as one self-contained HTML page: inline CSS and SVG, no script, nothing fetched.
//!
//! Architecture Invariant: every text that comes from a run (model output above all, but also
//! recipe names, reasons and field names) goes through `escape` before it reaches the page.

use std::fmt::Write;

use retort_engine::{StepSnapshot, LATENCY_BUCKETS};
use serde_json::Value;

use crate::collect::{short_number, text_of, FieldKind, RunData, SampleRecord};
use crate::svg;

/// Text made safe to put in HTML, in element content and in quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
    out
}

/// The page's style, shared with the viewer.
pub const STYLE: &str = include_str!("../assets/style.css");

/// The report of a run, as a whole HTML document.
pub fn render(data: &RunData) -> String {
    let mut page = String::with_capacity(64 * 1024);
    let title = data
        .identity
        .as_ref()
        .map(|identity| identity.recipe.clone())
        .or_else(|| data.status.as_ref().map(|status| status.recipe.clone()))
        .unwrap_or_default();
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\"><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\
         <title>retort report: {}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = write!(page, "<header><h1>retort report: {}</h1></header><main>", escape(&title));
    identity(&mut page, data);
    funnel(&mut page, data);
    requests(&mut page, data);
    distributions(&mut page, data);
    dedup(&mut page, data);
    metrics(&mut page, data);
    samples(&mut page, data);
    page.push_str("</main></body></html>\n");
    page
}

fn section(page: &mut String, id: &str, title: &str) {
    let _ = write!(page, "<section id=\"{id}\"><h2>{}</h2>", escape(title));
}

fn identity(page: &mut String, data: &RunData) {
    section(page, "identity", "Run");
    page.push_str("<table class=\"facts\">");
    let mut fact = |name: &str, value: String| {
        let _ = write!(page, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(&value));
    };
    fact("directory", data.dir.display().to_string());
    if let Some(status) = &data.status {
        fact("recipe", status.recipe.clone());
        fact("state", status.state.clone());
        fact("elapsed", format!("{:.1} s", status.elapsed_s));
        fact("answers in the run store", status.answers.to_string());
    }
    if let Some(identity) = &data.identity {
        if !identity.description.is_empty() {
            fact("description", identity.description.trim().to_string());
        }
        if let Some(paper) = &identity.paper {
            fact("paper", paper.clone());
        }
        fact("recipe hash", identity.fingerprint.clone());
        if let Some(file) = &identity.recipe_file {
            fact("recipe file", file.display().to_string());
        }
        for model in &identity.models {
            fact("model", model.clone());
        }
        fact("seed", identity.seed.to_string());
        fact("retort version", identity.retort_version.clone());
        fact("started", time_of(identity.started_at));
        fact("ended", identity.finished_at.map(time_of).unwrap_or_else(|| "not yet (running, or stopped before it could say)".into()));
    }
    page.push_str("</table>");
    if data.exports.iter().any(|export| export.partial) {
        page.push_str(
            "<p class=\"note\">Some outputs are still partial: the run is going on, or it was stopped before it finished them.</p>",
        );
    }
    page.push_str("</section>");
}

/// A Unix time as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time_of(seconds: f64) -> String {
    let secs = seconds as i64;
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = retort_core::civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", rest / 3600, rest % 3600 / 60, rest % 60)
}

fn steps(data: &RunData) -> &[StepSnapshot] {
    data.status.as_ref().map(|status| status.steps.as_slice()).unwrap_or(&[])
}

fn funnel(page: &mut String, data: &RunData) {
    section(page, "funnel", "Funnel");
    let steps = steps(data);
    if steps.is_empty() {
        page.push_str("<p>No step statistics yet.</p></section>");
        return;
    }
    let rows: Vec<(String, Vec<u64>)> = steps.iter().map(|step| (step.step.clone(), vec![step.out, step.dropped, step.failed])).collect();
    page.push_str(&svg::stacked("records per step: kept, dropped, failed", &["passed on", "dropped", "failed"], &rows));
    page.push_str("<table class=\"numbers\"><thead><tr><th>step</th><th>kind</th><th>in</th><th>passed on</th><th>dropped</th><th>failed</th><th>top reasons</th></tr></thead><tbody>");
    for step in steps {
        let reasons: Vec<String> = step.reasons.iter().take(5).map(|(reason, count)| format!("{count} × {reason}")).collect();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"reasons\">{}</td></tr>",
            escape(&step.step),
            escape(&step.kind),
            step.records_in,
            step.out,
            step.dropped,
            step.failed,
            reasons.iter().map(|reason| escape(reason)).collect::<Vec<_>>().join("<br>")
        );
    }
    page.push_str("</tbody></table>");
    let with_rounds: Vec<&StepSnapshot> = steps.iter().filter(|step| !step.rounds.is_empty()).collect();
    if !with_rounds.is_empty() {
        page.push_str("<h3>Per round</h3><table class=\"numbers\"><thead><tr><th>step</th><th>round</th><th>in</th><th>passed on</th><th>dropped</th><th>failed</th></tr></thead><tbody>");
        for step in &with_rounds {
            for round in &step.rounds {
                let _ = write!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    escape(&step.step),
                    round.round,
                    round.records_in,
                    round.out,
                    round.dropped,
                    round.failed
                );
            }
        }
        page.push_str("</tbody></table>");
        let series: Vec<(String, Vec<(f64, f64)>)> = with_rounds
            .iter()
            .map(|step| (step.step.clone(), step.rounds.iter().map(|round| (f64::from(round.round), round.out as f64)).collect()))
            .collect();
        page.push_str(&svg::lines("records passed on per round", &series, "round"));
    }
    if !data.round_files.is_empty() {
        page.push_str("<h3>Rounds' outputs</h3><table class=\"numbers\"><thead><tr><th>round</th><th>rows in rounds/round-K.jsonl</th></tr></thead><tbody>");
        for (round, rows) in &data.round_files {
            let _ = write!(page, "<tr><td>{round}</td><td>{rows}</td></tr>");
        }
        page.push_str("</tbody></table>");
    }
    for export in &data.exports {
        let _ = write!(
            page,
            "<p>Export <code>{}</code>: {} rows{}.</p>",
            escape(&export.name),
            export.rows,
            if export.partial { " (partial)" } else { "" }
        );
    }
    page.push_str("</section>");
}

/// The latency under which `quantile` of the requests fell, from the power-of-two buckets.
pub fn latency_quantile(buckets: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let target = (total as f64 * quantile).ceil() as u64;
    let mut seen = 0;
    for (bucket, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= target {
            return Some(1u64 << bucket);
        }
    }
    Some(1u64 << (LATENCY_BUCKETS - 1))
}

fn requests(page: &mut String, data: &RunData) {
    let steps = steps(data);
    let asking: Vec<&StepSnapshot> = steps.iter().filter(|step| step.requests + step.cached > 0 || step.active_s().is_some()).collect();
    section(page, "requests", "Requests, tokens and time");
    if asking.is_empty() {
        page.push_str("<p>No step has run yet.</p></section>");
        return;
    }
    page.push_str(
        "<table class=\"numbers\"><thead><tr><th>step</th><th>models</th><th>requests sent</th><th>reused from the store</th><th>request errors</th>\
         <th>prompt tokens</th><th>of them cached by the server</th><th>completion tokens</th><th>active time</th><th>latency p50</th><th>latency p90</th></tr></thead><tbody>",
    );
    for step in &asking {
        let quantile = |q| latency_quantile(&step.latency_ms, q).map(|ms| format!("< {}", duration_of(ms))).unwrap_or_default();
        let _ = write!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&step.step),
            escape(&step.models.join(", ")),
            step.requests,
            step.cached,
            step.request_errors,
            step.prompt_tokens,
            step.prompt_tokens_cached,
            step.completion_tokens,
            step.active_s().map(|s| format!("{s:.1} s")).unwrap_or_default(),
            quantile(0.5),
            quantile(0.9)
        );
    }
    page.push_str("</tbody></table>");
    let priced: Vec<&&StepSnapshot> = asking.iter().filter(|step| step.cost_usd.is_some()).collect();
    if priced.is_empty() {
        page.push_str("<p class=\"note\">No cost: the recipe's llms give no prices per token (<code>price: {prompt: …, completion: …}</code>, dollars per million tokens).</p>");
    } else {
        page.push_str("<table class=\"numbers\"><thead><tr><th>step</th><th>cost of the requests sent (USD)</th></tr></thead><tbody>");
        let mut total = 0.0;
        for step in &priced {
            let cost = step.cost_usd.unwrap_or(0.0);
            total += cost;
            let _ = write!(page, "<tr><td>{}</td><td>{cost:.6}</td></tr>", escape(&step.step));
        }
        let _ = write!(page, "<tr><th>all steps</th><th>{total:.6}</th></tr></tbody></table>");
    }
    page.push_str("<div class=\"grid\">");
    let tokens: Vec<(String, Vec<u64>)> = asking
        .iter()
        .filter(|step| step.prompt_tokens + step.completion_tokens > 0)
        .map(|step| (step.step.clone(), vec![step.prompt_tokens, step.completion_tokens]))
        .collect();
    if !tokens.is_empty() {
        figure(page, "Tokens per step", &svg::stacked("tokens per step", &["prompt", "completion"], &tokens));
    }
    for (model, buckets) in latency_by_model(&asking) {
        let last = buckets.iter().rposition(|count| *count > 0).unwrap_or(0);
        let first = buckets.iter().position(|count| *count > 0).unwrap_or(0);
        let bars: Vec<(String, u64)> =
            (first..=last).map(|bucket| (format!("<{}", duration_of(1u64 << bucket)), buckets[bucket])).collect();
        let sent: u64 = buckets.iter().sum();
        let caption = format!(
            "Latency of the {sent} requests sent to {model}: p50 < {}, p90 < {}",
            latency_quantile(&buckets, 0.5).map(duration_of).unwrap_or_default(),
            latency_quantile(&buckets, 0.9).map(duration_of).unwrap_or_default()
        );
        figure(page, &caption, &svg::bars("latency", &bars, svg::PALETTE[3]));
    }
    let flight: Vec<(String, Vec<(f64, f64)>)> = series_of(&asking, |sample| sample.in_flight as f64);
    if !flight.is_empty() {
        figure(page, "Requests in flight over time", &svg::lines("requests in flight", &flight, "seconds since start"));
    }
    let progress: Vec<(String, Vec<(f64, f64)>)> = series_of(&asking, |sample| sample.out as f64);
    if !progress.is_empty() {
        figure(page, "Records passed on over time", &svg::lines("records passed on", &progress, "seconds since start"));
    }
    page.push_str("</div></section>");
}

/// Each backend's latency histogram (`backend:model`), summed over the steps that asked it
/// alone; a step that asked several models (a trainer's next round) is counted under the first.
fn latency_by_model(steps: &[&StepSnapshot]) -> Vec<(String, Vec<u64>)> {
    let mut models: Vec<(String, Vec<u64>)> = Vec::new();
    for step in steps.iter().filter(|step| !step.latency_ms.is_empty()) {
        let model = step.models.first().cloned().unwrap_or_else(|| "?".into());
        let index = match models.iter().position(|(known, _)| *known == model) {
            Some(index) => index,
            None => {
                models.push((model, vec![0; LATENCY_BUCKETS]));
                models.len() - 1
            }
        };
        for (total, count) in models[index].1.iter_mut().zip(&step.latency_ms) {
            *total += count;
        }
    }
    models
}

fn series_of(steps: &[&StepSnapshot], value: impl Fn(&retort_engine::Sample) -> f64) -> Vec<(String, Vec<(f64, f64)>)> {
    let start = steps.iter().filter_map(|step| step.series.first().map(|sample| sample.t)).fold(f64::INFINITY, f64::min);
    steps
        .iter()
        .filter(|step| step.series.len() >= 2)
        .map(|step| (step.step.clone(), step.series.iter().map(|sample| (sample.t - start, value(sample))).collect()))
        .collect()
}

fn duration_of(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{} s", short_number((ms as f64 / 100.0).round() / 10.0))
    } else if ms < 120_000 {
        format!("{} s", (ms as f64 / 1000.0).round())
    } else {
        format!("{} min", short_number((ms as f64 / 60_000.0 * 10.0).round() / 10.0))
    }
}

fn figure(page: &mut String, caption: &str, chart: &str) {
    let _ = write!(page, "<figure>{chart}<figcaption>{}</figcaption></figure>", escape(caption));
}

fn distributions(page: &mut String, data: &RunData) {
    section(page, "distributions", "Distributions");
    let mut any = false;
    for export in &data.exports {
        if export.fields.is_empty() {
            continue;
        }
        any = true;
        let _ = write!(page, "<h3>{} ({} rows)</h3><div class=\"grid\">", escape(&export.name), export.rows);
        if export.rows_per_round.len() > 1 {
            let bars: Vec<(String, u64)> = export.rows_per_round.iter().map(|(round, rows)| (round.to_string(), *rows)).collect();
            figure(page, "rows per round", &svg::bars("rows per round", &bars, svg::PALETTE[0]));
        }
        for field in &export.fields {
            let what = match field.kind {
                FieldKind::Number => format!("{}: values", field.field),
                FieldKind::Margin => format!("preference margin ({})", field.field),
                FieldKind::Verdict => format!("{}: verdicts", field.field),
                FieldKind::Category => format!("{}: values", field.field),
                FieldKind::Words => format!("{}: words", field.field),
                FieldKind::Turns => format!("{}: turns", field.field),
            };
            let mut caption = what;
            if let Some(step) = &field.step {
                let _ = write!(caption, ", from {step}");
            }
            let _ = write!(caption, "; {} values", field.count);
            if let Some(mean) = field.mean {
                let _ = write!(caption, ", mean {}", short_number(mean));
            }
            let color = match field.kind {
                FieldKind::Number | FieldKind::Margin => svg::PALETTE[3],
                FieldKind::Verdict | FieldKind::Category => svg::PALETTE[4],
                FieldKind::Words => svg::PALETTE[0],
                FieldKind::Turns => svg::PALETTE[5],
            };
            figure(page, &caption, &svg::bars(&caption, &field.bars, color));
        }
        page.push_str("</div>");
    }
    if !any {
        page.push_str("<p>No exported rows yet.</p>");
    }
    page.push_str("</section>");
}

fn dedup(page: &mut String, data: &RunData) {
    if data.dedup.removed == 0 {
        return;
    }
    section(page, "dedup", "Near-duplicates removed");
    let _ = write!(
        page,
        "<p>{} records removed as duplicates, in {} clusters.</p><div class=\"grid\">",
        data.dedup.removed,
        data.dedup.cluster_sizes.iter().map(|(_, n)| n).sum::<u64>()
    );
    let sizes: Vec<(String, u64)> = data.dedup.cluster_sizes.iter().map(|(size, count)| (size.to_string(), *count)).collect();
    figure(page, "clusters by size (the kept record and its duplicates)", &svg::bars("cluster sizes", &sizes, svg::PALETTE[1]));
    if !data.dedup.similarity.is_empty() {
        figure(
            page,
            "similarity of each removed duplicate to its kept record",
            &svg::bars("similarity", &data.dedup.similarity, svg::PALETTE[1]),
        );
    }
    page.push_str("</div><table class=\"numbers\"><thead><tr><th>step</th><th>kept record</th><th>removed</th><th>one of them</th></tr></thead><tbody>");
    for cluster in &data.dedup.largest {
        let _ = write!(
            page,
            "<tr><td>{}</td><td>#{}</td><td>{}</td><td class=\"reasons\">{}</td></tr>",
            escape(&cluster.step),
            cluster.kept,
            cluster.removed,
            escape(&cluster.example)
        );
    }
    page.push_str("</tbody></table></section>");
}

fn metrics(page: &mut String, data: &RunData) {
    if data.metrics.is_empty() && data.training.is_empty() {
        return;
    }
    section(page, "metrics", "Metrics");
    let mut names: Vec<&str> = data.metrics.iter().map(|file| file.name.as_str()).collect();
    names.dedup();
    for name in names {
        let files: Vec<_> = data.metrics.iter().filter(|file| file.name == name).collect();
        let mut keys: Vec<&str> = Vec::new();
        for file in &files {
            for (key, _) in &file.values {
                if !keys.contains(&key.as_str()) {
                    keys.push(key);
                }
            }
        }
        let _ = write!(page, "<h3>{}</h3><table class=\"numbers\"><thead><tr><th>value</th>", escape(name));
        for file in &files {
            let column = file
                .round
                .map(|round| format!("round {round}"))
                .unwrap_or_else(|| file.file.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default());
            let _ = write!(page, "<th>{}</th>", escape(&column));
        }
        page.push_str("</tr></thead><tbody>");
        for key in &keys {
            let _ = write!(page, "<tr><td>{}</td>", escape(key));
            for file in &files {
                let cell = file.values.iter().find(|(name, _)| name == key).map(|(_, value)| match value {
                    Value::Number(number) => short_number(number.as_f64().unwrap_or(0.0)),
                    other => text_of(other),
                });
                let _ = write!(page, "<td>{}</td>", escape(&cell.unwrap_or_default()));
            }
            page.push_str("</tr>");
        }
        page.push_str("</tbody></table>");
        let rounds: Vec<_> = files.iter().filter(|file| file.round.is_some()).collect();
        if rounds.len() >= 2 {
            let series: Vec<(String, Vec<(f64, f64)>)> = keys
                .iter()
                .filter_map(|key| {
                    let points: Vec<(f64, f64)> = rounds
                        .iter()
                        .filter_map(|file| {
                            let value = file.values.iter().find(|(name, _)| name == key)?.1.as_f64()?;
                            Some((f64::from(file.round?), value))
                        })
                        .collect();
                    (points.len() >= 2).then(|| (key.to_string(), points))
                })
                .take(8)
                .collect();
            if !series.is_empty() {
                figure(page, &format!("{name} across rounds"), &svg::lines(name, &series, "round"));
            }
        }
    }
    if !data.training.is_empty() {
        let series: Vec<(String, Vec<(f64, f64)>)> =
            data.training.iter().map(|curve| (curve.label.clone(), curve.points.clone())).collect();
        page.push_str("<h3>Training loss</h3>");
        figure(page, "loss per optimiser step, one line per round's trainer", &svg::lines("training loss", &series, "step"));
    }
    page.push_str("</section>");
}

fn samples(page: &mut String, data: &RunData) {
    section(page, "samples", "Samples");
    if data.samples.is_empty() {
        page.push_str("<p>No records yet.</p>");
    }
    for step in &data.samples {
        let _ = write!(page, "<h3>{}</h3>", escape(&step.step));
        for (kind, records) in [("kept", &step.kept), ("dropped", &step.dropped), ("failed", &step.failed)] {
            for record in records.iter() {
                sample(page, kind, record);
            }
        }
    }
    page.push_str("</section>");
}

fn sample(page: &mut String, kind: &str, record: &SampleRecord) {
    let mut summary = format!("{kind} · {}", record.id);
    if let Some(round) = record.round {
        let _ = write!(summary, " · round {round}");
    }
    if let Some(reason) = &record.reason {
        let _ = write!(summary, " · {}", reason.chars().take(120).collect::<String>());
    }
    let _ = write!(page, "<details class=\"sample {kind}\"><summary>{}</summary>", escape(&summary));
    if let Some(reason) = &record.reason {
        let _ = write!(page, "<p class=\"reason\"><b>reason</b> {}</p>", escape(reason));
    }
    if !record.prompt.is_empty() {
        page.push_str("<div class=\"turns\">");
        for (role, content) in &record.prompt {
            let _ =
                write!(page, "<div class=\"turn {0}\"><span class=\"role\">{0}</span><pre>{1}</pre></div>", escape(role), escape(content));
        }
        page.push_str("</div>");
    }
    if let Some(answer) = &record.answer {
        let label = record.field.as_deref().map(|field| format!("answer ({field})")).unwrap_or_else(|| "answer".into());
        let _ = write!(page, "<p><b>{}</b></p><pre class=\"answer\">{}</pre>", escape(&label), escape(answer));
    }
    let _ = write!(
        page,
        "<p><b>record</b></p><pre>{}</pre></details>",
        escape(&serde_json::to_string_pretty(&record.record).unwrap_or_default())
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(escape("<script>alert('x' & \"y\")</script>"), "&lt;script&gt;alert(&#39;x&#39; &amp; &quot;y&quot;)&lt;/script&gt;");
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(time_of(0.0), "1970-01-01 00:00:00 UTC");
        assert_eq!(time_of(1_764_892_800.0), "2025-12-05 00:00:00 UTC");
    }

    #[test]
    fn latency_quantiles_read_the_buckets() {
        let mut buckets = vec![0; LATENCY_BUCKETS];
        buckets[3] = 5;
        buckets[6] = 5;
        assert_eq!(latency_quantile(&buckets, 0.5), Some(8));
        assert_eq!(latency_quantile(&buckets, 0.9), Some(64));
        assert_eq!(latency_quantile(&[0; 4], 0.5), None);
    }
}
