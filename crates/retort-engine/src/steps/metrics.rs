//! `metrics`: aggregate expressions over the stream (mean, rate, sum, count, min, max), overall and by group, into `NAME.json`.
//!
//! Records pass through unchanged; only the accumulators are kept, so memory stays flat. Every
//! evaluation recipe ends in one: the file goes to the run directory (`NAME-round-K.json` inside
//! a `repeat`) and a summary line to the dataset card.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::runtime::StageCx;
use crate::runtime::{Built, StreamStep};
use crate::steps::StepSpec;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::template::{truthy, Expr};

/// Settings of a `metrics` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// The file's stem in the run directory.
    #[serde(default = "default_name")]
    pub name: String,
    /// Also compute every metric per value of this expression (e.g. `mode`, `category`).
    #[serde(default)]
    pub by: Option<String>,
    /// The metrics, by name: `{mean: EXPR}`, `{rate: EXPR}`, `{sum: EXPR}`, `{count: EXPR}`,
    /// `{min: EXPR}` or `{max: EXPR}`.
    pub values: BTreeMap<String, MetricSpec>,
}

fn default_name() -> String {
    "metrics".to_string()
}

/// One metric as a recipe writes it: exactly one of its keys, the aggregate, holding the expression.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The mean of a number (true counts 1, false 0); records where it is null are left out.
    #[serde(default)]
    pub mean: Option<String>,
    /// The share of records where the expression is true.
    #[serde(default)]
    pub rate: Option<String>,
    /// The sum of a number.
    #[serde(default)]
    pub sum: Option<String>,
    /// The number of records where the expression is true.
    #[serde(default)]
    pub count: Option<String>,
    /// The smallest value of a number.
    #[serde(default)]
    pub min: Option<String>,
    /// The largest value of a number.
    #[serde(default)]
    pub max: Option<String>,
}

impl MetricSpec {
    /// The metric, or `None` unless exactly one aggregate is given.
    fn metric(&self) -> Option<Metric> {
        let given = [
            self.mean.clone().map(Metric::Mean),
            self.rate.clone().map(Metric::Rate),
            self.sum.clone().map(Metric::Sum),
            self.count.clone().map(Metric::Count),
            self.min.clone().map(Metric::Min),
            self.max.clone().map(Metric::Max),
        ];
        let mut given = given.into_iter().flatten();
        match (given.next(), given.next()) {
            (Some(metric), None) => Some(metric),
            _ => None,
        }
    }
}

/// One metric: an aggregate of an expression over the records.
#[derive(Debug, Clone)]
enum Metric {
    Mean(String),
    Rate(String),
    Sum(String),
    Count(String),
    Min(String),
    Max(String),
}

impl Metric {
    fn expression(&self) -> &str {
        match self {
            Metric::Mean(e) | Metric::Rate(e) | Metric::Sum(e) | Metric::Count(e) | Metric::Min(e) | Metric::Max(e) => e,
        }
    }
}

impl StepDef for MetricsConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn expressions(&self) -> Vec<(String, String)> {
        let by = self.by.iter().map(|by| ("by".to_string(), by.clone()));
        let values = self.values.iter().filter_map(|(name, spec)| spec.metric().map(|metric| (format!("values.{name}"), metric.expression().to_string())));
        by.chain(values).collect()
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        if self.values.is_empty() {
            cx.error("values", "no metrics: give at least one, e.g. `accuracy: {mean: correct}`");
        }
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            cx.error("name", format!("`{}` is not a file name", self.name));
        }
        if let Some(by) = &self.by {
            cx.expression("by", by, &[]);
        }
        for (name, spec) in &self.values {
            match spec.metric() {
                Some(metric) => cx.expression(&format!("values.{name}"), metric.expression(), &[]),
                None => cx.error(&format!("values.{name}"), "give exactly one of mean, rate, sum, count, min, max (e.g. `{rate: correct}`)"),
            }
        }
    }

    fn build(&self, spec: &StepSpec, _cx: &BuildCx) -> Result<Built, EngineError> {
        let by = self.by.as_ref().map(|by| Expr::at(&spec.path, "by", by));
        let values = self
            .values
            .iter()
            .filter_map(|(name, metric)| metric.metric().map(|metric| (name.clone(), metric)))
            .map(|(name, metric)| {
                let expr = Expr::at(&spec.path, &format!("values.{name}"), metric.expression());
                (name, metric, expr)
            })
            .collect();
        Ok(Built::Stream(Arc::new(Metrics { name: self.name.clone(), by, values })))
    }
}

