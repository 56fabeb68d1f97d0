//! Meta-Rewarding's mechanics on the scripted backend: actor pairs are best against worst by
//! the judge's mean score with the shorter response preferred among equal scores; judge pairs
//! order two judgments of the same response by the meta-judge's verdict (both orders asked),
//! and a response whose judgments the meta-judge cannot order gives no judge pair.

use crate::common;

use std::collections::HashMap;

const RULES: &str = r#####"
- {when: "(?s)checking the work of two judges.*Judgment A:\nShort and right", reply: "A is more precise. Verdict: [[A]]"}
- {when: "(?s)checking the work of two judges.*Judgment B:\nShort and right", reply: "B is more precise. Verdict: [[B]]"}
- {when: "(?s)checking the work of two judges", reply: "Verdict: [[A]]"}
- {when: "(?s)5-point.*Response:\n(Red\\.|Blue is)", replies: ["Short and right.\nScore: 4", "It names a colour.\nScore: 4"]}
- {when: "(?s)5-point.*Response:\nGreen", reply: "Too terse.\nScore: 1"}
- {when: "(?s)5-point", reply: "Partly.\nScore: 2"}
- {when: "(?s)Task \\d+:$", replies: ["Name a colour.", "Name a colour you like."]}
- {when: "user: ", replies: ["Red.", "Blue is a calm colour.", "Green", "Yellow like the sun.", "Red."]}
"#####;

type Row = serde_json::Map<String, serde_json::Value>;

#[test]
fn actor_pairs_follow_the_judge_and_judge_pairs_follow_the_meta_judge() {
    let ran = common::run_builtin("meta-rewarding", RULES, &[], Some(8));
    // The candidates that were not part of an actor pair, by prompt.
    let mut others: HashMap<String, Vec<Row>> = HashMap::new();
    let mut ties = 0;
    for row in ran.dropped() {
        let reason = row["reason"].as_str().unwrap();
        let record = row["record"].as_object().unwrap().clone();
        if reason.starts_with("pair: not part of the chosen pair") {
            others.entry(record["new_prompt"].as_str().unwrap().to_string()).or_default().push(record);
        } else if reason.starts_with("filter keep: `meta_verdict != 'tie'`") {
            assert_eq!(record["meta_verdict"], "tie");
            ties += 1;
        }
    }
    let actor = ran.rows("actor");
    let records = ran.rows("records");
    assert!(!actor.is_empty(), "{:?}", ran.dropped());
    assert_eq!(actor.len(), records.len() + ties);
    for row in &actor {
        let prompt = row["prompt"].as_str().unwrap();
        let (chosen, rejected) = (row["chosen"].as_str().unwrap(), row["rejected"].as_str().unwrap());
        let pair = records.iter().find(|record| record["prompt"] == prompt);
        let rest = others.get(prompt).cloned().unwrap_or_default();
        assert_eq!(rest.len(), 2, "four candidates for {prompt}");
        if let Some(pair) = pair {
            let (best, worst) = (pair["chosen_score"].as_f64().unwrap(), pair["rejected_score"].as_f64().unwrap());
            assert!(best > worst, "{pair:?}");
            for other in &rest {
                let (score, response) = (other["score"].as_f64().unwrap(), other["response"].as_str().unwrap());
                assert!(score <= best && score >= worst);
                // Length control: an equally good response is never shorter than the chosen one,
                // an equally bad one never longer than the rejected one.
                if score == best {
                    assert!(response.len() >= chosen.len(), "{response} against chosen {chosen}");
                }
                if score == worst {
                    assert!(response.len() <= rejected.len(), "{response} against rejected {rejected}");
                }
            }
        }
    }
    // Judge pairs: the judgment the meta-judge prefers ("Short and right.") is chosen.
    let judge = ran.rows("judge");
    assert_eq!(judge.len(), records.len());
    assert!(!judge.is_empty(), "no judge pairs");
    for row in &judge {
        assert!(row["chosen"].as_str().unwrap().starts_with("Short and right."), "{row:?}");
        assert!(row["rejected"].as_str().unwrap().starts_with("It names a colour."), "{row:?}");
        // The judge's prompt holds the rubric and the response that was judged.
        let prompt = row["prompt"].as_str().unwrap();
        assert!(
            prompt.contains("additive 5-point") && (prompt.contains("Response:\nRed.") || prompt.contains("Response:\nBlue")),
            "{prompt}"
        );
    }
    assert!(ran.report.notes.iter().any(|note| note.contains("no trainer configured")), "{:?}", ran.report.notes);
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("meta-rewarding", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(4));
    assert_eq!(ran.rows("actor").len() + ran.rows("judge").len(), 0);
    let rejected: Vec<_> = ran.dropped().into_iter().chain(ran.failed()).collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected.iter().all(|row| !row["reason"].as_str().unwrap().is_empty()));
}
