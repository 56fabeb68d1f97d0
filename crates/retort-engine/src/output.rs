//! Finishing a run's outputs: Parquet from the exported JSONL, and the dataset card.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_json::reader::{infer_json_schema_from_seekable, ReaderBuilder};
use parquet::arrow::ArrowWriter;

use serde::Deserialize;

use crate::error::EngineError;
use crate::stats::StepSnapshot;

/// An output file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// One JSON object per line.
    Jsonl,
    /// Apache Parquet, columns inferred from the records.
    Parquet,
}

/// The shape of each written row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    /// The record's fields as they are (or those named in `fields`).
    #[default]
    Records,
    /// `{"messages": [...]}` for supervised fine-tuning.
    Sft,
    /// `{"prompt", "chosen", "rejected"}` for preference training (DPO).
    Dpo,
    /// `{"conversations": [{"from", "value"}, ...]}`: ShareGPT turns (ToolBench, AgentTuning).
    Sharegpt,
}

/// An export's files, known to the run so it can finish them.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct ExportTarget {
    /// The files' stem.
    pub name: String,
    /// The shape written.
    pub shape: Shape,
    /// The formats asked for.
    pub formats: Vec<OutputFormat>,
    /// The JSONL data file (always written; Parquet is made from it).
    pub jsonl: PathBuf,
    /// The lineage file, when written.
    pub lineage: Option<PathBuf>,
    /// The Parquet schema of an export with no rows.
    #[serde(skip)]
    pub empty_schema: Arc<arrow_schema::Schema>,
}

/// Where a file is written until it is complete; renamed over the final name at the end, so
/// a run killed or out of disk never leaves a half-written file under the final name.
pub(crate) fn partial(path: &std::path::Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

/// Writes `parquet_path` from the rows of `jsonl`: two passes (schema inference, then
/// batches), flat memory. With no rows it writes `empty_schema` and no rows, so readers still
/// see the columns.
pub(crate) fn jsonl_to_parquet(jsonl: &Path, parquet_path: &Path, empty_schema: &Arc<arrow_schema::Schema>) -> Result<(), EngineError> {
    let parquet_path = parquet_path.to_path_buf();
    let error = |message: String| EngineError::Export { path: parquet_path.clone(), message };
    let file = File::open(jsonl).map_err(EngineError::io("open", jsonl))?;
    let mut reader = BufReader::new(file);
    let empty = reader.fill_buf().map(|buffer| buffer.is_empty()).unwrap_or(true);
    let schema = if empty {
        empty_schema.clone()
    } else {
        let (schema, _) = infer_json_schema_from_seekable(&mut reader, None).map_err(|e| error(format!("inferring columns: {e}")))?;
        reader.rewind().map_err(EngineError::io("read", jsonl))?;
        Arc::new(schema)
    };
    let json_reader =
        ReaderBuilder::new(schema.clone()).with_batch_size(4096).build(reader).map_err(|e| error(format!("reading rows: {e}")))?;
    let output = File::create(&parquet_path).map_err(EngineError::io("create", &parquet_path))?;
    let properties = parquet::file::properties::WriterProperties::builder().set_compression(parquet::basic::Compression::SNAPPY).build();
    let mut writer = ArrowWriter::try_new(output, schema, Some(properties)).map_err(|e| error(e.to_string()))?;
    for batch in json_reader {
        let batch = batch.map_err(|e| error(format!("reading rows: {e}")))?;
        writer.write(&batch).map_err(|e| error(e.to_string()))?;
    }
    writer.close().map_err(|e| error(e.to_string()))?;
    Ok(())
}

/// Counts the lines of a JSONL file.
pub(crate) fn count_rows(path: &Path) -> u64 {
    use std::io::Read;
    // Counted in 64 KiB pieces without building the lines: a finished million-row run is
    // checked in a fraction of a second. A last line without a newline counts, as with `lines()`.
    let Ok(mut file) = File::open(path) else { return 0 };
    let mut buffer = vec![0u8; 1 << 16];
    let (mut rows, mut last) = (0u64, b'\n');
    loop {
        match file.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                rows += buffer[..read].iter().filter(|byte| **byte == b'\n').count() as u64;
                last = buffer[read - 1];
            }
        }
    }
    rows + u64::from(last != b'\n')
}

