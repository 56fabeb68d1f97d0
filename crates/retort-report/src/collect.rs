//! Reading a run directory into the figures a report shows: the run's identity and status,
//! each export's rows and field distributions, rejects, duplicate clusters, metrics and samples.
//!
//! Everything is read, never written, and every file is read as a stream with caps on what is
//! kept, so a million-row run costs the same memory as a small one.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use retort_engine::{RunIdentity, Status};
use serde::Serialize;
use serde_json::Value;

use crate::ReportError;

/// Rows a field distribution looks at, at most, per export.
const DISTRIBUTION_ROWS: usize = 200_000;
/// Samples kept per step and kind (kept, dropped, failed).
const SAMPLES_PER_KIND: usize = 3;
/// Characters of a text shown in a sample before it is cut.
const SAMPLE_CHARS: usize = 4_000;
/// Distinct values a text field may have to be counted as categories.
const MAX_CATEGORIES: usize = 12;

/// Everything a report shows about one run directory.
#[derive(Debug, Clone, Serialize)]
pub struct RunData {
    /// The run directory.
    pub dir: PathBuf,
    /// `run.json`: recipe, hash, models, seed, version, start and end.
    pub identity: Option<RunIdentity>,
    /// What `retort status` says: state and the counters of every step.
    pub status: Option<Status>,
    /// Each export (`NAME.jsonl`) with its rows and field distributions.
    pub exports: Vec<ExportSummary>,
    /// Rows of `rounds/round-K.jsonl`, per round.
    pub round_files: Vec<(u32, u64)>,
    /// Duplicates removed by `dedup` steps.
    pub dedup: DedupSummary,
    /// Metrics files the recipe wrote (`NAME.json`, `NAME-round-K.json`) and trainers' reports.
    pub metrics: Vec<MetricsFile>,
    /// Trainers' loss curves, one per round's trainer.
    pub training: Vec<TrainingCurve>,
    /// A few kept, dropped and failed records per step.
    pub samples: Vec<StepSamples>,
}

/// One export of the run.
#[derive(Debug, Clone, Serialize)]
pub struct ExportSummary {
    /// The file stem (`data`, `preferences`).
    pub name: String,
    /// The file read (the `.partial` one while the run goes).
    pub file: PathBuf,
    /// Whether the file is still being written (or the run was stopped before it finished).
    pub partial: bool,
    /// Rows in the file.
    pub rows: u64,
    /// Rows per value of the `round` field, for iterative recipes.
    pub rows_per_round: Vec<(u32, u64)>,
    /// One distribution per field worth plotting.
    pub fields: Vec<FieldDistribution>,
}

/// What kind of distribution a field has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Numbers: judge scores, rewards, similarities.
    Number,
    /// A preference pair's margin (`margin`, or `chosen_score - rejected_score`).
    Margin,
    /// Booleans: verifier verdicts.
    Verdict,
    /// A text with a few distinct values: labels, verdict words.
    Category,
    /// Words in a generated text.
    Words,
    /// Turns of a conversation or trajectory (a list of messages).
    Turns,
}

/// A histogram or a count per category.
#[derive(Debug, Clone, Serialize)]
pub struct FieldDistribution {
    /// The field (or `chosen_score - rejected_score`).
    pub field: String,
    /// How to read it.
    pub kind: FieldKind,
    /// The step that generated the field, when the lineage says.
    pub step: Option<String>,
    /// Values counted.
    pub count: u64,
    /// Mean, for numeric kinds.
    pub mean: Option<f64>,
    /// Bar labels (a bin's range or a category) and counts.
    pub bars: Vec<(String, u64)>,
}

/// Duplicates removed, clustered by the kept record each duplicates.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DedupSummary {
    /// Records dropped as duplicates.
    pub removed: u64,
    /// Clusters (a kept record and its removed duplicates), by size: `(size, clusters)`.
    pub cluster_sizes: Vec<(u64, u64)>,
    /// The largest clusters: the kept record's number, the step, and how many were removed.
    pub largest: Vec<DedupCluster>,
    /// Similarities of removed duplicates to their kept record, as a histogram.
    pub similarity: Vec<(String, u64)>,
}

