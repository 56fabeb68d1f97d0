//! Recipe files: YAML read in two phases, structure first, then context, every problem reported at once.
//!
//! Architecture Invariant: only this module knows YAML. The rest of the engine sees [`Recipe`].

mod llm_config;
pub(crate) mod overrides;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

pub use crate::llm::LlmConfig;

pub use crate::steps::StepSpec;

use crate::error::{Diagnostic, Diagnostics};
use crate::introspect::suggest;
use crate::steps::{check_steps, for_each_step, iterate, repeat, CheckCx, Fields, StepConfig, TemplateSource, KINDS};

/// Keys a recipe may have at its top level.
const TOP_LEVEL: &[&str] = &["name", "description", "paper", "outputs", "needs", "seed", "vars", "llm", "llms", "concurrency", "steps"];

/// Keys every step's config may have besides its own.
const COMMON: &[&str] = &["when", "concurrency"];

/// A recipe, checked for structure: what `retort run` executes.
#[derive(Debug, Clone)]
pub struct Recipe {
    /// Its name.
    pub name: String,
    /// What it makes, in a sentence.
    pub description: String,
    /// The paper it implements, for built-in recipes.
    pub paper: Option<String>,
    /// What it outputs (for the recipe table), in words.
    pub outputs: Option<String>,
    /// The run seed from which every request's seed is derived.
    pub seed: u64,
    /// Values templates read as `vars.NAME`.
    pub vars: serde_json::Value,
    /// Backends by name; the `llm:` block is `default`.
    pub llms: BTreeMap<String, LlmConfig>,
    /// Records a record step works on at once, when neither it nor its model says.
    pub concurrency: Option<usize>,
    /// The steps, in order.
    pub steps: Vec<StepSpec>,
    /// Where recipe-relative paths start.
    pub base_dir: PathBuf,
    /// The recipe file, if it came from one.
    pub file: Option<PathBuf>,
    /// The resolved document (after overrides), for the run's fingerprint.
    pub(crate) resolved: String,
    /// Every llm name the recipe declares, also those whose block has problems.
    pub(crate) declared_llms: BTreeSet<String>,
}

/// Changes to a recipe from the command line.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `PATH=VALUE` assignments (`--set`).
    pub set: Vec<String>,
    /// Replace the default backend's kind (`--backend`).
    pub backend: Option<String>,
    /// The default backend's base URL (`--base-url`).
    pub base_url: Option<String>,
    /// The default backend's model (`--model`).
    pub model: Option<String>,
    /// The environment variable holding the API key (`--api-key-env`).
    pub api_key_env: Option<String>,
    /// Cap on the records the first `load` reads (`--limit`).
    pub limit: Option<usize>,
}

impl Recipe {
    /// Reads and checks a recipe file (structure and context).
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Recipe, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|error| Diagnostics {
            file: Some(path.to_path_buf()),
            items: vec![Diagnostic::new("", format!("cannot read the recipe: {error}"))],
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let base_dir = if base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { base_dir };
        Recipe::parse(&text, &base_dir, overrides).map_err(|items| Diagnostics { file: Some(path.to_path_buf()), items }).map(
            |mut recipe| {
                recipe.file = Some(path.to_path_buf());
                recipe
            },
        )
    }

    /// Reads a recipe from text; relative paths start at `base_dir`. Checks structure and context.
    pub fn parse(text: &str, base_dir: &Path, overrides: &Overrides) -> Result<Recipe, Vec<Diagnostic>> {
        // Editors on some systems start UTF-8 files with a byte-order mark; YAML would read it
        // as a second document.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut document: Value = serde_yaml::from_str(text).map_err(|error| vec![yaml_problem(&error.to_string())])?;
        apply_overrides(&mut document, overrides)?;
        let mut diagnostics = Vec::new();
        let recipe = parse_document(&document, base_dir, &mut diagnostics);
        let Some(recipe) = recipe else { return Err(diagnostics) };
        // The context is checked even after structural problems, so every problem is listed
        // at once; fields after a step that could not be read count as unknown, not missing.
        recipe.context_facts(&mut diagnostics);
        if diagnostics.is_empty() {
            Ok(recipe)
        } else {
            Err(diagnostics)
        }
    }

