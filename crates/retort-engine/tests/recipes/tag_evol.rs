//! Tag-Evol's mechanics on the scripted backend: the tagger's own tags of the seeds form the
//! pool, grouped by the domain the tagger names; each seed gets a sampled number of tags (the
//! recorded difficulty, 1 to 4) from its own domain's pool, none of its own, injected in one
//! step; the run's tags are written as the tag pool.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use crate::common;

/// The tagger's tags come from the instruction's first two words; its domain is drawn per seed
/// from an answer naming math, one naming coding, and one naming no domain (so `general`).
const RULES: &str = r#####"
- {when: "(?s)fine-grained knowledge points.*Instruction: (\\w+)\\W+(\\w+)", reply: "1. $1 Skill\n- $2 knowledge\n- $1 skill"}
- {when: "(?s)Which one of these domains", replies: ["Math.", "I think it is Coding", "qwerty"]}
- {when: "(?s)Knowledge points to add \\((\\d)\\):\n(.*)\n\nNew instruction:$", reply: "A harder task needing $1 points:\n$2"}
- {when: ".", reply: "A full answer to the harder task."}
"#####;

fn strings(value: &Value) -> Vec<String> {
    value.as_array().unwrap().iter().map(|item| item.as_str().unwrap().to_string()).collect()
}

#[test]
fn tags_from_the_taggers_pool_of_the_same_domain_are_injected_and_their_number_recorded() {
    let ran = common::run_builtin("tag-evol", RULES, &[], Some(12));
    let records = ran.rows("records");
    assert!(records.len() >= 6, "{} of 12 kept", records.len());
    // The pool by domain, from the tags every seed was given.
    let mut pool: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in &records {
        let domain = row["domain"].as_str().unwrap().to_string();
        assert!(["math", "coding", "general"].contains(&domain.as_str()), "{domain}");
        let tags = strings(&row["tags"]);
        // Lowercased, trimmed, duplicates once.
        let first = row["instruction"].as_str().unwrap().split(|c: char| !c.is_alphanumeric()).next().unwrap().to_lowercase();
        assert_eq!(tags[0], format!("{first} skill"), "{tags:?}");
        assert_eq!(tags.len(), 2, "{tags:?}");
        pool.entry(domain).or_default().extend(tags);
    }
    assert_eq!(pool.len(), 3, "{pool:?}");
    let mut difficulties = BTreeSet::new();
    for row in &records {
        let own = strings(&row["tags"]);
        let injected = strings(&row["injected_tags"]);
        let difficulty = row["difficulty"].as_u64().unwrap() as usize;
        assert!((1..=4).contains(&difficulty));
        assert_eq!(injected.len(), difficulty);
        difficulties.insert(difficulty);
        for tag in &injected {
            // From the tagger's pool of this seed's domain, and not one of its own tags.
            assert!(pool[row["domain"].as_str().unwrap()].contains(tag), "{tag} not in the {} pool", row["domain"]);
            assert!(!own.contains(tag), "{tag} is the seed's own");
        }
        // The evolution prompt carried exactly the sampled tags.
        let evolved = row["evolved"].as_str().unwrap();
        assert!(evolved.starts_with(&format!("A harder task needing {difficulty} points:")), "{evolved}");
        for tag in &injected {
            assert!(evolved.contains(&format!("- {tag}")), "{evolved}");
        }
    }
    assert!(difficulties.len() >= 2, "the number of tags is drawn per record: {difficulties:?}");
    // The pool file: the kept seeds' tags by domain, each once.
    let written: BTreeSet<(String, String)> = ran
        .rows("tag_pool")
        .iter()
        .map(|row| (row["domain"].as_str().unwrap().to_string(), row["tag"].as_str().unwrap().to_string()))
        .collect();
    let expected: BTreeSet<(String, String)> =
        pool.iter().flat_map(|(domain, tags)| tags.iter().map(|tag| (domain.clone(), tag.clone()))).collect();
    assert_eq!(written, expected);
    assert_eq!(ran.rows("tag_pool").len(), expected.len());
    // Seeds whose domain pool held nothing but their own tags were dropped, with the reason;
    // the other drops are the pool's repeated tags.
    let (unevolved, repeats): (Vec<_>, Vec<_>) = ran.dropped().into_iter().partition(|row| row["step"] != "steps[15].dedup");
    for row in &unevolved {
        assert!(row["reason"].as_str().unwrap().contains("difficulty >= 1"), "{row:?}");
        assert_eq!(row["record"]["injected_tags"], json!([]));
    }
    assert_eq!(ran.data().len() + unevolved.len(), 12);
    assert_eq!(repeats.len(), 2 * records.len() - expected.len());
    assert!(ran.failed().is_empty());
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("tag-evol", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    assert!(ran.data().is_empty());
    let dropped = ran.dropped();
    // Every seed got the tag `qwerty` in the domain `general`: the pool holds nothing a seed
    // did not give itself, so none can be evolved.
    assert_eq!(dropped.len(), 3);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("difficulty >= 1")), "{dropped:?}");
    assert!(ran.failed().is_empty());
}
