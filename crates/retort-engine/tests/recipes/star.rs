//! STaR's mechanics on the scripted backend: a wrong answer leads to a hinted rationalization,
//! kept only when it reaches the gold answer and does not lean on the hint.

use crate::common;

use serde_json::json;

#[test]
fn wrong_answers_are_rationalized_and_kept_only_when_right() {
    // Question 0 (gold 72) is answered right; question 1 (gold 10) wrong, and its hinted
    // rationale reaches 10; question 2 (gold 5) wrong, and the hinted rationale is wrong again.
    let rules = r#####"
- {when: "(?s)Q: Natalia.*\\(The answer is 72\\.\\)\nA:$", reply: "never used"}
- {when: "(?s)Q: Natalia[^\n]*\nA:$", reply: "48/2 = 24 in May, 48 + 24 = 72.\n#### 72"}
- {when: "(?s)Q: Weng[^\n]*\\(The answer is 10\\.\\)\nA:$", reply: "12/60 = 0.2 per minute, 0.2 x 50 = 10.\n#### 10"}
- {when: "(?s)Q: Weng[^\n]*\nA:$", reply: "12 x 50 = 600.\n#### 600"}
- {when: "(?s)\\(The answer is 5\\.\\)\nA:$", reply: "I guess 4.\n#### 4"}
- {when: "(?s)A:$", reply: "It is 3.\n#### 3"}
"#####;
    let ran = common::run_builtin("star", rules, &[], Some(3));
    let records = ran.rows("records");
    let sources: Vec<_> = records.iter().map(|row| (row["gold"].clone(), row["source"].clone())).collect();
    assert_eq!(sources, vec![(json!("72"), json!("generated")), (json!("10"), json!("rationalized"))]);
    // The SFT data holds the question without the hint, and the rationale.
    let data = ran.data();
    assert!(!data[1]["messages"][0]["content"].as_str().unwrap().contains("The answer is"));
    assert!(data[1]["messages"][1]["content"].as_str().unwrap().ends_with("#### 10"));
    // The third question failed twice and is dropped with the reason.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 1);
    assert!(dropped[0]["reason"].as_str().unwrap().starts_with("filter keep"));
    // No trainer: one round, and the run says so.
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}
