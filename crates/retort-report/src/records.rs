//! Every record of a run directory, kept, dropped or failed, as the viewer lists them: found
//! by status, step, round and words, and shown one at a time with its lineage.
//!
//! Records are read from the files as they are on disk (the `.partial` ones while a run
//! writes them), one line at a time: nothing is loaded whole.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::collect::{current_file, export_names, for_each_line, for_each_raw_line, text_of};
use crate::ReportError;

/// Where a record stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A row of an export.
    Kept,
    /// In `dropped.jsonl`.
    Dropped,
    /// In `failed.jsonl`.
    Failed,
}

/// One file of records.
#[derive(Debug, Clone, Serialize)]
pub struct Source {
    /// `data` (an export's stem), `dropped` or `failed`.
    pub name: String,
    /// What its records are.
    pub kind: Kind,
    /// The file read.
    pub file: PathBuf,
    /// The export's lineage file, for kept rows.
    #[serde(skip)]
    pub lineage: Option<PathBuf>,
    /// Whether it is still being written.
    pub partial: bool,
}

/// The record files of a run directory: exports first, then dropped, then failed.
pub fn sources(dir: &Path) -> Vec<Source> {
    let mut sources = Vec::new();
    for name in export_names(dir) {
        let Some((file, partial)) = current_file(&dir.join(format!("{name}.jsonl"))) else { continue };
        let lineage = current_file(&dir.join(format!("{name}.lineage.jsonl"))).map(|(path, _)| path);
        sources.push(Source { name, kind: Kind::Kept, file, lineage, partial });
    }
    for (name, kind) in [("dropped", Kind::Dropped), ("failed", Kind::Failed)] {
        if let Some((file, partial)) = current_file(&dir.join(format!("{name}.jsonl"))) {
            sources.push(Source { name: name.to_string(), kind, file, lineage: None, partial });
        }
    }
    sources
}

/// Which records to list.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Query {
    /// `kept`, `dropped` or `failed`; all when absent.
    pub status: Option<Kind>,
    /// A step path: for dropped and failed records, the step that rejected them; for kept
    /// rows, a step that generated one of their fields.
    pub step: Option<String>,
    /// The round (the records' `round` field).
    pub round: Option<u32>,
    /// Words that must all appear somewhere in the record (any case).
    pub q: Option<String>,
    /// Matches to skip.
    #[serde(default)]
    pub offset: usize,
    /// Matches to return (at most 200; default 50).
    pub limit: Option<usize>,
}

/// One line of the list.
#[derive(Debug, Clone, Serialize)]
pub struct ListItem {
    /// `SOURCE:LINE`, for `/api/record/SOURCE/LINE`.
    pub source: String,
    /// The 0-based line in its file.
    pub line: usize,
    /// Kept, dropped or failed.
    pub kind: Kind,
    /// The step that rejected it (dropped, failed).
    pub step: Option<String>,
    /// Its round.
    pub round: Option<u32>,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The start of its most telling text field.
    pub preview: String,
}

/// A page of the list, with how many records match in all.
#[derive(Debug, Clone, Serialize)]
pub struct Page {
    /// The matches from `offset`.
    pub items: Vec<ListItem>,
    /// Every match.
    pub total: usize,
}

/// One record, whole.
#[derive(Debug, Clone, Serialize)]
pub struct RecordView {
    /// Its file's name.
    pub source: String,
    /// Its line.
    pub line: usize,
    /// Kept, dropped or failed.
    pub kind: Kind,
    /// Its id, when the file gives it.
    pub id: Option<String>,
    /// The step that rejected it.
    pub step: Option<String>,
    /// Why.
    pub reason: Option<String>,
    /// The raw model answer that could not be used.
    pub raw: Option<String>,
    /// Its fields.
    pub fields: Value,
    /// How each generated field was made: the messages sent, parameters and seed.
    pub lineage: Value,
}

/// A record's round: its `round` field, or the round a reject line says it was rejected in.
fn round_of(kind: Kind, line: &Value, fields: &Value) -> Option<u32> {
    let from_line = if kind == Kind::Kept { None } else { line.get("round") };
    from_line.or_else(|| fields.get("round")).and_then(Value::as_u64).map(|round| round as u32)
}

/// The parts of a line the list needs, whatever file it came from.
fn parts(kind: Kind, line: &Value) -> (Option<String>, Option<String>, &Value) {
    match kind {
        Kind::Kept => (None, None, line),
        Kind::Dropped | Kind::Failed => (
            line.get("step").and_then(Value::as_str).map(str::to_string),
            line.get("reason").and_then(Value::as_str).map(str::to_string),
            line.get("record").unwrap_or(&Value::Null),
        ),
    }
}