/// Finishes every export: Parquet where asked, then each file renamed from its partial name
/// to its final one. Returns the files written.
///
/// The Parquet file is made from the partial JSONL before anything is renamed, and a stale
/// Parquet file of an earlier run is removed before the new JSONL takes its name, so a full
/// disk or a kill at any point never leaves a Parquet file that disagrees with the JSONL.
pub(crate) fn finish_exports(targets: &[ExportTarget]) -> Result<Vec<PathBuf>, EngineError> {
    let mut files = Vec::new();
    for target in targets {
        let data = partial(&target.jsonl);
        if !data.exists() {
            continue;
        }
        let parquet = target.jsonl.with_extension("parquet");
        if target.formats.contains(&OutputFormat::Parquet) {
            jsonl_to_parquet(&data, &partial(&parquet), &target.empty_schema)?;
        }
        remove_if_present(&parquet)?;
        rename(&data, &target.jsonl)?;
        files.push(target.jsonl.clone());
        if target.formats.contains(&OutputFormat::Parquet) {
            rename(&partial(&parquet), &parquet)?;
            files.push(parquet);
        }
        if let Some(lineage) = &target.lineage {
            if partial(lineage).exists() {
                rename(&partial(lineage), lineage)?;
            }
            files.push(lineage.clone());
        }
    }
    Ok(files)
}

/// Renames a finished file over its final name (atomic on one file system).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<(), EngineError> {
    std::fs::rename(from, to).map_err(EngineError::io("rename", from))
}

fn remove_if_present(path: &Path) -> Result<(), EngineError> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
            Err(EngineError::Io { op: "remove", path: path.to_path_buf(), source: error })
        }
        _ => Ok(()),
    }
}

/// Writes a whole small file under a partial name, then renames it over `path`.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let temporary = partial(path);
    std::fs::write(&temporary, bytes).map_err(EngineError::io("write", &temporary))?;
    rename(&temporary, path)
}

/// A JSON object written with chat messages in one field order: any object with `role` and
/// `content` is written `role`, `content`, then its other keys, at any depth. Hugging Face
/// `datasets` cannot concatenate two struct columns whose fields come in different orders,
/// and a message built as a struct and one built as a map would otherwise differ.
pub(crate) struct CanonicalMap<'a>(pub &'a serde_json::Map<String, serde_json::Value>);

struct Canonical<'a>(&'a serde_json::Value);

impl serde::Serialize for CanonicalMap<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let map = self.0;
        let mut out = serializer.serialize_map(Some(map.len()))?;
        let is_message = map.contains_key("role") && map.contains_key("content");
        if is_message {
            out.serialize_entry("role", &Canonical(&map["role"]))?;
            out.serialize_entry("content", &Canonical(&map["content"]))?;
        }
        for (key, value) in map {
            if is_message && (key == "role" || key == "content") {
                continue;
            }
            out.serialize_entry(key, &Canonical(value))?;
        }
        out.end()
    }
}

impl serde::Serialize for Canonical<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        match self.0 {
            serde_json::Value::Object(map) => CanonicalMap(map).serialize(serializer),
            serde_json::Value::Array(items) => {
                let mut out = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Canonical(item))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

/// What the dataset card says.
pub(crate) struct CardFacts<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub paper: Option<&'a str>,
    pub models: Vec<String>,
    pub seed: u64,
    pub targets: &'a [ExportTarget],
    pub steps: &'a [StepSnapshot],
    pub state: &'a str,
}

