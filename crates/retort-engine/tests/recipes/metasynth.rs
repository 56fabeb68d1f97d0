//! MetaSynth's mechanics on the scripted backend: the meta model plans each document from a
//! memory of the earlier ones; expert steps feed each other; the embedding diversity check
//! rejects a document that repeats a kept one, across rounds.

use crate::common;

use retort_engine::{Overrides, PreparedRun, Recipe, RunOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const ROLES: &[&str] = &["meta"];

/// Runs the recipe folder `recipes/NAME` of this checkout on the scripted backend, as
/// `common::run_builtin` does, but from the source folder: the binary's embedded copy of the
/// built-in recipes is only refreshed when the engine crate is rebuilt. Every `llms:` entry in
/// `roles` is switched to the scripted backend with the same rules.
fn run_recipe(name: &str, rules: &str, roles: &[&str], set: &[&str], limit: Option<usize>) -> common::Ran {
    let dir = tempfile::tempdir().unwrap();
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes").join(name);
    let recipe_dir = dir.path().join("recipe");
    copy_dir(&source, &recipe_dir);
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
    let recipe = Recipe::load(&recipe_dir.join("recipe.yaml"), &overrides).unwrap_or_else(|problems| panic!("{problems}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let report = runtime.block_on(async {
        let prepared = PreparedRun::prepare(recipe, RunOptions::new(dir.path().join("out"))).unwrap();
        prepared.execute(CancellationToken::new()).await.unwrap()
    });
    common::Ran { dir, report }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
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
fn accounted_seeds(ran: &common::Ran, export: &str) -> std::collections::BTreeSet<String> {
    let lineage = common::read_jsonl(&ran.out().join(format!("{export}.lineage.jsonl")));
    lineage
        .iter()
        .chain(ran.dropped().iter())
        .chain(ran.failed().iter())
        .map(|row| {
            let id = row["id"].as_str().unwrap();
            let id = id.strip_prefix('r').and_then(|rest| rest.split_once('-').map(|(_, id)| id)).unwrap_or(id);
            id.split('.').next().unwrap().to_string()
        })
        .collect()
}

const DOC_A: &str = "A bond ladder spreads money over bonds that mature in different years. Each year one rung matures and the cash is reinvested at the far end of the ladder. This smooths the effect of changing interest rates, gives a steady income, and avoids having to guess when rates will rise or fall. Investors choose the length of the ladder from their needs.";
const DOC_B: &str = "Credit risk is the chance that a borrower fails to repay. Lenders judge it from income, existing debts and payment history, and price it into the interest they charge. Ratings agencies grade companies and governments; a downgrade raises their borrowing costs. Banks hold capital against expected losses and spread loans across many borrowers to limit the damage of any one default.";
const DOC_C: &str = "Companies that sell abroad earn money in foreign currencies, and a sudden swing in exchange rates can wipe out their profit. Currency hedging fixes a future rate today with forwards, futures or options. A hedge has costs: premiums, margin and the gains forgone if the currency moves the other way. Treasurers hedge part of their exposure and review it every quarter.";
const DOC_D: &str = "Gene expression is the process by which the information in a gene is used to make a protein. DNA is transcribed into messenger RNA in the nucleus, and the RNA is translated by ribosomes into a chain of amino acids. Cells switch genes on and off with transcription factors, so a liver cell and a nerve cell share the same genome but make different proteins.";

fn rules() -> String {
    format!(
        r#"
- {{when: '(?s)^user: You coordinate.*finance.*- credit risk', reply: "Subtopic: currency hedging\nPlan: a how-to guide for treasurers"}}
- {{when: '(?s)^user: You coordinate.*finance.*- bond ladders', reply: "Subtopic: credit risk\nPlan: a textbook section"}}
- {{when: '(?s)^user: You coordinate.*finance', reply: "Subtopic: bond ladders\nPlan: a guide for savers"}}
- {{when: '(?s)^user: You coordinate.*biomedicine', reply: "Subtopic: gene expression\nPlan: a textbook section"}}
- {{when: '^user: You are a keyword', reply: 'term one, term two, term three'}}
- {{when: '^user: You are a content-analysis', reply: 'Explain the idea, then an example.'}}
- {{when: '(?s)^user: Write a document.*Subtopic: bond ladders', reply: '{DOC_A}'}}
- {{when: '(?s)^user: Write a document.*Subtopic: credit risk', reply: '{DOC_B}'}}
- {{when: '(?s)^user: Write a document.*Subtopic: currency hedging', reply: '{DOC_C}'}}
- {{when: '(?s)^user: Write a document.*Subtopic: gene expression', reply: '{DOC_D}'}}
- {{when: '(?s)^user: Summarise.*Subtopic: ([a-z ]+)\n', reply: 'A document about $1.'}}
"#
    )
}

#[test]
fn memory_steers_the_planner_and_repeats_are_rejected() {
    let ran = run_recipe("metasynth", &rules(), ROLES, &[], Some(2));
    let mut kept: Vec<(String, u64, String)> = ran
        .rows("records")
        .iter()
        .map(|row| (row["domain"].as_str().unwrap().to_string(), row["round"].as_u64().unwrap(), row["subtopic"].as_str().unwrap().to_string()))
        .collect();
    kept.sort();
    // Finance: each round the planner saw the memory and chose a new subtopic. Biomedicine: the
    // planner repeated itself in round 2 and the diversity check rejected the document.
    assert_eq!(
        kept,
        vec![
            ("biomedicine".to_string(), 1, "gene expression".to_string()),
            ("finance".to_string(), 1, "bond ladders".to_string()),
            ("finance".to_string(), 2, "credit risk".to_string()),
            ("finance".to_string(), 3, "currency hedging".to_string()),
        ]
    );
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["record"]["subtopic"], json!("gene expression"));
    assert!(dropped[0]["reason"].as_str().unwrap().contains("dedup"), "{dropped:?}");
    // The memory holds every earlier document of the chain, in order.
    let last = ran.rows("records").into_iter().find(|row| row["round"] == json!(3)).unwrap();
    assert_eq!(
        last["memory"],
        json!([
            "bond ladders: A document about bond ladders.",
            "credit risk: A document about credit risk.",
            "currency hedging: A document about currency hedging."
        ])
    );
    // Pre-training documents and SFT rows.
    assert_eq!(ran.data().len(), 4);
    assert!(ran.data().iter().any(|row| row["text"] == json!(DOC_C)));
    assert_eq!(ran.rows("sft").len(), 4);
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = run_recipe("metasynth", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(3));
    assert_eq!(ran.data().len(), 0);
    let failed = ran.failed();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|row| row["reason"].as_str().unwrap().contains("expected a match")), "{failed:?}");
    assert_eq!(accounted_seeds(&ran, "data").len(), 3);
}
