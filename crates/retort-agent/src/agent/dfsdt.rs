//! Depth-first search over actions with backtracking (ToolLLM's DFSDT).
//!
//! At each node up to `width` candidate replies are sampled (different seeds) and expanded
//! in order, depth first. A candidate that gives up (`give_up`), exhausts the error budget or
//! reaches the step limit ends its branch and the search backtracks to try the next sibling;
//! each new candidate at a node is told which actions its siblings already tried (ToolLLM's
//! diversity prompt). The first branch that reaches a final answer wins.

use retort_core::{Backend, Message};
use serde::{Deserialize, Serialize};

use super::{apply, sample, signature, Advance, AgentConfig, AgentState, StopReason, Trajectory};
use crate::seed::{derive_seed, hash_bytes};
use crate::tool::ToolRegistry;

fn default_width() -> u32 {
    2
}

fn default_max_expansions() -> u32 {
    30
}

/// How the tree search runs (the agent's `max_steps` bounds the depth of a path, its
/// `max_errors` the errors along one path).
///
/// ```yaml
/// width: 3
/// max_expansions: 40
/// keep_paths: true
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DfsdtConfig {
    /// Most candidates sampled at one node (default 2).
    #[serde(default = "default_width")]
    pub width: u32,
    /// Most expansions (model requests) in the whole search (default 30).
    #[serde(default = "default_max_expansions")]
    pub max_expansions: u32,
    /// Return every abandoned path too.
    #[serde(default)]
    pub keep_paths: bool,
}

impl Default for DfsdtConfig {
    fn default() -> DfsdtConfig {
        DfsdtConfig { width: default_width(), max_expansions: default_max_expansions(), keep_paths: false }
    }
}

/// What the search did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchStats {
    /// Candidates sampled (one model request each).
    pub expansions: u32,
    /// Returns to an earlier node to try an alternative: give-ups, dead ends, and nodes
    /// whose candidates were all spent.
    pub backtracks: u32,
    /// Branches the model gave up.
    pub gave_up: u32,
    /// Branches ended by the error budget or the step limit.
    pub dead_ends: u32,
    /// Candidates skipped because a sibling already did the same.
    pub duplicates: u32,
    /// Model requests that failed.
    pub backend_errors: u32,
    /// The deepest path, in model requests.
    pub max_depth: u32,
    /// The search stopped because `max_expansions` was spent.
    pub budget_exhausted: bool,
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    /// The first path that reached a final answer.
    pub trajectory: Option<Trajectory>,
    /// What the search did.
    pub stats: SearchStats,
    /// Abandoned paths in the order they ended (only with `keep_paths`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<Trajectory>,
    /// The last backend error, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_error: Option<String>,
    /// The run is stopping: the search ended without sending its next request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
}

struct Frame {
    state: AgentState,
    path: Vec<u32>,
    next: u32,
    tried: Vec<String>,
    /// What the tried candidates did and saw, for the diversity prompt.
    shown: Vec<String>,
}

/// The seed of candidate `index` at the node reached by `path`. The all-first path uses the
/// seeds of [`super::run_agent`], so a search of width 1 is the plain run.
fn candidate_seed(base: u64, path: &[u32], index: u32) -> u64 {
    let depth = path.len() as u64;
    if index == 0 && path.iter().all(|i| *i == 0) {
        return derive_seed(base, &[depth]);
    }
    let mut key: Vec<u8> = path.iter().flat_map(|i| i.to_le_bytes()).collect();
    key.extend_from_slice(&index.to_le_bytes());
    derive_seed(base, &[depth, hash_bytes(&key)])
}

/// ToolBench's diversity prompt: the earlier candidates at this node, each with what it saw.
fn diversity_hint(shown: &[String]) -> Option<String> {
    if shown.is_empty() {
        return None;
    }
    Some(format!(
        "Note: this is not the first try from this point. These actions were already tried and did not lead to an answer:\n{}\nChoose an action different from all of them.",
        shown.iter().map(|t| format!("- {t}")).collect::<Vec<_>>().join("\n")
    ))
}

