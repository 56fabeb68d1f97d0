//! Step kinds: one config struct and one build function each, one file per kind.
//!
//! A step either works on one record at a time ([`RecordStep`]: the runtime runs many at once,
//! keeps their order, honours `when:`, and catches panics) or on the whole stream
//! ([`StreamStep`]: sources, dedup, pairing, rounds, export).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::Environment;

use crate::error::{Diagnostic, EngineError};
use crate::runtime::{Built, PipelineStep};
use crate::template::{expression_variables, template_variables, GLOBALS};

pub(crate) mod prompt;
#[cfg(feature = "agent")]
pub(crate) mod toolset;

/// The table of step kinds: one line per kind (its doc, its variant, its module and config
/// type, and the features it needs). It is the only list of kinds: it declares the module and
/// makes [`StepConfig`], [`KINDS`], and the kind's name, definition, keys and parser, so a new
/// kind is one file plus one line here. A file in `steps/` that is not in the table is not
/// compiled (the tidy test says so).
macro_rules! step_kinds {
    ($( $(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident($module:ident :: $config:ident), )*) => {
        $( $(#[cfg($cfg)])? pub(crate) mod $module; )*

        /// The config of one step, by kind.
        #[derive(Debug, Clone)]
        pub enum StepConfig {
            $( $(#[doc = $doc])* $(#[cfg($cfg)])? $variant($module::$config), )*
        }

        /// Every step kind, as recipes name them.
        pub const KINDS: &[&str] = &[ $( $(#[cfg($cfg)])? stringify!($module), )* ];

        impl StepConfig {
            /// The kind's name.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $(#[cfg($cfg)])? StepConfig::$variant(_) => stringify!($module), )*
                }
            }

            /// What the kind provides: templates, checks, build.
            pub(crate) fn def(&self) -> &dyn StepDef {
                match self {
                    $( $(#[cfg($cfg)])? StepConfig::$variant(config) => config, )*
                }
            }

            /// The keys its config accepts, for unknown-key checks.
            pub(crate) fn fields_of(kind: &str) -> &'static [&'static str] {
                match kind {
                    $( $(#[cfg($cfg)])? stringify!($module) => <$module::$config as StepKind>::fields(), )*
                    _ => &[],
                }
            }

            /// Reads a config of `kind`; the path and message of the first problem otherwise.
            /// `repeat` holds steps of its own and is read by the recipe parser.
            pub(crate) fn parse<'de, D: serde::Deserializer<'de>>(kind: &str, settings: D) -> Result<StepConfig, (String, String)> {
                match kind {
                    $( $(#[cfg($cfg)])? stringify!($module) => <$module::$config as StepKind>::read(settings).map(StepConfig::$variant), )*
                    other => Err((String::new(), format!("unknown step kind `{other}`"))),
                }
            }
        }
    };
}

step_kinds! {
    /// Read seed records from a file or the recipe.
    Load(load::LoadConfig),
    /// Ask a model; write its (parsed) answer into a field.
    Generate(generate::GenerateConfig),
    /// Ask a model to score or compare; write the parsed verdict.
    Judge(judge::JudgeConfig),
    /// The log-probability of a continuation after a prompt.
    Score(score::ScoreConfig),
    /// Check a field: answer match, regex, JSON schema, Python in the sandbox.
    Verify(verify::VerifyConfig),
    /// Keep or drop records by an expression.
    Filter(filter::FilterConfig),
    /// Compute fields with expressions or templates.
    Map(map::MapConfig),
    /// Remove duplicates.
    Dedup(dedup::DedupConfig),
    /// Majority vote over the samples of one question.
    Vote(vote::VoteConfig),
    /// Keep the k best-scored records of each group.
    Top(top::TopConfig),
    /// Build chosen/rejected pairs from scored candidates.
    Pair(pair::PairConfig),
    /// Several roles take turns.
    Converse(converse::ConverseConfig),
    /// An agent works on a task with tools or in an environment.
    #[cfg(feature = "agent")]
    Act(act::ActConfig),
    /// Run one named tool with arguments from the record (no model).
    #[cfg(feature = "agent")]
    Call(call::CallConfig),
    /// Two model roles play a game (Adversarial Taboo).
    #[cfg(feature = "agent")]
    Play(play::PlayConfig),
    /// Run a sub-pipeline for several rounds.
    Repeat(repeat::RepeatConfig),
    /// Run sub-steps on each record until its own condition holds (retries, curricula).
    Iterate(iterate::IterateConfig),
    /// The top-k documents of a collection for each record (BM25).
    #[cfg(feature = "agent")]
    Retrieve(retrieve::RetrieveConfig),
    /// Draw items (few-shot examples, personas, tags) from a pool.
    Sample(sample::SampleConfig),
    /// Turn a list field into one record per item.
    Explode(explode::ExplodeConfig),
    /// Train a small classifier on the records and score it on a labelled file.
    Fit(fit::FitConfig),
    /// Aggregate expressions over the stream into a metrics file.
    Metrics(metrics::MetricsConfig),
    /// Hand a round's data to a trainer and continue with the model it returns.
    Train(train::TrainConfig),
    /// Write records to files.
    Export(export::ExportConfig),
}

/// What the table needs of a config type besides [`StepDef`]: the keys it accepts and how it
/// is read from the recipe's settings.
pub(crate) trait StepKind: Sized {
    /// The keys its config accepts.
    fn fields() -> &'static [&'static str];

    /// Reads the config; the path and message of the first problem otherwise.
    fn read<'de, D: serde::Deserializer<'de>>(settings: D) -> Result<Self, (String, String)>;
}

/// Reads a config with serde, saying where the first problem is.
pub(crate) fn read_config<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(settings: D) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(settings).map_err(|error| {
        let path = error.path().to_string();
        let path = if path == "." { String::new() } else { path };
        (path, crate::limits::friendly(&error.into_inner().to_string()))
    })
}

/// Implements [`StepKind`] for configs read by serde, whose keys are their fields.
macro_rules! fields_by_serde {
    ($($config:ty),* $(,)?) => {
        $( impl StepKind for $config {
            fn fields() -> &'static [&'static str] {
                crate::introspect::struct_fields::<$config>()
            }

            fn read<'de, D: serde::Deserializer<'de>>(settings: D) -> Result<Self, (String, String)> {
                read_config(settings)
            }
        } )*
    };
}

fields_by_serde!(
    load::LoadConfig,
    generate::GenerateConfig,
    judge::JudgeConfig,
    score::ScoreConfig,
    verify::VerifyConfig,
    filter::FilterConfig,
    map::MapConfig,
    dedup::DedupConfig,
    vote::VoteConfig,
    top::TopConfig,
    pair::PairConfig,
    converse::ConverseConfig,
    sample::SampleConfig,
    explode::ExplodeConfig,
    fit::FitConfig,
    metrics::MetricsConfig,
    train::TrainConfig,
    export::ExportConfig,
);
#[cfg(feature = "agent")]
fields_by_serde!(act::ActConfig, call::CallConfig, play::PlayConfig, retrieve::RetrieveConfig);

impl StepConfig {
    /// Whether the step works on the whole stream (so `when:` cannot apply to single records).
    pub(crate) fn works_on_the_stream(&self) -> bool {
        self.def().works_on_the_stream()
    }
}

/// One step of a recipe.
#[derive(Debug, Clone)]
pub struct StepSpec {
    /// Its path, e.g. `steps[2].generate`; names it in errors, statistics and lineage.
    pub path: String,
    /// Run the step only on records where this expression is true; others pass unchanged.
    pub when: Option<String>,
    /// Records it works on at once.
    pub concurrency: Option<usize>,
    /// The kind and its config.
    pub config: StepConfig,
    /// An earlier step of the same list could not be read, so the fields here are not known.
    pub(crate) after_broken: bool,
}

/// Runs the context checks of a list of steps, threading the known fields through.
pub(crate) fn check_steps(steps: &[StepSpec], cx: &mut CheckCx<'_>) {
    for step in steps {
        cx.path = step.path.clone();
        if step.after_broken {
            cx.fields.open = true;
        }
        if let Some(when) = &step.when {
            if step.config.works_on_the_stream() {
                let kind = step.config.kind();
                cx.error("when", format!("`{kind}` works on the whole stream and takes no `when`; put a `filter` before it, or mark records with `map` and let `{kind}` read the mark"));
            } else {
                cx.expression("when", when, &[]);
            }
        }
        step.config.def().check(cx);
    }
}

/// Visits every step, those inside `repeat` and `iterate` included.
pub(crate) fn for_each_step<'a>(steps: &'a [StepSpec], visit: &mut dyn FnMut(&'a StepSpec)) {
    for step in steps {
        visit(step);
        match &step.config {
            StepConfig::Repeat(config) => for_each_step(&config.steps, visit),
            StepConfig::Iterate(config) => for_each_step(&config.steps, visit),
            _ => {}
        }
    }
}

/// Builds the runnable steps of a list of specs (used for the recipe and inside `repeat`).
pub(crate) fn build_steps(specs: &[StepSpec], cx: &BuildCx) -> Result<Vec<Arc<PipelineStep>>, EngineError> {
    let mut steps = Vec::with_capacity(specs.len());
    for spec in specs {
        let stats = cx.stats.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).register(&spec.path, spec.config.kind());
        let built = spec.config.def().build(spec, cx)?;
        let when = spec.when.as_ref().map(|when| crate::template::Expr::at(&spec.path, "when", when));
        steps.push(Arc::new(PipelineStep { path: spec.path.clone(), when, built, stats }));
    }
    Ok(steps)
}

/// A template a step declares: inline text or a file beside the recipe.
#[derive(Debug, Clone)]
pub(crate) enum TemplateSource {
    Inline(String),
    File(String),
}

/// What every step kind provides: its templates, its context checks, a build function, and
/// its static properties.
pub(crate) trait StepDef {
    /// Templates to compile, by key (`prompt`, `system`, `messages[0].content`).
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        Vec::new()
    }

    /// Expressions to compile once with the templates, by key (`keep`, `set.FIELD`, `until`).
    fn expressions(&self) -> Vec<(String, String)> {
        Vec::new()
    }

    /// Whether the built step works on the whole stream ([`crate::runtime::StreamStep`]):
    /// then `when:` cannot apply to single records.
    fn works_on_the_stream(&self) -> bool {
        false
    }

    /// Checks the step against what is known upstream, and records the fields it adds.
    fn check(&self, cx: &mut CheckCx<'_>);

    /// Builds the runnable step.
    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError>;
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
    pub exports: Arc<std::sync::Mutex<Vec<crate::output::ExportTarget>>>,
    /// The fields known at each export, by step path, from the context checks.
    pub fields_at: std::collections::BTreeMap<String, Vec<String>>,
}

impl BuildCx {
    /// The backend a step names, or the default one.
    pub(crate) fn llm(&self, step: &str, name: Option<&str>) -> Result<Arc<crate::llm::Llm>, EngineError> {
        let name = name.unwrap_or("default");
        if let Some(llm) = self.llms.get(name) {
            return Ok(llm.clone());
        }
        // `base`, `previous`, `current`, `reference`: a round of the default model.
        match (crate::llm::Handle::from_name(name), self.llms.get("default")) {
            (Some(handle), Some(default)) => Ok(Arc::new(default.view(handle))),
            _ => Err(EngineError::Step { step: step.to_string(), message: format!("no llm named `{name}`") }),
        }
    }

    /// How many records a record step works on at once.
    pub(crate) fn concurrency(&self, spec: &StepSpec, llm: Option<&crate::llm::Llm>) -> usize {
        spec.concurrency.or_else(|| llm.map(|llm| llm.window())).unwrap_or(self.default_concurrency).max(1)
    }
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
                self.error(
                    key,
                    format!("{problem}; filters added to Jinja's: extract_answer, last_number, word_count, numbered, truncate_words, flatten, from_json, bleu, cosine, max_cosine"),
                );
            }
        }
    }

    /// Checks that an expression compiles and uses only known variables.
    pub(crate) fn expression(&mut self, key: &str, expression: &str, extra: &[&str]) {
        match expression_variables(self.env, expression) {
            Ok(names) => self.check_names(key, names, extra),
            Err(error) => return self.error(key, format!("expression `{expression}` does not compile: {error}")),
        }
        // The expression was compiled as a template with the recipe's (`register_expression`):
        // look there for the filters and tests it calls.
        let name = crate::template::expression_name(&self.path, key);
        if let Ok(unknown) = crate::template::unknown_callables(self.env, &name) {
            for problem in unknown {
                self.error(key, format!("{problem} in `{expression}`"));
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

    /// Reports `value` at `key` unless it lies in `min..=max` (see `crate::limits`).
    pub(crate) fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.error(key, format!("expected a number from {min} to {max}, found {value}"));
        }
    }

    /// Records a field this step adds.
    pub(crate) fn write(&mut self, field: &str) {
        self.fields.known.insert(field.to_string());
    }

    /// Checks that a named backend exists.
    pub(crate) fn llm(&mut self, key: &str, name: Option<&str>) {
        let wanted = name.unwrap_or("default");
        let handle = crate::llm::Handle::from_name(wanted).is_some() && self.llm_names.contains("default");
        if !self.llm_names.contains(wanted) && !handle {
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
