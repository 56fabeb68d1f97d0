//! Meta-Rewarding's mechanics on the scripted backend: actor pairs are best against worst by
//! the mean of three judgments, the shorter response preferred among equal scores; judge pairs
//! come from the response whose judgments vary most, ordered by Elo ratings fitted to the
//! meta-judge's comparisons of each two judgments (both orders asked); one DPO round per
//! iteration trains on both kinds.

use crate::common;

/// The meta-judge prefers "Short and right" to "It names a colour" to "Vague", whichever
/// position it is shown in (and, shown the same judgment twice, says A: a split verdict).
const RULES: &str = r#####"
- {when: "(?s)checking the work of two judges.*Judgment A:\nShort and right.*Judgment B:\nShort and right", reply: "Verdict: [[A]]"}
- {when: "(?s)checking the work of two judges.*Judgment A:\nShort and right", reply: "A is more precise. Verdict: [[A]]"}
- {when: "(?s)checking the work of two judges.*Judgment B:\nShort and right", reply: "B is more precise. Verdict: [[B]]"}
- {when: "(?s)checking the work of two judges.*Judgment A:\nIt names.*Judgment B:\nVague", reply: "Verdict: [[A]]"}
- {when: "(?s)checking the work of two judges.*Judgment A:\nVague.*Judgment B:\nIt names", reply: "Verdict: [[B]]"}
- {when: "(?s)checking the work of two judges", reply: "Verdict: [[A]]"}
- {when: "(?s)5-point.*Response:\nRed\\.", replies: ["Short and right.\nScore: 4", "It names a colour.\nScore: 3", "Vague.\nScore: 2"]}
- {when: "(?s)5-point.*Response:\nGreen", reply: "Too terse.\nScore: 1"}
- {when: "(?s)5-point", reply: "Partly.\nScore: 2"}
- {when: "(?s)Task \\d+:$", replies: ["Name a colour.", "Name a colour you like.", "Name a bright colour."]}
- {when: "user: ", replies: ["Red.", "Blue is a calm colour.", "Green", "Yellow like the sun.", "Red."]}
"#####;

/// How much the meta-judge likes a judgment.
fn rank(judgment: &str) -> u8 {
    match judgment.lines().next().unwrap() {
        "Short and right." => 3,
        "It names a colour." => 2,
        "Vague." => 1,
        other => panic!("unexpected judgment {other:?}"),
    }
}

#[test]
fn judge_pairs_come_from_the_most_disputed_response_by_elo_and_both_kinds_train_one_dpo_round() {
    let ran = common::run_builtin("meta-rewarding", RULES, &["vars.trainer=echo next-model"], Some(8));
    let records = ran.rows("records");
    let (actor, judge): (Vec<_>, Vec<_>) = records.iter().partition(|row| row["kind"] == "actor");
    assert!(!actor.is_empty() && !judge.is_empty(), "{records:?}");
    for row in &actor {
        assert!(row["chosen_score"].as_f64().unwrap() > row["rejected_score"].as_f64().unwrap(), "{row:?}");
        assert_eq!(row["prompt"], row["new_prompt"]);
    }
    let mut judged_prompts = 0;
    for row in &actor {
        // The judged response: the one whose three judgments vary most (only "Red." varies).
        let judged = row["judged"].as_object().unwrap();
        let judgments: Vec<&str> = judged["judgments"].as_array().unwrap().iter().map(|j| j["text"].as_str().unwrap()).collect();
        assert_eq!(judgments.len(), 3);
        let partner = judge.iter().find(|other| other["new_prompt"] == row["new_prompt"] && other["round"] == row["round"]);
        if judged["variance"].as_f64().unwrap() == 0.0 {
            assert!(partner.is_none(), "no judge pair without disagreement: {row:?}");
            continue;
        }
        assert_eq!(judged["response"], "Red.");
        let ranks: Vec<u8> = judgments.iter().map(|j| rank(j)).collect();
        let partner = partner.unwrap_or_else(|| panic!("a judge pair for {row:?}"));
        // Elo over the battles: the best-liked judgment is chosen, the least-liked rejected.
        assert_eq!(rank(partner["chosen"].as_str().unwrap()), *ranks.iter().max().unwrap(), "{partner:?}");
        assert_eq!(rank(partner["rejected"].as_str().unwrap()), *ranks.iter().min().unwrap(), "{partner:?}");
        let ratings: Vec<f64> = partner["elo"]["ratings"].as_array().unwrap().iter().map(|r| r.as_f64().unwrap()).collect();
        let best = partner["elo"]["best"].as_u64().unwrap() as usize;
        assert!(ratings.iter().all(|r| *r <= ratings[best]), "{ratings:?}");
        // The judge pair's prompt is the judge's: the rubric and the judged response.
        let prompt = partner["prompt"].as_str().unwrap();
        assert!(prompt.contains("additive 5-point") && prompt.contains("Response:\nRed."), "{prompt}");
        judged_prompts += 1;
    }
    assert!(judged_prompts > 0);
    assert_eq!(judge.len(), judged_prompts);
    // The DPO file is both kinds; one training per iteration on all of a round's rows.
    let data = ran.data();
    assert_eq!(data.len(), records.len());
    let notes = &ran.report.notes;
    let round_one = records.iter().filter(|row| row["round"] == 1).count();
    assert!(
        notes.iter().any(|note| note.ends_with(&format!("round 1 trained on {round_one} rows → model next-model"))),
        "{round_one}: {notes:?}"
    );
    assert_eq!(notes.iter().filter(|note| note.contains("round 1 trained on")).count(), 1, "{notes:?}");
    // Later iterations wrote the same three prompts again, which dedup (its memory spans the
    // rounds) removed.
    assert!(records.iter().all(|row| row["round"] == 1));
}

#[test]
fn a_nonsense_model_leaves_every_record_accounted_for() {
    let ran = common::run_builtin("meta-rewarding", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(4));
    assert_eq!(ran.data().len(), 0);
    let rejected: Vec<_> = ran.dropped().into_iter().chain(ran.failed()).collect();
    assert_eq!(rejected.len(), 4, "{rejected:?}");
    assert!(rejected.iter().all(|row| !row["reason"].as_str().unwrap().is_empty()));
}
