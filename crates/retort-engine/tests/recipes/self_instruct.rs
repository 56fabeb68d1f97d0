//! Self-Instruct's mechanics on the scripted backend: prompts mix 6 human and 2 machine tasks,
//! new instructions pass the heuristic filters and the ROUGE-L novelty filter against the seed
//! tasks and everything kept, rounds stop at the target, and
//! instances are written input-first, or output-first for classification tasks.

use crate::common;

use serde_json::{json, Value};

/// The instruction-generation, classification and instance prompts, answered by their shape.
const RULES: &str = r#####"
# Round 2: the 7th demonstration is machine-written (drawn from round 1's kept instructions).
- {when: "(?s)numbered list of varied tasks.*\n7\\. (Write a haiku about rain|Classify the sentiment)", reply: "Name three rivers in Europe.\n10. Write a haiku about rain."}
# Round 1: only human demonstrations.
- {when: "(?s)numbered list of varied tasks", reply: "Write a haiku about rain.\n10. Classify the sentiment of this tweet as positive or negative.\n11. Draw a map of your town.\n12. Hi there\n13. What is the relation between the given pairs?\n14. (Optional) rewrite this text in French.\n15. What is the relation between these two given pairs?"}
- {when: "(?s)Decide whether each task.*\nTask: Classify the sentiment[^\n]*\nClassification:$", reply: "Yes"}
- {when: "(?s)Decide whether each task", reply: "No"}
- {when: "(?s)\nTask: Classify the sentiment[^\n]*\nClass label:$", reply: "Positive\nInput: I love this phone, it works great."}
- {when: "(?s)\nTask: Write a haiku about rain\\.\nInput:$", reply: "None\nOutput: Soft rain on the roof"}
- {when: "(?s)\nTask: Name three rivers in Europe\\.\nInput:$", reply: "None\nOutput: The Danube, the Rhine and the Seine."}
"#####;

fn by_instruction(rows: &[serde_json::Map<String, Value>]) -> Vec<(String, Value)> {
    rows.iter().map(|row| (row["record"]["instruction"].as_str().unwrap_or_default().to_string(), row["reason"].clone())).collect()
}

#[test]
fn instructions_bootstrap_through_filters_and_get_instances() {
    let ran = common::run_builtin("self-instruct", RULES, &["steps[2].repeat.until=total >= 3"], Some(2));
    let mut records = ran.rows("records");
    records.sort_by_key(|row| row["instruction"].as_str().unwrap().to_string());
    let summary: Vec<_> = records
        .iter()
        .map(|row| {
            (
                row["instruction"].clone(),
                row["round"].clone(),
                row["is_classification"].clone(),
                row["input"].clone(),
                row["output"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            // Classification: output first (the label), then the input.
            (
                json!("Classify the sentiment of this tweet as positive or negative."),
                json!(1),
                json!(true),
                json!("I love this phone, it works great."),
                json!("Positive")
            ),
            // Round 2 was prompted with machine demonstrations and added a new task.
            (json!("Name three rivers in Europe."), json!(2), json!(false), json!(""), json!("The Danube, the Rhine and the Seine.")),
            (json!("Write a haiku about rain."), json!(1), json!(false), json!(""), json!("Soft rain on the roof")),
        ]
    );
    // Round 2 prompted again from the seeds and the kept instructions, its machine
    // demonstrations drawn from every instruction kept so far, never the prompt's own anchor.
    let rivers = records.iter().find(|row| row["round"] == json!(2)).unwrap();
    let kept_in_round_1 = [json!("Write a haiku about rain."), json!("Classify the sentiment of this tweet as positive or negative.")];
    let shots = rivers["machine_shots"].as_array().unwrap();
    assert!(!shots.is_empty() && shots.len() <= 2, "{rivers:?}");
    assert!(shots.iter().all(|shot| kept_in_round_1.contains(shot) && *shot != rivers["parent_instruction"]), "{rivers:?}");
    // Every rejected instruction is accounted for, with the filter that removed it.
    let dropped = by_instruction(&ran.dropped());
    let reason_of = |instruction: &str| -> Vec<String> {
        dropped.iter().filter(|(text, _)| text == instruction).map(|(_, reason)| reason.as_str().unwrap().to_string()).collect()
    };
    assert!(reason_of("Draw a map of your town.").iter().all(|reason| reason.contains("vars.unsuitable")), "{dropped:?}");
    assert!(reason_of("Hi there").iter().all(|reason| reason.contains("vars.min_words")), "{dropped:?}");
    assert!(reason_of("(Optional) rewrite this text in French.").iter().all(|reason| reason.contains("abcdefghijklmnopqrstuvwxyz")));
    // A copy of a seed task is not novel, nor is a rewording whose ROUGE-L with it is 0.82 (7
    // of its 9 words, in order, are the seed's 8): the seed tasks are in the novelty pool.
    let copy = reason_of("What is the relation between the given pairs?");
    assert_eq!(copy.len(), 2);
    assert!(
        copy.iter().all(|reason| reason.starts_with("dedup: ROUGE-L near-duplicate of data/seed_tasks.jsonl line 2 (similarity 1.00")),
        "{copy:?}"
    );
    let reworded = reason_of("What is the relation between these two given pairs?");
    assert_eq!(reworded.len(), 2);
    assert!(reworded.iter().all(|reason| reason.contains("data/seed_tasks.jsonl line 2 (similarity 0.82")), "{reworded:?}");
    // The second seed's prompt gave the same two tasks: exact duplicates within the round.
    let haiku = reason_of("Write a haiku about rain.");
    assert!(haiku.iter().any(|reason| reason.starts_with("dedup")), "{haiku:?}");
    // In round 2, "Write a haiku about rain." came back from each of the 4 prompts (the 2 seeds
    // and the 2 kept instructions): dropped as a near-duplicate of the instruction kept in
    // round 1 (the index spans rounds).
    assert_eq!(haiku.len(), 1 + 4, "{haiku:?}");
    assert!(haiku.iter().all(|reason| reason.starts_with("dedup: ROUGE-L near-duplicate of kept record #")), "{haiku:?}");
    assert!(ran.failed().is_empty(), "{:?}", ran.failed());
    // The target (3) stopped the rounds after round 2.
    assert!(ran.out().join("rounds/round-2.jsonl").exists());
    assert!(!ran.out().join("rounds/round-3.jsonl").exists());
    // SFT rows: the instruction (and input, when there is one) → the output.
    let data = ran.data();
    assert_eq!(data.len(), 3);
    let classify = data.iter().find(|row| row["messages"][0]["content"].as_str().unwrap().starts_with("Classify")).unwrap();
    assert_eq!(
        classify["messages"][0]["content"],
        json!("Classify the sentiment of this tweet as positive or negative.\n\nI love this phone, it works great.")
    );
    assert_eq!(classify["messages"][1]["content"], json!("Positive"));
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("self-instruct", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    // "qwerty" is one word: every new instruction fails the length filter, nothing is kept;
    // each of the 6 rounds prompts the 3 seeds again (new demonstrations), in vain.
    assert!(ran.data().is_empty());
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 3 * 6);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("vars.min_words")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
