//! AgentInstruct's mechanics on the scripted backend: a text seed and a code seed each go
//! through a transformation agent, a seed-instruction agent writes items of question types drawn
//! from the skill's taxonomy, a suggester and an editor refine each item (the edited passage is
//! what the row teaches), the teacher answers without the key, and only answers that agree with
//! the key (text) or pass the item's tests in the sandbox (code) are kept.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)^user: You are a content transformation agent.*aifc', reply: "Ann: An AIFF-C file starts with a FORM chunk. Bob: And its COMM chunk gives the channels."}
- {when: '(?s)^user: You are a content transformation agent', reply: "Write count_close(numbers, threshold): how many pairs of numbers lie closer than threshold."}
- {when: '(?s)^user: You write reading-comprehension questions', reply: '[{"type": "literal comprehension", "question": "Which chunk starts the file?", "options": {"A": "COMM", "B": "FORM", "C": "SSND", "D": "MARK"}, "answer": "B"}, {"type": "inference", "question": "What gives the channels?", "options": {"A": "FORM", "B": "SSND", "C": "COMM", "D": "none"}, "answer": "C"}]'}
- {when: '(?s)^user: You write programming problems', reply: '[{"type": "variation", "problem": "Write count_close(numbers, threshold).", "entry_point": "count_close", "tests": ["assert count_close([1.0, 2.0], 0.5) == 0"]}, {"type": "edge cases", "problem": "No tests here.", "entry_point": "f", "tests": []}]'}
- {when: '(?s)^user: You are a suggester agent', reply: "1. Add a distractor chunk that also appears early."}
- {when: '(?s)^user: You are an editor agent.*Which chunk starts', reply: '{"type": "literal comprehension", "passage": "Ann: An AIFF-C file starts with a FORM chunk, though a MARK chunk may come early too. Bob: The COMM chunk gives the channels.", "question": "Which chunk always starts the file?", "options": {"A": "COMM", "B": "FORM", "C": "SSND", "D": "MARK"}, "answer": "B"}'}
- {when: '(?s)^user: You are an editor agent.*What gives the channels', reply: '{"type": "inference", "passage": "Ann: The COMM chunk gives the channels.", "question": "Which chunk gives the channels?", "options": {"A": "FORM", "B": "SSND", "C": "COMM", "D": "none"}, "answer": "C"}'}
- {when: '(?s)^user: You are an editor agent.*count_close', reply: '{"type": "variation", "problem": "Write count_close(numbers, threshold): the number of pairs closer than threshold; an empty list gives 0.", "entry_point": "count_close", "tests": ["assert count_close([1.0, 1.05, 3.0], 0.1) == 1", "assert count_close([], 0.1) == 0"]}'}
- {when: '(?s)^user: Read the passage.*always starts', reply: "The passage says the file starts with FORM.\nAnswer: B"}
- {when: '(?s)^user: Read the passage.*gives the channels', reply: "Probably the first one.\nAnswer: A"}
- {when: '(?s)^user: Write count_close', reply: "```python\ndef count_close(numbers, threshold):\n    return sum(1 for i, a in enumerate(numbers) for b in numbers[i + 1:] if abs(a - b) < threshold)\n```\nIt counts each pair once."}
- {when: '(?s).*', reply: "Nothing."}
"#;

#[test]
fn items_from_transformed_seeds_are_refined_and_kept_when_an_independent_answer_agrees() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("agentinstruct", RULES, &["teacher"], &[], Some(2));
    let records = ran.rows("records");
    let kept: Vec<(&str, &str, &str)> = records
        .iter()
        .map(|r| (r["seed_id"].as_str().unwrap(), r["skill"].as_str().unwrap(), r["question_type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kept,
        [("text-aifc", "reading comprehension", "literal comprehension"), ("code-HumanEval-0", "coding", "variation")],
        "dropped {:?} failed {:?}",
        ran.dropped(),
        ran.failed()
    );
    // The transformation agent's output is what items are written about; the row teaches the
    // editor's version (its passage and question), and the responder never saw the key.
    let text = &records[0];
    assert!(text["passage"].as_str().unwrap().starts_with("Ann: An AIFF-C file"), "{text:?}");
    let instruction = text["instruction"].as_str().unwrap();
    assert!(instruction.contains("though a MARK chunk may come early too"), "{instruction}");
    assert!(instruction.contains("Which chunk always starts the file?") && instruction.contains("B) FORM"), "{instruction}");
    assert!(!instruction.contains("Right answer"), "{instruction}");
    assert_eq!(text["suggestions"], "1. Add a distractor chunk that also appears early.");
    assert_eq!(text["key"], "B");
    // The code item's tests are the edited ones, run against the teacher's solution.
    let code = &records[1];
    assert_eq!(code["item"]["tests"].as_array().unwrap().len(), 2);
    assert!(code["instruction"].as_str().unwrap().ends_with("Write the function `count_close` in Python."));
    // Dropped: the text item whose independent answer disagrees with its key, and the code
    // item with no tests.
    let dropped = ran.dropped();
    let reasons: Vec<&str> = dropped.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    assert_eq!(dropped.len(), 2, "{reasons:?}");
    assert!(
        dropped.iter().any(|d| d["record"]["item"]["question"] == "Which chunk gives the channels?" && d["record"]["solved"] == "A"),
        "{dropped:?}"
    );
    assert!(dropped.iter().any(|d| d["record"]["item"]["problem"] == "No tests here."), "{dropped:?}");
    // The agreement metric counts both text items, one agreeing.
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("agreement.json")).unwrap()).unwrap();
    assert_eq!(metrics["by"]["text"]["agrees"], 0.5, "{metrics}");
    assert_eq!(metrics["by"]["code"]["agrees"], 1.0, "{metrics}");
    // SFT rows: instruction → response.
    let data = ran.data();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["messages"][1]["content"], "The passage says the file starts with FORM.\nAnswer: B");
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}
