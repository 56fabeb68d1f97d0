//! `sample`: draw items from a pool (few-shot examples, personas, tags, roles) into a field, seeded per record.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::source;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::flow::{Inbox, Outbox};
use crate::runtime::{Built, RecordStep, StreamStep};

/// How many items to draw: a number, or `[min, max]` drawn per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Count {
    /// Exactly this many.
    Exactly(usize),
    /// Between the two, inclusive, chosen per record.
    Between([usize; 2]),
}

impl Default for Count {
    fn default() -> Count {
        Count::Exactly(1)
    }
}

/// Settings of a `sample` step; give `from`, `items` or `pool_from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// A file of items beside the recipe (`.jsonl`, `.json`, `.csv`, `.txt`: one item per line).
    #[serde(default)]
    pub from: Option<String>,
    /// Items written in the recipe.
    #[serde(default)]
    pub items: Option<Vec<Value>>,
    /// The pool is the values of this field over every record that reaches the step (a list
    /// gives each of its items; duplicates once, in arrival order): the step holds its input
    /// until it ends (each round, inside `repeat`), then draws for each record. A record does not
    /// draw what it gave (Tag-Evol's tags from the tagger's pool), and where nothing is left to
    /// draw it gets an empty draw (Self-Instruct's first round has no machine instructions).
    /// With `group` (no `group_by`), an item belongs to the group of the records that gave it.
    #[serde(default)]
    pub pool_from: Option<String>,
    /// Take this field of each item (when items are objects).
    #[serde(default)]
    pub field: Option<String>,
    /// How many to draw, without replacement.
    #[serde(default)]
    pub k: Count,
    /// The field the draw is written to: the item itself when `k` is 1, else a list.
    pub into: String,
    /// Write a list even when `k` is 1.
    #[serde(default)]
    pub list: bool,
    /// Draw within one group: items are grouped by this key of theirs (ToolLLM's tools of one
    /// category).
    #[serde(default)]
    pub group_by: Option<String>,
    /// The record's group (a template); without it each record draws a group at random.
    #[serde(default)]
    pub group: Option<String>,
    /// Also write the group drawn into this field.
    #[serde(default)]
    pub group_into: Option<String>,
    /// Items that must be in the draw (GPT4Tools' gold tool among the sampled ones).
    #[serde(default)]
    pub include: Option<Include>,
}

/// Items that must be in a draw: those whose `key` equals the rendered `value`. They count in
/// `k`, and the draw is shuffled so they do not always come first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Include {
    /// The key of the pool's items that is compared.
    pub key: String,
    /// The value it must have: a template.
    pub value: String,
}

