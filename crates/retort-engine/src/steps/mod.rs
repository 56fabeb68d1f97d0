//! Step kinds: one config struct and one build function each, one file per kind.
//!
//! A step either works on one record at a time ([`RecordStep`]: the runtime runs many at once,
//! keeps their order, honours `when:`, and catches panics) or on the whole stream
//! ([`StreamStep`]: sources, dedup, pairing, rounds, export).

pub(crate) mod act;
pub(crate) mod converse;
pub(crate) mod dedup;
pub(crate) mod explode;
pub(crate) mod export;
pub(crate) mod filter;
pub(crate) mod fit;
pub(crate) mod generate;
pub(crate) mod judge;
pub(crate) mod load;
pub(crate) mod map;
pub(crate) mod pair;
pub(crate) mod play;
pub(crate) mod prompt;
pub(crate) mod repeat;
pub(crate) mod sample;
pub(crate) mod score;
pub(crate) mod train;
pub(crate) mod verify;
pub(crate) mod vote;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use minijinja::Environment;
use retort_core::{Outcome, Record};
use crate::error::{Diagnostic, EngineError};
use crate::flow::{Flow, Inbox, OrderKey, Outbox};
use crate::recipe::StepSpec;
use crate::runtime::StageCx;
use crate::template::{expression_variables, template_variables, GLOBALS};

/// The config of one step, by kind.
#[derive(Debug, Clone)]
pub enum StepConfig {
    /// Read seed records from a file or the recipe.
    Load(load::LoadConfig),
    /// Ask a model; write its (parsed) answer into a field.
    Generate(generate::GenerateConfig),
    /// Ask a model to score or compare; write the parsed verdict.
    Judge(judge::JudgeConfig),
    /// Check a field: answer match, regex, JSON schema.
    Verify(verify::VerifyConfig),
    /// Keep or drop records by an expression.
    Filter(filter::FilterConfig),
    /// Compute fields with expressions or templates.
    Map(map::MapConfig),
    /// Remove duplicates.
    Dedup(dedup::DedupConfig),
    /// Majority vote over the samples of one question.
    Vote(vote::VoteConfig),
    /// Build chosen/rejected pairs from scored candidates.
    Pair(pair::PairConfig),
    /// Several roles take turns.
    Converse(converse::ConverseConfig),
    /// An agent works on a task with tools or in an environment.
    Act(act::ActConfig),
    /// Two model roles play a game (Adversarial Taboo).
    Play(play::PlayConfig),
    /// Run a sub-pipeline for several rounds.
    Repeat(repeat::RepeatConfig),
    /// Draw items (few-shot examples, personas, tags) from a pool.
    Sample(sample::SampleConfig),
    /// The log-probability of a continuation after a prompt.
    Score(score::ScoreConfig),
    /// Turn a list field into one record per item.
    Explode(explode::ExplodeConfig),
    /// Train a small classifier on the records and score it on a labelled file.
    Fit(fit::FitConfig),
    /// Hand a round's data to a trainer and continue with the model it returns.
    Train(train::TrainConfig),
    /// Write records to files.
    Export(export::ExportConfig),
}

/// Every step kind, as recipes name them.
pub const KINDS: &[&str] = &[
    "load", "generate", "judge", "score", "verify", "filter", "map", "dedup", "vote", "pair", "converse", "act", "play", "repeat",
    "sample", "explode", "fit", "train", "export",
];

