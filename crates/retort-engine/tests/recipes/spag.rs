//! SPAG's mechanics on the scripted backend: self-play Adversarial Taboo episodes are judged by
//! the referee, every turn gets its side's reward for offline RL, and only the winning side's
//! turns, as the conversations the players were asked with, become imitation data; with
//! `vars.imitation`, a stronger model's winning turns train the policy before self-play.

use crate::common;

use serde_json::{Map, Value};

/// With `--limit 4` the words are apple, river, cloud and candle. apple: the defender says it
/// unknowingly (attacker wins). river: the defender guesses it (defender wins). cloud: the
/// attacker says it itself (defender wins). candle: nobody wins in five turns each (draw).
const RULES: &str = r#####"
- {when: "(?s)You are the defender.*What red fruit keeps", reply: "That would be an apple, of course."}
- {when: "(?s)You are the defender.*Boats float along it", reply: "I know the word! It is `river`!"}
- {when: "(?s)You are the defender.*Let us talk about light", reply: "Light is nice."}
- {when: "(?s)You are the attacker. The target word is .apple.", reply: "What red fruit keeps the doctor away?"}
- {when: "(?s)You are the attacker. The target word is .river.", reply: "Boats float along it."}
- {when: "(?s)You are the attacker. The target word is .cloud.", reply: "Look at that white cloud."}
- {when: "(?s)You are the attacker. The target word is .candle.", reply: "Let us talk about light."}
"#####;

fn by_word(rows: &[Map<String, Value>]) -> std::collections::BTreeMap<String, Map<String, Value>> {
    rows.iter().map(|row| (row["word"].as_str().unwrap().to_string(), row.clone())).collect()
}

#[test]
fn referee_outcomes_give_rewards_and_winner_imitation_data() {
    let ran = common::run_builtin("spag", RULES, &[], Some(4));
    let episodes = by_word(&ran.rows("episodes"));
    assert_eq!(episodes["apple"]["outcome"], "attacker_wins");
    assert_eq!(episodes["river"]["outcome"], "defender_wins");
    assert_eq!(episodes["cloud"]["outcome"], "defender_wins");
    assert_eq!(episodes["candle"]["outcome"], "draw");
    assert_eq!(episodes["candle"]["episode"]["turns"].as_array().unwrap().len(), 10);
    assert!(episodes.values().all(|row| !row["episode"]["reason"].as_str().unwrap().is_empty()));
    // Offline RL: every turn, with its side's reward (zero in a draw).
    let turns = ran.rows("turns");
    assert_eq!(turns.len(), 2 + 2 + 1 + 10);
    for row in &turns {
        let reward = row["reward"].as_f64().unwrap();
        let expected = match (row["outcome"].as_str().unwrap(), row["role"].as_str().unwrap()) {
            ("draw", _) => 0.0,
            ("attacker_wins", "attacker") | ("defender_wins", "defender") => 1.0,
            _ => -1.0,
        };
        assert_eq!(reward, expected, "{row:?}");
        // Only the attacker's prompt names the word.
        let prompt = row["prompt"].as_str().unwrap();
        let word = row["word"].as_str().unwrap();
        assert_eq!(prompt.contains(&format!("\"{word}\"")), row["role"] == "attacker", "{prompt}");
    }
    // The defender's turn sees the attacker's opening in its prompt.
    let river_defender = turns.iter().find(|row| row["word"] == "river" && row["role"] == "defender").unwrap();
    assert!(river_defender["prompt"].as_str().unwrap().contains("Attacker: Boats float along it."));
    // Imitation: the winners' turns only, each as the conversation the player was asked with
    // (its system prompt, the game from its side) and its reply.
    let data = ran.data();
    let answers: Vec<Value> = data.iter().map(|row| row["messages"].as_array().unwrap().last().unwrap()["content"].clone()).collect();
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.contains(&Value::from("What red fruit keeps the doctor away?")));
    assert!(answers.contains(&Value::from("I know the word! It is `river`!")));
    let guess = data
        .iter()
        .find(|row| row["messages"].as_array().unwrap().last().unwrap()["content"] == "I know the word! It is `river`!")
        .unwrap();
    let played = guess["messages"].as_array().unwrap();
    let roles: Vec<&str> = played.iter().map(|message| message["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant"]);
    assert!(
        played[0]["content"].as_str().unwrap().contains("You are the defender")
            && !played[0]["content"].as_str().unwrap().contains("river")
    );
    assert_eq!(played[1]["content"], "Boats float along it.");
    // The same messages are in the turn's offline-RL row: what the referee's episode recorded.
    assert_eq!(river_defender["messages"], guess["messages"]);
    let dropped = ran.dropped();
    assert_eq!(dropped.len(), 13);
    assert!(dropped.iter().all(|row| row["reason"].as_str().unwrap().contains("role == winner")));
    // Imitation is off by default: the teacher played nothing and nothing was trained on.
    assert!(common::read_jsonl(&ran.out().join("rounds/train-round-1-imitation.jsonl")).is_empty());
}

