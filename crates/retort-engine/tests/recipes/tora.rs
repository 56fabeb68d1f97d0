//! ToRA's mechanics on the scripted backend: an answer written in pieces with the programs run
//! in the sandbox between them (each piece a continuation of the answer), correct ones kept,
//! and output-space shaping: the teacher continues prefixes of a wrong answer, a prefix cut
//! inside an output block has its program run again, and only completions that now reach the
//! gold answer are kept. The programs run in the sandbox, whose helper is the built `retort`.

use crate::common;

const RULES: &str = r#"
- {when: '(?s)Question: Natalia.*assistant: .*```output\n72\n```\n$', reply: 'So she sold $\boxed{72}$ clips.'}
- {when: '(?s)Question: Natalia[^\n]*\n\nSolution:\s*$', reply: "We add the two months.\n```python\nprint(48 + 48 // 2)\n```"}
- {when: '(?s)Question: Weng.*assistant: .*```output\n10\.0\n```\n$', reply: 'So she earned $\boxed{10}$.'}
- {when: '(?s)Question: Weng.*assistant: .*```output\n600\n```\n$', reply: 'The answer is $\boxed{600}$.'}
- {when: '(?s)Question: Weng.*assistant: ```python\n$', reply: "print(12 / 60 * 50)\n```"}
- {when: '(?s)Question: Weng.*assistant: ```python\nprint\(12 \* 50\)\n$', reply: '```'}
- {when: '(?s)Question: Weng[^\n]*\n\nSolution:\s*$', reply: "```python\nprint(12 * 50)\n```"}
"#;

#[test]
fn programs_run_between_pieces_and_the_teacher_rescues_a_wrong_answer_from_a_prefix() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_recipe("tora", RULES, &["teacher"], &[], Some(2));
    let records = ran.rows("records");
    let kept: Vec<(&str, Option<f64>)> =
        records.iter().map(|row| (row["source"].as_str().unwrap(), row.get("prefix_ratio").and_then(|p| p.as_f64()))).collect();
    // Natalia's answer is right as sampled; of Weng's five prefixes only the one that keeps
    // just the fence (p = 0.2 of 7 lines) lets the teacher write a right program.
    assert_eq!(kept, [("sampled", None), ("shaped", Some(0.2))], "{:?} {:?}", ran.dropped(), ran.failed());
    assert_eq!(records[0]["calls"], 1);
    assert_eq!(
        records[0]["kept_solution"],
        "We add the two months.\n```python\nprint(48 + 48 // 2)\n```\n```output\n72\n```\nSo she sold $\\boxed{72}$ clips."
    );
    assert_eq!(records[1]["kept_solution"], "```python\nprint(12 / 60 * 50)\n```\n```output\n10.0\n```\nSo she earned $\\boxed{10}$.");
    // The other four prefixes end wrong, the 0.6 and 0.8 ones (cut inside the output block)
    // after their program ran again: nothing the model wrote stands in for an output.
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 4, "{dropped:?}");
    for row in &dropped {
        let record = row.get("record").and_then(|r| r.as_object()).unwrap_or(row);
        assert_eq!(record["shaped_predicted"], "600", "{record:?}");
        let answer = record["shaped"]["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
        assert_eq!(answer.matches("```output\n600\n```").count(), 1, "{answer}");
    }
    // SFT rows in ToRA-Corpus's form: the question alone, then the whole answer.
    let data = ran.data();
    assert!(data[1]["messages"][0]["content"].as_str().unwrap().starts_with("Weng earns"));
    assert!(data[1]["messages"][1]["content"].as_str().unwrap().contains("```output\n10.0\n```"));
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.jsonl")), 2);
    assert_eq!(common::rows_by_datasets(&ran.out().join("data.parquet")), 2);
}