impl StepConfig {
    /// The kind's name.
    pub fn kind(&self) -> &'static str {
        match self {
            StepConfig::Load(_) => "load",
            StepConfig::Generate(_) => "generate",
            StepConfig::Judge(_) => "judge",
            StepConfig::Verify(_) => "verify",
            StepConfig::Filter(_) => "filter",
            StepConfig::Map(_) => "map",
            StepConfig::Dedup(_) => "dedup",
            StepConfig::Vote(_) => "vote",
            StepConfig::Pair(_) => "pair",
            StepConfig::Converse(_) => "converse",
            StepConfig::Act(_) => "act",
            StepConfig::Play(_) => "play",
            StepConfig::Repeat(_) => "repeat",
            StepConfig::Sample(_) => "sample",
            StepConfig::Score(_) => "score",
            StepConfig::Explode(_) => "explode",
            StepConfig::Fit(_) => "fit",
            StepConfig::Train(_) => "train",
            StepConfig::Export(_) => "export",
        }
    }

    /// Whether the step works on the whole stream (so `when:` cannot apply to single records).
    pub(crate) fn works_on_the_stream(&self) -> bool {
        matches!(
            self,
            StepConfig::Load(_)
                | StepConfig::Dedup(_)
                | StepConfig::Vote(_)
                | StepConfig::Pair(_)
                | StepConfig::Repeat(_)
                | StepConfig::Fit(_)
                | StepConfig::Train(_)
                | StepConfig::Export(_)
        )
    }

    pub(crate) fn def(&self) -> &dyn StepDef {
        match self {
            StepConfig::Load(config) => config,
            StepConfig::Generate(config) => config,
            StepConfig::Judge(config) => config,
            StepConfig::Verify(config) => config,
            StepConfig::Filter(config) => config,
            StepConfig::Map(config) => config,
            StepConfig::Dedup(config) => config,
            StepConfig::Vote(config) => config,
            StepConfig::Pair(config) => config,
            StepConfig::Converse(config) => config,
            StepConfig::Act(config) => config,
            StepConfig::Play(config) => config,
            StepConfig::Repeat(config) => config,
            StepConfig::Sample(config) => config,
            StepConfig::Score(config) => config,
            StepConfig::Explode(config) => config,
            StepConfig::Fit(config) => config,
            StepConfig::Train(config) => config,
            StepConfig::Export(config) => config,
        }
    }

    /// The keys its config accepts, for unknown-key checks.
    pub(crate) fn fields_of(kind: &str) -> &'static [&'static str] {
        use crate::recipe::introspect::struct_fields;
        match kind {
            "load" => struct_fields::<load::LoadConfig>(),
            "generate" => struct_fields::<generate::GenerateConfig>(),
            "judge" => struct_fields::<judge::JudgeConfig>(),
            "verify" => struct_fields::<verify::VerifyConfig>(),
            "filter" => struct_fields::<filter::FilterConfig>(),
            "map" => struct_fields::<map::MapConfig>(),
            "dedup" => struct_fields::<dedup::DedupConfig>(),
            "vote" => struct_fields::<vote::VoteConfig>(),
            "pair" => struct_fields::<pair::PairConfig>(),
            "converse" => struct_fields::<converse::ConverseConfig>(),
            "act" => struct_fields::<act::ActConfig>(),
            "play" => struct_fields::<play::PlayConfig>(),
            "repeat" => struct_fields::<repeat::RepeatRaw>(),
            "sample" => struct_fields::<sample::SampleConfig>(),
            "score" => struct_fields::<score::ScoreConfig>(),
            "explode" => struct_fields::<explode::ExplodeConfig>(),
            "fit" => struct_fields::<fit::FitConfig>(),
            "train" => struct_fields::<train::TrainConfig>(),
            "export" => struct_fields::<export::ExportConfig>(),
            _ => &[],
        }
    }

    /// Reads a config of `kind` from YAML; `repeat` is read by the recipe parser.
    pub(crate) fn parse(kind: &str, value: serde_yaml::Value) -> Result<StepConfig, (String, String)> {
        fn read<T: serde::de::DeserializeOwned>(value: serde_yaml::Value) -> Result<T, (String, String)> {
            serde_path_to_error::deserialize(value).map_err(|error| {
                let path = error.path().to_string();
                let path = if path == "." { String::new() } else { path };
                (path, crate::limits::friendly(&error.into_inner().to_string()))
            })
        }
        Ok(match kind {
            "load" => StepConfig::Load(read(value)?),
            "generate" => StepConfig::Generate(read(value)?),
            "judge" => StepConfig::Judge(read(value)?),
            "verify" => StepConfig::Verify(read(value)?),
            "filter" => StepConfig::Filter(read(value)?),
            "map" => StepConfig::Map(read(value)?),
            "dedup" => StepConfig::Dedup(read(value)?),
            "vote" => StepConfig::Vote(read(value)?),
            "pair" => StepConfig::Pair(read(value)?),
            "converse" => StepConfig::Converse(read(value)?),
            "act" => StepConfig::Act(read(value)?),
            "play" => StepConfig::Play(read(value)?),
            "sample" => StepConfig::Sample(read(value)?),
            "score" => StepConfig::Score(read(value)?),
            "explode" => StepConfig::Explode(read(value)?),
            "fit" => StepConfig::Fit(read(value)?),
            "train" => StepConfig::Train(read(value)?),
            "export" => StepConfig::Export(read(value)?),
            other => return Err((String::new(), format!("`{other}` is read elsewhere"))),
        })
    }
}