/// The record's fields that say most: the first of the usual names, else the first text.
fn preview(fields: &Value) -> String {
    const NAMES: &[&str] = &["instruction", "prompt", "question", "query", "task", "topic", "messages", "conversations", "text"];
    let pick = NAMES
        .iter()
        .find_map(|name| fields.get(*name))
        .or_else(|| fields.as_object().and_then(|map| map.values().find(|value| value.is_string())));
    let text = match pick {
        Some(Value::Array(messages)) => {
            messages.iter().find_map(|message| message.get("content").or(message.get("value"))).map(text_of).unwrap_or_default()
        }
        Some(value) => text_of(value),
        None => fields.to_string(),
    };
    let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(160).collect()
}

/// Lists the records that match `query`.
pub fn list(dir: &Path, query: &Query) -> Result<Page, ReportError> {
    let limit = query.limit.unwrap_or(50).min(200);
    let words: Vec<String> = query.q.as_deref().unwrap_or("").split_whitespace().map(str::to_lowercase).collect();
    let mut items = Vec::new();
    let mut total = 0;
    for source in sources(dir) {
        if query.status.is_some_and(|status| status != source.kind) {
            continue;
        }
        // Kept rows carry their steps in the lineage file, line for line.
        let kept_steps = match (&query.step, source.kind, &source.lineage) {
            (Some(_), Kind::Kept, Some(lineage)) => Some(lineage_steps(lineage)?),
            (Some(_), Kind::Kept, None) => Some(Vec::new()),
            _ => None,
        };
        // Lines are parsed only where a filter needs their fields or the page shows them.
        let parse_all = query.step.is_some() || query.round.is_some();
        for_each_raw_line(&source.file, |line_number, bytes| {
            if !words.is_empty() {
                let text = String::from_utf8_lossy(bytes).to_lowercase();
                if !words.iter().all(|word| text.contains(word.as_str())) {
                    return true;
                }
            }
            let needed = parse_all || (total >= query.offset && items.len() < limit);
            let line = if needed {
                match serde_json::from_slice::<Value>(bytes) {
                    Ok(line) => Some(line),
                    Err(_) => return true,
                }
            } else {
                None
            };
            if let Some(line) = &line {
                let (step, _, fields) = parts(source.kind, line);
                if let Some(wanted) = &query.step {
                    let matches = match &kept_steps {
                        Some(steps) => steps.get(line_number).is_some_and(|steps| steps.iter().any(|step| step == wanted)),
                        None => step.as_deref() == Some(wanted.as_str()),
                    };
                    if !matches {
                        return true;
                    }
                }
                if query.round.is_some() && round_of(source.kind, line, fields) != query.round {
                    return true;
                }
            }
            total += 1;
            if total > query.offset && items.len() < limit {
                let Some(line) = &line else { return true };
                let (step, reason, fields) = parts(source.kind, line);
                items.push(ListItem {
                    source: source.name.clone(),
                    line: line_number,
                    kind: source.kind,
                    step,
                    round: round_of(source.kind, line, fields),
                    reason,
                    preview: preview(fields),
                });
            }
            true
        })?;
    }
    Ok(Page { items, total })
}

/// The steps named in each line of a lineage file.
fn lineage_steps(path: &Path) -> Result<Vec<Vec<String>>, ReportError> {
    let mut steps = Vec::new();
    for_each_line(path, |_, line| {
        let named = line
            .get("lineage")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get("step").and_then(Value::as_str).map(str::to_string))
            .collect();
        steps.push(named);
        true
    })?;
    Ok(steps)
}

/// The line `line` of a file, if it has one.
fn nth_line(path: &Path, wanted: usize) -> Result<Option<Value>, ReportError> {
    let mut found = None;
    for_each_line(path, |number, line| {
        if number == wanted {
            found = Some(line);
            return false;
        }
        true
    })?;
    Ok(found)
}

/// One record with its lineage; `None` when the source or the line does not exist.
pub fn record(dir: &Path, source_name: &str, line: usize) -> Result<Option<RecordView>, ReportError> {
    let Some(source) = sources(dir).into_iter().find(|source| source.name == source_name) else { return Ok(None) };
    let Some(value) = nth_line(&source.file, line)? else { return Ok(None) };
    let (step, reason, fields) = parts(source.kind, &value);
    let lineage = match (&source.kind, &source.lineage) {
        (Kind::Kept, Some(path)) => nth_line(path, line)?.and_then(|line| line.get("lineage").cloned()).unwrap_or(Value::Null),
        (Kind::Kept, None) => Value::Null,
        _ => value.get("lineage").cloned().unwrap_or(Value::Null),
    };
    Ok(Some(RecordView {
        source: source.name.clone(),
        line,
        kind: source.kind,
        id: value.get("id").and_then(Value::as_str).map(str::to_string),
        step,
        reason,
        raw: value.get("raw").and_then(Value::as_str).map(str::to_string),
        fields: fields.clone(),
        lineage,
    }))
}

