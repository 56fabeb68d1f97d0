//! Agents for retort: tools a model can call, the agent loop (native function calling and
//! ReAct text), DFSDT tree search over actions, and interactive environments (SQLite, OS
//! shell, Python REPL, Adversarial Taboo).
//!
//! Nothing here knows recipes, YAML files or the run store: the engine builds tools from
//! [`ToolConfig`]s (resolving paths and backends first) and stores the [`Trajectory`]s and
//! [`Episode`]s it gets back. Tools and environments that run code use `retort-sandbox`.

pub mod agent;
pub mod catalog;
pub mod env;
mod error;
mod seed;
mod tool;
pub mod tools;

pub use agent::dfsdt::{dfsdt, DfsdtConfig, SearchResult, SearchStats};
pub use agent::episode::{run_episode, EpisodeConfig};
pub use agent::react::{parse_action_input, parse_react, react_system_prompt, ReactReply};
pub use agent::tora::{last_program, run_tora, solution_answer};
pub use agent::{
    finish_spec, run_agent, AgentConfig, AgentFormat, FinishStyle, StepStatus, StopReason, Trajectory, TrajectoryStep, FINISH, GIVE_UP,
};
pub use catalog::{tool_config, CatalogFormat};
pub use env::dbbench::{clean_answer, db_answer_matches, read_db_action, DbAction, DbEnv, DbTable, DbTask};
pub use env::os::{read_os_action, OsAction, OsActions, OsEnv, OsTask};
pub use env::repl::{ReplActions, ReplEnv, ReplTask, EXECUTE_CLOSE};
pub use env::sqlite::{SqliteEnv, SqliteTask};
pub use env::taboo::{play_taboo, Episode, TabooGame, TabooOutcome, TabooPrompts, TabooReferee, TabooRole, TabooTurn};
pub use env::{answers_match, Environment, StepResult};
pub use error::{EnvError, ToolBuildError, ToolError};
pub use seed::{derive_seed, hash_bytes};
pub use tool::{CallOutcome, CallStatus, Tool, ToolRegistry};
pub use tools::{BuildContext, ToolConfig};
