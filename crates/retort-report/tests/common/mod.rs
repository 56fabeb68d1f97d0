//! Shared by the report's tests: a small recipe on the scripted backend, run in a folder.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use retort_engine::{Overrides, PreparedRun, Recipe, RunOptions, RunReport};
use tokio_util::sync::CancellationToken;

/// Two rounds of questions, answers and scores, with a filter, a dedup, a failing parse and an
/// answer that carries markup and script.
pub const RECIPE: &str = r#####"
name: report-test
description: "A small loop for the report's tests <b>not bold</b>."
seed: 7
llm:
  backend: scripted
  price: {prompt: 0.5, completion: 2.0}
  rules:
    - {when: "(?s)Rate.*tides", reply: "Fine. Score: 4"}
    - {when: "(?s)Rate.*bees", reply: "Weak. Score: 2"}
    - {when: "(?s)Rate.*html", reply: "Odd. Score: 3"}
    - {when: "(?s)Rate.*broken", reply: "no idea"}
    - {when: "(?s)Rate", reply: "Score: 5"}
    - {when: "Answer about html", reply: "<script>alert('pwned')</script><b>bold</b>"}
    - {when: "Answer about (\\w+)", reply: "Something true about $1."}
steps:
  - load: {records: [{topic: tides}, {topic: bees}, {topic: tides}, {topic: html}, {topic: broken}, {topic: moss}]}
  - repeat:
      rounds: 2
      feed: input
      steps:
        - generate: {prompt: "Answer about {{ topic }} (round {{ round }})", into: answer}
        - filter: {drop: "topic == 'moss'"}
        - judge: {prompt: "Rate the answer about {{ topic }}: {{ answer }}", into: score, scale: [1, 5]}
  - dedup: {field: answer}
"#####;

pub fn run_recipe(dir: &Path, cancelled: bool) -> RunReport {
    std::fs::write(dir.join("recipe.yaml"), RECIPE).unwrap();
    let recipe = Recipe::load(&dir.join("recipe.yaml"), &Overrides::default()).unwrap_or_else(|problems| panic!("{problems}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let mut options = RunOptions::new(dir.join("out"));
        options.grace = std::time::Duration::from_millis(0);
        let prepared = PreparedRun::prepare(recipe, options).unwrap();
        let cancel = CancellationToken::new();
        if cancelled {
            cancel.cancel();
        }
        prepared.execute(cancel).await.unwrap()
    })
}