/// Writes `README.md`, a Hugging Face-style dataset card, into the run directory.
pub(crate) fn write_card(dir: &Path, facts: &CardFacts<'_>) -> Result<PathBuf, EngineError> {
    let mut card = String::new();
    // The main data is the default config, so `datasets.load_dataset(RUN_DIR)` loads it: the
    // export named `data`, else the first.
    let default = facts.targets.iter().position(|target| target.name == "data").unwrap_or(0);
    let configs: Vec<String> = facts
        .targets
        .iter()
        .enumerate()
        .map(|(index, target)| {
            let mark = if index == default { "\n  default: true" } else { "" };
            format!("- config_name: {}\n  data_files: {}.jsonl{mark}", target.name, target.name)
        })
        .collect();
    card.push_str(&format!("---\nconfigs:\n{}\ntags:\n- synthetic\n- retort\n---\n\n", configs.join("\n")));
    card.push_str(&format!("# {}\n\n", facts.name));
    if !facts.description.is_empty() {
        card.push_str(&format!("{}\n\n", facts.description.trim()));
    }
    if let Some(paper) = facts.paper {
        card.push_str(&format!("Method: {paper}\n\n"));
    }
    card.push_str(&format!(
        "Generated by retort with {} (run seed {}). Run state: {}.\n\n",
        if facts.models.is_empty() { "no model".to_string() } else { facts.models.join(", ") },
        facts.seed,
        facts.state
    ));
    card.push_str("## Files\n\n| file | shape | rows |\n|---|---|---|\n");
    for target in facts.targets {
        let rows = count_rows(&target.jsonl);
        let shape = serde_json::to_value(target.shape).ok().and_then(|value| value.as_str().map(str::to_string)).unwrap_or_default();
        card.push_str(&format!("| {}.jsonl | {shape} | {rows} |\n", target.name));
        if target.formats.contains(&OutputFormat::Parquet) {
            card.push_str(&format!("| {}.parquet | {shape} | {rows} |\n", target.name));
        }
    }
    card.push_str("\nEach data file has a `NAME.lineage.jsonl` beside it, line for line: the record's id and, for every generated field, the step, backend, model, the exact messages sent, the sampling parameters and seed, and the key of the answer in `run.sqlite`. Records that failed are in `failed.jsonl` with their reasons; records removed on purpose are in `dropped.jsonl`.\n\n");
    card.push_str("## Steps\n\n| step | in | out | dropped | failed | requests | cached | tokens in | tokens out |\n|---|---|---|---|---|---|---|---|---|\n");
    for step in facts.steps {
        card.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            step.step,
            step.records_in,
            step.out,
            step.dropped,
            step.failed,
            step.requests,
            step.cached,
            step.prompt_tokens,
            step.completion_tokens
        ));
    }
    let reasons: Vec<String> = facts
        .steps
        .iter()
        .flat_map(|step| step.reasons.iter().map(move |(reason, count)| format!("- {}: {reason} ({count})", step.step)))
        .collect();
    if !reasons.is_empty() {
        card.push_str(&format!("\n## Why records were dropped or failed\n\n{}\n", reasons.join("\n")));
    }
    let path = dir.join("README.md");
    write_atomically(&path, card.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 11): a full disk while writing Parquet left a corrupt `data.parquet`
    /// beside a complete `data.jsonl`. The files of a run replace those of the last one only
    /// once all of them are written.
    #[test]
    fn a_failed_parquet_write_leaves_the_earlier_files_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        let jsonl = dir.path().join("data.jsonl");
        std::fs::write(&jsonl, "{\"old\": 1}\n").unwrap();
        std::fs::write(dir.path().join("data.parquet"), "old parquet").unwrap();
        std::fs::write(partial(&jsonl), "{\"new\": 1}\n{\"new\": 2}\n").unwrap();
        // A directory where the new Parquet file would go: writing it fails, as on a full disk.
        std::fs::create_dir(partial(&dir.path().join("data.parquet"))).unwrap();
        let target = ExportTarget {
            name: "data".into(),
            shape: Shape::Records,
            formats: vec![OutputFormat::Jsonl, OutputFormat::Parquet],
            jsonl: jsonl.clone(),
            lineage: None,
            empty_schema: Arc::new(arrow_schema::Schema::empty()),
        };
        assert!(finish_exports(std::slice::from_ref(&target)).is_err());
        assert_eq!(std::fs::read_to_string(&jsonl).unwrap(), "{\"old\": 1}\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("data.parquet")).unwrap(), "old parquet");
        // Once the disk has room again, finishing replaces both.
        std::fs::remove_dir(partial(&dir.path().join("data.parquet"))).unwrap();
        finish_exports(&[target]).unwrap();
        assert_eq!(count_rows(&jsonl), 2);
        assert!(!partial(&jsonl).exists());
    }
}
