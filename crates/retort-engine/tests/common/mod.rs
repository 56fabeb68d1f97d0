//! Shared helpers for the engine's tests: run a recipe in a temporary directory and read what it wrote.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use retort_engine::{Overrides, PreparedRun, Recipe, RunOptions, RunReport};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// What a run left behind.
pub struct Ran {
    pub dir: tempfile::TempDir,
    pub report: RunReport,
}

impl Ran {
    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    /// The rows of `NAME.jsonl`.
    pub fn rows(&self, name: &str) -> Vec<Map<String, Value>> {
        read_jsonl(&self.out().join(format!("{name}.jsonl")))
    }

    pub fn data(&self) -> Vec<Map<String, Value>> {
        self.rows("data")
    }

    pub fn failed(&self) -> Vec<Map<String, Value>> {
        self.rows("failed")
    }

    pub fn dropped(&self) -> Vec<Map<String, Value>> {
        self.rows("dropped")
    }

    /// One field of every data row.
    pub fn column(&self, field: &str) -> Vec<Value> {
        self.data().iter().map(|row| row.get(field).cloned().unwrap_or(Value::Null)).collect()
    }
}

pub fn read_jsonl(path: &Path) -> Vec<Map<String, Value>> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|line| !line.trim().is_empty()).map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// Writes the recipe and files into a temporary directory and runs it to completion.
pub fn run(recipe: &str, files: &[(&str, &str)]) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let report = run_in(dir.path(), recipe, files, &Overrides::default());
    Ran { dir, report }
}

/// Runs (or re-runs) a recipe in a given directory; the run directory is `DIR/out`.
pub fn run_in(dir: &Path, recipe: &str, files: &[(&str, &str)], overrides: &Overrides) -> RunReport {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    std::fs::write(dir.join("recipe.yaml"), recipe).unwrap();
    let recipe = Recipe::load(&dir.join("recipe.yaml"), overrides).unwrap_or_else(|problems| panic!("{problems}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let prepared = PreparedRun::prepare(recipe, RunOptions::new(dir.join("out"))).unwrap();
        prepared.execute(CancellationToken::new()).await.unwrap()
    })
}

