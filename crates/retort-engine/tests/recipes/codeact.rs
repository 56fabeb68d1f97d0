//! CodeAct's mechanics on the scripted backend: code actions in <execute> run in one stateful
//! interpreter with the tool functions preloaded (replies stop at </execute>, which the
//! conversation gets back), the output returns as "Observation:", an error is fixed in a
//! later turn and marks the trajectory `recovered`, <solution> ends it against the gold answer,
//! and a trajectory that never solves is dropped. The sandbox's helper is the built `retort`.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)user: Natalia[^\n]*$', reply: "Add April and May. <execute>print(48 + 48 // 2)</execute>\nObservation: I made this up"}
- {when: '(?s)user: Natalia.*user: Observation:\n72$', reply: '<solution>72</solution>'}
- {when: '(?s)user: Weng[^\n]*$', reply: '<execute>print(per_unit(12, 60) * minutes)</execute>'}
- {when: '(?s)user: Weng.*NameError[^\n]*\n\[error[^\n]*\]$', reply: "minutes was not defined. <execute>minutes = 50\nprint(per_unit(12, 60) * minutes)</execute>"}
- {when: '(?s)user: Weng.*user: Observation:\n10\.0$', reply: '<solution>10</solution>'}
- {when: '(?s).*', reply: 'It is probably 5.'}
"#;

#[test]
fn code_actions_run_in_one_interpreter_and_recovered_trajectories_are_marked() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("codeact", RULES, &[], &[], Some(3));
    let records = ran.rows("records");
    let marks: Vec<(&str, u64, bool)> = records
        .iter()
        .map(|row| (row["gold"].as_str().unwrap(), row["turns"].as_u64().unwrap(), row["recovered"].as_bool().unwrap()))
        .collect();
    assert_eq!(marks, [("72", 2, false), ("10", 3, true)], "{:?} {:?}", ran.dropped(), ran.failed());
    // The third question never gets a <solution>: CodeAct's reminder each turn, then dropped.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0]["reason"].as_str().unwrap().starts_with("act: no success"), "{dropped:?}");
    // The SFT rows: system, task, then assistant actions and Observation turns; the text the
    // model wrote after </execute> (a made-up observation) is not in them.
    let data = ran.data();
    let turns = data[0]["messages"].as_array().unwrap();
    let roles: Vec<&str> = turns.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant"]);
    assert_eq!(turns[2]["content"], "Add April and May. <execute>print(48 + 48 // 2)</execute>");
    assert_eq!(turns[3]["content"], "Observation:\n72");
    let weng = data[1]["messages"].as_array().unwrap();
    assert!(weng[3]["content"].as_str().unwrap().contains("NameError"), "{weng:?}");
    assert_eq!(weng[5]["content"], "Observation:\n10.0", "the tool function and the fixed variable in one interpreter");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}
