//! `dedup`: remove records whose key was seen before: exactly, nearly (MinHash, ROUGE-L), or in meaning (embeddings).
//!
//! The index lives as long as the step, so inside `repeat` it spans rounds: a round loop with
//! `until: "total >= N"` keeps generating until N unique records exist (online dedup). A
//! `pool` file's texts are in the index before the first record (Self-Instruct's seed tasks).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use retort_dedup::{CosineIndex, ExactIndex, MinHashConfig, MinHashIndex, NormalizeOptions, RougeIndex, Shingle};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::llm::embedding::{self, Embed};
use crate::source;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};
use crate::template::{to_json, Expr};

/// How two records count as the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupMethod {
    /// Equal keys (after normalisation, when asked).
    #[default]
    Exact,
    /// Near-duplicates: estimated Jaccard similarity of shingles at or above `threshold` (MinHash + LSH).
    Minhash,
    /// Same meaning: cosine similarity of embeddings (MiniLM, or a GGUF model) at or above `threshold`.
    Embedding,
    /// Near-duplicates by word order: ROUGE-L F-measure with some kept key at or above
    /// `threshold` (default 0.7, Self-Instruct's filter), compared with every kept key.
    RougeL,
}

/// Settings of a `dedup` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// The field whose value is the key.
    #[serde(default)]
    pub field: Option<String>,
    /// Several fields that together are the key.
    #[serde(default)]
    pub fields: Vec<String>,
    /// An expression whose value is the key (instead of fields).
    #[serde(default)]
    pub key: Option<String>,
    /// `exact`, `minhash`, `rouge_l` or `embedding`.
    #[serde(default)]
    pub method: DedupMethod,
    /// Texts that count as kept before the first record: a file beside the recipe and its field.
    #[serde(default)]
    pub pool: Option<PoolSpec>,
    /// Compare text case-folded with runs of whitespace collapsed (and, for `exact`, punctuation ignored).
    #[serde(default = "yes")]
    pub normalize: bool,
    /// `minhash`: Jaccard similarity (default 0.8); `rouge_l`: ROUGE-L F-measure (default 0.7);
    /// `embedding`: cosine similarity (default 0.9).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// `minhash`: shingles, `{chars: 5}` (default) or `{words: 3}`.
    #[serde(default)]
    pub shingle: Option<ShingleSpec>,
    /// `minhash`: permutations (default 128).
    #[serde(default)]
    pub num_perm: Option<usize>,
    /// `embedding`: the folder of the MiniLM model (default: the installed all-MiniLM-L6-v2).
    #[serde(default)]
    pub model_dir: Option<String>,
    /// `embedding`: embed with this GGUF model through llama.cpp instead of MiniLM (a local
    /// model's name, e.g. `smollm2-135m`, or a path to a GGUF file, relative to the recipe).
    #[serde(default)]
    pub gguf: Option<String>,
    /// Write the similarity to the nearest earlier record into this field (kept records too).
    #[serde(default)]
    pub similarity_into: Option<String>,
}

fn yes() -> bool {
    true
}

/// `pool: {from: FILE, field: NAME}`: the file's values of the field are in the index from the start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// A JSONL, JSON, CSV, Parquet or text file, relative to the recipe.
    pub from: String,
    /// The field whose text is a key (plain-text files: `text`).
    #[serde(default = "text_field")]
    pub field: String,
}

fn text_field() -> String {
    "text".to_string()
}

/// Pool texts are indexed under ids from here on, so a duplicate names a pool line, not a record.
const POOL_IDS: u64 = 1 << 62;

/// Shingles as a recipe writes them: `{chars: K}` or `{words: K}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShingleSpec {
    /// Windows of this many characters.
    #[serde(default)]
    pub chars: Option<usize>,
    /// Windows of this many words.
    #[serde(default)]
    pub words: Option<usize>,
}

impl ShingleSpec {
    fn to_shingle(self) -> Result<Shingle, String> {
        match (self.chars, self.words) {
            (Some(chars), None) if chars > 0 => Ok(Shingle::Chars(chars)),
            (None, Some(words)) if words > 0 => Ok(Shingle::Words(words)),
            _ => Err("`shingle` takes one of `chars: K` or `words: K`, with K at least 1".to_string()),
        }
    }
}

