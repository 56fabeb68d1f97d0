//! MetaSynth's mechanics on the scripted backend: the meta model plans each document from a
//! memory of the earlier ones, then calls the experts one at a time, choosing each next expert
//! and its instruction from what the others produced, until it says done; the embedding
//! diversity check rejects a document that repeats a kept one, across rounds.

use crate::common;

use serde_json::json;

const ROLES: &[&str] = &["meta"];

const DOC_A: &str = "A bond ladder spreads money over bonds that mature in different years. Each year one rung matures and the cash is reinvested at the far end of the ladder. This smooths the effect of changing interest rates, gives a steady income, and avoids having to guess when rates will rise or fall. Investors choose the length of the ladder from their needs.";
const DOC_B: &str = "Credit risk is the chance that a borrower fails to repay. Lenders judge it from income, existing debts and payment history, and price it into the interest they charge. Ratings agencies grade companies and governments; a downgrade raises their borrowing costs. Banks hold capital against expected losses and spread loans across many borrowers to limit the damage of any one default.";
const DOC_C: &str = "Companies that sell abroad earn money in foreign currencies, and a sudden swing in exchange rates can wipe out their profit. Currency hedging fixes a future rate today with forwards, futures or options. A hedge has costs: premiums, margin and the gains forgone if the currency moves the other way. Treasurers hedge part of their exposure and review it every quarter.";
const DOC_D: &str = "Gene expression is the process by which the information in a gene is used to make a protein. DNA is transcribed into messenger RNA in the nucleus, and the RNA is translated by ribosomes into a chain of amino acids. Cells switch genes on and off with transcription factors, so a liver cell and a nerve cell share the same genome but make different proteins.";

fn rules() -> String {
    format!(
        r#"
- {{when: '(?s)^user: You coordinate a team of expert writers.*finance.*- credit risk', reply: '{{"subtopic": "currency hedging", "plan": "a how-to guide for treasurers"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert writers.*finance.*- bond ladders', reply: '{{"subtopic": "credit risk", "plan": "a textbook section"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert writers.*finance', reply: '{{"subtopic": "bond ladders", "plan": "a guide for savers"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert writers.*biomedicine', reply: '{{"subtopic": "gene expression", "plan": "a textbook section"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*Subtopic: gene expression.*\[writer\]', reply: '{{"expert": "done", "instruction": "nothing more"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*Subtopic: gene expression.*\[keywords\]', reply: '{{"expert": "writer", "instruction": "Write it straight from the terms"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*\[summarizer\]', reply: '{{"expert": "done", "instruction": "nothing more"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*\[writer\]', reply: '{{"expert": "summarizer", "instruction": "One sentence for the memory"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*\[analyst\]', reply: '{{"expert": "writer", "instruction": "Write it for beginners"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents.*\[keywords\]', reply: '{{"expert": "analyst", "instruction": "Outline the points"}}'}}
- {{when: '(?s)^user: You coordinate a team of expert agents', reply: '{{"expert": "keywords", "instruction": "Find the terms"}}'}}
- {{when: '^user: You are a keyword', reply: 'term one, term two, term three'}}
- {{when: '(?s)^user: You are a content-analysis.*Key terms: term one', reply: 'Explain the idea, then an example.'}}
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
    let ran = common::run_recipe("metasynth", &rules(), ROLES, &[], Some(2));
    let mut kept: Vec<(String, u64, String)> = ran
        .rows("records")
        .iter()
        .map(|row| {
            (row["domain"].as_str().unwrap().to_string(), row["round"].as_u64().unwrap(), row["subtopic"].as_str().unwrap().to_string())
        })
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
    // The meta model chose the experts: finance went through all four, each told what to do;
    // for gene expression it skipped the analyst and the summarizer.
    for row in ran.rows("records") {
        let called: Vec<&str> = row["experts_called"].as_array().unwrap().iter().map(|e| e.as_str().unwrap()).collect();
        let workspace = row["workspace"].as_array().unwrap();
        if row["domain"] == json!("finance") {
            assert_eq!(called, ["keywords", "analyst", "writer", "summarizer"], "{row:?}");
            assert_eq!(workspace[2]["instruction"], json!("Write it for beginners"));
            assert_eq!(workspace[1]["output"], json!("Explain the idea, then an example."), "the analyst saw the keywords");
            assert_eq!(workspace[2]["output"], row["document"]);
        } else {
            assert_eq!(called, ["keywords", "writer"], "{row:?}");
            // No summarizer: the memory takes the document's first 30 words.
            let first_words: Vec<&str> = DOC_D.split_whitespace().take(30).collect();
            assert_eq!(row["summary"], json!(first_words.join(" ")));
        }
    }
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
    let ran = common::run_recipe("metasynth", "- {when: '.', reply: 'qwerty'}\n", ROLES, &[], Some(3));
    assert_eq!(ran.data().len(), 0);
    let failed = ran.failed();
    assert_eq!(failed.len(), 3);
    assert!(failed.iter().all(|row| row["reason"].as_str().unwrap().contains("expected JSON")), "{failed:?}");
    assert_eq!(common::accounted_seeds(&ran, "data").len(), 3);
}
