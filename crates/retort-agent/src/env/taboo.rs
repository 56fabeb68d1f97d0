//! Adversarial Taboo (SPAG, "Self-Play of Adversarial Language Games"): an attacker who knows
//! a target word tries to make the defender say it; the defender tries to guess it. A
//! rule-based referee decides each turn.

use regex::Regex;
use retort_core::{Backend, BackendError, BackendErrorKind, ChatRequest, Message, SamplingParams};
use serde::{Deserialize, Serialize};

use crate::seed::derive_seed;

fn default_max_turns() -> u32 {
    5
}

fn default_discount() -> f64 {
    1.0
}

/// One game.
///
/// ```yaml
/// target_word: apple
/// max_turns: 5      # turns per player
/// discount: 0.9     # optional, rewards discounted towards the start
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabooGame {
    /// The word the attacker must make the defender say.
    pub target_word: String,
    /// Turns per player (the attacker opens; default 5, as in SPAG).
    #[serde(default = "default_max_turns")]
    pub max_turns: u32,
    /// Reward of turn `t` of `T` is `±discount^(T-1-t)` (default 1: no discount).
    #[serde(default = "default_discount")]
    pub discount: f64,
}

/// The players' system prompts; `{target_word}` and `{max_turns}` are filled in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TabooPrompts {
    /// The attacker's instructions.
    pub attacker: String,
    /// The defender's instructions.
    pub defender: String,
    /// The first user message the attacker sees, asking for its opening.
    pub opening: String,
}

/// The game's rules as SPAG states them, shared by both prompts.
pub const TABOO_RULES: &str = "Play the game of Adversarial Taboo. In this game there are two players, an attacker and a defender. At the beginning, the attacker is assigned a target word, which the defender is not told. The attacker's task is to induce the defender to utter the target word unconsciously; then the attacker wins the game. However, the attacker is not allowed to utter the target word itself, otherwise the attacker loses. At the same time, the defender tries to figure out the target word. If the defender identifies the target word, it can say \"I know the word! It is `target word`!\", and then the defender wins. The defender can guess the word only once: a wrong guess loses the game. The game has {max_turns} turns for each player; if nobody wins within them, it is a tie.";

impl Default for TabooPrompts {
    fn default() -> TabooPrompts {
        TabooPrompts {
            attacker: format!("{TABOO_RULES}\n\nYou are the attacker. The target word is `{{target_word}}`. Steer the conversation so that the defender says the word, without ever saying it yourself (nor any form of it). Talk naturally; do not reveal that there is a word to say. Reply with your next utterance only."),
            defender: format!("{TABOO_RULES}\n\nYou are the defender. You do not know the target word. Converse naturally while avoiding words the attacker seems to be steering you towards, and infer the target word from the conversation. Guess only when you are confident, exactly in the form \"I know the word! It is `...`!\". Reply with your next utterance only."),
            opening: "The game begins. Make your first utterance.".into(),
        }
    }
}

/// A player.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabooRole {
    /// Knows the word; must make the defender say it.
    Attacker,
    /// Must avoid the word, and may guess it once.
    Defender,
}

/// One utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TabooTurn {
    /// Who spoke.
    pub role: TabooRole,
    /// What was said.
    pub content: String,
    /// The conversation the player was asked with for this turn (its system prompt, the game
    /// so far from its side), as sent: imitation data trains on exactly this.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
}

/// How a game ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TabooOutcome {
    /// The defender said the word, or guessed wrong.
    AttackerWins,
    /// The defender guessed the word, or the attacker said it.
    DefenderWins,
    /// Nobody won within the turn limit.
    Draw,
}

/// A played game.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    /// The game played.
    pub game: TabooGame,
    /// The utterances in order, attacker first.
    pub turns: Vec<TabooTurn>,
    /// The result.
    pub outcome: TabooOutcome,
    /// One reward per turn: `+1` for the winner's turns, `-1` for the loser's, `0` in a draw,
    /// times `discount^(T-1-t)`.
    pub rewards: Vec<f64>,
    /// The referee's reason, in words.
    pub reason: String,
}