/// The problems `validate` reports for a recipe, one per line.
pub fn problems(recipe: &str, files: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    match Recipe::parse(recipe, dir.path(), &Overrides::default()) {
        Ok(_) => "ok".to_string(),
        Err(problems) => problems
            .iter()
            .map(|problem| problem.to_string().replace(&dir.path().display().to_string(), "PATH"))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A mock OpenAI server on its own runtime thread, alive as long as this value.
pub struct Mock {
    pub server: Option<retort_mock::MockServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Mock {
    pub fn start(config: retort_mock::MockConfig) -> Mock {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let server = runtime.block_on(retort_mock::MockServer::start(config)).unwrap();
        Mock { server: Some(server), runtime: Some(runtime) }
    }

    pub fn server(&self) -> &retort_mock::MockServer {
        self.server.as_ref().unwrap()
    }

    pub fn url(&self) -> String {
        self.server().url()
    }

    /// Keys of the requests answered with 200.
    pub fn answered(&self) -> Vec<String> {
        self.server().requests().into_iter().filter(|request| request.status == 200).map(|request| request.key).collect()
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        if let (Some(server), Some(runtime)) = (self.server.take(), self.runtime.take()) {
            runtime.block_on(server.shutdown());
            runtime.shutdown_background();
        }
    }
}

/// Fifty topics, one per line.
pub fn topics(count: usize) -> String {
    (0..count).map(|index| format!("{{\"topic\": \"topic number {index}\"}}\n")).collect()
}

/// The quickstart recipe pointed at a server, with fast retries.
pub fn quickstart(url: &str, second_prompt: &str) -> String {
    format!(
        r#"
name: quickstart
llm:
  backend: openai
  base_url: {url}
  model: default
  max_concurrency: 4
  max_retries: 3
  retry_base_s: 0.01
  retry_max_s: 0.05
steps:
  - load: {{path: topics.jsonl}}
  - generate: {{prompt: "Write one question about {{{{ topic }}}}.", into: question}}
  - generate: {{prompt: "{second_prompt} {{{{ question }}}}", into: answer}}
  - filter: {{keep: "answer | length > 20"}}
  - export: {{formats: [jsonl, parquet]}}
"#
    )
}

/// The overrides that put the recipe's `llms.ROLE` on the scripted backend with rules of its
/// own (written to `dir`), where `run_builtin`'s rules serve only the default model.
pub fn scripted_role(dir: &Path, role: &str, rules: &str) -> Vec<String> {
    let file = dir.join(format!("{role}.yaml"));
    std::fs::write(&file, rules).unwrap();
    vec![format!("llms.{role}.backend=scripted"), format!("llms.{role}.rules_file={}", file.display())]
}

/// Runs a built-in recipe on the scripted backend: `rules` is a YAML list of scripted rules
/// (`- {when: REGEX, reply: TEXT}`), `set` more `PATH=VALUE` overrides, `limit` caps the seeds.
pub fn run_builtin(name: &str, rules: &str, set: &[&str], limit: Option<usize>) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let file = retort_engine::builtin::extract(name, &dir.path().join("recipe")).unwrap();
    run_scripted(dir, &file, rules, &[], set, limit)
}

/// Runs the recipe folder `recipes/NAME` of this checkout on the scripted backend, as
/// `common::run_builtin` does, but from the source folder: the binary's embedded copy of the
/// built-in recipes is only refreshed when the engine crate is rebuilt. Every `llms:` entry in
/// `roles` is switched to the scripted backend with the same rules.
pub fn run_recipe(name: &str, rules: &str, roles: &[&str], set: &[&str], limit: Option<usize>) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let recipe_dir = dir.path().join("recipe");
    copy_dir(&checkout("recipes").join(name), &recipe_dir);
    run_scripted(dir, &recipe_dir.join("recipe.yaml"), rules, roles, set, limit)
}

/// Runs a recipe file of this checkout where it lies (its relative paths read the checkout,
/// `evals/` reads `recipes/`), on the scripted backend; the run directory is temporary.
pub fn run_file(path: &std::path::Path, rules: &str, set: &[&str], limit: Option<usize>) -> Ran {
    run_scripted(tempfile::tempdir().unwrap(), path, rules, &[], set, limit)
}

/// As `run_file`, with the `llms:` entries in `roles` on the scripted backend too.
pub fn run_file_with(path: &std::path::Path, rules: &str, roles: &[&str], set: &[&str], limit: Option<usize>) -> Ran {
    run_scripted(tempfile::tempdir().unwrap(), path, rules, roles, set, limit)
}

/// Runs a recipe file on the scripted backend with `rules` (also for the `llms:` in `roles`),
/// its run directory `out` in `dir`.
fn run_scripted(dir: tempfile::TempDir, file: &Path, rules: &str, roles: &[&str], set: &[&str], limit: Option<usize>) -> Ran {
    let rules_path = dir.path().join("rules.yaml");
    std::fs::write(&rules_path, rules).unwrap();
    let mut overrides = Overrides {
        backend: Some("scripted".to_string()),
        limit,
        set: vec![format!("llm.rules_file={}", rules_path.display())],
        ..Overrides::default()
    };
    for role in roles {
        overrides.set.push(format!("llms.{role}.backend=scripted"));
        overrides.set.push(format!("llms.{role}.rules_file={}", rules_path.display()));
    }
    overrides.set.extend(set.iter().map(|item| item.to_string()));
    let recipe = Recipe::load(file, &overrides).unwrap_or_else(|problems| panic!("{problems}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = runtime.block_on(async {
        let prepared = PreparedRun::prepare(recipe, RunOptions::new(dir.path().join("out"))).unwrap();
        prepared.execute(CancellationToken::new()).await.unwrap()
    });
    Ran { dir, report }
}

/// Points the sandbox at the built `retort` binary, whose `__sandbox-helper` restricts itself
/// before it runs Python (a test binary cannot host the helper).
#[allow(dead_code)]
pub fn use_retort_as_sandbox_helper() {
    let exe = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/retort");
    std::env::set_var("RETORT_WORKER_EXE", exe);
}

/// A file of this checkout, from the repository root.
pub fn checkout(path: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The seed ids (the part before the first `.`) of every record a run accounted for: exported
/// (from the lineage file of `export`), dropped or failed.
pub fn accounted_seeds(ran: &Ran, export: &str) -> std::collections::BTreeSet<String> {
    let lineage = read_jsonl(&ran.out().join(format!("{export}.lineage.jsonl")));
    lineage
        .iter()
        .chain(ran.dropped().iter())
        .chain(ran.failed().iter())
        .map(|row| {
            // Each round of a `repeat` after the first prefixes `rK-` (nested for later rounds).
            let mut id = row["id"].as_str().unwrap();
            while let Some((_, rest)) =
                id.strip_prefix('r').and_then(|rest| rest.split_once('-')).filter(|(round, _)| round.parse::<u32>().is_ok())
            {
                id = rest;
            }
            // A child is `ID.N`; a record removed on pass K of an `iterate` is `ID~K`.
            id.split(['.', '~']).next().unwrap().to_string()
        })
        .collect()
}

/// Loads an exported file with Hugging Face `datasets` as a training tool would (`json` or
/// `parquet` by its extension) and returns its rows' count. Needs the Python environment of
/// `scripts/setup-test-python.sh` (`scripts/test.sh` makes it).
pub fn rows_by_datasets(file: &Path) -> usize {
    let venv = std::env::var_os("RETORT_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test"));
    let python = venv.join("bin/python");
    assert!(python.exists(), "{} is missing: run scripts/setup-test-python.sh (scripts/test.sh does)", python.display());
    let builder = if file.extension().is_some_and(|ext| ext == "parquet") { "parquet" } else { "json" };
    let script = format!(
        "import sys, datasets\ndatasets.disable_progress_bars()\nd = datasets.load_dataset('{builder}', data_files=sys.argv[1], split='train')\nprint(len(d))"
    );
    let output = std::process::Command::new(python).args(["-c", &script]).arg(file).env("HF_DATASETS_OFFLINE", "1").output().unwrap();
    assert!(output.status.success(), "datasets could not load {}: {}", file.display(), String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}
