//! AutoIF's mechanics on the scripted backend: verifiers that do not run or disagree with their
//! test cases leave the instruction's verifier set, an instruction goes when a back-translation
//! contradicts it, the verifier set, run in the sandbox on sampled responses, decides which pass,
//! and a passing response is kept only when its quality score against the query is above 8.
//!
//! The `python` check runs in the sandbox, whose helper is the `retort` binary: the engine's test
//! binary cannot host it, so RETORT_WORKER_EXE points at the built `retort` before the run.

use crate::common;

use serde_json::{Map, Value};

/// Seeds (with `--limit 2`): "no commas" and "all lowercase"; the augmentation adds "no more than
/// fifty words". Commas: a correct verifier. Lowercase: a correct verifier whose back-translation
/// contradicts the instruction. Fifty words: verifiers that fail to run or disagree with the cases.
const RULES: &str = r#####"
- {when: "(?s)Write 2 new instructions", reply: "- Use no more than fifty words in total."}
- {when: "(?s)^user: Instruction: Do not use any commas", reply: "[{\"response\": \"hello world\", \"expected\": true}, {\"response\": \"hello, world\", \"expected\": false}, {\"response\": \"no commas here\", \"expected\": true}]"}
- {when: "(?s)^user: Instruction: Write your entire response in lowercase", reply: "[{\"response\": \"all small\", \"expected\": true}, {\"response\": \"Big Letters\", \"expected\": false}]"}
- {when: "(?s)^user: Instruction: Use no more than fifty", reply: "[{\"response\": \"short\", \"expected\": true}, {\"response\": \"word word word\", \"expected\": true}, {\"response\": \"a much longer reply\", \"expected\": false}]"}
- {when: "(?s)Write a Python function.*Instruction: Do not use any commas", reply: "```python\ndef evaluate(response):\n    return ',' not in response\n```"}
- {when: "(?s)Write a Python function.*Instruction: Write your entire response in lowercase", reply: "```python\ndef evaluate(response):\n    return response == response.lower()\n```"}
- {when: "(?s)Write a Python function.*Instruction: Use no more than fifty", replies: ["```python\ndef evaluate(response):\n    return len(response.split()) > 50\n```", "```python\ndef evaluate(response)\n    return True\n```"]}
- {when: "(?s)This Python function checks.*lower", reply: "Write the whole reply in capital letters."}
- {when: "(?s)This Python function checks", reply: "Do not use commas in the reply."}
- {when: "(?s)Hypothesis: Write the whole reply in capital", reply: "Contradiction."}
- {when: "(?s)^user: Premise:", reply: "Entailment"}
- {when: "(?s)Rate the combination", reply: "They fit well. Score: 9"}
- {when: "(?s)You judge whether a response follows.*\\[Response\\] Another clean answer\\.", reply: "No commas, but it does not answer the query.\nScore: 6"}
- {when: "(?s)You judge whether a response follows", reply: "It follows both.\nScore: 9"}
- {when: "(?s)Do not use any commas in your response\\.$", replies: ["Here is my answer with no commas at all.", "Well, this one has a comma.", "Another clean answer."]}
"#####;

fn assistant(row: &Map<String, Value>) -> &str {
    row["messages"][1]["content"].as_str().unwrap()
}

#[test]
fn verifiers_are_cross_checked_and_decide_sft_and_dpo() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_builtin("autoif", RULES, &[], Some(2));
    // Only the comma instruction survives cross-validation and back-translation, with its
    // verifier set: all three candidates agree with the cases.
    let verifiers = ran.rows("verifiers");
    assert_eq!(verifiers.len(), 1, "{verifiers:?}");
    assert_eq!(verifiers[0]["instruction"], "Do not use any commas in your response.");
    assert_eq!(verifiers[0]["eval_funcs"].as_array().unwrap().len(), 3);
    assert_eq!(verifiers[0]["back_instructions"].as_array().unwrap().len(), 3);
    let dropped = ran.dropped();
    let reasons: Vec<&str> = dropped.iter().map(|row| row["reason"].as_str().unwrap()).collect();
    assert!(reasons.iter().any(|reason| reason.contains("contradiction")), "{reasons:?}");
    // The fifty-words instruction: no candidate agrees with its cases, so its set is empty.
    let fifty = dropped.iter().find(|row| row["reason"].as_str().unwrap().contains("eval_funcs | length > 0")).unwrap();
    assert!(fifty["record"]["instruction"].as_str().unwrap().contains("fifty"), "{fifty:?}");
    assert_eq!(fifty["record"]["valid_0"], false);
    assert!(fifty["record"]["cross_validation_0"].as_str().unwrap().contains("retort_cross_check"), "{fifty:?}");
    // Every sampled response was judged by running the verifier in the sandbox.
    let records = ran.rows("records");
    assert_eq!(records.len(), 2);
    for row in &records {
        let responses = row["responses"].as_array().unwrap();
        let verdicts = row["verdicts"].as_array().unwrap();
        for (response, verdict) in responses.iter().zip(verdicts) {
            assert_eq!(verdict.as_bool().unwrap(), !response.as_str().unwrap().contains(','));
        }
    }
    // SFT: the passing responses whose quality score is above 8. "Another clean answer." passes
    // the verifiers but does not answer the query (6 of 10): dropped with the threshold's reason.
    let sft = ran.rows("sft");
    let passing: Vec<&str> = records
        .iter()
        .flat_map(|row| {
            let verdicts = row["verdicts"].as_array().unwrap().clone();
            row["responses"]
                .as_array()
                .unwrap()
                .iter()
                .zip(verdicts)
                .filter(|(_, verdict)| verdict.as_bool().unwrap())
                .map(|(response, _)| response.as_str().unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    let unfit = passing.iter().filter(|response| **response == "Another clean answer.").count();
    assert!(unfit > 0 && unfit < passing.len(), "{passing:?}");
    assert_eq!(sft.len(), passing.len() - unfit);
    assert!(sft.iter().all(|row| !assistant(row).contains(',') && assistant(row) != "Another clean answer."));
    let low = dropped.iter().filter(|row| row["reason"].as_str().unwrap().contains("quality > vars.min_quality")).count();
    assert_eq!(low, unfit);
    let dpo = ran.rows("dpo");
    assert!(!dpo.is_empty());
    for row in &dpo {
        assert!(!row["chosen"].as_str().unwrap().contains(','));
        assert!(row["rejected"].as_str().unwrap().contains(','));
        assert!(row["prompt"].as_str().unwrap().ends_with("Do not use any commas in your response."));
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    common::use_retort_as_sandbox_helper();
    let ran = common::run_builtin("autoif", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(3));
    // "qwerty" is no JSON test-case list: every instruction fails there, with the reason.
    assert!(ran.rows("verifiers").is_empty());
    assert!(ran.rows("sft").is_empty() && ran.rows("dpo").is_empty());
    let settled = ran.dropped().len() + ran.failed().len();
    assert!(settled >= 3, "{settled}");
    for row in ran.dropped().iter().chain(ran.failed().iter()) {
        assert!(!row["reason"].as_str().unwrap_or_default().is_empty());
    }
}