/// The referee: word forms of the target and the guess rule.
#[derive(Debug, Clone)]
pub struct TabooReferee {
    target: String,
    mention: Regex,
    exact: Regex,
    guess: Regex,
}

/// The target word's simple inflections (plural, past, gerund, comparative); for a phrase,
/// of its last word.
fn word_forms(target: &str) -> Vec<String> {
    let lower = target.trim().to_lowercase();
    let (prefix, last) = match lower.rsplit_once(' ') {
        Some((p, l)) => (format!("{p} "), l.to_string()),
        None => (String::new(), lower.clone()),
    };
    let mut forms = vec![last.clone()];
    for suffix in ["s", "es", "ed", "d", "ing", "er", "ers", "est"] {
        forms.push(format!("{last}{suffix}"));
    }
    let chars: Vec<char> = last.chars().collect();
    let vowel = |c: char| "aeiou".contains(c);
    if let Some(stem) = last.strip_suffix('e') {
        forms.push(format!("{stem}ing"));
    }
    if let Some(stem) = last.strip_suffix('y') {
        if chars.len() >= 2 && !vowel(chars[chars.len() - 2]) {
            forms.extend([format!("{stem}ies"), format!("{stem}ied"), format!("{stem}ier")]);
        }
    }
    if let Some(stem) = last.strip_suffix('f') {
        forms.push(format!("{stem}ves"));
    }
    if let Some(stem) = last.strip_suffix("fe") {
        forms.push(format!("{stem}ves"));
    }
    if chars.len() >= 3 {
        let (a, b, c) = (chars[chars.len() - 3], chars[chars.len() - 2], chars[chars.len() - 1]);
        if !vowel(a) && vowel(b) && !vowel(c) && !"wxy".contains(c) {
            forms.extend([format!("{last}{c}ed"), format!("{last}{c}ing"), format!("{last}{c}er")]);
        }
    }
    forms.sort();
    forms.dedup();
    forms.into_iter().map(|f| format!("{prefix}{f}")).collect()
}

impl TabooReferee {
    /// A referee for this target word.
    pub fn new(target_word: &str) -> TabooReferee {
        let alternatives = word_forms(target_word)
            .iter()
            .map(|f| regex::escape(f).replace(r"\ ", r"\s+").replace(' ', r"\s+"))
            .collect::<Vec<_>>()
            .join("|");
        let mention = Regex::new(&format!(r"(?i)\b(?:{alternatives})\b")).expect("escaped forms compile");
        let exact = Regex::new(&format!(r"(?i)^(?:(?:a|an|the)\s+)?(?:{alternatives})$")).expect("escaped forms compile");
        let guess = Regex::new(r#"(?i)i\s+know\s+the\s+word\s*[!.,:]*\s*it\s*(?:is|'s)\s*[:\s]*[`'"“‘*]*([^`'"”’*!.?\n]+)"#)
            .expect("the guess pattern compiles");
        TabooReferee { target: target_word.trim().to_string(), mention, exact, guess }
    }

    /// Whether the text says the target word (word boundaries, any case, simple inflections).
    pub fn mentions(&self, text: &str) -> bool {
        self.mention.is_match(text)
    }

    /// The defender's explicit guess in a text, if it makes one.
    pub fn guess<'a>(&self, text: &'a str) -> Option<&'a str> {
        self.guess.captures(text).and_then(|c| c.get(1)).map(|m| m.as_str().trim())
    }

    /// Judges one utterance: `Some((outcome, reason))` when it ends the game.
    pub fn judge(&self, role: TabooRole, text: &str) -> Option<(TabooOutcome, String)> {
        match role {
            TabooRole::Attacker => self
                .mentions(text)
                .then(|| (TabooOutcome::DefenderWins, format!("the attacker said the target word `{}` itself", self.target))),
            TabooRole::Defender => {
                if let Some(guess) = self.guess(text) {
                    return Some(if self.exact.is_match(guess.trim()) {
                        (TabooOutcome::DefenderWins, format!("the defender guessed the target word `{}`", self.target))
                    } else {
                        (TabooOutcome::AttackerWins, format!("the defender guessed `{guess}`, but the word was `{}`", self.target))
                    });
                }
                self.mentions(text).then(|| {
                    (TabooOutcome::AttackerWins, format!("the defender said the target word `{}` without guessing it", self.target))
                })
            }
        }
    }
}

