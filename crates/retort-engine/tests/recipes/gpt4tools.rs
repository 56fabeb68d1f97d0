//! GPT4Tools' mechanics on the scripted backend: instructions written per tool from a scene,
//! GPT4Tools' validation (the tool exists, in any case; as many inputs as it takes; the image named), the
//! no-tool negatives, and the samples in GPT4Tools' format with 2 to 5 tools, the gold among them.

use crate::common;

const TEACHER: &str = r#"
- when: 'learns to use visual tools'
  reply: |
    [{"instruction": "Cut out the dog in the image so I can put it on a card.", "tool": "segment given object", "arguments": ["image/0000.png", "dog"]},
     {"instruction": "How many trees are in this photo of the park?", "tool": "Count Objects In Image", "arguments": ["image/0000.png"]},
     {"instruction": "Read the writing on the frisbee for me please.", "tool": "Read Text In Image", "arguments": ["image/9999.png"]},
     {"instruction": "Make the picture sharper and larger, please.", "tool": "Sharpen Image", "arguments": ["image/0000.png"]},
     {"instruction": "What is the dog catching in the park?", "tool": "none", "answer": "A red frisbee."},
     {"instruction": "Cut out the dog in the image so I can put it on a card.", "tool": "Segment Given Object", "arguments": ["image/0000.png", "dog"]}]
"#;

#[test]
fn lines_are_validated_and_become_samples_with_the_gold_tool_among_two_to_five() {
    // All 8 unseen tools shown, so the scripted teacher knows which it may name.
    let ran = common::run_recipe("gpt4tools", TEACHER, &[], &["vars.split=unseen", "steps[1].sample.k=8"], Some(1));
    let records = ran.rows("records");
    let tools: Vec<&str> = records.iter().map(|r| r["tool"].as_str().unwrap()).collect();
    assert_eq!(tools, ["Segment Given Object", "none"], "{:?}", ran.dropped());
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    assert_eq!(reasons.iter().filter(|r| r.starts_with("filter keep")).count(), 3, "wrong arity, wrong image, unknown tool: {reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("duplicate")), "{reasons:?}");
    let data = ran.data();
    assert_eq!(
        data[0]["output"],
        "Thought: Do I need to use a tool? Yes\nAction: Segment Given Object\nAction Input: image/0000.png, dog\nObservation:"
    );
    assert_eq!(data[1]["output"], "Thought: Do I need to use a tool? No\nAI: A red frisbee.");
    assert_eq!(data[0]["input"], "");
    let prompt = data[0]["instruction"].as_str().unwrap();
    assert!(prompt.contains("New input: Cut out the dog in the image"), "{prompt}");
    assert!(prompt.contains("> Segment Given Object:"), "the gold tool is offered: {prompt}");
    let offered = prompt.matches("\n> ").count() + usize::from(prompt.starts_with("> "));
    assert!((2..=5).contains(&offered), "{offered} tools offered: {prompt}");
    assert!(
        prompt.contains("Provide an image named image/0000.png. Description: a brown dog catching a red frisbee in a park."),
        "{prompt}"
    );
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}

#[test]
fn the_unseen_tool_evaluation_reads_replies_in_gpt4tools_format() {
    // The held-out set as the recipe writes it (its records), then the student's replies.
    let teacher = common::run_recipe("gpt4tools", TEACHER, &[], &["vars.split=unseen", "steps[1].sample.k=8"], Some(1));
    let held_out = teacher.out().join("records.jsonl");
    let student = r#"
- when: 'New input: Cut out the dog'
  reply: "Thought: Do I need to use a tool? Yes\nAction: Segment Given Object\nAction Input: image/0000.png,  Dog\nObservation:"
- when: 'New input: What is the dog catching'
  reply: "Thought: Do I need to use a tool? Yes\nAction: Detect Given Object\nAction Input: image/0000.png, frisbee"
"#;
    let set = format!("steps[0].load.path={}", held_out.display());
    let ran = common::run_file(&common::checkout("evals/gpt4tools/unseen.yaml"), student, &[set.as_str()], None);
    let records = ran.rows("records");
    assert_eq!(records.len(), 2, "{:?}", ran.failed());
    assert_eq!(records[0]["action"], "Segment Given Object");
    assert_eq!(records[0]["success"], true, "inputs compared without case and spaces: {:?}", records[0]);
    assert_eq!(records[1]["thought_ok"], false, "a tool used where none is needed");
    let metrics: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ran.out().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["overall"]["sr"], 0.5, "{metrics}");
    assert_eq!(metrics["by"]["no tool"]["sr_t"], 0.0, "{metrics}");
}