/// One cluster of near-duplicates.
#[derive(Debug, Clone, Serialize)]
pub struct DedupCluster {
    /// The dedup step.
    pub step: String,
    /// The kept record's number in that step.
    pub kept: u64,
    /// Duplicates removed.
    pub removed: u64,
    /// One removed duplicate's reason, with its text.
    pub example: String,
}

/// A metrics file, flattened to its numbers.
#[derive(Debug, Clone, Serialize)]
pub struct MetricsFile {
    /// The file's stem without `-round-K` (`eval`, `metrics`).
    pub name: String,
    /// The round, for `NAME-round-K.json` and trainers' reports.
    pub round: Option<u32>,
    /// The file.
    pub file: PathBuf,
    /// Every number and short text in it, by dotted path.
    pub values: Vec<(String, Value)>,
}

/// A trainer's loss, step by step.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingCurve {
    /// `round 2` or `round 2 / judge`.
    pub label: String,
    /// `(step, loss)`.
    pub points: Vec<(f64, f64)>,
}

/// A few records of one step.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepSamples {
    /// The step's path.
    pub step: String,
    /// Records it generated a field of that reached an export.
    pub kept: Vec<SampleRecord>,
    /// Records it dropped.
    pub dropped: Vec<SampleRecord>,
    /// Records that failed in it.
    pub failed: Vec<SampleRecord>,
}

/// One record, as a sample shows it.
#[derive(Debug, Clone, Serialize)]
pub struct SampleRecord {
    /// The record's id (or `EXPORT#N` for an export row).
    pub id: String,
    /// Its round, when it has one.
    pub round: Option<u32>,
    /// Why it was dropped or failed.
    pub reason: Option<String>,
    /// The field the step wrote, for kept records.
    pub field: Option<String>,
    /// The messages the step sent, as `(role, content)`.
    pub prompt: Vec<(String, String)>,
    /// The answer: the field's value, or the raw answer that could not be used.
    pub answer: Option<String>,
    /// The record's fields.
    pub record: Value,
}

/// The file to read for `path`: its `.partial` twin while a run writes it (or when a run was
/// stopped before renaming it), else the file itself; `None` when neither exists.
pub fn current_file(path: &Path) -> Option<(PathBuf, bool)> {
    let mut name = path.as_os_str().to_owned();
    name.push(".partial");
    let partial = PathBuf::from(name);
    let modified = |path: &Path| std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    match (modified(path), modified(&partial)) {
        (Some(done), Some(going)) if going >= done => Some((partial, true)),
        (Some(_), _) => Some((path.to_path_buf(), false)),
        (None, Some(_)) => Some((partial, true)),
        (None, None) => None,
    }
}

/// The exports of a run directory: every `NAME.jsonl` (or its partial) that is not lineage,
/// rejects or a round's file, sorted by name.
pub fn export_names(dir: &Path) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let file = file.strip_suffix(".partial").unwrap_or(&file);
        let Some(stem) = file.strip_suffix(".jsonl") else { continue };
        if stem.ends_with(".lineage") || stem == "dropped" || stem == "failed" {
            continue;
        }
        names.insert(stem.to_string());
    }
    names.into_iter().collect()
}

/// Calls `each` with every complete JSON line of a file (a last line still being written is
/// skipped, and so is a line that is not JSON), with its 0-based line number; stops when
/// `each` returns false.
pub fn for_each_line(path: &Path, mut each: impl FnMut(usize, Value) -> bool) -> Result<(), ReportError> {
    for_each_raw_line(path, |number, bytes| match serde_json::from_slice::<Value>(bytes) {
        Ok(value) => each(number, value),
        // A line that is not JSON (a file cut by a full disk) is skipped, not fatal.
        Err(_) => true,
    })
}

/// Calls `each` with the bytes of every complete line of a file, with its 0-based number.
pub fn for_each_raw_line(path: &Path, mut each: impl FnMut(usize, &[u8]) -> bool) -> Result<(), ReportError> {
    let file = std::fs::File::open(path).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|source| ReportError::Io { path: path.to_path_buf(), source })?;
        if read == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        if !each(number, &line) {
            return Ok(());
        }
        number += 1;
    }
}