/// The rewards of a finished game, one per turn.
pub fn taboo_rewards(turns: &[TabooTurn], outcome: TabooOutcome, discount: f64) -> Vec<f64> {
    let total = turns.len();
    turns
        .iter()
        .enumerate()
        .map(|(t, turn)| {
            let sign = match (outcome, turn.role) {
                (TabooOutcome::Draw, _) => 0.0,
                (TabooOutcome::AttackerWins, TabooRole::Attacker) | (TabooOutcome::DefenderWins, TabooRole::Defender) => 1.0,
                _ => -1.0,
            };
            sign * discount.powi((total - 1 - t) as i32)
        })
        .collect()
}

fn fill(template: &str, game: &TabooGame) -> String {
    template.replace("{target_word}", &game.target_word).replace("{max_turns}", &game.max_turns.to_string())
}

/// The conversation as one player sees it: its own turns as the assistant's, the other's as
/// the user's.
fn view(system: String, opening: Option<&str>, turns: &[TabooTurn], me: TabooRole) -> Vec<Message> {
    let mut messages = vec![Message::system(system)];
    if let Some(opening) = opening {
        messages.push(Message::user(opening));
    }
    for turn in turns {
        messages.push(if turn.role == me { Message::assistant(turn.content.clone()) } else { Message::user(turn.content.clone()) });
    }
    messages
}

/// Plays one game: the attacker opens, players alternate, the referee judges every turn.
/// Turn `t` is requested with `derive_seed(seed, [t])`. A game that outgrows a player's context
/// after its first turn ends there as a draw, with the turns so far; any other failure (or a
/// first turn that does not fit) is the game's error.
pub async fn play_taboo(
    attacker: &dyn Backend,
    defender: &dyn Backend,
    game: &TabooGame,
    prompts: &TabooPrompts,
    seed: u64,
) -> Result<Episode, BackendError> {
    let referee = TabooReferee::new(&game.target_word);
    let mut turns: Vec<TabooTurn> = Vec::new();
    let mut ending = None;
    'game: for _ in 0..game.max_turns {
        for role in [TabooRole::Attacker, TabooRole::Defender] {
            let (backend, messages) = match role {
                TabooRole::Attacker => (attacker, view(fill(&prompts.attacker, game), Some(&prompts.opening), &turns, role)),
                TabooRole::Defender => (defender, view(fill(&prompts.defender, game), None, &turns, role)),
            };
            let request = ChatRequest {
                messages: messages.clone(),
                params: SamplingParams { seed: Some(derive_seed(seed, &[turns.len() as u64])), ..SamplingParams::default() },
                json_schema: None,
                grammar: None,
                tools: Vec::new(),
                continue_final: false,
            };
            let response = match backend.chat(&request).await {
                Ok(response) => response,
                Err(error) if error.kind == BackendErrorKind::ContextLength && !turns.is_empty() => {
                    ending = Some((
                        TabooOutcome::Draw,
                        format!(
                            "the game outgrew the {} model's context after {} turns: {}",
                            match role {
                                TabooRole::Attacker => "attacker",
                                TabooRole::Defender => "defender",
                            },
                            turns.len(),
                            error.message
                        ),
                    ));
                    break 'game;
                }
                Err(error) => return Err(error),
            };
            let content = response.choices.into_iter().next().map(|c| c.text.trim().to_string()).unwrap_or_default();
            let verdict = referee.judge(role, &content);
            turns.push(TabooTurn { role, content, messages });
            if let Some(verdict) = verdict {
                ending = Some(verdict);
                break 'game;
            }
        }
    }
    let (outcome, reason) = ending.unwrap_or_else(|| (TabooOutcome::Draw, format!("nobody won within {} turns each", game.max_turns)));
    let rewards = taboo_rewards(&turns, outcome, game.discount);
    Ok(Episode { game: game.clone(), turns, outcome, rewards, reason })
}