    /// Compiles every template of the recipe into one environment, reporting problems.
    pub(crate) fn environment(&self, diagnostics: &mut Vec<Diagnostic>) -> minijinja::Environment<'static> {
        let mut env = crate::template::environment();
        crate::llm::embedding::register_filters(&mut env);
        for_each_step(&self.steps, &mut |step| {
            for (key, source) in step.config.def().templates() {
                let name = format!("{}.{key}", step.path);
                let text = match source {
                    TemplateSource::Inline(text) => text,
                    TemplateSource::File(file) => match std::fs::read_to_string(self.base_dir.join(&file)) {
                        Ok(text) => text,
                        Err(error) => {
                            diagnostics.push(Diagnostic::new(
                                name.clone(),
                                format!("cannot read template file {}: {error}", self.base_dir.join(&file).display()),
                            ));
                            continue;
                        }
                    },
                };
                if let Err(error) = env.add_template_owned(name.clone(), text) {
                    diagnostics.push(Diagnostic::new(name, format!("template does not compile: {error}")));
                }
            }
            for (key, expression) in step.config.def().expressions() {
                crate::template::register_expression(&mut env, &step.path, &key, &expression);
            }
            if let Some(when) = &step.when {
                crate::template::register_expression(&mut env, &step.path, "when", when);
            }
        });
        env
    }

    /// The context phase: templates compile, fields exist upstream, models and files resolve.
    /// Returns what the checks learn on the way.
    pub(crate) fn context_facts(&self, diagnostics: &mut Vec<Diagnostic>) -> ContextFacts {
        let env = self.environment(diagnostics);
        let llm_names = &self.declared_llms;
        let mut facts = ContextFacts::default();
        let mut cx = CheckCx {
            path: String::new(),
            env: &env,
            fields: Fields::default(),
            diagnostics,
            base_dir: &self.base_dir,
            llm_names,
            files: &mut facts.files,
            fields_at: &mut facts.fields_at,
            extra_globals: BTreeSet::new(),
        };
        check_steps(&self.steps, &mut cx);
        facts
    }

    /// The files the recipe reads (templates and inputs), for the run's fingerprint.
    pub(crate) fn files(&self) -> Vec<PathBuf> {
        self.context_facts(&mut Vec::new()).files
    }
}

/// What a recipe says of itself at its top, read without checking the rest (for listings).
#[derive(Debug, Clone, Default)]
pub(crate) struct Header {
    pub paper: String,
    pub description: String,
    pub outputs: String,
    pub needs: String,
}

/// The header of a recipe file's text, or `None` when it is not YAML.
pub(crate) fn header(text: &[u8]) -> Option<Header> {
    let document: Value = serde_yaml::from_slice(text).ok()?;
    let text = |key: &str| document.get(key).and_then(Value::as_str).unwrap_or_default().trim().to_string();
    Some(Header { paper: text("paper"), description: text("description"), outputs: text("outputs"), needs: text("needs") })
}

/// A YAML error as a problem; a number too large for any integer (`serde_yaml` reads it as an
/// "u128" it cannot hold) is said in words, at its path.
fn yaml_problem(message: &str) -> Diagnostic {
    static TOO_LARGE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let pattern = TOO_LARGE.get_or_init(|| {
        regex::Regex::new(r"^(?:(?P<path>\S+): )?invalid type: integer `(?P<number>-?\d+)` as [iu]128, expected any YAML value(?: at (?P<at>line \d+ column \d+))?").expect("valid pattern")
    });
    match pattern.captures(message) {
        Some(captures) => {
            let at = captures.name("at").map(|at| format!(" ({})", at.as_str())).unwrap_or_default();
            Diagnostic::new(
                captures.name("path").map_or("", |path| path.as_str()),
                format!("expected a whole number from 0 to {}, found {}{at}", u64::MAX, &captures["number"]),
            )
        }
        None => Diagnostic::new("", format!("not valid YAML: {message}")),
    }
}

