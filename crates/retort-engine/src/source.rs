//! Reading records from files: JSONL, JSON, CSV, Parquet and plain text, streamed where the format allows.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::EngineError;

/// A file format for records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// One JSON value per line.
    Jsonl,
    /// One JSON array of values.
    Json,
    /// Comma-separated values with a header row; values read as strings.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// One record per non-empty line, in the field `text`.
    Text,
}

impl Format {
    /// The format a file's extension names (`.jsonl`, `.ndjson`, `.json`, `.csv`, `.tsv`, `.parquet`, `.txt`).
    pub fn from_path(path: &Path) -> Option<Format> {
        let extension = path.extension()?.to_str()?.to_ascii_lowercase();
        let extension = if extension == "gz" { return None } else { extension };
        Some(match extension.as_str() {
            "jsonl" | "ndjson" => Format::Jsonl,
            "json" => Format::Json,
            "csv" | "tsv" => Format::Csv,
            "parquet" => Format::Parquet,
            "txt" | "text" => Format::Text,
            _ => return None,
        })
    }
}

/// The records of a file, one at a time; each error names the line or row.
pub(crate) type Records = Box<dyn Iterator<Item = Result<Map<String, Value>, String>> + Send>;

/// Opens a file of records. A value that is not an object becomes `{text_field: value}`.
pub(crate) fn open(path: &Path, format: Format, text_field: &str) -> Result<Records, EngineError> {
    let file = File::open(path).map_err(EngineError::io("open", path))?;
    let text_field = text_field.to_string();
    let wrap = move |value: Value| match value {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert(text_field.clone(), other);
            map
        }
    };
    Ok(match format {
        Format::Jsonl => {
            let lines = BufReader::with_capacity(1 << 16, file).lines().enumerate();
            Box::new(lines.filter_map(move |(index, line)| match line {
                Err(error) => Some(Err(format!("line {}: {error}", index + 1))),
                Ok(line) if line.trim().is_empty() => None,
                Ok(line) => Some(serde_json::from_str::<Value>(&line).map(&wrap).map_err(|error| format!("line {}: {error}", index + 1))),
            }))
        }
        Format::Json => {
            let value: Value = serde_json::from_reader(BufReader::new(file))
                .map_err(|error| EngineError::Input { path: path.to_path_buf(), message: format!("not valid JSON: {error}") })?;
            let items = match value {
                Value::Array(items) => items,
                other => vec![other],
            };
            Box::new(items.into_iter().map(move |item| Ok(wrap(item))))
        }
        Format::Text => {
            let lines = BufReader::new(file).lines().enumerate();
            Box::new(lines.filter_map(move |(index, line)| match line {
                Err(error) => Some(Err(format!("line {}: {error}", index + 1))),
                Ok(line) if line.trim().is_empty() => None,
                Ok(line) => Some(Ok(wrap(Value::String(line.trim().to_string())))),
            }))
        }
        Format::Csv => {
            let delimiter = if path.extension().is_some_and(|extension| extension == "tsv") { b'\t' } else { b',' };
            let mut reader = csv::ReaderBuilder::new().delimiter(delimiter).flexible(false).from_reader(file);
            let headers = reader
                .headers()
                .map_err(|error| EngineError::Input { path: path.to_path_buf(), message: format!("header row: {error}") })?
                .clone();
            Box::new(reader.into_records().enumerate().map(move |(index, row)| {
                let row = row.map_err(|error| format!("row {}: {error}", index + 2))?;
                Ok(headers.iter().zip(row.iter()).map(|(key, value)| (key.to_string(), Value::String(value.to_string()))).collect())
            }))
        }
        Format::Parquet => Box::new(parquet_rows(path, file)?),
    })
}

fn parquet_rows(path: &Path, file: File) -> Result<impl Iterator<Item = Result<Map<String, Value>, String>> + Send, EngineError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let input_error = |message: String| EngineError::Input { path: path.to_path_buf(), message };
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|error| input_error(format!("not a Parquet file: {error}")))?
        .with_batch_size(1024)
        .build()
        .map_err(|error| input_error(format!("cannot read Parquet: {error}")))?;
    Ok(reader.flat_map(|batch| {
        let rows: Vec<Result<Map<String, Value>, String>> = match batch {
            Err(error) => vec![Err(format!("Parquet batch: {error}"))],
            Ok(batch) => {
                let mut buffer = Vec::new();
                let mut writer = arrow_json::LineDelimitedWriter::new(&mut buffer);
                match writer.write(&batch).and_then(|()| writer.finish()) {
                    Err(error) => vec![Err(format!("Parquet batch: {error}"))],
                    Ok(()) => buffer
                        .split(|byte| *byte == b'\n')
                        .filter(|line| !line.is_empty())
                        .map(|line| serde_json::from_slice::<Map<String, Value>>(line).map_err(|error| error.to_string()))
                        .collect(),
                }
            }
        };
        rows
    }))
}

/// Whether the first non-empty line of a JSONL file holds a JSON object (and not a string,
/// a number or a list, which `open` wraps into the text field).
pub(crate) fn first_line_is_object(path: &Path) -> bool {
    let Ok(file) = File::open(path) else { return true };
    let first = BufReader::new(file).lines().map_while(Result::ok).find(|line| !line.trim().is_empty());
    first.is_none_or(|line| line.trim_start().starts_with('{'))
}

/// The format to read `path` in: the one given, else the one its extension names.
pub(crate) fn resolve_format(path: &Path, given: Option<Format>) -> Result<Format, String> {
    given.or_else(|| Format::from_path(path)).ok_or_else(|| {
        format!("cannot tell the format of {} from its extension; set `format` to jsonl, json, csv, parquet or text", path.display())
    })
}
