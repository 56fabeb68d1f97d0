//! `fit`: train a small classifier on the stream's records and score it on a real labelled set (ZeroGen).
//!
//! The model is multinomial logistic regression, trained with SGD, all in Rust and deterministic,
//! over hashed word unigrams and bigrams (`features: ngrams`, the default) or over MiniLM sentence
//! embeddings (`features: minilm`). The accuracy on the evaluation file, beside the
//! majority-class baseline, goes to `NAME.json` in the run directory and to the run's notes.
//!
//! With `train_from` the classifier is a critic instead: it learns from a labelled file before
//! the stream starts, and labels every record that passes (`predict_into`, `probability_into`),
//! as Symbolic Knowledge Distillation's critic filters the generated triples.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::EngineError;
use crate::flow::{Inbox, Outbox};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::source;
use retort_core::Outcome;
use crate::steps::sample::SplitMix;
use crate::steps::{BuildCx, CheckCx, StepDef};
use crate::runtime::{Built, StreamStep};

/// Settings of a `fit` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitConfig {
    /// The field with each training example's text (with `train_from`: each record's text to
    /// label).
    pub text: String,
    /// The field with its label (not with `train_from`).
    #[serde(default)]
    pub label: Option<String>,
    /// Train on this labelled file (beside the recipe) instead of the stream, then label the
    /// stream's records.
    #[serde(default)]
    pub train_from: Option<String>,
    /// The training file's text column.
    #[serde(default = "default_text")]
    pub train_text: String,
    /// The training file's label column.
    #[serde(default = "default_label")]
    pub train_label: String,
    /// With `train_from`: write each record's predicted label here.
    #[serde(default)]
    pub predict_into: Option<String>,
    /// With `train_from`: write the probability of the label `positive` here.
    #[serde(default)]
    pub probability_into: Option<String>,
    /// The label whose probability `probability_into` holds.
    #[serde(default)]
    pub positive: Option<String>,
    /// The labelled evaluation file, relative to the recipe (`.tsv`, `.csv`, `.jsonl`, ...).
    pub eval: String,
    /// The evaluation file's text column.
    #[serde(default = "default_text")]
    pub eval_text: String,
    /// The evaluation file's label column.
    #[serde(default = "default_label")]
    pub eval_label: String,
    /// Training labels renamed to the evaluation file's (e.g. `{positive: "1", negative: "0"}`).
    #[serde(default)]
    pub label_map: BTreeMap<String, String>,
    /// Passes over the training data.
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// The metrics file's stem in the run directory.
    #[serde(default = "default_name")]
    pub name: String,
    /// What the classifier sees: `ngrams` (hashed word unigrams and bigrams, the default) or
    /// `minilm` (all-MiniLM-L6-v2 sentence embeddings).
    #[serde(default)]
    pub features: FeatureKind,
    /// `minilm`: the folder of the MiniLM model (default: the installed all-MiniLM-L6-v2).
    #[serde(default)]
    pub model_dir: Option<String>,
}

/// The classifier's input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Hashed word unigrams and bigrams.
    #[default]
    Ngrams,
    /// MiniLM sentence embeddings.
    Minilm,
}

fn default_text() -> String {
    "text".to_string()
}

fn default_label() -> String {
    "label".to_string()
}

fn default_epochs() -> usize {
    8
}

fn default_name() -> String {
    "metrics".to_string()
}