/// Lines in a file, counted from where the last count stopped while the file only grows.
#[derive(Default)]
pub struct LineCounter {
    known: std::collections::HashMap<PathBuf, (u64, u64)>,
}

impl LineCounter {
    /// Complete lines in `path` now.
    pub fn count(&mut self, path: &Path) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(path) else { return 0 };
        let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
        let (mut offset, mut lines) = self.known.get(path).copied().unwrap_or((0, 0));
        if length < offset {
            (offset, lines) = (0, 0);
        }
        if file.seek(SeekFrom::Start(offset)).is_err() {
            return lines;
        }
        let mut buffer = vec![0u8; 1 << 16];
        let mut last_newline = offset;
        let mut position = offset;
        while let Ok(read) = file.read(&mut buffer) {
            if read == 0 {
                break;
            }
            for (index, byte) in buffer[..read].iter().enumerate() {
                if *byte == b'\n' {
                    lines += 1;
                    last_newline = position + index as u64 + 1;
                }
            }
            position += read as u64;
        }
        self.known.insert(path.to_path_buf(), (last_newline, lines));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("data.jsonl", "{\"prompt\": \"add two and two\", \"answer\": \"4\", \"round\": 1}\n{\"prompt\": \"name a colour\", \"answer\": \"red\", \"round\": 2}\n");
        write(
            "data.lineage.jsonl",
            "{\"id\": \"a\", \"lineage\": [{\"field\": \"answer\", \"step\": \"steps[1].generate\"}]}\n{\"id\": \"b\", \"lineage\": [{\"field\": \"answer\", \"step\": \"steps[2].generate\"}]}\n",
        );
        write("dropped.jsonl", "{\"id\": \"c\", \"status\": \"dropped\", \"step\": \"steps[3].filter\", \"reason\": \"too short\", \"round\": 1, \"record\": {\"prompt\": \"hi\"}}\n");
        write("failed.jsonl.partial", "{\"id\": \"d\", \"status\": \"failed\", \"step\": \"steps[1].generate\", \"reason\": \"no JSON\", \"raw\": \"<script>x</script>\", \"record\": {\"prompt\": \"colour of the sky\"}}\n{\"id\": \"e\"");
        dir
    }

    #[test]
    fn queries_select_by_status_step_round_and_words() {
        let dir = run_dir();
        let cases: &[(Query, &[&str])] = &[
            (Query::default(), &["data:0", "data:1", "dropped:0", "failed:0"]),
            (Query { status: Some(Kind::Kept), ..Query::default() }, &["data:0", "data:1"]),
            (Query { step: Some("steps[2].generate".into()), ..Query::default() }, &["data:1"]),
            (Query { step: Some("steps[1].generate".into()), ..Query::default() }, &["data:0", "failed:0"]),
            (Query { round: Some(1), ..Query::default() }, &["data:0", "dropped:0"]),
            (Query { q: Some("COLOUR".into()), ..Query::default() }, &["data:1", "failed:0"]),
            (Query { q: Some("colour sky".into()), ..Query::default() }, &["failed:0"]),
            (Query { offset: 3, ..Query::default() }, &["failed:0"]),
        ];
        for (query, expected) in cases {
            let page = list(dir.path(), query).unwrap();
            let got: Vec<String> = page.items.iter().map(|item| format!("{}:{}", item.source, item.line)).collect();
            assert_eq!(got, *expected, "{query:?}");
        }
        assert_eq!(list(dir.path(), &Query { offset: 3, ..Query::default() }).unwrap().total, 4);
    }

    #[test]
    fn a_record_comes_with_its_lineage() {
        let dir = run_dir();
        let kept = record(dir.path(), "data", 1).unwrap().unwrap();
        assert_eq!(kept.lineage[0]["step"], "steps[2].generate");
        let failed = record(dir.path(), "failed", 0).unwrap().unwrap();
        assert_eq!((failed.reason.as_deref(), failed.raw.as_deref()), (Some("no JSON"), Some("<script>x</script>")));
        assert!(record(dir.path(), "failed", 1).unwrap().is_none(), "a line still being written is not a record");
    }

    #[test]
    fn line_counts_follow_a_growing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.jsonl");
        let mut counter = LineCounter::default();
        std::fs::write(&path, "{}\n{}\n{").unwrap();
        assert_eq!(counter.count(&path), 2);
        std::fs::write(&path, "{}\n{}\n{}\n{}\n").unwrap();
        assert_eq!(counter.count(&path), 4);
        std::fs::write(&path, "{}\n").unwrap();
        assert_eq!(counter.count(&path), 1);
    }
}
