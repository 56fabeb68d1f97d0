//! Adversarial Taboo: the referee's rules and whole games on scripted players.

mod common;

use common::{say, scripted};
use retort_agent::{play_taboo, TabooGame, TabooOutcome, TabooPrompts, TabooReferee, TabooRole};

#[test]
fn referee_cases() {
    let referee = TabooReferee::new("apple");
    let cases: &[(TabooRole, &str, Option<TabooOutcome>)] = &[
        (TabooRole::Defender, "I love apples in autumn.", Some(TabooOutcome::AttackerWins)),
        (TabooRole::Defender, "APPLE pie is great", Some(TabooOutcome::AttackerWins)),
        (TabooRole::Defender, "The pineapple and the applesauce", None),
        (TabooRole::Defender, "I know the word! It is `apple`!", Some(TabooOutcome::DefenderWins)),
        (TabooRole::Defender, "i know the word. it's \"Apples\"", Some(TabooOutcome::DefenderWins)),
        (TabooRole::Defender, "I know the word! It is `pear`!", Some(TabooOutcome::AttackerWins)),
        (TabooRole::Defender, "Fruit is healthy.", None),
        (TabooRole::Attacker, "What fruit keeps the doctor away? An apple a day!", Some(TabooOutcome::DefenderWins)),
        (TabooRole::Attacker, "What grows in orchards?", None),
    ];
    for (role, text, want) in cases {
        assert_eq!(referee.judge(*role, text).map(|v| v.0), *want, "{role:?}: {text}");
    }
    let inflections = [
        ("run", "He was running fast", true),
        ("study", "she studied", true),
        ("knife", "two knives", true),
        ("stop", "stopped", true),
        ("ice cream", "I like ice  creams", true),
        ("cat", "concatenate", false),
    ];
    for (word, text, want) in inflections {
        assert_eq!(TabooReferee::new(word).mentions(text), want, "{word}: {text}");
    }
}

fn game(max_turns: u32) -> TabooGame {
    TabooGame { target_word: "apple".into(), max_turns, discount: 1.0 }
}

#[tokio::test]
async fn defender_saying_the_word_lets_the_attacker_win() {
    let attacker =
        scripted(vec![say(r"(?s)You are the attacker\. The target word is `apple`", "What fruit do you put in a pie in autumn?")]);
    let defender = scripted(vec![say(r"(?s)You are the defender.*user: What fruit", "Probably apples, with cinnamon.")]);
    let episode = play_taboo(&attacker, &defender, &game(5), &TabooPrompts::default(), 1).await.unwrap();
    assert_eq!(episode.outcome, TabooOutcome::AttackerWins);
    assert_eq!(episode.turns.len(), 2);
    assert_eq!(episode.rewards, [1.0, -1.0]);
    assert!(episode.reason.contains("without guessing"), "{}", episode.reason);
}

#[tokio::test]
async fn a_correct_guess_lets_the_defender_win() {
    let attacker = scripted(vec![
        say(r"\nassistant: ", "Think of orchards."),
        say(r"(?s)target word is `apple`", "What keeps the doctor away, they say?"),
    ]);
    let defender =
        scripted(vec![say(r"orchards\.\z", "I know the word! It is `apple`!"), say(r"doctor away", "Daily exercise, I suppose.")]);
    let game = TabooGame { discount: 0.5, ..game(5) };
    let episode = play_taboo(&attacker, &defender, &game, &TabooPrompts::default(), 1).await.unwrap();
    assert_eq!(episode.outcome, TabooOutcome::DefenderWins, "{episode:#?}");
    let roles: Vec<TabooRole> = episode.turns.iter().map(|t| t.role).collect();
    assert_eq!(roles, [TabooRole::Attacker, TabooRole::Defender, TabooRole::Attacker, TabooRole::Defender]);
    assert_eq!(episode.rewards, [-0.125, 0.25, -0.5, 1.0]);
}

#[tokio::test]
async fn the_turn_limit_is_a_draw() {
    let attacker = scripted(vec![say(".", "Tell me about your favourite snack.")]);
    let defender = scripted(vec![say(".", "I like crackers.")]);
    let episode = play_taboo(&attacker, &defender, &game(3), &TabooPrompts::default(), 9).await.unwrap();
    assert_eq!(episode.outcome, TabooOutcome::Draw);
    assert_eq!(episode.turns.len(), 6);
    assert!(episode.rewards.iter().all(|r| *r == 0.0));
    // Each player sees its own turns as the assistant's.
    let json = serde_json::to_value(&episode).unwrap();
    assert_eq!(json["outcome"], "draw");
    assert_eq!(json["turns"][1]["role"], "defender");
}

#[tokio::test]
async fn an_attacker_saying_the_word_loses() {
    let attacker = scripted(vec![say(".", "Do you like Apples?")]);
    let defender = scripted(vec![say(".", "Sure.")]);
    let episode = play_taboo(&attacker, &defender, &game(5), &TabooPrompts::default(), 1).await.unwrap();
    assert_eq!(episode.outcome, TabooOutcome::DefenderWins);
    assert_eq!(episode.turns.len(), 1);
    assert_eq!(episode.rewards, [-1.0]);
    assert!(episode.reason.contains("attacker said"), "{}", episode.reason);
}

#[tokio::test]
async fn a_game_that_outgrows_the_context_ends_as_a_draw_with_its_turns() {
    // The defender's second turn no longer fits: the game ends there, a draw, nothing lost.
    let attacker = scripted(vec![say(r"(?s)target word is `apple`", "What grows in orchards?")]);
    let mut too_long = say(r"(?s)orchards\?.*orchards\?", "");
    too_long.reply = None;
    too_long.error = Some("context_length".into());
    let defender = scripted(vec![too_long, say(r"orchards\?", "Trees, mostly.")]);
    let episode = play_taboo(&attacker, &defender, &game(5), &TabooPrompts::default(), 1).await.unwrap();
    assert_eq!(episode.outcome, TabooOutcome::Draw, "{episode:#?}");
    assert_eq!(episode.turns.len(), 3);
    assert!(episode.reason.contains("outgrew the defender model's context after 3 turns"), "{}", episode.reason);
    assert_eq!(episode.rewards, [0.0, 0.0, 0.0]);

    // A first turn that does not fit is still the game's error.
    let mut never = say(r".", "");
    never.reply = None;
    never.error = Some("context_length".into());
    let error = play_taboo(&scripted(vec![never]), &defender, &game(5), &TabooPrompts::default(), 1).await.unwrap_err();
    assert_eq!(error.kind, retort_core::BackendErrorKind::ContextLength);
}