impl StepDef for FitConfig {
    fn works_on_the_stream(&self) -> bool {
        true
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.read("text", &self.text);
        match (&self.train_from, &self.label) {
            (None, Some(label)) => cx.read("label", label),
            (None, None) => cx.error("label", "give the field with each training example's label, or `train_from`: a labelled file to train on"),
            (Some(from), label) => {
                cx.file("train_from", from);
                if label.is_some() {
                    cx.error("label", "the labels come from `train_from`'s `train_label` column; the stream's records are labelled, not learned from");
                }
            }
        }
        if self.train_from.is_none() {
            for (key, given) in [("predict_into", self.predict_into.is_some()), ("probability_into", self.probability_into.is_some())] {
                if given {
                    cx.error(key, "labelling the records needs `train_from`: a classifier trained on the stream has let its records go by the time it is trained");
                }
            }
        }
        if self.probability_into.is_some() != self.positive.is_some() {
            cx.error("positive", "`probability_into` and `positive` (the label whose probability it holds) go together");
        }
        for field in self.predict_into.iter().chain(&self.probability_into) {
            cx.write(field);
        }
        cx.file("eval", &self.eval);
        cx.range("epochs", self.epochs as u64, 1, crate::limits::MAX_ITERATIONS);
        if self.model_dir.is_some() && self.features != FeatureKind::Minilm {
            cx.error("model_dir", "`model_dir` is a setting of `features: minilm`");
        }
        if self.features == FeatureKind::Minilm {
            if let Some(problem) = crate::llm::embedding::minilm_problem() {
                cx.error("features", problem);
            }
        }
    }

    fn build(&self, _spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let model_dir = self.model_dir.as_ref().map(|dir| cx.base_dir.join(dir));
        let train_path = self.train_from.as_ref().map(|from| cx.base_dir.join(from));
        Ok(Built::Stream(Arc::new(Fit { config: self.clone(), eval_path: cx.base_dir.join(&self.eval), train_path, model_dir })))
    }
}

struct Fit {
    config: FitConfig,
    eval_path: std::path::PathBuf,
    train_path: Option<std::path::PathBuf>,
    model_dir: Option<std::path::PathBuf>,
}

/// Hashed features: 2^18 buckets of word unigrams and bigrams.
const BUCKETS: usize = 1 << 18;

/// One example's features: (index, value) pairs, and the step size's scale for them.
struct Features {
    values: Vec<(usize, f32)>,
    scale: f32,
}

impl Features {
    /// Binary n-gram features; updates scaled by 1/sqrt(count).
    fn ngrams(text: &str) -> Features {
        let buckets = features(text);
        let scale = 1.0 / (buckets.len().max(1) as f32).sqrt();
        Features { values: buckets.into_iter().map(|bucket| (bucket, 1.0)).collect(), scale }
    }

    /// A unit embedding stretched to unit variance per dimension; updates scaled by 1/sqrt(dim).
    fn dense(vector: &[f32]) -> Features {
        let stretch = (vector.len().max(1) as f32).sqrt();
        Features { values: vector.iter().enumerate().map(|(index, value)| (index, value * stretch)).collect(), scale: 1.0 / stretch }
    }
}

fn features(text: &str) -> Vec<usize> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    let bucket = |gram: &str| (u64::from_le_bytes(retort_core::stable_hash(&[gram.as_bytes()])[..8].try_into().expect("8 bytes")) as usize) % BUCKETS;
    let mut found: Vec<usize> = words.iter().map(|word| bucket(word)).collect();
    found.extend(words.windows(2).map(|pair| bucket(&format!("{} {}", pair[0], pair[1]))));
    found.sort_unstable();
    found.dedup();
    found
}

fn label_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.trim().to_string()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Multinomial logistic regression over sparse binary features.
struct Model {
    labels: Vec<String>,
    weights: Vec<Vec<f32>>,
    bias: Vec<f32>,
}

impl Model {
    fn scores(&self, feats: &Features) -> Vec<f32> {
        (0..self.labels.len())
            .map(|class| self.bias[class] + feats.values.iter().map(|&(f, value)| self.weights[class][f] * value).sum::<f32>())
            .collect()
    }

