//! API-Bank's level-1 evaluation on the scripted backend: the call the model writes at each
//! API point of a dialogue, scored by exact API name and parameters.

use crate::common;

use serde_json::Value;

const ANSWERS: &str = r#"
- when: 'my username is foo and my password is bar\s*The AI now calls'
  reply: "API-Request: [GetUserToken(username='foo', password='bar')]"
- when: 'let me add the agenda for you'
  reply: "API-Request: [AddAgenda(token='z9x8c7v6b5n4m3q2w1', content='Meeting with the marketing team', time='2021-09-28 14:00', location='Conference room')]"
- when: '.'
  reply: 'Sure, I can help with that.'
"#;

#[test]
fn level_one_calls_are_scored_by_exact_name_and_parameters() {
    let ran = common::run_file(&common::checkout("evals/api-bank/level1.yaml"), ANSWERS, &[], Some(2));
    assert_eq!(ran.column("verdict"), ["correct", "wrong_parameters"], "{:?}", ran.column("why"));
    assert!(ran.column("why")[1].as_str().unwrap().contains("`time` should be"), "{:?}", ran.column("why"));
    let metrics: Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["accuracy"], 0.5, "{metrics}");
    assert_eq!(metrics["by"]["correct"]["records"], 1, "{metrics}");
}