impl DedupConfig {
    /// The `gguf:` model as llama.cpp's loader takes it: a known name as it is, a path
    /// resolved against the recipe's folder.
    fn gguf_path(&self, base_dir: &std::path::Path) -> String {
        let model = self.gguf.as_deref().unwrap_or_default();
        if base_dir.join(model).is_file() {
            base_dir.join(model).to_string_lossy().into_owned()
        } else {
            model.to_string()
        }
    }

    fn key_fields(&self) -> Vec<String> {
        self.field.iter().cloned().chain(self.fields.iter().cloned()).collect()
    }
}

impl StepDef for DedupConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn expressions(&self) -> Vec<(String, String)> {
        self.key.iter().map(|key| ("key".to_string(), key.clone())).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        let fields = self.key_fields();
        match (&self.key, fields.is_empty()) {
            (Some(key), true) => cx.expression("key", key, &[]),
            (None, false) => fields.iter().for_each(|field| cx.read("field", field)),
            (None, true) => cx.error("", "give the key: `field`, `fields` or `key` (an expression)"),
            (Some(_), false) => cx.error("", "give either fields or `key`, not both"),
        }
        if let Some(threshold) = self.threshold {
            if !(0.0..=1.0).contains(&threshold) || threshold == 0.0 {
                cx.error("threshold", format!("expected a similarity in (0, 1], found {threshold}"));
            }
            if self.method == DedupMethod::Exact {
                cx.error("threshold", "`exact` takes no threshold; use `method: minhash` or `embedding`");
            }
        }
        if self.method != DedupMethod::Minhash && (self.shingle.is_some() || self.num_perm.is_some()) {
            cx.error("shingle", "`shingle` and `num_perm` are settings of `method: minhash`");
        }
        if let Some(Err(message)) = self.shingle.map(ShingleSpec::to_shingle) {
            cx.error("shingle", message);
        }
        if self.method == DedupMethod::Embedding && self.gguf.is_none() {
            if let Some(problem) = embedding::minilm_problem() {
                cx.error("method", problem);
            }
        }
        if let Some(model) = &self.gguf {
            if self.method != DedupMethod::Embedding {
                cx.error("gguf", "`gguf` is a setting of `method: embedding`");
            }
            if self.model_dir.is_some() {
                cx.error("gguf", "give either `gguf` (a llama.cpp model) or `model_dir` (a MiniLM folder), not both");
            }
            if let Some(problem) = embedding::gguf_problem(&self.gguf_path(cx.base_dir)) {
                cx.error("gguf", format!("{model}: {problem}"));
            }
        }
        if let Some(field) = &self.similarity_into {
            cx.write(field);
        }
        if let Some(pool) = &self.pool {
            cx.file("pool.from", &pool.from);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let fail = |message: String| EngineError::Step { step: spec.path.clone(), message };
        let normalize = if self.normalize { NormalizeOptions::default() } else { NormalizeOptions::NONE };
        let mut index = match self.method {
            DedupMethod::Exact => {
                let options = if self.normalize { NormalizeOptions::AGGRESSIVE } else { NormalizeOptions::NONE };
                Index::Exact(ExactIndex::new(options))
            }
            DedupMethod::Minhash => {
                let mut config = MinHashConfig { normalize, ..MinHashConfig::default() };
                if let Some(threshold) = self.threshold {
                    config.threshold = threshold;
                }
                if let Some(shingle) = self.shingle {
                    config.shingle = shingle.to_shingle().map_err(fail)?;
                }
                if let Some(num_perm) = self.num_perm {
                    config.num_perm = num_perm;
                }
                Index::Minhash(Box::new(MinHashIndex::new(config).map_err(|error| fail(error.to_string()))?))
            }
            DedupMethod::Embedding => {
                let embedder: Arc<dyn Embed> = match &self.gguf {
                    Some(_) => embedding::gguf(&self.gguf_path(&cx.base_dir)).map_err(fail)?,
                    None => embedding::minilm(self.model_dir.as_ref().map(|dir| cx.base_dir.join(dir))).map_err(fail)?,
                };
                let threshold = self.threshold.unwrap_or(0.9) as f32;
                Index::Embedding(CosineIndex::new(threshold).map_err(|error| fail(error.to_string()))?, embedder)
            }
            DedupMethod::RougeL => Index::Rouge(RougeIndex::new(self.threshold.unwrap_or(0.7)).map_err(|error| fail(error.to_string()))?),
        };
        if let Some(pool) = &self.pool {
            let texts = read_pool(pool, &cx.base_dir)?;
            index.preload(&texts).map_err(|reason| fail(format!("pool {}: {reason}", pool.from)))?;
        }
        let key = self.key.as_ref().map(|key| Expr::at(&spec.path, "key", key));
        Ok(Built::Stream(Arc::new(Dedup { config: self.clone(), key, fields: self.key_fields(), index: Mutex::new(Some(index)), next_id: Mutex::new(0) })))
    }
}

