//! Re-ReST's mechanics on the scripted backend: sampled solutions run against the problem's
//! unit tests in the sandbox; passing ones are kept, failing ones go to the reflector with the
//! tests' feedback (the error and the failing assertion), and a reflected solution is kept
//! only when it passes. The sandbox's helper is the built `retort`.

use crate::common;

const RULES: &str = r#"
- when: '(?s)unit tests failed.*def has_close_elements.*What the tests said: tests failed: error \(AssertionError: assert candidate'
  reply: "Reflection: it never compares the numbers.\n```python\ndef has_close_elements(numbers, threshold):\n    return any(abs(a - b) < threshold for i, a in enumerate(numbers) for b in numbers[i + 1:])\n```"
- when: '(?s)Complete this Python function.*def has_close_elements'
  reply: "```python\ndef has_close_elements(numbers, threshold):\n    return False\n```"
- when: '(?s)Complete this Python function.*def separate_paren_groups'
  reply: "Here it is.\n```python\ndef separate_paren_groups(paren_string):\n    groups, depth, current = [], 0, ''\n    for c in paren_string:\n        if c == ' ':\n            continue\n        current += c\n        depth += 1 if c == '(' else -1\n        if depth == 0:\n            groups.append(current)\n            current = ''\n    return groups\n```\nIt splits balanced groups."
"#;

#[test]
fn failed_samples_are_reflected_on_with_the_test_feedback_and_kept_only_when_they_pass() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("re-rest", RULES, &["reflector"], &[], Some(2));
    let records = ran.rows("records");
    let kept: Vec<(&str, &str)> = records.iter().map(|row| (row["task_id"].as_str().unwrap(), row["source"].as_str().unwrap())).collect();
    // Problem 0: all 3 samples fail, the reflection passes (3 equal rows, deduplicated to 1);
    // problem 1: the 3 samples pass (one row after deduplication).
    assert_eq!(kept, [("HumanEval/0", "reflected"), ("HumanEval/1", "sampled")], "{:?} {:?}", ran.dropped(), ran.failed());
    let feedback = records[0]["feedback"].as_str().unwrap();
    assert!(feedback.contains("AssertionError") && feedback.contains("assert candidate("), "{feedback}");
    let data = ran.data();
    assert!(
        data[0]["messages"][1]["content"].as_str().unwrap().contains("any(abs(a - b) < threshold"),
        "the SFT answer is the corrected code"
    );
    assert!(!data[1]["messages"][1]["content"].as_str().unwrap().contains("```"), "the code is taken out of its fence");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}
