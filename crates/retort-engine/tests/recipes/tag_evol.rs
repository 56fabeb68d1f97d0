//! Tag-Evol's mechanics on the scripted backend: seeds are tagged, a sampled number of pool tags
//! (the recorded difficulty, 1 to 4) is injected into each instruction in one step, and the run's
//! own tags become a deduplicated tag pool.

use crate::common;

use serde_json::json;

const RULES: &str = r#####"
- {when: "(?s)fine-grained knowledge points", reply: "Nutrition\n- meal planning\n3. nutrition"}
- {when: "(?s)Knowledge points to add \\((\\d)\\):\n(.*)\n\nNew instruction:$", reply: "A harder task needing $1 points:\n$2"}
- {when: ".", reply: "A full answer to the harder task."}
"#####;

#[test]
fn a_sampled_number_of_tags_is_injected_and_recorded() {
    let ran = common::run_builtin("tag-evol", RULES, &[], Some(8));
    let records = ran.rows("records");
    assert_eq!(records.len(), 8);
    let mut difficulties = std::collections::BTreeSet::new();
    for row in &records {
        assert_eq!(row["tags"], json!(["nutrition", "meal planning"]));
        let injected = row["injected_tags"].as_array().unwrap();
        let difficulty = row["difficulty"].as_u64().unwrap() as usize;
        assert!((1..=4).contains(&difficulty));
        assert_eq!(injected.len(), difficulty);
        difficulties.insert(difficulty);
        // The evolution prompt carried exactly the sampled tags.
        let evolved = row["evolved"].as_str().unwrap();
        assert!(evolved.starts_with(&format!("A harder task needing {difficulty} points:")), "{evolved}");
        for tag in injected {
            assert!(evolved.contains(&format!("- {}", tag.as_str().unwrap())), "{evolved}");
        }
    }
    assert!(difficulties.len() >= 2, "the number of tags is drawn per record: {difficulties:?}");
    // The pool: every seed's tags, exploded and deduplicated.
    let pool: Vec<_> = ran.rows("tag_pool").iter().map(|row| row["tag"].clone()).collect();
    assert_eq!(pool, vec![json!("nutrition"), json!("meal planning")]);
    assert_eq!(ran.data().len(), 8);
    assert!(ran.failed().is_empty());
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("tag-evol", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    assert!(ran.data().is_empty());
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 3);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("word_count")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