enum Index {
    Exact(ExactIndex),
    Minhash(Box<MinHashIndex>),
    Embedding(CosineIndex, Arc<dyn Embed>),
    Rouge(RougeIndex),
}

impl Index {
    /// Puts the pool's texts in the index under ids from [`POOL_IDS`], duplicates among them too.
    fn preload(&mut self, texts: &[String]) -> Result<(), String> {
        let ids = (POOL_IDS..).zip(texts);
        match self {
            Index::Exact(exact) => ids.for_each(|(id, text)| {
                let _ = exact.insert_if_new(id, text);
            }),
            Index::Minhash(minhash) => ids.for_each(|(id, text)| minhash.insert(id, text)),
            Index::Rouge(rouge) => ids.for_each(|(id, text)| rouge.insert(id, text)),
            Index::Embedding(cosine, embedder) => {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                let embeddings = embedder.embed(&refs).map_err(|error| format!("embedding: {error}"))?;
                for (id, embedding) in (POOL_IDS..).zip(&embeddings) {
                    cosine.insert(id, embedding).map_err(|error| error.to_string())?;
                }
            }
        }
        Ok(())
    }
}

/// The pool file's texts, in file order.
fn read_pool(pool: &PoolSpec, base_dir: &std::path::Path) -> Result<Vec<String>, EngineError> {
    let path = base_dir.join(&pool.from);
    let format = source::resolve_format(&path, None).map_err(|message| EngineError::Input { path: path.clone(), message })?;
    let mut texts = Vec::new();
    for (line, item) in source::open(&path, format, "text")?.enumerate() {
        let item = item.map_err(|message| EngineError::Input { path: path.clone(), message })?;
        match item.get(&pool.field) {
            Some(Value::String(text)) => texts.push(text.clone()),
            Some(Value::Null) | None => {
                return Err(EngineError::Input { path, message: format!("item {}: expected a field `{}`, found none", line + 1, pool.field) })
            }
            Some(other) => texts.push(other.to_string()),
        }
    }
    Ok(texts)
}

/// How a drop names what it duplicates: a kept record or a line of the pool file.
fn earlier_name(earlier: u64, pool: Option<&PoolSpec>) -> String {
    match pool {
        Some(pool) if earlier >= POOL_IDS => format!("{} line {}", pool.from, earlier - POOL_IDS + 1),
        _ => format!("kept record #{earlier}"),
    }
}

struct Dedup {
    config: DedupConfig,
    /// `key:`, compiled once.
    key: Option<Expr>,
    fields: Vec<String>,
    /// Kept across runs of the step (rounds of `repeat`); taken while a run uses it.
    index: Mutex<Option<Index>>,
    /// Ids given to kept records, across rounds; the index names duplicates by them.
    next_id: Mutex<u64>,
}

/// The most records embedded in one batch.
const EMBED_BATCH: usize = 32;