/// Reads everything the report shows from `dir`.
pub fn collect(dir: &Path) -> Result<RunData, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NoRun { dir: dir.to_path_buf(), why: "it is not a directory".into() });
    }
    let status = retort_engine::status(dir).map_err(|error| ReportError::Status { dir: dir.to_path_buf(), message: error.to_string() })?;
    let identity = RunIdentity::read(dir);
    if status.is_none() && identity.is_none() {
        return Err(ReportError::NoRun { dir: dir.to_path_buf(), why: "there is no run.sqlite or run.json in it".into() });
    }
    let mut samples: BTreeMap<String, StepSamples> = BTreeMap::new();
    let mut exports = Vec::new();
    for name in export_names(dir) {
        if let Some(export) = summarize_export(dir, &name, &mut samples)? {
            exports.push(export);
        }
    }
    let mut dedup = DedupCollector::default();
    for (kind, file) in [("dropped", "dropped.jsonl"), ("failed", "failed.jsonl")] {
        let Some((path, _)) = current_file(&dir.join(file)) else { continue };
        for_each_line(&path, |_, line| {
            let step = line.get("step").and_then(Value::as_str).unwrap_or("?").to_string();
            let reason = line.get("reason").and_then(Value::as_str).unwrap_or("").to_string();
            if kind == "dropped" {
                dedup.add(&step, &reason);
            }
            let entry = samples.entry(step.clone()).or_insert_with(|| StepSamples { step: step.clone(), ..StepSamples::default() });
            let list = if kind == "dropped" { &mut entry.dropped } else { &mut entry.failed };
            if list.len() < SAMPLES_PER_KIND {
                list.push(reject_sample(&line, &step));
            }
            true
        })?;
    }
    // Samples in the order of the run's steps, then any step the status does not know.
    let mut ordered = Vec::new();
    if let Some(status) = &status {
        for step in &status.steps {
            if let Some(found) = samples.remove(&step.step) {
                ordered.push(found);
            }
        }
    }
    ordered.extend(samples.into_values());
    Ok(RunData {
        dir: dir.to_path_buf(),
        identity,
        status,
        exports,
        round_files: round_files(dir)?,
        dedup: dedup.finish(),
        metrics: metrics_files(dir),
        training: training_curves(dir),
        samples: ordered,
    })
}

