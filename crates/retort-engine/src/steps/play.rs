//! `play`: self-play episodes of a game between two model roles (SPAG's Adversarial Taboo).
//!
//! The attacker knows a target word and tries to make the defender say it; the defender tries
//! to name it. A rule-based referee decides (see `retort-agent`'s `TabooReferee`). The episode
//! (turns, outcome, per-turn rewards, reason) is written into the record.

use std::sync::Arc;

use async_trait::async_trait;
use retort_agent::{play_taboo, TabooGame, TabooPrompts};
use retort_core::{Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::llm::{CachedBackend, Llm};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};

/// The games `play` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Game {
    /// Adversarial Taboo (SPAG).
    Taboo,
}

/// Settings of a `play` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayConfig {
    /// The game.
    pub game: Game,
    /// The target word: a template (e.g. `{{ word }}`).
    pub target: String,
    /// Turns per player.
    #[serde(default = "default_turns")]
    pub max_turns: u32,
    /// Reward discount per turn away from the end (1 = none).
    #[serde(default = "one")]
    pub discount: f64,
    /// The attacker's model, by name in `llms:`; the `llm:` block by default (self-play).
    #[serde(default)]
    pub attacker_llm: Option<String>,
    /// The defender's model; the `llm:` block by default.
    #[serde(default)]
    pub defender_llm: Option<String>,
    /// The field the episode is written to.
    #[serde(default = "default_into")]
    pub into: String,
    /// Also write the outcome (`attacker_wins`, `defender_wins`, `draw`) into this field.
    #[serde(default)]
    pub outcome_into: Option<String>,
}

fn default_turns() -> u32 {
    5
}

fn one() -> f64 {
    1.0
}

fn default_into() -> String {
    "episode".to_string()
}

impl StepDef for PlayConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        vec![("target".to_string(), TemplateSource::Inline(self.target.clone()))]
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.template("target", &[]);
        cx.llm("attacker_llm", self.attacker_llm.as_deref());
        cx.llm("defender_llm", self.defender_llm.as_deref());
        cx.range("max_turns", u64::from(self.max_turns), 1, crate::limits::MAX_ITERATIONS);
        cx.write(&self.into);
        if let Some(field) = &self.outcome_into {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let attacker = cx.llm(&spec.path, self.attacker_llm.as_deref())?;
        let defender = cx.llm(&spec.path, self.defender_llm.as_deref())?;
        let concurrency = cx.concurrency(spec, Some(&attacker));
        Ok(Built::Record(Arc::new(Play { config: self.clone(), attacker, defender, concurrency })))
    }
}

struct Play {
    config: PlayConfig,
    attacker: Arc<Llm>,
    defender: Arc<Llm>,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Play {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let target = match cx.run.templates.render(&format!("{}.target", cx.step), &record, cx.round) {
            Ok(target) if !target.trim().is_empty() => target.trim().to_string(),
            Ok(_) => return vec![Outcome::fail(record, "play: the target word is empty")],
            Err(error) => return vec![Outcome::fail(record, format!("template `target` failed: {error}"))],
        };
        let game = TabooGame { target_word: target, max_turns: self.config.max_turns, discount: self.config.discount };
        let attacker = CachedBackend { llm: self.attacker.clone(), stats: cx.stats.clone(), cancel: cx.run.cancel.clone() };
        let defender = CachedBackend { llm: self.defender.clone(), stats: cx.stats.clone(), cancel: cx.run.cancel.clone() };
        match play_taboo(&attacker, &defender, &game, &TabooPrompts::default(), cx.seed(&record.id, 0)).await {
            Ok(episode) => {
                let value = serde_json::to_value(&episode).unwrap_or(Value::Null);
                if let Some(field) = &self.config.outcome_into {
                    record.set(field.clone(), value.get("outcome").cloned().unwrap_or(Value::Null));
                }
                record.set(self.config.into.clone(), value);
                vec![Outcome::Keep(record)]
            }
            Err(error) => vec![Outcome::fail(record, format!("play: model request failed: {error}"))],
        }
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}