impl StepDef for SampleConfig {
    fn works_on_the_stream(&self) -> bool {
        self.pool_from.is_some()
    }

    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates = Vec::new();
        if let Some(group) = &self.group {
            templates.push(("group".to_string(), TemplateSource::Inline(group.clone())));
        }
        if let Some(include) = &self.include {
            templates.push(("include.value".to_string(), TemplateSource::Inline(include.value.clone())));
        }
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.group.is_some() {
            cx.template("group", &[]);
            if self.group_by.is_none() && self.pool_from.is_none() {
                cx.error("group", "a `group` needs `group_by`: the key of the items that names their group");
            }
        }
        if let Some(field) = &self.pool_from {
            cx.read("pool_from", field);
            if self.group_by.is_some() {
                cx.error("group_by", "a pool from the records is grouped by `group` alone: each item by the group of the records that gave it");
            }
            if self.include.is_some() {
                cx.error("include", "`include` reads the keys of a pool's items; a pool from the records has values only");
            }
            if self.field.is_some() {
                cx.error("field", "`field` takes a key of a pool's items; a pool from the records has values only");
            }
        }
        if self.group_into.is_some() && self.group_by.is_none() {
            cx.error("group_into", "`group_into` needs `group_by`");
        }
        if let Some(field) = &self.group_into {
            cx.write(field);
        }
        if self.include.is_some() {
            cx.template("include.value", &[]);
        }
        match (&self.from, &self.items, &self.pool_from) {
            (Some(from), None, None) => {
                cx.file("from", from);
            }
            (None, Some(items), None) if items.is_empty() => cx.error("items", "empty; give at least one item"),
            (None, Some(_), None) | (None, None, Some(_)) => {}
            _ => cx.error("", "give exactly one of `from`, `items` and `pool_from`"),
        }
        if let Count::Between([low, high]) = self.k {
            if low > high {
                cx.error("k", format!("expected [min, max], found [{low}, {high}]"));
            }
        }
        cx.write(&self.into);
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        if self.pool_from.is_some() {
            return Ok(Built::Stream(Arc::new(PoolSample { config: self.clone() })));
        }
        let mut pool: Vec<Value> = match (&self.from, &self.items) {
            (Some(from), _) => {
                let path = cx.base_dir.join(from);
                let format = source::resolve_format(&path, None).map_err(|message| EngineError::Step { step: spec.path.clone(), message })?;
                source::open(&path, format, "text")?
                    .map(|item| item.map(Value::Object).map_err(|message| EngineError::Input { path: path.clone(), message }))
                    .collect::<Result<_, _>>()?
            }
            (None, Some(items)) => items.clone(),
            (None, None) => Vec::new(),
        };
        // Groups and inclusion read the items' own keys, before `field` takes a part of them.
        let key_of = |item: &Value, key: &str| match item.get(key) {
            Some(Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
            None => None,
        };
        let groups: Vec<String> = match &self.group_by {
            Some(key) => pool.iter().map(|item| key_of(item, key).unwrap_or_default()).collect(),
            None => Vec::new(),
        };
        let include_keys: Vec<Option<String>> = match &self.include {
            Some(include) => pool.iter().map(|item| key_of(item, &include.key)).collect(),
            None => Vec::new(),
        };
        if let Some(field) = &self.field {
            if groups.is_empty() && include_keys.is_empty() {
                pool = pool.into_iter().filter_map(|item| item.get(field).cloned()).collect();
            } else {
                // Groups and inclusion are by index: an item without the field stays, as null.
                pool = pool.into_iter().map(|item| item.get(field).cloned().unwrap_or(Value::Null)).collect();
            }
        } else {
            // Plain-text lines arrive as {"text": line}; a pool of those is a pool of strings.
            let all_text = pool.iter().all(|item| item.as_object().is_some_and(|map| map.len() == 1 && map.contains_key("text")));
            if all_text {
                pool = pool.into_iter().filter_map(|item| item.get("text").cloned()).collect();
            }
        }
        if pool.is_empty() {
            return Err(EngineError::Step { step: spec.path.clone(), message: "the pool of items is empty".into() });
        }
        // Each group's items, found once here rather than by a scan of the pool per record.
        let mut groups_index: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
        for (index, group) in groups.into_iter().enumerate() {
            groups_index.entry(group).or_default().push(index);
        }
        let groups: Vec<(String, Vec<usize>)> = groups_index.into_iter().collect();
        Ok(Built::Record(Arc::new(Sample { config: self.clone(), pool, groups, include_keys, concurrency: cx.concurrency(spec, None) })))
    }
}

/// The values a record gives to a pool from the records: its field's items, or the field.
fn values_of(record: &Record, field: &str) -> Vec<Value> {
    match record.get(field) {
        Some(Value::Array(items)) => items.iter().filter(|item| !item.is_null()).cloned().collect(),
        Some(Value::Null) | None => Vec::new(),
        Some(other) => vec![other.clone()],
    }
}

/// `sample` with `pool_from`: collects the stream's values, then draws as `Sample` does.
struct PoolSample {
    config: SampleConfig,
}

