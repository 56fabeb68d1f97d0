//! Evol-Instruct's mechanics on the scripted backend: each round one sampled operation rewrites
//! the instruction through the template's branch for it, the elimination rules discard
//! evolutions without information gain, with apologetic short answers or with copied prompt
//! wording and put their instructions back into the pool, survivors evolve again, every
//! instruction carries its lineage, and the dataset mixes the seed data with the evolutions.

use crate::common;

use serde_json::json;

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
    // Every instruction of the pool is attempted each round: 5 seeds, 4 rounds.
    assert_eq!(records.len(), 20, "{records:?}");
    let evolved: Vec<_> = records.iter().filter(|row| row["evolved_ok"] == json!(true)).collect();
    // Seeds 2 and 4 survive all four rounds.
    assert_eq!(evolved.len(), 8);
    let mut operations_seen = std::collections::BTreeSet::new();
    for row in &evolved {
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
    // Elimination: three seeds fail a rule every round. Each failed evolution is discarded and
    // its instruction goes back into the pool as it was, so it is evolved again next round.
    let mut failures: Vec<(String, u64, String)> = records
        .iter()
        .filter(|row| row["evolved_ok"] == json!(false))
        .map(|row| {
            assert_eq!(row["instruction"], row["seed_instruction"], "{row:?}");
            assert_eq!(row["lineage"], json!([]));
            assert_ne!(row["failed_evolution"], json!(""));
            let seed = row["seed_instruction"].as_str().unwrap().chars().take(20).collect();
            (seed, row["round"].as_u64().unwrap(), row["eliminated"].as_str().unwrap().to_string())
        })
        .collect();
    failures.sort();
    let mut expected = Vec::new();
    for (seed, reason) in [
        ("Describe a situation", "copies the prompt wording"),
        ("Is there anything I ", "apologetic short answer"),
        ("What is the relation", "no information gain"),
    ] {
        expected.extend((1..=4).map(|round| (seed.to_string(), round, reason.to_string())));
    }
    assert_eq!(failures, expected);
    // An eliminated attempt after round 1 adds no row to the dataset: it leaves there, dropped.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 9, "{dropped:?}");
    assert!(dropped.iter().all(|row| row["record"]["evolved_ok"] == json!(false) && row["record"]["attempt_round"] != json!(1)));
    assert!(ran.failed().is_empty(), "{:?}", ran.failed());
    // SFT rows: the 5 seeds with their own answers, mixed with the 8 evolved instructions → answers.
    let data = ran.data();
    assert_eq!(data.len(), 13);
    let (evolved_rows, seed_rows): (Vec<_>, Vec<_>) =
        data.iter().partition(|row| row["messages"][1]["content"] == json!("Here is a careful, complete answer to the request above."));
    assert_eq!(evolved_rows.len(), 8);
    assert!(evolved_rows.iter().all(|row| row["messages"][0]["content"].as_str().unwrap().ends_with(']')));
    let seeds = common::read_jsonl(&common::checkout("recipes/evol-instruct/data/seed_tasks.jsonl"));
    for row in &seed_rows {
        let prompt = row["messages"][0]["content"].as_str().unwrap();
        let seed = seeds.iter().find(|seed| prompt.starts_with(seed["instruction"].as_str().unwrap())).expect("a seed task");
        assert_eq!(row["messages"][1]["content"], seed["output"], "{prompt}");
    }
    assert_eq!(seed_rows.len(), 5);
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("evol-instruct", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    // "qwerty" is no answer: every evolution is eliminated, every round, with the rule that
    // removed it; the dataset is the seed data alone.
    let records = ran.rows("records");
    assert_eq!(records.len(), 12);
    assert!(records.iter().all(|row| row["evolved_ok"] == json!(false) && row["eliminated"] == json!("no answer")), "{records:?}");
    assert_eq!(ran.data().len(), 3);
    assert_eq!(ran.dropped().len(), 9);
    assert!(ran.failed().is_empty());
}
