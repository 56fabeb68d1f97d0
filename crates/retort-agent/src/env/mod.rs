//! Environments an agent acts in (one file each) behind the [`Environment`] trait, and the
//! answer normalisation their referees share.

pub mod dbbench;
pub mod os;
pub mod repl;
pub mod sqlite;
pub mod taboo;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::EnvError;

/// What one action led to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    /// What the agent sees next.
    pub observation: String,
    /// The reward of this action.
    pub reward: f64,
    /// Whether the episode is over.
    pub done: bool,
}

/// An interactive task: reset, then act until `done`.
#[async_trait]
pub trait Environment: Send {
    /// Starts (or restarts) the episode; returns the first observation (the task).
    async fn reset(&mut self) -> Result<String, EnvError>;

    /// Takes one action (text, as the model wrote it).
    async fn step(&mut self, action: &str) -> Result<StepResult, EnvError>;
}

/// The body of the first ```-fenced block of `text` (its language tag, one of `tags`, left
/// out), up to the closing fence or the end of the text; `None` when there is no fence.
pub(crate) fn first_fenced<'a>(text: &'a str, tags: &[&str]) -> Option<&'a str> {
    let after = &text[text.find("```")? + 3..];
    let after = tags.iter().find_map(|tag| after.strip_prefix(tag)).unwrap_or(after);
    Some(after.find("```").map_or(after, |close| &after[..close]))
}

/// The text after a leading `answer:` / `final answer:` label (case-insensitive), if any.
pub fn answer_of(action: &str) -> Option<&str> {
    let trimmed = action.trim();
    let lower = trimmed.to_ascii_lowercase();
    for label in ["final answer:", "answer:"] {
        if lower.starts_with(label) {
            return Some(trimmed[label.len()..].trim());
        }
    }
    None
}

fn normalize_item(text: &str) -> String {
    let t = text.trim().trim_matches(|c: char| c == '"' || c == '\'' || c == '`').trim();
    let t = t.trim_end_matches('.').trim();
    t.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn as_number(text: &str) -> Option<f64> {
    let cleaned: String = normalize_item(text).chars().filter(|c| *c != ',' && *c != '$' && *c != '%').collect();
    cleaned.parse::<f64>().ok().filter(|f| f.is_finite())
}

fn items_equal(a: &str, b: &str) -> bool {
    match (as_number(a), as_number(b)) {
        (Some(x), Some(y)) => (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0),
        _ => normalize_item(a) == normalize_item(b),
    }
}

/// Whether an answer matches the gold one after normalisation: case, surrounding quotes, a
/// final period and spacing are ignored; numbers compare by value (`1,000.0` = `1000`); lists
/// (comma- or line-separated) compare as sorted sets of items.
pub fn answers_match(answer: &str, gold: &str) -> bool {
    if items_equal(answer, gold) {
        return true;
    }
    let split = |s: &str| -> Vec<String> {
        let mut items: Vec<String> = s.split([',', '\n', ';']).map(normalize_item).filter(|i| !i.is_empty()).collect();
        items.sort();
        items.dedup();
        items
    };
    let (a, g) = (split(answer), split(gold));
    a.len() > 1 && a.len() == g.len() && a.iter().zip(&g).all(|(x, y)| items_equal(x, y))
}