struct Metrics {
    name: String,
    by: Option<Expr>,
    values: Vec<(String, Metric, Expr)>,
}

/// The running aggregate of one metric in one group.
#[derive(Debug, Clone, Default)]
struct Accumulator {
    /// Records that gave a value (for `mean`, `min`, `max`, `sum`) or any record (`rate`, `count`).
    n: u64,
    /// Sum of the values, or of true verdicts.
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    /// Records whose value was neither a number nor a boolean.
    not_numbers: u64,
}

impl Accumulator {
    /// Adds a record's value: its JSON for the numeric aggregates, its truth (Jinja's, as the
    /// expression gave it) for `rate` and `count`.
    fn add(&mut self, metric: &Metric, value: &Value, truth: bool) {
        match metric {
            Metric::Rate(_) | Metric::Count(_) => {
                self.n += 1;
                if truth {
                    self.sum += 1.0;
                }
            }
            Metric::Mean(_) | Metric::Sum(_) | Metric::Min(_) | Metric::Max(_) => match number(value) {
                Some(x) => {
                    self.n += 1;
                    self.sum += x;
                    self.min = Some(self.min.map_or(x, |m| m.min(x)));
                    self.max = Some(self.max.map_or(x, |m| m.max(x)));
                }
                None if value.is_null() => {}
                None => self.not_numbers += 1,
            },
        }
    }

    fn result(&self, metric: &Metric) -> Value {
        let ratio = |n: u64| if n == 0 { Value::Null } else { json!(self.sum / n as f64) };
        match metric {
            Metric::Mean(_) | Metric::Rate(_) => ratio(self.n),
            Metric::Sum(_) => json!(self.sum),
            Metric::Count(_) => json!(self.sum as u64),
            Metric::Min(_) => self.min.map(|x| json!(x)).unwrap_or(Value::Null),
            Metric::Max(_) => self.max.map(|x| json!(x)).unwrap_or(Value::Null),
        }
    }
}

fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
}

