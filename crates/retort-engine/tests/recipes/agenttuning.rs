//! AgentTuning's mechanics on the scripted backend: the teacher reasons and acts in the DBBench
//! environment (the record's table built per episode, `Action: Operation` runs SQL, the label
//! decides) and in the OS environment (the record's files, `Act: bash` blocks, `Act: answer`);
//! only reward-1 trajectories are kept; general instructions are answered and mixed in; rows
//! are AgentInstruct conversations with per-turn loss. The sandbox's helper is the built `retort`.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)Question: What is the Presentation of Credentials[^\n]*$', reply: "I should find the row whose mission ended on August 15, 2000.\nAction: Operation\n```sql\nSELECT `Presentation of Credentials` FROM `US Ambassadors and Envoy Extraordinary to Colombia` WHERE `Termination of Mission` = 'August 15, 2000';\n```"}
- {when: '(?s)Presentation of Credentials.*user: \[\]$', reply: "No row ended then; the table's notes give March 19, 1998.\nAction: Answer\nFinal Answer: [\"March 19, 1998\"]"}
- {when: '(?s)Question: his nickname[^\n]*$', reply: "Action: Answer\nFinal Answer: [\"Jimmy Vasser\"]"}
- {when: '(?s)logs/app.log.*The output of the OS:\n\n5 logs/app.log$', reply: "Think: the file has 5 lines.\n\nAct: answer(5)"}
- {when: '(?s)logs/app.log[^\n]*$', reply: "Think: I count the lines of the file.\n\nAct: bash\n\n```bash\nwc -l logs/app.log\n```"}
- {when: '(?s)extension \.txt[^\n]*$', reply: "There are probably three of them."}
- {when: '(?s)user: Is there anything I can eat[^\n]*$', reply: "Try Greek yogurt with nuts, oats and a banana."}
- {when: '(?s).*', reply: "A general answer."}
"#;

#[test]
fn successful_db_and_os_trajectories_are_mixed_with_general_data() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("agenttuning", RULES, &["teacher"], &[], Some(6));
    let kept: Vec<(String, String, u64)> = ran
        .rows("trajectories")
        .iter()
        .map(|row| {
            (row["task_id"].as_str().unwrap().to_string(), row["kind"].as_str().unwrap().to_string(), row["turns"].as_u64().unwrap())
        })
        .collect();
    assert_eq!(kept, [("db_0".to_string(), "db".to_string(), 2), ("os_0".to_string(), "os".to_string(), 2)], "{:?}", ran.failed());
    // The wrong DB answer and the OS reply with no `Act:` earn reward 0: dropped, not kept.
    let failed: Vec<(String, String)> = ran
        .dropped()
        .iter()
        .filter(|d| d["step"].as_str().unwrap().ends_with(".act"))
        .map(|d| (d["record"]["task_id"].as_str().unwrap().to_string(), d["reason"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed.iter().all(|(_, reason)| reason.starts_with("act: no success")), "{failed:?}");

    let data = ran.data();
    assert_eq!(data.len(), 4, "two trajectories and two general instructions");
    let db = data[0]["conversations"].as_array().unwrap();
    let turns: Vec<(&str, bool)> = db.iter().map(|t| (t["from"].as_str().unwrap(), t["loss"].as_bool().unwrap())).collect();
    assert_eq!(turns, [("human", false), ("gpt", false), ("human", false), ("gpt", true), ("human", false), ("gpt", true)]);
    assert!(db[0]["value"].as_str().unwrap().starts_with("I will ask you a question"), "the protocol is the first human turn");
    assert_eq!(db[1]["value"], "OK.");
    assert_eq!(db[4]["value"], "[]", "the raw result of the query");
    let os = data[1]["conversations"].as_array().unwrap();
    assert_eq!(os[4]["value"], "The output of the OS:\n\n5 logs/app.log");
    assert_eq!(os[5]["value"], "Think: the file has 5 lines.\n\nAct: answer(5)");
    let general = data[2]["conversations"].as_array().unwrap();
    assert_eq!(general.len(), 2);
    assert_eq!((general[1]["from"].as_str(), general[1]["loss"].as_bool()), (Some("gpt"), Some(true)));
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 4);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 4);
}