#[async_trait]
impl StreamStep for PoolSample {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let field = self.config.pool_from.as_deref().unwrap_or_default();
        let mut records = Vec::new();
        let mut pool: Vec<Value> = Vec::new();
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        // Each item's groups: an item given by records of two groups belongs to both.
        let mut groups_index: std::collections::BTreeMap<String, Vec<usize>> = std::collections::BTreeMap::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            let group = match &self.config.group {
                Some(_) => match cx.run.templates.render(&format!("{}.group", cx.step), &record, cx.round) {
                    Ok(name) => Some(name.trim().to_string()),
                    Err(error) => {
                        cx.settle(Outcome::fail(record, format!("sample: template `group` failed: {error}"))).await;
                        continue;
                    }
                },
                None => None,
            };
            for value in values_of(&record, field) {
                let index = *seen.entry(value.to_string()).or_insert_with(|| {
                    pool.push(value.clone());
                    pool.len() - 1
                });
                if let Some(group) = &group {
                    let members = groups_index.entry(group.clone()).or_default();
                    if !members.contains(&index) {
                        members.push(index);
                    }
                }
            }
            records.push(record);
        }
        let sample = Sample { config: self.config.clone(), pool, groups: groups_index.into_iter().collect(), include_keys: Vec::new(), concurrency: 1 };
        for record in records {
            let outcome = sample.apply(record, &cx).await.into_iter().next().expect("one outcome");
            if let Some(record) = cx.settle(outcome).await {
                if output.send(record).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

struct Sample {
    config: SampleConfig,
    pool: Vec<Value>,
    /// The groups, sorted by name, each with its items' indices (empty without `group_by`).
    groups: Vec<(String, Vec<usize>)>,
    /// The `include.key` of each item (empty without `include`).
    include_keys: Vec<Option<String>>,
    concurrency: usize,
}

/// A small deterministic generator (SplitMix64) seeded per record.
pub(crate) struct SplitMix(pub u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

#[async_trait]
impl RecordStep for Sample {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let mut random = SplitMix(cx.seed(&record.id, 0));
        let render = |key: &str| cx.run.templates.render(&format!("{}.{key}", cx.step), &record, cx.round).map_err(|error| format!("sample: template `{key}` failed: {error}"));
        // The candidates: the whole pool, or one group of it.
        let mut candidates: Vec<usize> = (0..self.pool.len()).collect();
        let mut group = None;
        if self.config.group_by.is_some() || (self.config.pool_from.is_some() && self.config.group.is_some()) {
            let name = match &self.config.group {
                Some(_) => match render("group") {
                    Ok(name) => name.trim().to_string(),
                    Err(reason) => return vec![Outcome::fail(record, reason)],
                },
                None => self.groups[random.below(self.groups.len())].0.clone(),
            };
            match self.groups.binary_search_by(|(group, _)| group.as_str().cmp(&name)) {
                Ok(found) => candidates = self.groups[found].1.clone(),
                // A pool from the records: a group nobody gave to draws nothing.
                Err(_) if self.config.pool_from.is_some() => candidates.clear(),
                Err(_) => {
                    let reason = match &self.config.group_by {
                        Some(key) => format!("sample: no item of the pool has {key} `{name}`"),
                        None => format!("sample: no record of group `{name}` gave a value of `{}`", self.config.pool_from.as_deref().unwrap_or_default()),
                    };
                    return vec![Outcome::fail(record, reason)];
                }
            }
            group = Some(name);
        }
        // A pool from the records: a record does not draw what it gave itself.
        if let Some(field) = &self.config.pool_from {
            let own = values_of(&record, field);
            candidates.retain(|&index| !own.contains(&self.pool[index]));
        }
        let count = match self.config.k {
            Count::Exactly(count) => count,
            Count::Between([low, high]) => low + random.below(high - low + 1),
        }
        .min(candidates.len());
        // Items that must be drawn go first; the rest by a partial Fisher-Yates shuffle.
        let mut fixed = 0;
        if self.config.include.is_some() {
            let wanted = match render("include.value") {
                Ok(value) => value.trim().to_string(),
                Err(reason) => return vec![Outcome::fail(record, reason)],
            };
            for position in 0..candidates.len() {
                if fixed < count && self.include_keys[candidates[position]].as_deref() == Some(wanted.as_str()) {
                    candidates.swap(fixed, position);
                    fixed += 1;
                }
            }
            if fixed == 0 {
                return vec![Outcome::fail(record, format!("sample: no item of the pool has {} `{wanted}` to include", self.config.include.as_ref().map_or("", |i| i.key.as_str())))];
            }
        }
        for position in fixed..count {
            let pick = position + random.below(candidates.len() - position);
            candidates.swap(position, pick);
        }
        let mut drawn: Vec<usize> = candidates[..count].to_vec();
        if fixed > 0 {
            for position in (1..drawn.len()).rev() {
                let pick = random.below(position + 1);
                drawn.swap(position, pick);
            }
        }
        let drawn: Vec<Value> = drawn.iter().map(|&index| self.pool[index].clone()).collect();
        let value = if !self.config.list && matches!(self.config.k, Count::Exactly(1)) {
            drawn.into_iter().next().unwrap_or(Value::Null)
        } else {
            Value::Array(drawn)
        };
        record.set(self.config.into.clone(), value);
        if let (Some(field), Some(group)) = (&self.config.group_into, group) {
            record.set(field.clone(), Value::String(group));
        }
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