/// What the context checks learn besides the problems.
#[derive(Debug, Default)]
pub(crate) struct ContextFacts {
    /// Files the recipe reads (templates, inputs): part of the run's fingerprint.
    pub files: Vec<PathBuf>,
    /// The fields known at each export, by step path.
    pub fields_at: BTreeMap<String, Vec<String>>,
}

fn apply_overrides(document: &mut Value, overrides: &Overrides) -> Result<(), Vec<Diagnostic>> {
    // The backend flags first, then `--set`, so a `--set llm.KEY=...` refines the chosen backend.
    let mut problems = Vec::new();
    if let Some(map) = document.as_mapping_mut() {
        if let Err(problem) = apply_backend_flags(map, overrides) {
            problems.push(problem);
        }
        if let Some(limit) = overrides.limit {
            let first_load = map
                .get_mut("steps")
                .and_then(Value::as_sequence_mut)
                .and_then(|steps| steps.iter_mut().find_map(|step| step.get_mut("load")));
            if let Some(Value::Mapping(load)) = first_load {
                load.insert("limit".into(), (limit as u64).into());
            }
        }
    }
    for assignment in &overrides.set {
        if let Err(problem) = overrides::apply(document, assignment) {
            problems.push(problem);
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Applies `--backend`, `--base-url`, `--model` and `--api-key-env`.
///
/// They change the `llm:` block and every `llms:` entry of the same backend as `llm:` (all of
/// them when there is no `llm:` block), so one flag points a whole recipe at a server. A
/// `--base-url` means the OpenAI-compatible backend; `--backend` with another kind than a
/// block has replaces the block, so settings of the old kind do not linger.
fn apply_backend_flags(map: &mut Mapping, overrides: &Overrides) -> Result<(), Diagnostic> {
    let backend = match (&overrides.backend, &overrides.base_url) {
        (Some(backend), Some(_)) if backend != "openai" => {
            return Err(Diagnostic::new(
                "--base-url",
                format!("a base URL is for the openai backend, found `--backend {backend}`; drop one of the two"),
            ))
        }
        (Some(backend), _) => Some(backend.clone()),
        (None, Some(_)) => Some("openai".to_string()),
        (None, None) => None,
    };
    if backend.is_none() && overrides.model.is_none() && overrides.api_key_env.is_none() {
        return Ok(());
    }
    let backend_of = |block: Option<&Value>| block.and_then(|block| block.get("backend")).and_then(Value::as_str).map(str::to_string);
    let llm_key = Value::from("llm");
    let default_backend = backend_of(map.get(&llm_key));
    let has_default = map.contains_key(&llm_key);
    let mut blocks: Vec<&mut Value> = Vec::new();
    let named_follow = |block: &Value| !has_default || backend_of(Some(block)) == default_backend;
    let mut llms_taken = map.remove("llms");
    if !has_default && llms_taken.as_ref().and_then(Value::as_mapping).is_none_or(|named| named.is_empty()) {
        map.insert(llm_key.clone(), Value::Mapping(Mapping::new()));
    }
    let mut default_block = map.remove(&llm_key);
    if let Some(block) = default_block.as_mut() {
        blocks.push(block);
    }
    if let Some(Value::Mapping(named)) = llms_taken.as_mut() {
        for (_, block) in named.iter_mut() {
            if named_follow(block) {
                blocks.push(block);
            }
        }
    }
    for block in blocks {
        if !block.is_mapping() {
            continue;
        }
        if let Some(backend) = &backend {
            if backend_of(Some(block)).as_deref() != Some(backend.as_str()) {
                let mut fresh = Mapping::new();
                fresh.insert("backend".into(), backend.clone().into());
                *block = Value::Mapping(fresh);
            }
        }
        let block = block.as_mapping_mut().expect("checked above");
        for (key, value) in [("base_url", &overrides.base_url), ("model", &overrides.model), ("api_key_env", &overrides.api_key_env)] {
            if let Some(value) = value {
                block.insert(key.into(), value.clone().into());
                if key == "base_url" {
                    block.remove("base_urls");
                }
            }
        }
    }
    if let Some(block) = default_block {
        map.insert(llm_key, block);
    }
    if let Some(named) = llms_taken {
        map.insert("llms".into(), named);
    }
    Ok(())
}

fn parse_document(document: &Value, base_dir: &Path, diagnostics: &mut Vec<Diagnostic>) -> Option<Recipe> {
    let Some(map) = document.as_mapping() else {
        diagnostics.push(Diagnostic::new("", format!("expected a mapping with `name` and `steps`, found {}", describe(document))));
        return None;
    };
    unknown_keys(map, TOP_LEVEL, "", diagnostics);
    let name = match map.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.clone(),
        Some(other) => {
            diagnostics.push(Diagnostic::new("name", format!("expected a non-empty string, found {}", describe(other))));
            String::new()
        }
        None => {
            diagnostics.push(Diagnostic::new("name", "missing; every recipe has a name"));
            String::new()
        }
    };
    let text = |key: &str, diagnostics: &mut Vec<Diagnostic>| match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text.clone()),
        Some(other) => {
            diagnostics.push(Diagnostic::new(key, format!("expected a string, found {}", describe(other))));
            None
        }
    };
    let description = text("description", diagnostics).unwrap_or_default();
    let paper = text("paper", diagnostics);
    let outputs = text("outputs", diagnostics);
    let seed = match map.get("seed") {
        None => 0,
        Some(value) => value.as_u64().unwrap_or_else(|| {
            diagnostics.push(Diagnostic::new("seed", format!("expected a non-negative integer, found {}", describe(value))));
            0
        }),
    };
    let concurrency = match map.get("concurrency") {
        None => None,
        Some(value) => match value.as_u64() {
            Some(count) if count > 0 => Some(count as usize),
            _ => {
                diagnostics.push(Diagnostic::new("concurrency", format!("expected a positive integer, found {}", describe(value))));
                None
            }
        },
    };
    let vars = match map.get("vars") {
        None | Some(Value::Null) => serde_json::json!({}),
        Some(value @ Value::Mapping(_)) => serde_json::to_value(value).unwrap_or_else(|_| serde_json::json!({})),
        Some(other) => {
            diagnostics.push(Diagnostic::new("vars", format!("expected a mapping, found {}", describe(other))));
            serde_json::json!({})
        }
    };
    let mut llms = BTreeMap::new();
    let mut declared_llms = BTreeSet::new();
    if let Some(value) = map.get("llm") {
        declared_llms.insert("default".to_string());
        if let Some(config) = llm_config::parse(value, "llm", diagnostics) {
            llms.insert("default".to_string(), config);
        }
    }
    match map.get("llms") {
        None | Some(Value::Null) => {}
        Some(Value::Mapping(named)) => {
            for (key, value) in named {
                let Some(name) = key.as_str() else {
                    diagnostics.push(Diagnostic::new("llms", format!("expected names as keys, found {}", describe(key))));
                    continue;
                };
                if name == "default" && llms.contains_key("default") {
                    diagnostics.push(Diagnostic::new("llms.default", "`default` is the `llm:` block; give this one another name"));
                }
                declared_llms.insert(name.to_string());
                if let Some(config) = llm_config::parse(value, &format!("llms.{name}"), diagnostics) {
                    llms.insert(name.to_string(), config);
                }
            }
        }
        Some(other) => {
            diagnostics.push(Diagnostic::new("llms", format!("expected a mapping of names to llm blocks, found {}", describe(other))))
        }
    }
    let steps = match map.get("steps") {
        Some(Value::Sequence(items)) if !items.is_empty() => {
            let mut items = items.clone();
            for item in &mut items {
                rounds_from_vars(item, &vars);
            }
            parse_steps(&items, "steps", diagnostics)
        }
        Some(Value::Sequence(_)) => {
            diagnostics.push(Diagnostic::new("steps", "empty; a recipe needs at least a `load` step"));
            Vec::new()
        }
        Some(other) => {
            diagnostics.push(Diagnostic::new("steps", format!("expected a list of steps, found {}", describe(other))));
            Vec::new()
        }
        None => {
            diagnostics.push(Diagnostic::new("steps", "missing; a recipe needs a list of steps"));
            Vec::new()
        }
    };
    let first_kind = map
        .get("steps")
        .and_then(Value::as_sequence)
        .and_then(|items| items.first())
        .and_then(Value::as_mapping)
        .and_then(|first| first.keys().next())
        .and_then(Value::as_str);
    if let Some(kind) = first_kind {
        if kind != "load" && KINDS.contains(&kind) {
            diagnostics.push(Diagnostic::new(format!("steps[0].{kind}"), format!("the first step must be `load`, found `{kind}`")));
        }
    }
    for step in steps.iter().skip(1) {
        if matches!(step.config, StepConfig::Load(_)) {
            diagnostics.push(Diagnostic::new(step.path.clone(), "`load` can only be the first step"));
        }
    }
    let resolved = serde_yaml::to_string(document).unwrap_or_default();
    Some(Recipe {
        name,
        description,
        paper,
        outputs,
        seed,
        vars,
        llms,
        concurrency,
        steps,
        base_dir: base_dir.to_path_buf(),
        file: None,
        resolved,
        declared_llms,
    })
}