/// A template a step declares: inline text or a file beside the recipe.
#[derive(Debug, Clone)]
pub(crate) enum TemplateSource {
    Inline(String),
    File(String),
}

/// What every step kind provides: its templates, its context checks, and a build function.
pub(crate) trait StepDef {
    /// Templates to compile, by key (`prompt`, `system`, `messages[0].content`).
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        Vec::new()
    }

    /// Checks the step against what is known upstream, and records the fields it adds.
    fn check(&self, cx: &mut CheckCx<'_>);

    /// Builds the runnable step.
    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError>;
}

/// A built step, ready to run.
pub(crate) enum Built {
    /// Works record by record.
    Record(Arc<dyn RecordStep>),
    /// Works on the stream.
    Stream(Arc<dyn StreamStep>),
}

/// What a step needs at build time.
pub(crate) struct BuildCx {
    /// The directory recipe-relative paths start from.
    pub base_dir: PathBuf,
    /// Every backend of the recipe, by name (`default` for `llm:`).
    pub llms: std::collections::HashMap<String, Arc<crate::llm::Llm>>,
    /// The run's output directory.
    pub out_dir: PathBuf,
    /// The recipe's default concurrency for record steps.
    pub default_concurrency: usize,
    /// Counters of every step built so far, in order.
    pub stats: std::sync::Mutex<crate::stats::RunStats>,
    /// The files export steps write, finished (Parquet, card) when the run ends.
    pub exports: Arc<std::sync::Mutex<Vec<export::ExportTarget>>>,
    /// The fields known at each export, by step path, from the context checks.
    pub fields_at: std::collections::BTreeMap<String, Vec<String>>,
}

impl BuildCx {
    /// The backend a step names, or the default one.
    pub(crate) fn llm(&self, step: &str, name: Option<&str>) -> Result<Arc<crate::llm::Llm>, EngineError> {
        let name = name.unwrap_or("default");
        self.llms.get(name).cloned().ok_or_else(|| EngineError::Step {
            step: step.to_string(),
            message: format!("no llm named `{name}`"),
        })
    }

    /// How many records a record step works on at once.
    pub(crate) fn concurrency(&self, spec: &StepSpec, llm: Option<&crate::llm::Llm>) -> usize {
        spec.concurrency
            .or_else(|| llm.map(|llm| llm.window()))
            .unwrap_or(self.default_concurrency)
            .max(1)
    }
}

/// A step that works on one record at a time.
#[async_trait]
pub(crate) trait RecordStep: Send + Sync + 'static {
    /// What became of one record: kept (possibly fanned out), dropped or failed.
    async fn apply(&self, record: Record, cx: &StageCx) -> Vec<Outcome>;

    /// How many records it works on at once.
    fn concurrency(&self) -> usize;
}

/// A step that works on the whole stream.
#[async_trait]
pub(crate) trait StreamStep: Send + Sync + 'static {
    /// Reads `input` to its end, sending kept records to `output` and rejects through `cx`.
    async fn run(self: Arc<Self>, input: Inbox, output: Outbox, cx: StageCx) -> Result<(), EngineError>;
}

/// The fields known to exist at a point of the pipeline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    pub known: BTreeSet<String>,
    /// True when an upstream step may add fields we cannot name (a JSON answer spread into the record).
    pub open: bool,
    /// Said after "fields available here" when the fields are not what the author may think
    /// (the seed file's values were not JSON objects).
    pub hint: Option<String>,
}

