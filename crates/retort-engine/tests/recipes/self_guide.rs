//! SELF-GUIDE's mechanics on the scripted backend: inputs are generated in batches, round after
//! round, until the target count (duplicates of earlier batches removed); they pass a
//! noise-term filter and a length filter (bounded by the examples), several outputs are
//! sampled for each kept input and the majority is kept, and a classification output that is
//! not one of the task's labels is removed.

use crate::common;

const RULES: &str = r#####"
- {when: "(?s)Input: A warm[^\n]*\nOutput:$", reply: "Positive."}
- {when: "(?s)Input: The plot drags[^\n]*\nOutput:$", reply: "Mixed"}
- {when: "(?s)Input: Tom has[^\n]*\nOutput:$", times: 1, reply: "6"}
- {when: "(?s)Input: Tom has[^\n]*\nOutput:$", times: 1, reply: "7"}
- {when: "(?s)Input: Tom has[^\n]*\nOutput:$", reply: "5"}
- {when: "(?s)sentiment.*Input:$", replies: ["A warm, funny and moving film about a family that learns to forgive.", "Input: an example of noise in the data set", "Dull.", "The plot drags and the acting feels wooden from start to finish."]}
- {when: "(?s)math word problem.*Input:$", replies: ["Tom has 3 apples. At the market he buys 4 more apples and then gives 2 of them to his sister Anna. How many apples does Tom have now?", "see http://spam"]}
"#####;

#[test]
fn inputs_and_outputs_pass_the_noise_length_and_label_filters() {
    let ran = common::run_builtin("self-guide", RULES, &[], Some(2));
    let records = ran.rows("records");
    let tasks = common::read_jsonl(&ran.dir.path().join("recipe/data/tasks.jsonl"));
    // The kept pairs: the well-formed review labelled positive, and the word problem.
    let kept: Vec<(String, String)> =
        records.iter().map(|row| (row["task"].as_str().unwrap().to_string(), row["new_output"].as_str().unwrap().to_string())).collect();
    assert_eq!(kept, vec![("sst2_sentiment".to_string(), "positive".to_string()), ("math_word_problem".to_string(), "5".to_string())]);
    let reasons: Vec<String> = ran.dropped().iter().map(|row| row["reason"].as_str().unwrap().to_string()).collect();
    let count = |prefix: &str, input: &str| {
        ran.dropped()
            .iter()
            .filter(|row| {
                row["reason"].as_str().unwrap().starts_with(prefix) && row["record"]["new_input"].as_str().unwrap().starts_with(input)
            })
            .count()
    };
    // Noise terms ("input:", "example", "http"), too short for the examples, and a label that is not one.
    assert!(count("filter drop", "Input: an example") > 0, "{reasons:?}");
    assert!(count("filter drop", "see http") > 0, "{reasons:?}");
    assert!(count("filter keep: `new_input | word_count", "Dull.") > 0, "{reasons:?}");
    assert_eq!(count("filter keep: `new_output", "The plot drags"), 1, "{reasons:?}");
    // Repeated inputs are kept once per task.
    assert!(reasons.iter().any(|reason| reason.starts_with("dedup")), "{reasons:?}");
    // Five outputs per kept input; the majority is the output ("5", 3 of 5), the samples that
    // disagree are dropped saying so, and one row per input stays.
    let tom = records.iter().find(|row| row["task"] == "math_word_problem").unwrap();
    assert_eq!(tom["agreement"], serde_json::json!(0.6));
    assert_eq!(count("vote: answer", "Tom has"), 2, "{reasons:?}");
    let in_round = |round: u64, input: &str| {
        ran.dropped()
            .iter()
            .filter(|row| {
                row["round"] == round
                    && row["reason"].as_str().unwrap().starts_with("dedup")
                    && row["record"]["new_input"].as_str().unwrap().starts_with(input)
            })
            .count()
    };
    assert_eq!(in_round(1, "Tom has") + in_round(1, "A warm") + in_round(1, "The plot drags"), 12, "{reasons:?}");
    // The model wrote nothing new after the first batch, so the target (48 pairs) was never
    // reached and all 4 rounds ran; each later batch's repeats of earlier inputs were removed
    // by the input dedup, whose index spans the rounds.
    assert!(records.iter().all(|row| row["batch"] == 1), "{records:?}");
    for round in 2..=4u64 {
        let repeats: Vec<_> =
            ran.dropped().into_iter().filter(|row| row["round"] == round && row["reason"].as_str().unwrap().starts_with("dedup")).collect();
        assert!(!repeats.is_empty(), "round {round}");
        assert!(repeats.iter().all(|row| row["step"] == "steps[2].repeat.steps[4].dedup"), "{repeats:?}");
    }
    // Every generated input was accounted for: eight per task and round, and four more records
    // for each of the three inputs that got five outputs.
    assert_eq!(ran.dropped().len() + ran.failed().len() + records.len(), 8 * 2 * 4 + 4 * 3);
    // The SFT rows carry the task's instruction and the generated input.
    let data = ran.data();
    let prompt = data[0]["messages"][0]["content"].as_str().unwrap();
    assert!(
        prompt.starts_with(tasks[0]["instruction"].as_str().unwrap())
            && prompt.ends_with("Input: A warm, funny and moving film about a family that learns to forgive."),
        "{prompt}"
    );
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("self-guide", r#"- {when: ".", reply: "qwerty"}"#, &[], None);
    assert_eq!(ran.data().len(), 0);
    let rejected: Vec<_> = ran.dropped().into_iter().chain(ran.failed()).collect();
    let tasks = common::read_jsonl(&ran.dir.path().join("recipe/data/tasks.jsonl"));
    assert!(tasks.len() >= 6);
    // Eight inputs per task in each of the 4 rounds (the target is never reached).
    assert_eq!(rejected.len(), 8 * tasks.len() * 4, "{rejected:?}");
    assert!(rejected.iter().all(|row| !row["reason"].as_str().unwrap().is_empty()));
}
