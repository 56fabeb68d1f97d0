//! Every built-in recipe against a model that answers nonsense to everything: the run completes,
//! every seed is accounted for (exported, dropped or failed), and every dropped or failed record
//! says why. Data-driven over `retort_engine::builtin::builtins()`, so a new recipe is covered
//! without touching this file.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::common;

/// Nonsense of several kinds; each request gets one of them by its seed: a word, nothing, broken
/// JSON and markup, a number, a scoring-looking line without a score, word soup, a refusal.
const NONSENSE: &str = r#####"
- when: "(?s)."
  replies:
    - "qwerty"
    - ""
    - "{\"oops\": [1, 2,, }} #### ??? <tag> ``` null"
    - "42"
    - "Score: banana / ten"
    - "the the the the the the the the the the the the the the the the the the the the"
    - "I'm sorry, but I can't help with that."
"#####;

/// Seeds each recipe starts from: a few, so the whole suite stays fast.
const LIMIT: usize = 3;

#[test]
fn every_builtin_recipe_survives_a_nonsense_model_and_accounts_for_every_seed() {
    let recipes = retort_engine::builtin::builtins();
    assert!(recipes.len() >= 24, "{} built-in recipes", recipes.len());
    let problems: Vec<String> = recipes.iter().flat_map(|recipe| check(&recipe.name)).collect();
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

/// What is wrong with one recipe's run against the nonsense model, one line per problem.
fn check(name: &str) -> Vec<String> {
    let document = recipe_yaml(name);
    let roles = roles(&document);
    let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
    let ran = match std::panic::catch_unwind(|| common::run_recipe(name, NONSENSE, &roles, &[], Some(LIMIT))) {
        Ok(ran) => ran,
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|text| text.to_string()))
                .unwrap_or_default();
            return vec![format!("{name}: the run did not complete: {message}")];
        }
    };
    let mut problems = Vec::new();
    if ran.report.outcome != retort_engine::RunOutcome::Completed {
        problems.push(format!("{name}: ended {:?}", ran.report.outcome));
    }
    let mut exports = Vec::new();
    collect_exports(document.get("steps"), &mut exports);
    // Every seed the load step read is exported, dropped or failed, in some form.
    let seeds = ran.report.steps.first().map_or(0, |step| step.out);
    let expected: BTreeSet<String> = (0..seeds).map(|index| index.to_string()).collect();
    let mut accounted = BTreeSet::new();
    for (export, _) in &exports {
        // Each call also reads `dropped.jsonl` and `failed.jsonl`.
        accounted.extend(common::accounted_seeds(&ran, export));
    }
    let missing: Vec<&String> = expected.difference(&accounted).collect();
    if !missing.is_empty() {
        problems.push(format!("{name}: seeds {missing:?} of {seeds} neither exported, dropped nor failed"));
    }
    // The counters and the files agree, and every removal says why.
    for (file, counted) in [("failed", ran.report.failed), ("dropped", ran.report.dropped)] {
        let rows = ran.rows(file);
        if rows.len() as u64 != counted {
            problems.push(format!("{name}: {file}.jsonl has {} rows, the report counts {counted}", rows.len()));
        }
        if let Some(row) = rows.iter().find(|row| row.get("reason").and_then(Value::as_str).is_none_or(|reason| reason.trim().is_empty())) {
            problems.push(format!("{name}: a {file} row without a reason: {row:?}"));
        }
    }
    // Whatever was exported has the shape its export declares.
    for (export, shape) in &exports {
        let rows = ran.rows(export);
        if let Some(row) = rows.iter().find(|row| !shape_ok(shape, row)) {
            problems.push(format!("{name}: a {export}.jsonl row not of the declared `{shape}` shape: {row:?}"));
        }
    }
    problems
}

/// An SFT row's messages are a non-empty list of `{role, content}` strings; a DPO row has its
/// three strings; a record row is any object.
fn shape_ok(shape: &str, row: &Map<String, Value>) -> bool {
    match shape {
        "sft" => row.get("messages").and_then(Value::as_array).is_some_and(|messages| {
            !messages.is_empty() && messages.iter().all(|message| message["role"].is_string() && message["content"].is_string())
        }),
        "dpo" => ["prompt", "chosen", "rejected"].iter().all(|key| row.get(*key).is_some_and(Value::is_string)),
        _ => true,
    }
}

/// The recipe file of this checkout (what `common::run_recipe` runs).
fn recipe_yaml(name: &str) -> serde_yaml::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes").join(name).join("recipe.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The names in the recipe's `llms:`, so every model it talks to is the nonsense one.
fn roles(document: &serde_yaml::Value) -> Vec<String> {
    match document.get("llms").and_then(serde_yaml::Value::as_mapping) {
        Some(llms) => llms.keys().filter_map(|key| key.as_str().map(str::to_string)).collect(),
        None => Vec::new(),
    }
}

/// Every `export` step's name and shape, inside `repeat` too.
fn collect_exports(steps: Option<&serde_yaml::Value>, into: &mut Vec<(String, String)>) {
    for step in steps.and_then(serde_yaml::Value::as_sequence).into_iter().flatten() {
        if let Some(export) = step.get("export") {
            let text = |key: &str, default: &str| export.get(key).and_then(serde_yaml::Value::as_str).unwrap_or(default).to_string();
            into.push((text("name", "data"), text("shape", "records")));
        }
        if let Some(repeat) = step.get("repeat") {
            collect_exports(repeat.get("steps"), into);
        }
    }
}