/// The context of the context checks: what is available, and where problems go.
pub(crate) struct CheckCx<'a> {
    pub path: String,
    pub env: &'a Environment<'static>,
    pub fields: Fields,
    pub diagnostics: &'a mut Vec<Diagnostic>,
    pub base_dir: &'a Path,
    pub llm_names: &'a BTreeSet<String>,
    /// Files the recipe reads (templates, inputs): part of the run's fingerprint.
    pub files: &'a mut Vec<PathBuf>,
    /// The fields known at each export, by step path (the columns of an export with no rows).
    pub fields_at: &'a mut std::collections::BTreeMap<String, Vec<String>>,
    /// Variables defined by an enclosing step (for example `round` inside `repeat`).
    pub extra_globals: BTreeSet<String>,
}

impl CheckCx<'_> {
    /// Reports a problem at `key` of this step.
    pub(crate) fn error(&mut self, key: &str, message: impl Into<String>) {
        let path = if key.is_empty() { self.path.clone() } else { format!("{}.{key}", self.path) };
        self.diagnostics.push(Diagnostic::new(path, message));
    }

    fn available(&self) -> String {
        if self.fields.known.is_empty() {
            "none".to_string()
        } else {
            self.fields.known.iter().cloned().collect::<Vec<_>>().join(", ")
        }
    }

    fn check_names(&mut self, key: &str, names: BTreeSet<String>, extra: &[&str]) {
        if self.fields.open {
            return;
        }
        for name in names {
            let known = self.fields.known.contains(&name)
                || GLOBALS.contains(&name.as_str())
                || self.extra_globals.contains(&name)
                || extra.contains(&name.as_str())
                || self.env.globals().any(|(global, _)| global == name);
            if !known {
                let available = self.available();
                let hint = self.fields.hint.as_ref().map(|hint| format!(" ({hint})")).unwrap_or_default();
                self.error(key, format!("unknown variable `{name}`; fields available here: {available}{hint}"));
            }
        }
    }

    /// Checks that a template compiled and uses only known variables (plus `extra`).
    pub(crate) fn template(&mut self, key: &str, extra: &[&str]) {
        let name = format!("{}.{key}", self.path);
        match template_variables(self.env, &name) {
            Ok(names) => self.check_names(key, names, extra),
            // A compile error was reported when the template was registered.
            Err(_) => return,
        }
        if let Ok(unknown) = crate::template::unknown_callables(self.env, &name) {
            for problem in unknown {
                self.error(key, format!("{problem}; filters added to Jinja's: extract_answer, last_number, word_count, numbered, truncate_words"));
            }
        }
    }

    /// Checks that an expression compiles and uses only known variables.
    pub(crate) fn expression(&mut self, key: &str, expression: &str, extra: &[&str]) {
        match expression_variables(self.env, expression) {
            Ok(names) => self.check_names(key, names, extra),
            Err(error) => return self.error(key, format!("expression `{expression}` does not compile: {error}")),
        }
        // The expression as a template, to find the filters and tests it calls.
        let mut probe = self.env.clone();
        if probe.add_template_owned("expression", format!("{{{{ {expression} }}}}")).is_ok() {
            if let Ok(unknown) = crate::template::unknown_callables(&probe, "expression") {
                for problem in unknown {
                    self.error(key, format!("{problem} in `{expression}`"));
                }
            }
        }
    }

    /// Checks that a field read directly exists upstream.
    pub(crate) fn read(&mut self, key: &str, field: &str) {
        if !self.fields.open && !self.fields.known.contains(field) {
            let available = self.available();
            let hint = self.fields.hint.as_ref().map(|hint| format!(" ({hint})")).unwrap_or_default();
            self.error(key, format!("unknown field `{field}`; fields available here: {available}{hint}"));
        }
    }

    /// Records a field this step adds.
    pub(crate) fn write(&mut self, field: &str) {
        self.fields.known.insert(field.to_string());
    }

    /// Checks that a named backend exists.
    pub(crate) fn llm(&mut self, key: &str, name: Option<&str>) {
        let wanted = name.unwrap_or("default");
        if !self.llm_names.contains(wanted) {
            let message = match name {
                None => "this step needs a model, but the recipe has no `llm:` block".to_string(),
                Some(name) => {
                    let known: Vec<&str> = self.llm_names.iter().map(String::as_str).collect();
                    format!("unknown llm `{name}`; llms defined: {}", if known.is_empty() { "none".to_string() } else { known.join(", ") })
                }
            };
            self.error(key, message);
        }
    }

    /// Resolves a path relative to the recipe and checks it is a regular file that can be read.
    pub(crate) fn file(&mut self, key: &str, path: &str) -> Option<PathBuf> {
        let resolved = self.base_dir.join(path);
        match file_problem(&resolved) {
            None => {
                self.files.push(resolved.clone());
                Some(resolved)
            }
            Some(problem) => {
                self.error(key, problem);
                None
            }
        }
    }

    /// Checks a regular expression.
    pub(crate) fn regex(&mut self, key: &str, pattern: &str) {
        if let Err(error) = regex::Regex::new(pattern) {
            self.error(key, format!("invalid regular expression: {error}"));
        }
    }
}

