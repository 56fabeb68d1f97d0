//! SPIN's mechanics on the scripted backend: the chosen response is the human (gold) answer,
//! the rejected one is the model's own answer to the same prompt, and a prompt the model
//! already answers exactly as the human did gives no pair.

use crate::common;

/// The model echoes the start of the prompt, except for the "relation" task, which it answers
/// word for word as the human did.
const RULES: &str = r#####"
- {when: "user: What is the relation between the given pairs\\?", reply: "The relation between the given pairs is that they are opposites."}
- {when: "(?s)user: (\\w+ \\w+)", reply: "My own take on ${1}."}
"#####;

#[test]
fn chosen_is_the_human_answer_and_rejected_the_models_own() {
    let ran = common::run_builtin("spin", RULES, &[], Some(4));
    let seeds = common::read_jsonl(&ran.dir.path().join("recipe/data/seed_tasks.jsonl"));
    let data = ran.data();
    let records = ran.rows("records");
    // Seed 1 is answered exactly as the human did: no pair; the other three make one each.
    assert_eq!(data.len(), 3, "{data:?}");
    for (row, seed) in data.iter().zip([&seeds[0], &seeds[2], &seeds[3]]) {
        let instruction = seed["instruction"].as_str().unwrap();
        let prompt = row["prompt"].as_str().unwrap();
        assert!(prompt.starts_with(instruction), "{prompt}");
        // The input, when there is one, follows the instruction.
        let input = seed["input"].as_str().unwrap();
        assert!(input.is_empty() || prompt.ends_with(input), "{prompt}");
        assert_eq!(row["chosen"], seed["output"]);
        let first_two: Vec<&str> = instruction.split_whitespace().take(2).collect();
        assert_eq!(row["rejected"].as_str().unwrap(), format!("My own take on {}.", first_two.join(" ")));
    }
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|row| row["gold"] != row["own"]));
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0]["reason"].as_str().unwrap().starts_with("filter drop"), "{dropped:?}");
    // The trainer's data for the round is the same pairs; with no trainer, one iteration.
    let train = common::read_jsonl(&ran.out().join("rounds/train-round-1.jsonl"));
    assert_eq!(train.len(), 3);
    assert_eq!(train[0]["chosen"], seeds[0]["output"]);
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("spin", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(5));
    // "qwerty" differs from every human answer, so every prompt still makes a pair.
    let data = ran.data();
    assert_eq!(data.len(), 5);
    assert!(data.iter().all(|row| row["rejected"] == "qwerty" && row["chosen"] != "qwerty"));
    assert_eq!(ran.report.failed + ran.report.dropped, 0);
}

#[test]
fn each_iteration_plays_against_the_last_model_and_trains_on_its_pairs_and_the_previous_ones() {
    let ran = common::run_builtin("spin", RULES, &["vars.trainer=echo next-model"], Some(4));
    // Three iterations of three pairs each.
    let records = ran.rows("records");
    let per_round = |round: u64| records.iter().filter(|row| row["round"] == round).count();
    assert_eq!((per_round(1), per_round(2), per_round(3)), (3, 3, 3));
    // Iteration 1 trains on its own pairs; iterations 2 and 3 on theirs and the iteration before's.
    let rows = |file: &str| common::read_jsonl(&ran.out().join("rounds").join(file)).len();
    assert_eq!(rows("train-round-1.jsonl"), 3);
    assert!(!ran.out().join("rounds/train-accumulated-1.jsonl").exists());
    assert_eq!(rows("train-accumulated-2.jsonl"), 6);
    assert_eq!(rows("train-accumulated-3.jsonl"), 6);
    let notes = &ran.report.notes;
    assert!(notes.iter().any(|note| note.ends_with("round 2 trained on 6 rows → model next-model")), "{notes:?}");
    // The opponent of iterations 2 and 3 is the model iteration 1 trained.
    let lineage = common::read_jsonl(&ran.out().join("records.lineage.jsonl"));
    let models: Vec<&str> = lineage
        .iter()
        .zip(&records)
        .map(|(line, row)| {
            let own = line["lineage"].as_array().unwrap().iter().find(|entry| entry["field"] == "own").unwrap();
            assert!(row["round"] != 1 || own["model"] == "scripted", "{own:?}");
            own["model"].as_str().unwrap()
        })
        .collect();
    assert_eq!(models.iter().filter(|model| **model == "next-model").count(), 6, "{models:?}");
}