/// Reads a list of steps at `path` (`steps`, or `steps[3].repeat.steps`).
pub(crate) fn parse_steps(items: &[Value], path: &str, diagnostics: &mut Vec<Diagnostic>) -> Vec<StepSpec> {
    let mut steps = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let broken_before = steps.len() < index;
        let item_path = format!("{path}[{index}]");
        let Some(map) = item.as_mapping() else {
            diagnostics.push(Diagnostic::new(item_path, format!("expected a step such as `generate: {{...}}`, found {}", describe(item))));
            continue;
        };
        if map.len() != 1 {
            let keys: Vec<String> = map.keys().filter_map(|key| key.as_str().map(str::to_string)).collect();
            diagnostics.push(Diagnostic::new(
                item_path,
                format!("expected exactly one step kind as the key, found {} keys: {}", map.len(), keys.join(", ")),
            ));
            continue;
        }
        let (key, body) = map.iter().next().expect("one entry");
        let Some(kind) = key.as_str() else {
            diagnostics.push(Diagnostic::new(item_path, format!("expected a step kind, found {}", describe(key))));
            continue;
        };
        if !KINDS.contains(&kind) {
            let hint = suggest(kind, KINDS.iter().copied()).map(|near| format!("did you mean `{near}`? ")).unwrap_or_default();
            diagnostics.push(Diagnostic::new(item_path, format!("unknown step kind `{kind}`; {hint}kinds: {}", KINDS.join(", "))));
            continue;
        }
        let step_path = format!("{item_path}.{kind}");
        let mut body = match body {
            Value::Mapping(body) => body.clone(),
            Value::Null => Mapping::new(),
            other => {
                diagnostics.push(Diagnostic::new(step_path, format!("expected a mapping of settings, found {}", describe(other))));
                continue;
            }
        };
        let known = StepConfig::fields_of(kind);
        let allowed: Vec<&str> = known.iter().chain(COMMON.iter()).copied().collect();
        let before = diagnostics.len();
        unknown_keys(&body, &allowed, &step_path, diagnostics);
        // Drop unknown keys so the type errors of the known ones are reported too.
        body.retain(|key, _| key.as_str().is_some_and(|key| allowed.contains(&key)));
        let when = match body.remove("when") {
            None | Some(Value::Null) => None,
            Some(Value::String(when)) => Some(when),
            Some(other) => {
                diagnostics.push(Diagnostic::new(
                    format!("{step_path}.when"),
                    format!("expected an expression as a string, found {}", describe(&other)),
                ));
                None
            }
        };
        let concurrency = match body.remove("concurrency") {
            None | Some(Value::Null) => None,
            Some(value) => match value.as_u64() {
                Some(count) if count > 0 => Some(count as usize),
                _ => {
                    diagnostics.push(Diagnostic::new(
                        format!("{step_path}.concurrency"),
                        format!("expected a positive integer, found {}", describe(&value)),
                    ));
                    None
                }
            },
        };
        let config = if kind == "repeat" {
            parse_repeat(Value::Mapping(body), &step_path, diagnostics)
        } else if kind == "iterate" {
            parse_iterate(Value::Mapping(body), &step_path, diagnostics)
        } else {
            match StepConfig::parse(kind, Value::Mapping(body)) {
                Ok(config) => Some(config),
                Err((field, message)) => {
                    let at = if field.is_empty() { step_path.clone() } else { format!("{step_path}.{field}") };
                    diagnostics.push(Diagnostic::new(at, message));
                    None
                }
            }
        };
        if let Some(config) = config {
            if diagnostics.len() == before {
                steps.push(StepSpec { path: step_path, when, concurrency, config, after_broken: broken_before });
            }
        }
    }
    steps
}