impl Dedup {
    fn key(&self, record: &Record, cx: &StageCx) -> Result<String, String> {
        let values: Vec<Value> = match &self.key {
            Some(expression) => vec![to_json(
                &cx.run.templates.eval(expression, record, cx.round).map_err(|error| format!("dedup key `{expression}` failed: {error}"))?,
            )],
            None => self.fields.iter().map(|field| record.get(field).cloned().unwrap_or(Value::Null)).collect(),
        };
        Ok(values
            .iter()
            .map(|value| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n"))
    }

    fn method_word(&self) -> &'static str {
        match self.config.method {
            DedupMethod::Exact => "exact duplicate",
            DedupMethod::Minhash => "near-duplicate",
            DedupMethod::Embedding => "same meaning as",
            DedupMethod::RougeL => "ROUGE-L near-duplicate of",
        }
    }
}

#[async_trait]
impl StreamStep for Dedup {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let mut index = self
            .index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or_else(|| EngineError::Step { step: cx.step.to_string(), message: "the index is already in use".into() })?;
        let mut next_id = *self.next_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result: Result<(), EngineError> = async {
            loop {
                // A batch: one record, plus whatever else is ready (embeddings batch well).
                let Some(first) = input.recv().await else { break };
                let mut batch = vec![first];
                if matches!(index, Index::Embedding(..)) {
                    while batch.len() < EMBED_BATCH {
                        match input.try_recv() {
                            Some(record) => batch.push(record),
                            None => break,
                        }
                    }
                }
                let mut keyed = Vec::with_capacity(batch.len());
                let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
                for record in batch {
                    cx.stats.record_in();
                    match self.key(&record, &cx) {
                        Ok(key) => {
                            keyed.push(key);
                            outcomes.push(None);
                            // The record is kept in `pending` until decided.
                            pending_push(&mut outcomes, record);
                        }
                        Err(reason) => outcomes.push(Some(Outcome::fail(record, reason))),
                    }
                }
                let embeddings = match &index {
                    Index::Embedding(_, embedder) if !keyed.is_empty() => {
                        let embedder = embedder.clone();
                        let texts = keyed.clone();
                        let result = tokio::task::spawn_blocking(move || {
                            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                            embedder.embed(&refs)
                        })
                        .await
                        .map_err(|error| EngineError::Step { step: cx.step.to_string(), message: error.to_string() })?;
                        Some(result.map_err(|error| EngineError::Step { step: cx.step.to_string(), message: format!("embedding: {error}") })?)
                    }
                    _ => None,
                };
                let mut key_index = 0;
                for slot in outcomes {
                    let outcome = match slot {
                        Some(Outcome::Keep(record)) => {
                            let key = &keyed[key_index];
                            let found: Result<Option<(u64, f64)>, String> = match &mut index {
                                Index::Exact(exact) => Ok(exact.insert_if_new(next_id, key).map(|earlier| (earlier, 1.0))),
                                Index::Minhash(minhash) => Ok(minhash.insert_if_new_with_similarity(next_id, key)),
                                Index::Rouge(rouge) => Ok(rouge.insert_if_new(next_id, key)),
                                Index::Embedding(cosine, _) => {
                                    let embedding = &embeddings.as_ref().expect("embedded above")[key_index];
                                    cosine
                                        .insert_if_new(next_id, embedding)
                                        .map(|found| found.map(|(earlier, similarity)| (earlier, f64::from(similarity))))
                                        .map_err(|error| error.to_string())
                                }
                            };
                            key_index += 1;
                            match found {
                                Err(reason) => Outcome::fail(record, format!("dedup: {reason}")),
                                Ok(Some((earlier, similarity))) => {
                                    let shown: String = key.chars().take(40).collect();
                                    let mut record = record;
                                    if let Some(field) = &self.config.similarity_into {
                                        record.set(field.clone(), serde_json::json!(similarity));
                                    }
                                    Outcome::Drop(
                                        record,
                                        format!(
                                            "dedup: {} {} (similarity {similarity:.2}; {shown:?})",
                                            self.method_word(),
                                            earlier_name(earlier, self.config.pool.as_ref())
                                        ),
                                    )
                                }
                                Ok(None) => {
                                    next_id += 1;
                                    let mut record = record;
                                    if let Some(field) = &self.config.similarity_into {
                                        let nearest = match &index {
                                            Index::Embedding(cosine, _) if cosine.len() > 1 => {
                                                let embedding = &embeddings.as_ref().expect("embedded above")[key_index - 1];
                                                cosine.nearest(embedding, 2).ok().and_then(|found| found.get(1).map(|(_, s)| f64::from(*s)))
                                            }
                                            _ => None,
                                        };
                                        record.set(field.clone(), serde_json::json!(nearest.unwrap_or(0.0)));
                                    }
                                    Outcome::Keep(record)
                                }
                            }
                        }
                        Some(other) => other,
                        None => continue,
                    };
                    if let Some(record) = cx.settle(outcome).await {
                        if output.send(record).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        *self.next_id.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = next_id;
        *self.index.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(index);
        result
    }
}

/// Replaces the placeholder just pushed for a keyed record with the record itself.
fn pending_push(outcomes: &mut [Option<Outcome>], record: Record) {
    if let Some(last) = outcomes.last_mut() {
        *last = Some(Outcome::Keep(record));
    }
}