/// The stronger model's games on the same words: apple, the defender says it unknowingly
/// (attacker wins); river, the defender guesses it (defender wins); cloud and candle, draws.
const TEACHER: &str = r#####"
- {when: "(?s)You are the defender.*Teacher: think of a fruit pie", reply: "An apple pie sounds good."}
- {when: "(?s)You are the defender.*Teacher: water flows in it", reply: "I know the word! It is `river`!"}
- {when: "(?s)You are the defender", reply: "Hello to you."}
- {when: "(?s)You are the attacker. The target word is .apple.", reply: "Teacher: think of a fruit pie."}
- {when: "(?s)You are the attacker. The target word is .river.", reply: "Teacher: water flows in it."}
- {when: "(?s)You are the attacker", reply: "Teacher: hello."}
"#####;

#[test]
fn the_imitation_stage_trains_on_the_stronger_models_winning_turns_before_self_play() {
    let dir = tempfile::tempdir().unwrap();
    let mut set = common::scripted_role(dir.path(), "teacher", TEACHER);
    set.extend(["vars.imitation=true".to_string(), "vars.trainer=echo next-model".to_string()]);
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    let ran = common::run_builtin("spag", RULES, &set, Some(4));
    // The imitation rows: the teacher's winners' turns only, as it was asked them.
    let imitation = common::read_jsonl(&ran.out().join("rounds/train-round-1-imitation.jsonl"));
    let answers: Vec<&Value> = imitation.iter().map(|row| &row["messages"].as_array().unwrap().last().unwrap()["content"]).collect();
    assert_eq!(answers, [&Value::from("Teacher: think of a fruit pie."), &Value::from("I know the word! It is `river`!")]);
    let guess = imitation[1]["messages"].as_array().unwrap();
    assert!(guess[0]["content"].as_str().unwrap().contains("You are the defender"));
    assert_eq!(guess[1]["content"], "Teacher: water flows in it.");
    let notes = &ran.report.notes;
    assert!(notes[0].starts_with("steps[1].repeat") && notes[0].contains("round 1 trained on 2 rows"), "{notes:?}");
    // Self-play then runs once per word in each of the three epochs, by the policy (its own
    // clues, not the teacher's).
    let episodes = ran.rows("episodes");
    assert_eq!(episodes.len(), 4 * 3);
    for row in &episodes {
        let expected = match row["word"].as_str().unwrap() {
            "apple" => "attacker_wins",
            "candle" => "draw",
            _ => "defender_wins",
        };
        assert_eq!(row["outcome"], expected, "{row:?}");
        assert!(!row["episode"]["turns"][0]["content"].as_str().unwrap().starts_with("Teacher"), "{row:?}");
    }
}

#[test]
fn nonsense_answers_are_accounted_for() {
    let ran = common::run_builtin("spag", r#"- {when: ".", reply: "qwerty"}"#, &[], Some(2));
    // Nobody wins: two draws of ten turns, no imitation data, every turn dropped with the reason.
    let episodes = ran.rows("episodes");
    assert_eq!(episodes.len(), 2);
    assert!(episodes.iter().all(|row| row["outcome"] == "draw"));
    assert!(ran.data().is_empty());
    assert_eq!(ran.rows("turns").len(), 20);
    assert_eq!(ran.dropped().len() + ran.failed().len(), 20);
}
