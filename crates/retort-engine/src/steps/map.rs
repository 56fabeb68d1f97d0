//! `map`: compute fields with expressions or templates, rename and remove fields.

use std::sync::Arc;

use async_trait::async_trait;
use indexmap::IndexMap;
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};
use crate::template::{to_json, Expr};

/// Settings of a `map` step. Applied in this order: `set`, `render`, `render_file`, `rename`, `remove`, `keep`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapConfig {
    /// Fields computed by expressions, in order (a later one sees the earlier ones).
    #[serde(default)]
    pub set: IndexMap<String, String>,
    /// Fields rendered from templates (strings), in order.
    #[serde(default)]
    pub render: IndexMap<String, String>,
    /// Fields rendered from template files beside the recipe, in order.
    #[serde(default)]
    pub render_file: IndexMap<String, String>,
    /// Fields renamed, old name to new name.
    #[serde(default)]
    pub rename: IndexMap<String, String>,
    /// Fields removed.
    #[serde(default)]
    pub remove: Vec<String>,
    /// Keep only these fields (after the above).
    #[serde(default)]
    pub keep: Option<Vec<String>>,
}

impl StepDef for MapConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let inline = self.render.iter().map(|(field, template)| (format!("render.{field}"), TemplateSource::Inline(template.clone())));
        let files = self.render_file.iter().map(|(field, path)| (format!("render_file.{field}"), TemplateSource::File(path.clone())));
        inline.chain(files).collect()
    }

    fn expressions(&self) -> Vec<(String, String)> {
        self.set.iter().map(|(field, expression)| (format!("set.{field}"), expression.clone())).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.set.is_empty() && self.render.is_empty() && self.render_file.is_empty() && self.rename.is_empty() && self.remove.is_empty() && self.keep.is_none() {
            cx.error("", "nothing to do; give `set`, `render`, `render_file`, `rename`, `remove` or `keep`");
        }
        for (field, expression) in &self.set {
            cx.expression(&format!("set.{field}"), expression, &[]);
            cx.write(field);
        }
        for field in self.render.keys() {
            cx.template(&format!("render.{field}"), &[]);
            cx.write(field);
        }
        for field in self.render_file.keys() {
            cx.template(&format!("render_file.{field}"), &[]);
            cx.write(field);
        }
        for (old, new) in &self.rename {
            cx.read(&format!("rename.{old}"), old);
            cx.fields.known.remove(old);
            cx.write(new);
        }
        for field in &self.remove {
            cx.fields.known.remove(field);
        }
        if let Some(keep) = &self.keep {
            for field in keep {
                cx.read("keep", field);
            }
            cx.fields.known.retain(|field| keep.contains(field));
            cx.fields.open = false;
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let set = self.set.iter().map(|(field, expression)| (field.clone(), Expr::at(&spec.path, &format!("set.{field}"), expression))).collect();
        Ok(Built::Record(Arc::new(Map { config: self.clone(), set, concurrency: cx.concurrency(spec, None) })))
    }
}

struct Map {
    config: MapConfig,
    /// `set`'s expressions, compiled once, in order.
    set: Vec<(String, Expr)>,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Map {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let templates = &cx.run.templates;
        for (field, expression) in &self.set {
            match templates.eval(expression, &record, cx.round) {
                Ok(value) => record.set(field.clone(), to_json(&value)),
                Err(error) => return vec![Outcome::fail(record, format!("set.{field}: `{expression}` failed: {error}"))],
            }
        }
        let rendered = self.config.render.keys().map(|field| ("render", field)).chain(self.config.render_file.keys().map(|field| ("render_file", field)));
        for (kind, field) in rendered {
            match templates.render(&format!("{}.{kind}.{field}", cx.step), &record, cx.round) {
                Ok(text) => record.set(field.clone(), Value::String(text)),
                Err(error) => return vec![Outcome::fail(record, format!("{kind}.{field} failed: {error}"))],
            }
        }
        for (old, new) in &self.config.rename {
            if let Some(value) = record.fields.shift_remove(old) {
                record.set(new.clone(), value);
            }
        }
        for field in &self.config.remove {
            record.fields.shift_remove(field);
        }
        if let Some(keep) = &self.config.keep {
            record.fields.retain(|field, _| keep.contains(field));
        }
        vec![Outcome::Keep(record)]
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
