//! `retrieve`: the top-k documents of a collection for each record's query, by BM25 (tantivy), into a field.
//!
//! The collection is a file of records beside the recipe (an API database, tool documents); the
//! text searched in each is a template over its fields, rendered and indexed once, at the
//! first record. Gorilla's retriever-aware training and evaluation put the retrieved document
//! into the prompt.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use retort_agent::tools::search::{Bm25Search, SearchConfig, SearchDocument};
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::runtime::StageCx;
use crate::runtime::{Built, RecordStep};
use crate::source;
use crate::steps::StepSpec;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};

/// Settings of a `retrieve` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrieveConfig {
    /// The documents: a file beside the recipe (`.jsonl`, `.json`, `.csv`, `.parquet`), one per row.
    pub from: String,
    /// The text searched in each document, a template over its fields (e.g. `{{ api_name }}: {{ description }}`).
    pub document: String,
    /// The query, a template over the record.
    pub query: String,
    /// How many documents (default 1).
    #[serde(default = "one")]
    pub k: usize,
    /// The field that receives the documents, best first: a list of the documents' rows, or the
    /// row itself when `k` is 1 and `list` is false.
    pub into: String,
    /// Write a list even when `k` is 1.
    #[serde(default)]
    pub list: bool,
    /// The field that receives the BM25 scores, best first.
    #[serde(default)]
    pub scores_into: Option<String>,
}

fn one() -> usize {
    1
}

impl StepDef for RetrieveConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        vec![("document".to_string(), TemplateSource::Inline(self.document.clone())), ("query".to_string(), TemplateSource::Inline(self.query.clone()))]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.file("from", &self.from);
        cx.template("query", &[]);
        cx.range("k", self.k as u64, 1, 100);
        cx.write(&self.into);
        if let Some(field) = &self.scores_into {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let path = cx.base_dir.join(&self.from);
        let format = source::resolve_format(&path, None).map_err(|message| EngineError::Step { step: spec.path.clone(), message })?;
        let rows = source::open(&path, format, "text")?
            .map(|row| row.map(Value::Object).map_err(|message| EngineError::Input { path: path.clone(), message }))
            .collect::<Result<Vec<Value>, EngineError>>()?;
        if rows.is_empty() {
            return Err(EngineError::Step { step: spec.path.clone(), message: format!("{} holds no documents", path.display()) });
        }
        Ok(Built::Record(Arc::new(Retrieve {
            config: self.clone(),
            path: spec.path.clone(),
            rows,
            index: OnceLock::new(),
            concurrency: cx.concurrency(spec, None),
        })))
    }
}

struct Retrieve {
    config: RetrieveConfig,
    path: String,
    rows: Vec<Value>,
    /// Built at the first record, with the run's templates.
    index: OnceLock<Result<Bm25Search, String>>,
    concurrency: usize,
}

impl Retrieve {
    fn index(&self, cx: &StageCx) -> Result<&Bm25Search, String> {
        let built = self.index.get_or_init(|| {
            let name = format!("{}.document", self.path);
            let documents = self
                .rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    let text = cx.run.templates.render_with(&name, minijinja::Value::from_serialize(row)).map_err(|e| format!("document {}: {e}", i + 1))?;
                    Ok(SearchDocument { id: i.to_string(), title: String::new(), text })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let config = SearchConfig { name: None, description: None, documents: Default::default(), top_k: self.config.k, snippet_chars: 0 };
            Bm25Search::from_documents(&config, documents)
        });
        built.as_ref().map_err(Clone::clone)
    }
}

#[async_trait]
impl RecordStep for Retrieve {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let index = match self.index(cx) {
            Ok(index) => index,
            Err(error) => return vec![Outcome::fail(record, format!("retrieve: indexing the documents failed: {error}"))],
        };
        let query = match cx.run.templates.render(&format!("{}.query", self.path), &record, cx.round) {
            Ok(query) => query,
            Err(error) => return vec![Outcome::fail(record, format!("retrieve: rendering the query failed: {error}"))],
        };
        let hits = match index.search(&query, self.config.k) {
            Ok(hits) => hits,
            Err(error) => return vec![Outcome::fail(record, format!("retrieve: {error}"))],
        };
        let documents: Vec<Value> = hits.iter().filter_map(|hit| hit.id.parse::<usize>().ok().and_then(|i| self.rows.get(i)).cloned()).collect();
        let value = if self.config.k == 1 && !self.config.list { documents.into_iter().next().unwrap_or(Value::Null) } else { Value::Array(documents) };
        record.set(self.config.into.clone(), value);
        if let Some(field) = &self.config.scores_into {
            record.set(field.clone(), Value::Array(hits.iter().map(|hit| serde_json::json!(hit.score)).collect()));
        }
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