fn summarize_export(dir: &Path, name: &str, samples: &mut BTreeMap<String, StepSamples>) -> Result<Option<ExportSummary>, ReportError> {
    let Some((file, partial)) = current_file(&dir.join(format!("{name}.jsonl"))) else { return Ok(None) };
    // Which step wrote which field, and the first rows' lineage for samples.
    let mut field_steps: BTreeMap<String, String> = BTreeMap::new();
    let mut lineages: Vec<Value> = Vec::new();
    if let Some((lineage_file, _)) = current_file(&dir.join(format!("{name}.lineage.jsonl"))) {
        for_each_line(&lineage_file, |number, line| {
            for entry in line.get("lineage").and_then(Value::as_array).into_iter().flatten() {
                if let (Some(field), Some(step)) = (entry.get("field").and_then(Value::as_str), entry.get("step").and_then(Value::as_str)) {
                    field_steps.entry(field.to_string()).or_insert_with(|| step.to_string());
                }
            }
            if number < SAMPLES_PER_KIND {
                lineages.push(line);
            }
            number < 1000
        })?;
    }
    let mut rows = 0u64;
    let mut per_round: BTreeMap<u32, u64> = BTreeMap::new();
    let mut fields: BTreeMap<String, FieldCollector> = BTreeMap::new();
    let mut margins = FieldCollector::default();
    let mut has_margin_field = false;
    let mut first_rows: Vec<Value> = Vec::new();
    for_each_line(&file, |number, row| {
        rows += 1;
        if let Some(round) = row.get("round").and_then(Value::as_u64) {
            *per_round.entry(round as u32).or_default() += 1;
        }
        if number < DISTRIBUTION_ROWS {
            if let Value::Object(map) = &row {
                for (key, value) in map {
                    if key == "round" || key == "id" {
                        continue;
                    }
                    fields.entry(key.clone()).or_default().add(value);
                }
                has_margin_field |= map.contains_key("margin");
                if let (Some(chosen), Some(rejected)) =
                    (map.get("chosen_score").and_then(Value::as_f64), map.get("rejected_score").and_then(Value::as_f64))
                {
                    margins.add_number(chosen - rejected);
                }
            }
        }
        if number < SAMPLES_PER_KIND {
            first_rows.push(row);
        }
        true
    })?;
    for (index, row) in first_rows.iter().enumerate() {
        let lineage = lineages.get(index).and_then(|line| line.get("lineage")).and_then(Value::as_array);
        for entry in lineage.into_iter().flatten() {
            let Some(step) = entry.get("step").and_then(Value::as_str) else { continue };
            let field = entry.get("field").and_then(Value::as_str).unwrap_or("");
            let slot = samples.entry(step.to_string()).or_insert_with(|| StepSamples { step: step.to_string(), ..StepSamples::default() });
            if slot.kept.len() >= SAMPLES_PER_KIND || slot.kept.iter().any(|kept| kept.id == format!("{name}#{}", index + 1)) {
                continue;
            }
            slot.kept.push(SampleRecord {
                id: format!("{name}#{}", index + 1),
                round: row.get("round").and_then(Value::as_u64).map(|round| round as u32),
                reason: None,
                field: Some(field.to_string()),
                prompt: prompt_of(entry),
                answer: row.get(field).map(text_of),
                record: cut_value(row),
            });
        }
    }
    let mut distributions = Vec::new();
    for (field, collector) in fields {
        let kind_hint = if field == "margin" { Some(FieldKind::Margin) } else { None };
        if let Some(mut distribution) = collector.finish(&field, kind_hint) {
            distribution.step = field_steps.get(&field).cloned();
            distributions.push(distribution);
        }
    }
    if !has_margin_field {
        if let Some(distribution) = margins.finish("chosen_score - rejected_score", Some(FieldKind::Margin)) {
            distributions.push(distribution);
        }
    }
    Ok(Some(ExportSummary {
        name: name.to_string(),
        file,
        partial,
        rows,
        rows_per_round: per_round.into_iter().collect(),
        fields: distributions,
    }))
}

fn prompt_of(lineage: &Value) -> Vec<(String, String)> {
    lineage
        .get("prompt")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|message| {
            let role = message.get("role").and_then(Value::as_str).unwrap_or("?").to_string();
            (role, cut(&message.get("content").map(text_of).unwrap_or_default()))
        })
        .collect()
}

fn reject_sample(line: &Value, step: &str) -> SampleRecord {
    let record = line.get("record").cloned().unwrap_or(Value::Null);
    let lineage = line.get("lineage").and_then(Value::as_array);
    // The prompt of the step that rejected it, else of the last step that asked a model.
    let entry = lineage
        .and_then(|entries| entries.iter().rev().find(|entry| entry.get("step").and_then(Value::as_str) == Some(step)))
        .or_else(|| lineage.and_then(|entries| entries.last()));
    let field = entry.and_then(|entry| entry.get("field")).and_then(Value::as_str).map(str::to_string);
    let answer = line
        .get("raw")
        .and_then(Value::as_str)
        .map(cut)
        .or_else(|| field.as_deref().and_then(|field| record.get(field)).map(|value| cut(&text_of(value))));
    SampleRecord {
        id: line.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
        round: line.get("round").or_else(|| record.get("round")).and_then(Value::as_u64).map(|round| round as u32),
        reason: line.get("reason").and_then(Value::as_str).map(cut),
        field,
        prompt: entry.map(prompt_of).unwrap_or_default(),
        answer,
        record: cut_value(&record),
    }
}

/// A value as text: a string as it is, anything else as JSON.
pub fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn cut(text: &str) -> String {
    if text.chars().count() <= SAMPLE_CHARS {
        return text.to_string();
    }
    let mut short: String = text.chars().take(SAMPLE_CHARS).collect();
    short.push_str(" […]");
    short
}