/// What keeps `path` from being read as a file, in words: missing, a broken or looping
/// symbolic link, a directory, a pipe or a device (reading `/dev/zero` would never end).
pub(crate) fn file_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => match std::fs::File::open(path) {
            Ok(_) => None,
            Err(error) => Some(format!("cannot read {shown}: {error}")),
        },
        Ok(metadata) => {
            let kind = metadata.file_type();
            let what = if kind.is_dir() {
                "a directory"
            } else if kind.is_fifo() {
                "a named pipe (FIFO)"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_block_device() {
                "a block device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            };
            Some(format!("expected a regular file, found {what}: {shown}"))
        }
        Err(error) if error.raw_os_error() == Some(40) => Some(format!("{shown} is a loop of symbolic links; point it at a file")),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => match std::fs::symlink_metadata(path) {
            Ok(_) => Some(format!("{shown} is a symbolic link to a file that does not exist")),
            Err(_) => Some(format!("file not found: {shown}")),
        },
        Err(error) => Some(format!("cannot read {shown}: {error}")),
    }
}

/// Runs a record step over a stream: many records at once, with `when:` and panics handled.
///
/// Each record goes on as soon as its work is done, so a slow one (a request hanging until
/// its timeout) holds back no other; its place in the order travels with it, and watermarks
/// tell the next ordered reader when it may release what overtook it (see `crate::flow`).
pub(crate) async fn drive_records(
    step: Arc<dyn RecordStep>,
    when: Option<String>,
    mut input: Inbox,
    output: Outbox,
    cx: StageCx,
) -> Result<(), EngineError> {
    use futures::stream::{FuturesUnordered, StreamExt};
    let window = step.concurrency();
    let mut running = FuturesUnordered::new();
    let mut order = Watermarks::default();
    loop {
        tokio::select! {
            biased;
            done = running.next(), if !running.is_empty() => {
                let Some((key, outcomes)) = done else { continue };
                let in_order = order.is_lowest(&key);
                order.finish(&key);
                let outcomes: Vec<Outcome> = outcomes;
                let count = outcomes.len();
                for (index, outcome) in outcomes.into_iter().enumerate() {
                    if let Some(record) = cx.settle(outcome).await {
                        let key = crate::flow::outcome_key(&key, index, count);
                        order.sent(&key, in_order);
                        if output.send_flow(Flow::Record { key, record, ordered: in_order }).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                if let Some(watermark) = order.due() {
                    if output.send_flow(Flow::Watermark(watermark)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            message = input.recv_flow(), if running.len() < window && !order.input_closed => {
                match message {
                    None => order.input_closed = true,
                    Some(Flow::Watermark(watermark)) => order.input_reached(watermark),
                    Some(Flow::Record { key, record, ordered }) => {
                        if ordered {
                            let mut past = key.clone();
                            past.push(0);
                            order.input_reached(past);
                        }
                        order.start(key.clone());
                        running.push(apply_one(step.clone(), when.clone(), key, record, cx.clone()));
                    }
                }
                if let Some(watermark) = order.due() {
                    if output.send_flow(Flow::Watermark(watermark)).await.is_err() {
                        return Ok(());
                    }
                }
            }
            else => break,
        }
    }
    Ok(())
}

/// One record's work in a record step: `when:`, the step itself, a panic turned into a failure.
async fn apply_one(step: Arc<dyn RecordStep>, when: Option<String>, key: OrderKey, record: Record, cx: StageCx) -> (OrderKey, Vec<Outcome>) {
    use futures::FutureExt;
    cx.stats.record_in();
    // After Ctrl-C no new record is started; a resumed run does it.
    if cx.run.cancel.is_cancelled() {
        return (key, Vec::new());
    }
    if let Some(condition) = &when {
        match cx.run.templates.eval(condition, &record, cx.round) {
            Ok(value) if !crate::template::truthy(&value) => return (key, vec![Outcome::Keep(record)]),
            Ok(_) => {}
            Err(error) => {
                let reason = format!("`when: {condition}` failed: {error}");
                return (key, vec![Outcome::fail(record, reason)]);
            }
        }
    }
    // Only the id is kept aside for a panic: a copy of every record at every step would
    // cost more than the step itself on a fast server. A panicked record is failed under
    // its id (which names its seed), without its fields.
    let id_for_panic = record.id.clone();
    let outcomes = match std::panic::AssertUnwindSafe(step.apply(record, &cx)).catch_unwind().await {
        Ok(outcomes) => outcomes
            .into_iter()
            .filter(|outcome| !matches!(outcome, Outcome::Fail(_, reason, _) if reason.contains(INTERRUPTED)))
            .collect(),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_else(|| "unknown panic".to_string());
            vec![Outcome::fail(Record::new(id_for_panic, serde_json::Map::new()), format!("internal error (panic): {message}"))]
        }
    };
    (key, outcomes)
}

/// A record step's bookkeeping of the order: which inputs are in flight, how far its input
/// has come, and how far what it sent is complete.
#[derive(Default)]
struct Watermarks {
    /// Keys of the records being worked on.
    in_flight: std::collections::BTreeSet<OrderKey>,
    /// Every input key below this one has arrived.
    input: OrderKey,
    input_closed: bool,
    /// The last watermark sent (or implied by a record sent in order).
    sent: OrderKey,
    /// A record went out of order since the last watermark: the next reader waits for one.
    owed: bool,
}

impl Watermarks {
    fn input_reached(&mut self, key: OrderKey) {
        if key > self.input {
            self.input = key;
        }
    }

    fn start(&mut self, key: OrderKey) {
        self.in_flight.insert(key);
    }

    /// Whether every input before `key` has arrived and been finished: its outcomes then go
    /// out in order.
    fn is_lowest(&self, key: &OrderKey) -> bool {
        self.in_flight.first() == Some(key) && (self.input_closed || self.input > *key)
    }

    fn finish(&mut self, key: &OrderKey) {
        self.in_flight.remove(key);
    }

    fn sent(&mut self, key: &OrderKey, in_order: bool) {
        if in_order {
            if *key > self.sent {
                self.sent = key.clone();
            }
        } else {
            self.owed = true;
        }
    }

    /// A watermark to send now: owed, and higher than the last. Everything below the lowest
    /// record in flight (or below how far the input has come) has been sent.
    fn due(&mut self) -> Option<OrderKey> {
        if !self.owed {
            return None;
        }
        let reached = match self.in_flight.first() {
            Some(lowest) if self.input_closed || *lowest < self.input => lowest.clone(),
            _ if self.input_closed => return None,
            _ => self.input.clone(),
        };
        if reached > self.sent {
            self.sent = reached.clone();
            self.owed = false;
            Some(reached)
        } else {
            None
        }
    }
}

/// The reason given by work that was not started because the run is stopping; such records
/// are set aside silently (neither kept nor failed) and redone by the next run.
pub(crate) const INTERRUPTED: &str = "interrupted before its request was sent";