/// A group's key as text: strings as they are, other values as JSON.
fn group_key(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

#[derive(Default)]
struct Table {
    records: u64,
    accumulators: Vec<Accumulator>,
}

impl Metrics {
    fn table_json(&self, table: &Table) -> Value {
        let mut out = Map::new();
        out.insert("records".into(), json!(table.records));
        for ((name, metric, _), accumulator) in self.values.iter().zip(&table.accumulators) {
            out.insert(name.clone(), accumulator.result(metric));
            if accumulator.not_numbers > 0 {
                out.insert(format!("{name}_not_numbers"), json!(accumulator.not_numbers));
            }
        }
        Value::Object(out)
    }

    fn summary(&self, table: &Table) -> String {
        let parts: Vec<String> = self
            .values
            .iter()
            .zip(&table.accumulators)
            .map(|((name, metric, _), accumulator)| match accumulator.result(metric) {
                Value::Number(n) => match metric {
                    Metric::Count(_) => format!("{name} {n}"),
                    _ => format!("{name} {:.4}", n.as_f64().unwrap_or(0.0)),
                },
                other => format!("{name} {other}"),
            })
            .collect();
        parts.join(", ")
    }
}

#[async_trait]
impl StreamStep for Metrics {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let fresh = || Table { records: 0, accumulators: vec![Accumulator::default(); self.values.len()] };
        let mut overall = fresh();
        let mut groups: BTreeMap<String, Table> = BTreeMap::new();
        let mut failures: BTreeMap<String, u64> = BTreeMap::new();
        while let Some(record) = input.recv().await {
            cx.stats.record_in();
            let group = match &self.by {
                Some(by) => match cx.run.templates.eval(by, &record, cx.round) {
                    Ok(value) => Some(group_key(&crate::template::to_json(&value))),
                    Err(error) => {
                        *failures.entry(format!("`{by}`: {error}")).or_insert(0) += 1;
                        None
                    }
                },
                None => None,
            };
            let mut values = Vec::with_capacity(self.values.len());
            for (_, _, expr) in &self.values {
                match cx.run.templates.eval(expr, &record, cx.round) {
                    // Jinja's truth for the rate and count, the JSON value for numbers.
                    Ok(value) => values.push(Some((crate::template::to_json(&value), truthy(&value)))),
                    Err(error) => {
                        *failures.entry(format!("`{expr}`: {error}")).or_insert(0) += 1;
                        values.push(None);
                    }
                }
            }
            let add = |table: &mut Table| {
                table.records += 1;
                for (((_, metric, _), accumulator), value) in self.values.iter().zip(&mut table.accumulators).zip(&values) {
                    if let Some((json, truth)) = value {
                        accumulator.add(metric, json, *truth);
                    }
                }
            };
            add(&mut overall);
            if let Some(group) = group {
                add(groups.entry(group).or_insert_with(fresh));
            }
            cx.stats.record_out();
            if output.send(record).await.is_err() {
                break;
            }
        }
        let mut file = Map::new();
        file.insert("step".into(), json!(cx.step.to_string()));
        if let Some(round) = cx.round {
            file.insert("round".into(), json!(round));
        }
        file.insert("overall".into(), self.table_json(&overall));
        if self.by.is_some() {
            let by: Map<String, Value> = groups.iter().map(|(key, table)| (key.clone(), self.table_json(table))).collect();
            file.insert("by".into(), Value::Object(by));
        }
        if !failures.is_empty() {
            file.insert("expression_errors".into(), json!(failures));
        }
        let stem = match cx.round {
            Some(round) => format!("{}-round-{round}", self.name),
            None => self.name.clone(),
        };
        let path = cx.run.out_dir.join(format!("{stem}.json"));
        let text = serde_json::to_string_pretty(&Value::Object(file)).unwrap_or_default();
        std::fs::write(&path, text + "\n").map_err(EngineError::io("write", &path))?;
        let mut note = format!("{}: {} records: {}", cx.step, overall.records, self.summary(&overall));
        for (key, table) in &groups {
            note.push_str(&format!("; {key}: {} ({} records)", self.summary(table), table.records));
        }
        cx.run.note(note);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_follow_their_definitions() {
        let cases: &[(Metric, &[Value], Value)] = &[
            (Metric::Mean("x".into()), &[json!(1), json!(2), Value::Null, json!(true)], json!(4.0 / 3.0)),
            (Metric::Rate("x".into()), &[json!(true), json!(false), json!(false), json!(true)], json!(0.5)),
            (Metric::Count("x".into()), &[json!(true), json!(false), json!(true)], json!(2)),
            (Metric::Sum("x".into()), &[json!(1.5), json!("2.5")], json!(4.0)),
            (Metric::Min("x".into()), &[json!(3), json!(-1)], json!(-1.0)),
            (Metric::Max("x".into()), &[json!(3), json!(-1)], json!(3.0)),
            (Metric::Mean("x".into()), &[], Value::Null),
        ];
        for (metric, values, expected) in cases {
            let mut accumulator = Accumulator::default();
            for value in values.iter() {
                accumulator.add(metric, value, value.as_bool() == Some(true));
            }
            assert_eq!(&accumulator.result(metric), expected, "{metric:?} over {values:?}");
        }
    }
}