fn cut_value(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(cut(text)),
        Value::Array(items) => Value::Array(items.iter().take(50).map(cut_value).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(key, value)| (key.clone(), cut_value(value))).collect()),
        other => other.clone(),
    }
}

/// What a field's values look like so far.
#[derive(Default)]
struct FieldCollector {
    numbers: Vec<f64>,
    booleans: [u64; 2],
    words: Vec<f64>,
    turns: Vec<f64>,
    categories: BTreeMap<String, u64>,
    too_many_categories: bool,
    other: u64,
}

impl FieldCollector {
    fn add(&mut self, value: &Value) {
        match value {
            Value::Number(number) => self.add_number(number.as_f64().unwrap_or(0.0)),
            Value::Bool(flag) => self.booleans[usize::from(*flag)] += 1,
            Value::String(text) => {
                self.words.push(text.split_whitespace().count() as f64);
                if !self.too_many_categories {
                    if text.chars().count() > 40 {
                        self.too_many_categories = true;
                    } else {
                        *self.categories.entry(text.clone()).or_default() += 1;
                        self.too_many_categories = self.categories.len() > MAX_CATEGORIES;
                    }
                }
            }
            Value::Array(items) if items.iter().any(|item| item.get("role").is_some()) => self.turns.push(items.len() as f64),
            _ => self.other += 1,
        }
    }

    fn add_number(&mut self, number: f64) {
        if number.is_finite() {
            self.numbers.push(number);
        }
    }

    fn finish(self, field: &str, hint: Option<FieldKind>) -> Option<FieldDistribution> {
        let distribution = |kind, values: &[f64]| {
            let (bars, mean) = histogram(values);
            FieldDistribution { field: field.to_string(), kind, step: None, count: values.len() as u64, mean, bars }
        };
        if !self.numbers.is_empty() {
            return Some(distribution(hint.unwrap_or(FieldKind::Number), &self.numbers));
        }
        if self.booleans.iter().sum::<u64>() > 0 {
            return Some(FieldDistribution {
                field: field.to_string(),
                kind: FieldKind::Verdict,
                step: None,
                count: self.booleans.iter().sum(),
                mean: None,
                bars: vec![("true".into(), self.booleans[1]), ("false".into(), self.booleans[0])],
            });
        }
        if !self.turns.is_empty() {
            return Some(distribution(FieldKind::Turns, &self.turns));
        }
        if !self.words.is_empty() {
            let distinct = self.categories.len();
            // A few short values repeated over many rows: labels, not generated text.
            if !self.too_many_categories && distinct >= 1 && (self.words.len() as f64) >= 2.0 * distinct as f64 {
                let mut bars: Vec<(String, u64)> = self.categories.into_iter().collect();
                bars.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                return Some(FieldDistribution {
                    field: field.to_string(),
                    kind: FieldKind::Category,
                    step: None,
                    count: self.words.len() as u64,
                    mean: None,
                    bars,
                });
            }
            return Some(distribution(FieldKind::Words, &self.words));
        }
        None
    }
}