    fn predict(&self, feats: &Features) -> usize {
        let scores = self.scores(feats);
        (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b])).unwrap_or(0)
    }

    /// The softmax of the class scores.
    fn probabilities(&self, feats: &Features) -> Vec<f32> {
        let scores = self.scores(feats);
        let max = scores.iter().cloned().fold(f32::MIN, f32::max);
        let exps: Vec<f32> = scores.iter().map(|score| (score - max).exp()).collect();
        let total: f32 = exps.iter().sum();
        exps.iter().map(|exp| exp / total).collect()
    }

    fn train(examples: &[(Features, usize)], width: usize, labels: Vec<String>, epochs: usize, seed: u64) -> Model {
        let classes = labels.len();
        let mut model = Model { labels, weights: vec![vec![0.0; width]; classes], bias: vec![0.0; classes] };
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut random = SplitMix(seed);
        for epoch in 0..epochs {
            for position in (1..order.len()).rev() {
                let pick = random.below(position + 1);
                order.swap(position, pick);
            }
            let rate = 0.5 / (1.0 + epoch as f32);
            for &index in &order {
                let (feats, gold) = &examples[index];
                let scores = model.scores(feats);
                let max = scores.iter().cloned().fold(f32::MIN, f32::max);
                let exps: Vec<f32> = scores.iter().map(|score| (score - max).exp()).collect();
                let total: f32 = exps.iter().sum();
                for (class, exp) in exps.iter().enumerate().take(classes) {
                    let gradient = exp / total - if class == *gold { 1.0 } else { 0.0 };
                    let step = rate * gradient * feats.scale;
                    model.bias[class] -= rate * gradient * 0.1;
                    for &(f, value) in &feats.values {
                        model.weights[class][f] -= step * value;
                    }
                }
            }
        }
        model
    }
}

impl Fit {
    /// The features of the training and evaluation texts, and how many weights a class needs.
    async fn featurize(&self, training: &[(String, String)], evaluation: &[(String, String)]) -> Result<(Vec<Features>, Vec<Features>, usize), String> {
        match self.config.features {
            FeatureKind::Ngrams => Ok((
                training.iter().map(|(text, _)| Features::ngrams(text)).collect(),
                evaluation.iter().map(|(text, _)| Features::ngrams(text)).collect(),
                BUCKETS,
            )),
            FeatureKind::Minilm => {
                let embedder = crate::llm::embedding::minilm(self.model_dir.clone())?;
                let texts: Vec<String> = training.iter().chain(evaluation).map(|(text, _)| text.clone()).collect();
                let width = embedder.dim();
                // The embedder batches by length itself.
                let vectors = tokio::task::spawn_blocking(move || {
                    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                    embedder.embed(&texts).map_err(|error| format!("embedding with MiniLM: {error}"))
                })
                .await
                .map_err(|error| error.to_string())??;
                let mut features: Vec<Features> = vectors.iter().map(|vector| Features::dense(vector)).collect();
                let eval = features.split_off(training.len());
                Ok((features, eval, width))
            }
        }
    }
}

impl Fit {
    /// The labelled rows of a file, labels renamed by `label_map`.
    fn read_labelled(&self, path: &std::path::Path, text: &str, label: &str, step: &str) -> Result<Vec<(String, String)>, EngineError> {
        let format = source::resolve_format(path, None).map_err(|message| EngineError::Step { step: step.to_string(), message })?;
        let mut rows = Vec::new();
        for row in source::open(path, format, "text")? {
            let row = row.map_err(|message| EngineError::Input { path: path.to_path_buf(), message })?;
            if let (Some(text), Some(label)) = (label_text(row.get(text)), label_text(row.get(label))) {
                let label = self.config.label_map.get(&label).cloned().unwrap_or(label);
                rows.push((text, label));
            }
        }
        Ok(rows)
    }

    /// The features of one text to label.
    async fn features_of(&self, text: &str) -> Result<Features, String> {
        match self.config.features {
            FeatureKind::Ngrams => Ok(Features::ngrams(text)),
            FeatureKind::Minilm => {
                let embedder = crate::llm::embedding::minilm(self.model_dir.clone())?;
                let text = text.to_string();
                let vectors = tokio::task::spawn_blocking(move || embedder.embed(&[text.as_str()]).map_err(|error| format!("embedding with MiniLM: {error}")))
                    .await
                    .map_err(|error| error.to_string())??;
                Ok(Features::dense(vectors.first().map(Vec::as_slice).unwrap_or_default()))
            }
        }
    }
}