/// A `repeat`'s `rounds: "{{ vars.NAME }}"` (and an `iterate`'s `max_iterations`) takes the
/// number from `vars` (so that `--set vars.rounds=5` sets the rounds of a recipe that says so);
/// anything else stays as written for the parser to judge.
fn rounds_from_vars(value: &mut Value, vars: &serde_json::Value) {
    match value {
        Value::Mapping(map) => {
            for (key, item) in map.iter_mut() {
                if matches!(key.as_str(), Some("rounds" | "max_iterations")) {
                    if let Value::String(text) = item {
                        let name = text
                            .trim()
                            .strip_prefix("{{")
                            .and_then(|rest| rest.strip_suffix("}}"))
                            .map(str::trim)
                            .and_then(|inner| inner.strip_prefix("vars."));
                        if let Some(number) = name
                            .and_then(|name| vars.get(name))
                            .and_then(|value| value.as_u64().or_else(|| value.as_str().and_then(|text| text.parse().ok())))
                        {
                            *item = Value::Number(number.into());
                        }
                    }
                } else {
                    rounds_from_vars(item, vars);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|item| rounds_from_vars(item, vars)),
        _ => {}
    }
}

/// The settings of a step that holds steps of its own (`repeat`, `iterate`), as written; a
/// problem is reported at its path.
fn read_nested<T: serde::de::DeserializeOwned>(value: Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<T> {
    match serde_path_to_error::deserialize(value) {
        Ok(raw) => Some(raw),
        Err(error) => {
            let field = error.path().to_string();
            let at = if field == "." { path.to_string() } else { format!("{path}.{field}") };
            diagnostics.push(Diagnostic::new(at, crate::limits::friendly(&error.into_inner().to_string())));
            None
        }
    }
}

/// Reads a `repeat` config: its settings, then its nested steps as a list of their own.
fn parse_repeat(value: Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<StepConfig> {
    let raw: repeat::RepeatRaw<Value> = read_nested(value, path, diagnostics)?;
    let steps = parse_steps(&raw.steps, &format!("{path}.steps"), diagnostics);
    Some(StepConfig::Repeat(repeat::RepeatConfig::from_raw(raw, steps, path, diagnostics)))
}

/// Reads an `iterate` config: its settings, then its nested steps as a list of their own.
fn parse_iterate(value: Value, path: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<StepConfig> {
    let raw: iterate::IterateRaw<Value> = read_nested(value, path, diagnostics)?;
    let steps = parse_steps(&raw.steps, &format!("{path}.steps"), diagnostics);
    Some(StepConfig::Iterate(iterate::IterateConfig::from_raw(raw, steps, path, diagnostics)))
}

/// Reports every key of `map` not in `known`, with a suggestion where one is close.
pub(crate) fn unknown_keys(map: &Mapping, known: &[&str], path: &str, diagnostics: &mut Vec<Diagnostic>) {
    for key in map.keys() {
        let Some(name) = key.as_str() else {
            diagnostics.push(Diagnostic::new(path, format!("expected string keys, found {}", describe(key))));
            continue;
        };
        if !known.contains(&name) {
            let at = if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
            let hint = suggest(name, known.iter().copied()).map(|near| format!("did you mean `{near}`? ")).unwrap_or_default();
            diagnostics.push(Diagnostic::new(at, format!("unknown key `{name}`; {hint}expected one of: {}", known.join(", "))));
        }
    }
}

/// A short description of a YAML value for messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "nothing".to_string(),
        Value::Bool(flag) => format!("the boolean {flag}"),
        Value::Number(number) => format!("the number {number}"),
        Value::String(text) => format!("the string {:?}", text.chars().take(40).collect::<String>()),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(_) => "a tagged value".to_string(),
    }
}
