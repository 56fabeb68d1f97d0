//! The search tool: BM25 ranking (tantivy, index in RAM) over a JSONL set of documents.

use std::path::PathBuf;

use async_trait::async_trait;
use retort_core::ToolSpec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tantivy::collector::TopDocs;
use tantivy::query::QueryParser;
use tantivy::schema::{Field, Schema, STORED, STRING, TEXT};
use tantivy::{doc, Index, IndexReader, TantivyDocument};

use crate::error::ToolError;
use crate::tool::Tool;

fn default_top_k() -> usize {
    5
}

fn default_snippet() -> usize {
    300
}

/// The search tool's configuration (`kind: search`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The tool's name (default `search`).
    #[serde(default)]
    pub name: Option<String>,
    /// What the collection holds, for the model.
    #[serde(default)]
    pub description: Option<String>,
    /// A JSONL file of `{"id", "title", "text"}` objects (the caller resolves relative paths).
    pub documents: PathBuf,
    /// Results returned when the call does not ask for a number (default 5).
    #[serde(default = "default_top_k")]
    pub top_k: usize,
    /// Most characters of each document's text shown (default 300).
    #[serde(default = "default_snippet")]
    pub snippet_chars: usize,
}

/// One document of the collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchDocument {
    /// Its identifier, shown in results.
    pub id: String,
    /// Its title (searched, and weighted like the text).
    #[serde(default)]
    pub title: String,
    /// Its body.
    pub text: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The document's id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The start of its text.
    pub snippet: String,
    /// The BM25 score.
    pub score: f32,
}

/// BM25 search over documents indexed in RAM at construction.
pub struct Bm25Search {
    name: String,
    description: String,
    reader: IndexReader,
    parser: QueryParser,
    fields: (Field, Field, Field),
    top_k: usize,
    snippet_chars: usize,
}

impl std::fmt::Debug for Bm25Search {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bm25Search").field("name", &self.name).finish()
    }
}

impl Bm25Search {
    /// Reads the JSONL file named by the configuration and indexes it.
    pub fn new(config: &SearchConfig) -> Result<Bm25Search, String> {
        let text =
            std::fs::read_to_string(&config.documents).map_err(|e| format!("reading documents {}: {e}", config.documents.display()))?;
        let mut docs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let doc: SearchDocument = serde_json::from_str(line).map_err(|e| {
                format!("{} line {}: expected a JSON object with id, title and text: {e}", config.documents.display(), n + 1)
            })?;
            docs.push(doc);
        }
        Bm25Search::from_documents(config, docs)
    }

    /// Indexes these documents (the configuration's `documents` path is not read).
    pub fn from_documents(config: &SearchConfig, documents: Vec<SearchDocument>) -> Result<Bm25Search, String> {
        let mut builder = Schema::builder();
        let id = builder.add_text_field("id", STRING | STORED);
        let title = builder.add_text_field("title", TEXT | STORED);
        let body = builder.add_text_field("text", TEXT | STORED);
        let index = Index::create_in_ram(builder.build());
        let mut writer =
            index.writer_with_num_threads::<TantivyDocument>(1, 15_000_000).map_err(|e| format!("creating the index writer: {e}"))?;
        let count = documents.len();
        for d in documents {
            writer.add_document(doc!(id => d.id, title => d.title, body => d.text)).map_err(|e| format!("indexing a document: {e}"))?;
        }
        writer.commit().map_err(|e| format!("committing the index: {e}"))?;
        let reader = index.reader().map_err(|e| format!("opening the index reader: {e}"))?;
        let parser = QueryParser::for_index(&index, vec![title, body]);
        let mut description = format!(
            "Searches a collection of {count} documents by keywords (BM25 ranking) and returns the best matches with their id, title and the start of their text."
        );
        if let Some(extra) = &config.description {
            description = format!("{extra} {description}");
        }
        Ok(Bm25Search {
            name: config.name.clone().unwrap_or_else(|| "search".into()),
            description,
            reader,
            parser,
            fields: (id, title, body),
            top_k: config.top_k.max(1),
            snippet_chars: config.snippet_chars,
        })
    }

    /// The best `top_k` documents for a query, best first (ties in indexing order).
    pub fn search(&self, query: &str, top_k: usize) -> Result<Vec<SearchHit>, String> {
        let (query, _errors) = self.parser.parse_query_lenient(query);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(top_k.max(1)).order_by_score()).map_err(|e| format!("searching: {e}"))?;
        let (id, title, body) = self.fields;
        let text_of = |doc: &TantivyDocument, field: Field| -> String {
            use tantivy::schema::document::Value as _;
            doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default().to_string()
        };
        top.into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address).map_err(|e| format!("reading a hit: {e}"))?;
                let text = text_of(&doc, body);
                let snippet = match text.char_indices().nth(self.snippet_chars) {
                    Some((cut, _)) => format!("{}...", &text[..cut]),
                    None => text,
                };
                Ok(SearchHit { id: text_of(&doc, id), title: text_of(&doc, title), snippet, score })
            })
            .collect()
    }
}

#[async_trait]
impl Tool for Bm25Search {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "Keywords"},
                    "top_k": {"type": "integer", "minimum": 1, "maximum": 50, "description": "How many results (default ".to_string() + &self.top_k.to_string() + ")"}
                },
                "required": ["query"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let query = arguments["query"].as_str().unwrap_or_default();
        let top_k = arguments["top_k"].as_u64().map_or(self.top_k, |k| k as usize);
        let hits = self.search(query, top_k).map_err(ToolError::Failed)?;
        if hits.is_empty() {
            return Ok(format!("No document matches {query:?}."));
        }
        let lines: Vec<String> = hits
            .iter()
            .enumerate()
            .map(|(i, h)| format!("{}. [{}] {} (score {:.3})\n{}", i + 1, h.id, h.title, h.score, h.snippet))
            .collect();
        Ok(lines.join("\n\n"))
    }
}