#[async_trait]
impl StreamStep for Fit {
    async fn run(self: Arc<Self>, mut input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError> {
        let fail = |message: String| EngineError::Step { step: cx.step.to_string(), message };
        let training: Vec<(String, String)> = match &self.train_path {
            // A critic learns from its file before the stream starts.
            Some(path) => self.read_labelled(path, &self.config.train_text, &self.config.train_label, &cx.step)?,
            None => {
                let mut training = Vec::new();
                let label_field = self.config.label.as_deref().unwrap_or_default();
                while let Some(record) = input.recv().await {
                    cx.stats.record_in();
                    if let (Some(text), Some(label)) = (label_text(record.get(&self.config.text)), label_text(record.get(label_field))) {
                        let label = self.config.label_map.get(&label).cloned().unwrap_or(label);
                        training.push((text, label));
                    }
                    cx.stats.record_out();
                    if output.send(record).await.is_err() {
                        break;
                    }
                }
                training
            }
        };
        let evaluation = self.read_labelled(&self.eval_path, &self.config.eval_text, &self.config.eval_label, &cx.step)?;
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for (_, label) in &evaluation {
            *counts.entry(label.clone()).or_insert(0) += 1;
        }
        let (majority_label, majority_count) = counts.iter().max_by_key(|(_, count)| **count).map(|(label, count)| (label.clone(), *count)).unwrap_or_default();
        let baseline = majority_count as f64 / evaluation.len().max(1) as f64;
        let mut labels: Vec<String> = training.iter().map(|(_, label)| label.clone()).collect();
        labels.sort();
        labels.dedup();
        let model = if labels.len() < 2 {
            None
        } else {
            let (train_features, _, width) = self.featurize(&training, &[]).await.map_err(fail)?;
            let examples: Vec<(Features, usize)> = train_features
                .into_iter()
                .zip(&training)
                .map(|(features, (_, label))| (features, labels.iter().position(|known| known == label).unwrap_or(0)))
                .collect();
            let (epochs, seed) = (self.config.epochs, cx.seed("fit", 0));
            let labels_for_model = labels.clone();
            Some(tokio::task::spawn_blocking(move || Model::train(&examples, width, labels_for_model, epochs, seed)).await.map_err(|error| fail(error.to_string()))?)
        };
        let accuracy = match &model {
            Some(model) if !evaluation.is_empty() => {
                let (_, eval_features, _) = self.featurize(&[], &evaluation).await.map_err(fail)?;
                let correct = eval_features.iter().zip(&evaluation).filter(|(features, (_, label))| model.labels[model.predict(features)] == *label).count();
                Some(correct as f64 / evaluation.len() as f64)
            }
            _ => None,
        };
        let metrics = json!({
            "model": match self.config.features {
                FeatureKind::Ngrams => "logistic regression over hashed word unigrams and bigrams",
                FeatureKind::Minilm => "logistic regression over all-MiniLM-L6-v2 sentence embeddings",
            },
            "train_file": self.train_path.as_ref().and_then(|path| path.file_name()).map(|name| name.to_string_lossy().to_string()),
            "train_examples": training.len(),
            "train_labels": labels,
            "eval_file": self.eval_path.file_name().map(|name| name.to_string_lossy().to_string()),
            "eval_examples": evaluation.len(),
            "accuracy": accuracy,
            "majority_baseline": baseline,
            "majority_label": majority_label,
        });
        let path = cx.run.out_dir.join(format!("{}.json", self.config.name));
        std::fs::write(&path, serde_json::to_string_pretty(&metrics).unwrap_or_default()).map_err(EngineError::io("write", &path))?;
        let eval_name = self.eval_path.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default();
        let trained_on = match &self.train_path {
            Some(path) => format!("{} labelled examples of {}", training.len(), path.file_name().map(|name| name.to_string_lossy().to_string()).unwrap_or_default()),
            None => format!("{} synthetic examples", training.len()),
        };
        cx.run.note(match accuracy {
            Some(accuracy) => format!(
                "{}: a classifier trained on {trained_on} scores {:.1}% on {} real examples of {eval_name} (majority class: {:.1}%)",
                cx.step,
                accuracy * 100.0,
                evaluation.len(),
                baseline * 100.0
            ),
            None => format!("{}: no classifier trained: the training data has fewer than two labels ({} examples)", cx.step, training.len()),
        });
        if self.train_path.is_none() {
            return Ok(());
        }
        // The critic labels every record of the stream.
        let Some(model) = model else {
            return Err(fail(format!("the training file has fewer than two labels ({} examples), so there is no classifier to label the records with", training.len())));
        };
        let positive = self.config.positive.as_ref().map(|label| model.labels.iter().position(|known| known == label));
        if let Some(None) = positive {
            return Err(fail(format!("`positive: {}` is not a label of the training file (found {})", self.config.positive.as_deref().unwrap_or_default(), model.labels.join(", "))));
        }
        while let Some(mut record) = input.recv().await {
            cx.stats.record_in();
            let outcome = match label_text(record.get(&self.config.text)) {
                None => Outcome::fail(record, format!("fit: expected text in `{}` to label", self.config.text)),
                Some(text) => match self.features_of(&text).await {
                    Err(message) => Outcome::fail(record, format!("fit: {message}")),
                    Ok(features) => {
                        let probabilities = model.probabilities(&features);
                        if let Some(field) = &self.config.predict_into {
                            record.set(field.clone(), Value::String(model.labels[model.predict(&features)].clone()));
                        }
                        if let (Some(field), Some(Some(index))) = (&self.config.probability_into, positive) {
                            let probability = (probabilities[index] as f64 * 10_000.0).round() / 10_000.0;
                            record.set(field.clone(), json!(probability));
                        }
                        Outcome::Keep(record)
                    }
                },
            };
            if let Some(record) = cx.settle(outcome).await {
                if output.send(record).await.is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_separable_toy_set_is_learned() {
        let texts = [("great wonderful film", "pos"), ("awful boring mess", "neg"), ("wonderful acting great story", "pos"), ("boring awful plot", "neg")];
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let examples: Vec<(Features, usize)> =
            texts.iter().map(|(text, label)| (Features::ngrams(text), labels.iter().position(|known| known == label).unwrap())).collect();
        let model = Model::train(&examples, BUCKETS, labels, 8, 1);
        assert_eq!(model.labels[model.predict(&Features::ngrams("a great story"))], "pos");
        assert_eq!(model.labels[model.predict(&Features::ngrams("so boring"))], "neg");
    }

    #[test]
    fn dense_features_are_learned_too() {
        // Two clusters of unit vectors, one per label.
        let unit = |x: f32, y: f32| {
            let norm = (x * x + y * y + 1.0).sqrt();
            vec![x / norm, y / norm, 1.0 / norm]
        };
        let labels = vec!["neg".to_string(), "pos".to_string()];
        let examples: Vec<(Features, usize)> =
            [(unit(1.0, 0.1), 1), (unit(0.9, -0.1), 1), (unit(-1.0, 0.1), 0), (unit(-0.8, 0.0), 0)].iter().map(|(v, l)| (Features::dense(v), *l)).collect();
        let model = Model::train(&examples, 3, labels, 8, 1);
        assert_eq!(model.labels[model.predict(&Features::dense(&unit(0.7, 0.3)))], "pos");
        assert_eq!(model.labels[model.predict(&Features::dense(&unit(-0.6, -0.2)))], "neg");
    }
}