/// Most characters of an earlier candidate's observation in the diversity prompt.
const SHOWN_CHARS: usize = 300;

/// Searches for a successful trajectory, depth first; `give_up` is always offered.
pub async fn dfsdt(
    backend: &dyn Backend,
    tools: &ToolRegistry,
    agent: &AgentConfig,
    search: &DfsdtConfig,
    task: Vec<Message>,
) -> SearchResult {
    let config = AgentConfig { allow_give_up: true, ..agent.clone() };
    let mut stats = SearchStats::default();
    let mut paths = Vec::new();
    let mut backend_error = None;
    let mut stack =
        vec![Frame { state: AgentState::new(&config, tools, task), path: Vec::new(), next: 0, tried: Vec::new(), shown: Vec::new() }];
    let finish =
        |stats: SearchStats, trajectory, paths, backend_error| SearchResult { trajectory, stats, paths, backend_error, cancelled: false };
    while let Some(top) = stack.last_mut() {
        if top.next >= search.width.max(1) || top.state.model_calls >= config.max_steps {
            stack.pop();
            if !stack.is_empty() {
                stats.backtracks += 1;
            }
            continue;
        }
        if stats.expansions >= search.max_expansions {
            stats.budget_exhausted = true;
            break;
        }
        let index = top.next;
        top.next += 1;
        stats.expansions += 1;
        let seed = candidate_seed(config.seed, &top.path, index);
        let hint = diversity_hint(&top.shown);
        let mut child = top.state.clone();
        let choice = match sample(backend, tools, &config, &mut child, seed, hint.as_deref()).await {
            Ok(choice) => choice,
            Err(e) if e.kind == retort_core::BackendErrorKind::Cancelled => {
                return SearchResult { trajectory: None, stats, paths, backend_error: Some(e.to_string()), cancelled: true };
            }
            Err(e) => {
                stats.backend_errors += 1;
                backend_error = Some(e.to_string());
                continue;
            }
        };
        let key = signature(&config, &choice);
        if top.tried.contains(&key) {
            stats.duplicates += 1;
            continue;
        }
        top.tried.push(key.clone());
        let steps_before = child.steps.len();
        let advance = apply(tools, &config, &mut child, choice).await;
        let seen = child.steps[steps_before.min(child.steps.len())..]
            .iter()
            .map(|step| crate::tool::clip(&step.observation, SHOWN_CHARS))
            .filter(|observation| !observation.is_empty())
            .collect::<Vec<_>>()
            .join(" | ");
        top.shown.push(if seen.is_empty() { key } else { format!("{key} -> {seen}") });
        stats.max_depth = stats.max_depth.max(child.model_calls);
        let mut path = top.path.clone();
        path.push(index);
        match advance {
            Advance::Final => {
                let trajectory = child.finish(StopReason::FinalAnswer, None);
                return finish(stats, Some(trajectory), paths, backend_error);
            }
            Advance::GaveUp | Advance::ErrorBudget => {
                let reason = if advance == Advance::GaveUp {
                    stats.gave_up += 1;
                    StopReason::GaveUp
                } else {
                    stats.dead_ends += 1;
                    StopReason::ErrorBudget
                };
                stats.backtracks += 1;
                if search.keep_paths {
                    paths.push(child.finish(reason, None));
                }
            }
            Advance::Continue if child.model_calls >= config.max_steps => {
                stats.dead_ends += 1;
                stats.backtracks += 1;
                if search.keep_paths {
                    paths.push(child.finish(StopReason::StepLimit, None));
                }
            }
            Advance::Continue => stack.push(Frame { state: child, path, next: 0, tried: Vec::new(), shown: Vec::new() }),
        }
    }
    finish(stats, None, paths, backend_error)
}
