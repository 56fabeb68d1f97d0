//! Evol-Instruct's mechanics on the scripted backend: each round one sampled operation rewrites
//! the instruction through the template's branch for it, the elimination rules drop evolutions
//! without information gain, with apologetic short answers or with copied prompt wording, the
//! survivors evolve again, and every instruction carries its lineage.

use crate::common;

use serde_json::{json, Value};

/// Every evolution appends a marker naming the branch of the template that asked for it.
const RULES: &str = r#####"
- {when: "(?s)Original instruction: Describe a situation in which the given stereotype", reply: "New instruction: describe a stereotype."}
- {when: "(?s)one more requirement or constraint.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [add_constraints]"}
- {when: "(?s)in more depth and breadth.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [deepening]"}
- {when: "(?s)more specific, concrete ones.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [concretizing]"}
- {when: "(?s)several steps of reasoning.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [increase_reasoning]"}
- {when: "(?s)comes with harder input.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [complicate_input]"}
- {when: "(?s)rarer, less common topic.*Original instruction: (.*)\n\nNew instruction:$", reply: "$1 [breadth]"}
- {when: "(?s)brings nothing new.*First: What is the relation between the given pairs", reply: "Equal"}
- {when: "(?s)brings nothing new", reply: "Not equal"}
- {when: "(?s)^user: Is there anything I can eat for a breakfast", reply: "Sorry, I cannot help with that."}
- {when: ".", reply: "Here is a careful, complete answer to the request above."}
"#####;

#[test]
fn instructions_evolve_by_sampled_operations_and_keep_their_lineage() {
    let ran = common::run_builtin("evol-instruct", RULES, &[], Some(5));
    let records = ran.rows("records");
    // Seeds 2 and 4 survive all four rounds; every round's evolution is a row.
    assert_eq!(records.len(), 8, "{records:?}");
    let mut operations_seen = std::collections::BTreeSet::new();
    for row in &records {
        let round = row["round"].as_u64().unwrap() as usize;
        let lineage = row["lineage"].as_array().unwrap();
        let operations: Vec<&str> = lineage.iter().map(|step| step["operation"].as_str().unwrap()).collect();
        assert_eq!(lineage.len(), round);
        assert_eq!(row["operations_applied"], json!(operations));
        assert_eq!(row["operation"], json!(operations[round - 1]));
        // The lineage starts at the seed, each step starts from the previous step's result,
        // and the instruction went through the template branch of each sampled operation.
        assert_eq!(lineage[0]["from"], row["seed_instruction"]);
        let mut expected = row["seed_instruction"].as_str().unwrap().to_string();
        for (index, operation) in operations.iter().enumerate() {
            assert_eq!(lineage[index]["from"], json!(expected));
            assert_eq!(lineage[index]["round"], json!(index + 1));
            expected = format!("{expected} [{operation}]");
            operations_seen.insert(operation.to_string());
        }
        assert_eq!(row["instruction"], json!(expected));
    }
    assert!(operations_seen.len() >= 3, "operations are drawn per record and round: {operations_seen:?}");
    // Elimination: three seeds fail a rule in round 1, each with its reason.
    let dropped = ran.dropped();
    let mut reasons: Vec<(String, String)> = dropped
        .iter()
        .map(|row| {
            let seed = row["record"]["seed_instruction"].as_str().unwrap().chars().take(20).collect();
            (seed, row["record"]["eliminated"].as_str().unwrap().to_string())
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            ("Describe a situation".to_string(), "copies the prompt wording".to_string()),
            ("Is there anything I ".to_string(), "apologetic short answer".to_string()),
            ("What is the relation".to_string(), "no information gain".to_string()),
        ]
    );
    assert!(dropped.iter().all(|row| row["record"]["round"].is_null() && row["id"].as_str().unwrap().len() == 1));
    assert!(ran.failed().is_empty());
    // SFT rows: the evolved instruction → its answer.
    let data = ran.data();
    assert_eq!(data.len(), 8);
    assert!(data.iter().all(|row| row["messages"][1]["content"] == json!("Here is a careful, complete answer to the request above.")));
    let prompts: Vec<Value> = data.iter().map(|row| row["messages"][0]["content"].clone()).collect();
    assert!(prompts.iter().all(|prompt| prompt.as_str().unwrap().ends_with(']')));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("evol-instruct", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    assert!(ran.data().is_empty());
    // "qwerty" is no answer: each seed is eliminated in round 1, with the rule that removed it.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 3);
    assert!(dropped.iter().all(|row| row["record"]["eliminated"] == json!("no answer")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
