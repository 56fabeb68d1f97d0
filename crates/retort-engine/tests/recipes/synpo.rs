//! SynPO's mechanics on the scripted backend: prompts are written from sampled keywords, the
//! improver's rewrite is chosen over the model's own answer, and pairs whose judged preference
//! gap is below the threshold are dropped.

use crate::common;

/// The prompt generator echoes the keywords it was given. Two kinds of model answer: a "short
/// draft", improved to a 9 (from 3: gap 6), and a "weak draft", improved to a 5 (from 4: gap 1).
const RULES: &str = r#####"
- {when: "(?s)Keywords: ([^\n]*)\nRequest:$", reply: "Write a short note about $1."}
- {when: "(?s)Draft answer: A short draft", reply: "A complete and clear answer."}
- {when: "(?s)Draft answer: A weak draft", reply: "A slightly better answer."}
- {when: "(?s)Answer: A complete and clear answer", reply: "Very good. Score: 9"}
- {when: "(?s)Answer: A slightly better answer", reply: "Fine. Score: 5"}
- {when: "(?s)Answer: A short draft", reply: "Weak. Score: 3"}
- {when: "(?s)Answer: A weak draft", reply: "Weak. Score: 4"}
- {when: "^user: Write a short note about", replies: ["A short draft.", "A weak draft."]}
"#####;

#[test]
fn improved_answers_are_chosen_when_the_gap_is_large_enough() {
    let ran = common::run_builtin("synpo", RULES, &[], Some(8));
    let records = ran.rows("records");
    assert!(!records.is_empty());
    for row in &records {
        // The prompt was written around the keywords sampled for it.
        let keywords: Vec<&str> = row["keywords"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(keywords.len(), 3);
        assert_eq!(row["prompt"].as_str().unwrap(), format!("Write a short note about {}.", keywords.join(", ")));
        assert_eq!(row["original"], "A short draft.");
        assert_eq!(row["improved"], "A complete and clear answer.");
        assert_eq!(row["gap"].as_f64().unwrap(), 6.0);
    }
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    for row in &data {
        assert_eq!(row["chosen"], "A complete and clear answer.");
        assert_eq!(row["rejected"], "A short draft.");
    }
    // The weak drafts' improvements gained one point only: dropped by the gap filter.
    let dropped = ran.dropped();
    assert!(!dropped.is_empty());
    assert_eq!(dropped.len() + data.len(), 8);
    for row in &dropped {
        assert!(row["reason"].as_str().unwrap().contains("gap >= vars.min_gap"), "{row:?}");
        assert_eq!(row["record"]["original"], "A weak draft.");
    }
    // A lower threshold keeps them too.
    let lenient = common::run_builtin("synpo", RULES, &["vars.min_gap=1"], Some(8));
    assert_eq!(lenient.data().len(), 8);
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("synpo", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(4));
    // A one-word prompt is filtered out: every seed is dropped or failed, with a reason.
    assert!(ran.data().is_empty());
    assert_eq!(ran.dropped().len() + ran.failed().len(), 4);
    for row in ran.dropped().iter().chain(ran.failed().iter()) {
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty());
    }
}