/// Bars of a histogram of `values` and their mean: one bar per integer when the values are
/// integers over at most 20 of them, else 20 equal bins.
pub fn histogram(values: &[f64]) -> (Vec<(String, u64)>, Option<f64>) {
    if values.is_empty() {
        return (Vec::new(), None);
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let integers = values.iter().all(|value| value.fract() == 0.0);
    if integers && max - min <= 20.0 {
        let mut counts = vec![0u64; (max - min) as usize + 1];
        for value in values {
            counts[(value - min) as usize] += 1;
        }
        let bars = counts.into_iter().enumerate().map(|(offset, count)| (format!("{}", min as i64 + offset as i64), count)).collect();
        return (bars, Some(mean));
    }
    const BINS: usize = 20;
    let width = (max - min) / BINS as f64;
    if width <= 0.0 {
        return (vec![(short_number(min), values.len() as u64)], Some(mean));
    }
    let mut counts = [0u64; BINS];
    for value in values {
        counts[(((value - min) / width) as usize).min(BINS - 1)] += 1;
    }
    let bars = counts.iter().enumerate().map(|(bin, count)| (short_number(min + width * bin as f64), *count)).collect();
    (bars, Some(mean))
}

/// A number in at most four significant digits.
pub fn short_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e9 {
        return format!("{}", value as i64);
    }
    let text = format!("{value:.4}");
    let text = if value.abs() >= 100.0 { format!("{value:.1}") } else { text };
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[derive(Default)]
struct DedupCollector {
    removed: u64,
    clusters: BTreeMap<(String, u64), (u64, String)>,
    similarities: Vec<f64>,
}

impl DedupCollector {
    fn add(&mut self, step: &str, reason: &str) {
        let Some(rest) = reason.strip_prefix("dedup: ") else { return };
        let pattern = regex_kept();
        let Some(found) = pattern.captures(rest) else { return };
        self.removed += 1;
        let kept: u64 = found[1].parse().unwrap_or(0);
        if let Some(similarity) = found.get(2).and_then(|value| value.as_str().parse::<f64>().ok()) {
            if self.similarities.len() < DISTRIBUTION_ROWS {
                self.similarities.push(similarity);
            }
        }
        let cluster = self.clusters.entry((step.to_string(), kept)).or_insert_with(|| (0, cut(reason)));
        cluster.0 += 1;
    }

    fn finish(self) -> DedupSummary {
        let mut sizes: BTreeMap<u64, u64> = BTreeMap::new();
        for (removed, _) in self.clusters.values() {
            *sizes.entry(removed + 1).or_default() += 1;
        }
        let mut largest: Vec<DedupCluster> =
            self.clusters.into_iter().map(|((step, kept), (removed, example))| DedupCluster { step, kept, removed, example }).collect();
        largest.sort_by(|a, b| b.removed.cmp(&a.removed).then_with(|| a.kept.cmp(&b.kept)));
        largest.truncate(10);
        DedupSummary {
            removed: self.removed,
            cluster_sizes: sizes.into_iter().collect(),
            largest,
            similarity: histogram(&self.similarities).0,
        }
    }
}

fn regex_kept() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| regex::Regex::new(r"kept record #(\d+)(?: \(similarity ([0-9.]+))?").expect("valid pattern"))
}

fn round_files(dir: &Path) -> Result<Vec<(u32, u64)>, ReportError> {
    let mut rounds = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("rounds")) else { return Ok(rounds) };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(round) = name.strip_prefix("round-").and_then(|rest| rest.strip_suffix(".jsonl")).and_then(|k| k.parse::<u32>().ok())
        else {
            continue;
        };
        let mut rows = 0;
        for_each_line(&entry.path(), |_, _| {
            rows += 1;
            true
        })?;
        rounds.push((round, rows));
    }
    rounds.sort();
    Ok(rounds)
}

/// `NAME-round-K` → (`NAME`, K).
fn split_round(stem: &str) -> (String, Option<u32>) {
    if let Some((name, round)) = stem.rsplit_once("-round-") {
        if let Ok(round) = round.parse() {
            return (name.to_string(), Some(round));
        }
    }
    (stem.to_string(), None)
}

fn metrics_files(dir: &Path) -> Vec<MetricsFile> {
    let mut files = Vec::new();
    let mut add = |path: PathBuf, name: String, round: Option<u32>| {
        let Ok(bytes) = std::fs::read(&path) else { return };
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else { return };
        let mut values = Vec::new();
        flatten("", &value, &mut values);
        if !values.is_empty() {
            files.push(MetricsFile { name, round, file: path, values });
        }
    };
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.flatten().map(|entry| entry.path()).collect();
        paths.sort();
        for path in paths {
            let file = path.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default();
            let Some(stem) = file.strip_suffix(".json") else { continue };
            if file == retort_engine::RUN_FILE {
                continue;
            }
            let (name, round) = split_round(stem);
            add(path.clone(), name, round);
        }
    }
    for (round, label, folder) in trainer_folders(dir) {
        add(folder.join("report.json"), format!("train{label}"), Some(round));
    }
    files.sort_by(|a, b| a.name.cmp(&b.name).then(a.round.cmp(&b.round)));
    files
}

fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&path, value, out);
            }
        }
        Value::Number(_) | Value::Bool(_) => out.push((prefix.to_string(), value.clone())),
        Value::String(text) if text.chars().count() <= 80 => out.push((prefix.to_string(), value.clone())),
        _ => {}
    }
}

/// Every trainer's folder: `rounds/round-N/` or `rounds/round-N/NAME/`, holding `report.json`.
fn trainer_folders(dir: &Path) -> Vec<(u32, String, PathBuf)> {
    let mut folders = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir.join("rounds")) else { return folders };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(round) = name.strip_prefix("round-").and_then(|k| k.parse::<u32>().ok()) else { continue };
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.join("report.json").exists() || path.join("train-log.jsonl").exists() {
            folders.push((round, String::new(), path.clone()));
        }
        for inner in std::fs::read_dir(&path).into_iter().flatten().flatten() {
            let inner_path = inner.path();
            if inner_path.is_dir() && (inner_path.join("report.json").exists() || inner_path.join("train-log.jsonl").exists()) {
                folders.push((round, format!(" / {}", inner.file_name().to_string_lossy()), inner_path));
            }
        }
    }
    folders.sort();
    folders
}

fn training_curves(dir: &Path) -> Vec<TrainingCurve> {
    let mut curves = Vec::new();
    for (round, label, folder) in trainer_folders(dir) {
        let mut points = Vec::new();
        let _ = for_each_line(&folder.join("train-log.jsonl"), |_, line| {
            if let (Some(step), Some(loss)) = (line.get("step").and_then(Value::as_f64), line.get("loss").and_then(Value::as_f64)) {
                points.push((step, loss));
            }
            points.len() < 10_000
        });
        if !points.is_empty() {
            curves.push(TrainingCurve { label: format!("round {round}{label}"), points });
        }
    }
    curves
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values, and the bars expected of them.
    type HistogramCase<'a> = (&'a [f64], &'a [(&'a str, u64)]);

    #[test]
    fn histograms_count_every_value_once() {
        let cases: &[HistogramCase] = &[
            (&[1.0, 2.0, 2.0, 5.0], &[("1", 1), ("2", 2), ("3", 0), ("4", 0), ("5", 1)]),
            (&[3.0, 3.0], &[("3", 2)]),
            (&[0.5, 0.5], &[("0.5", 2)]),
        ];
        for (values, expected) in cases {
            let (bars, _) = histogram(values);
            let bars: Vec<(&str, u64)> = bars.iter().map(|(label, count)| (label.as_str(), *count)).collect();
            assert_eq!(&bars, expected, "values {values:?}");
        }
        let spread: Vec<f64> = (0..1000).map(|i| i as f64 / 7.0).collect();
        let (bars, mean) = histogram(&spread);
        assert_eq!(bars.len(), 20);
        assert_eq!(bars.iter().map(|bar| bar.1).sum::<u64>(), 1000);
        assert!((mean.unwrap() - 999.0 / 14.0).abs() < 1e-9);
    }

    #[test]
    fn dedup_reasons_make_clusters() {
        let mut collector = DedupCollector::default();
        for reason in [
            "dedup: near-duplicate kept record #3 (similarity 0.91; \"a\")",
            "dedup: same meaning as kept record #3 (similarity 0.95; \"b\")",
            "dedup: exact duplicate kept record #7 (similarity 1.00; \"c\")",
            "filter: too short",
        ] {
            collector.add("steps[2].dedup", reason);
        }
        let summary = collector.finish();
        assert_eq!(summary.removed, 3);
        assert_eq!(summary.cluster_sizes, vec![(2, 1), (3, 1)]);
        assert_eq!((summary.largest[0].kept, summary.largest[0].removed), (3, 2));
    }

    #[test]
    fn a_line_being_written_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        std::fs::write(&path, "{\"a\": 1}\nnot json\n{\"a\": 2}\n{\"a\": 3").unwrap();
        let mut seen = Vec::new();
        for_each_line(&path, |_, value| {
            seen.push(value["a"].as_i64().unwrap());
            true
        })
        .unwrap();
        assert_eq!(seen, vec![1, 2]);
    }
}
