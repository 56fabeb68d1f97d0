//! The OS environment (AgentBench OS style): shell commands in a contained work directory,
//! rewarded by a check command.
//!
//! The sandbox forbids child processes (`max_processes = 1`) and lets only the Python binary
//! execute, so no real shell can run. Instead a small POSIX-like shell written in Python
//! (`python/minishell.py`: quoting, variables, globs, pipes, `;` `&&` `||`, redirections,
//! and the common file and text commands) runs inside one persistent sandbox session, on
//! that session's fresh work directory. The trade-off: tasks are limited to those builtins
//! (no package managers, compilers or system inspection), in exchange for keeping every
//! layer of the sandbox, including the ban on processes.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_sandbox::{Sandbox, Session};
use serde::{Deserialize, Serialize};

use super::{answer_of, answers_match, first_fenced, Environment, StepResult};
use crate::error::EnvError;
use crate::tool::clip;

const MINISHELL: &str = include_str!("../../python/minishell.py");

fn default_max_steps() -> u32 {
    15
}

fn default_max_chars() -> usize {
    4000
}

/// How the agent writes its actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OsActions {
    /// The whole reply is one command line; `answer: X` or `submit` ends the episode.
    #[default]
    Plain,
    /// AgentBench's OS convention, as AgentTuning's trajectories write it: reasoning, then
    /// `Act: bash` with a ```bash block (each line run in turn), `Act: answer(X)` or
    /// `Act: finish`; a reply with no `Act:` fails the task.
    Agentbench,
}

/// What one reply asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum OsAction {
    /// Command lines to run, in order.
    Commands(Vec<String>),
    /// End the episode with this answer.
    Answer(String),
    /// End the episode (a task that asks for no answer).
    Finish,
    /// Neither pattern.
    Invalid(String),
}

/// Reads a reply by the convention (the last `Act:` line decides, for AgentBench's).
pub fn read_os_action(reply: &str, actions: OsActions) -> OsAction {
    match actions {
        OsActions::Plain => {
            let action = crate::tools::simulated::strip_fences(reply).trim();
            if let Some(answer) = answer_of(action) {
                OsAction::Answer(answer.to_string())
            } else if action.eq_ignore_ascii_case("submit") {
                OsAction::Finish
            } else {
                OsAction::Commands(vec![action.to_string()])
            }
        }
        OsActions::Agentbench => {
            let Some(at) = reply.rfind("Act:") else { return OsAction::Invalid("no `Act:` line".into()) };
            let head = reply[at + "Act:".len()..].trim_start();
            if let Some(rest) = head.strip_prefix("answer(") {
                let answer = rest.rfind(')').map_or(rest, |end| &rest[..end]);
                return OsAction::Answer(answer.trim().to_string());
            }
            if head.starts_with("finish") {
                return OsAction::Finish;
            }
            if let Some(body) = head.strip_prefix("bash") {
                let Some(script) = first_fenced(body, &["bash", "sh"]) else {
                    return OsAction::Invalid("`Act: bash` without a ```bash block".into());
                };
                let lines: Vec<String> =
                    script.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_string).collect();
                if lines.is_empty() {
                    return OsAction::Invalid("the bash block is empty".into());
                }
                return OsAction::Commands(lines);
            }
            OsAction::Invalid(format!(
                "unknown action {:?} (expected bash, answer(...) or finish)",
                head.lines().next().unwrap_or_default()
            ))
        }
    }
}

/// One OS task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsTask {
    /// What the agent must do, shown at reset.
    pub instruction: String,
    /// Files created (relative to the work directory) before the task starts.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
    /// Commands run before the task starts (their output is not shown).
    #[serde(default)]
    pub setup: Vec<String>,
    /// A command run (from the work directory) when the agent finishes; exit status 0 means
    /// success. The agent's answer is in `$ANSWER`.
    #[serde(default)]
    pub check: Option<String>,
    /// The expected answer (compared after normalisation), when the task asks a question.
    #[serde(default)]
    pub expected_answer: Option<String>,
    /// Most actions before the episode ends unsolved (default 15).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Most characters of output shown per command (default 4000).
    #[serde(default = "default_max_chars")]
    pub max_output_chars: usize,
    /// How actions are written (default `plain`).
    #[serde(default)]
    pub actions: OsActions,
}

/// Actions: a command line (its output is the observation), `answer: X` or `submit` (end
/// the episode; reward 1 when the check passes and the answer, if expected, matches).
pub struct OsEnv {
    sandbox: Arc<Sandbox>,
    task: OsTask,
    session: Option<Session>,
    steps: u32,
}

impl std::fmt::Debug for OsEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OsEnv").field("steps", &self.steps).field("active", &self.session.is_some()).finish()
    }
}

/// The result of one emulated command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ShellOutput {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit status.
    pub status: i32,
}

impl OsEnv {
    /// An environment for this task, running in this sandbox.
    pub fn new(sandbox: Arc<Sandbox>, task: OsTask) -> OsEnv {
        OsEnv { sandbox, task, session: None, steps: 0 }
    }

    /// Runs one command line in the emulated shell (`env` adds variables first).
    pub async fn shell(&mut self, line: &str, env: &BTreeMap<String, String>) -> Result<ShellOutput, EnvError> {
        let session = self.session.as_mut().ok_or_else(|| EnvError::State("no episode is running; call reset first".into()))?;
        let call = format!(
            "_retort_sh({}, {})",
            serde_json::to_string(line).expect("a string serialises"),
            serde_json::to_string(env).expect("a map serialises")
        );
        let result = session.execute(&call).await?;
        let last = result.stdout.lines().rev().find(|l| l.starts_with('{'));
        match last.and_then(|l| serde_json::from_str::<ShellOutput>(l).ok()) {
            Some(out) => Ok(out),
            None => Ok(ShellOutput {
                stdout: String::new(),
                stderr: format!("sh: the shell failed ({}): {}", result.status.as_str(), result.stderr.trim()),
                status: 2,
            }),
        }
    }

    async fn finish(&mut self, answer: Option<&str>) -> Result<StepResult, EnvError> {
        let mut ok = true;
        let mut notes = Vec::new();
        if let Some(expected) = &self.task.expected_answer {
            let matched = answer.is_some_and(|a| answers_match(a, expected));
            ok &= matched;
            notes.push(if matched { "the answer is correct" } else { "the answer is wrong" });
        }
        if let Some(check) = self.task.check.clone() {
            let env = BTreeMap::from([("ANSWER".to_string(), answer.unwrap_or_default().to_string())]);
            // The check runs from the work directory, wherever the agent left the shell.
            self.shell("cd", &env).await?;
            let out = self.shell(&check, &env).await?;
            ok &= out.status == 0;
            notes.push(if out.status == 0 { "the check passed" } else { "the check failed" });
        }
        if let Some(session) = self.session.take() {
            session.close().await;
        }
        Ok(StepResult { observation: format!("Episode over: {}.", notes.join(", ")), reward: if ok { 1.0 } else { 0.0 }, done: true })
    }
}

#[async_trait]
impl Environment for OsEnv {
    async fn reset(&mut self) -> Result<String, EnvError> {
        if let Some(old) = self.session.take() {
            old.close().await;
        }
        let mut session = self.sandbox.session().await?;
        let defined = session.execute(MINISHELL).await?;
        if defined.status != retort_sandbox::ExecStatus::Ok {
            return Err(EnvError::Task(format!("starting the shell: {} {}", defined.status.as_str(), defined.stderr.trim())));
        }
        let files = serde_json::to_string(&self.task.files).expect("a map serialises");
        let setup = format!(
            "import json as _j, os as _o\nfor _p, _c in _j.loads({}).items():\n    _d = _o.path.dirname(_p)\n    if _d: _o.makedirs(_d, exist_ok=True)\n    open(_p, 'w').write(_c)\n",
            serde_json::to_string(&files).expect("a string serialises")
        );
        let written = session.execute(&setup).await?;
        if written.status != retort_sandbox::ExecStatus::Ok {
            return Err(EnvError::Task(format!("writing the task's files: {}", written.stderr.trim())));
        }
        self.session = Some(session);
        self.steps = 0;
        for command in self.task.setup.clone() {
            let out = self.shell(&command, &BTreeMap::new()).await?;
            if out.status != 0 {
                return Err(EnvError::Task(format!("setup command {command:?} failed: {}", out.stderr.trim())));
            }
        }
        if self.task.actions == OsActions::Agentbench {
            // The convention is the system prompt's (the recipe's); the task is the instruction.
            return Ok(self.task.instruction.clone());
        }
        Ok(format!(
            "{}\n\nEach action is one shell command line (a POSIX-like shell with common file and text commands: ls, cat, grep, find, wc, sort, head, tail, mkdir, cp, mv, rm, echo, ...). When you are done, reply `answer: <answer>` if the task asks a question, otherwise `submit`.",
            self.task.instruction
        ))
    }

    async fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        if self.session.is_none() {
            return Err(EnvError::State("step called with no episode running; call reset first".into()));
        }
        self.steps += 1;
        let commands = match read_os_action(action, self.task.actions) {
            OsAction::Answer(answer) => return self.finish(Some(&answer)).await,
            OsAction::Finish => return self.finish(None).await,
            OsAction::Invalid(reason) => {
                // Failed whatever the check would say: no need to run it.
                if let Some(session) = self.session.take() {
                    session.close().await;
                }
                return Ok(StepResult { observation: format!("Invalid reply: {reason}. The task is failed."), reward: 0.0, done: true });
            }
            OsAction::Commands(commands) => commands,
        };
        let mut observation = String::new();
        let mut status = 0;
        for command in &commands {
            let out = self.shell(command, &BTreeMap::new()).await?;
            observation.push_str(&out.stdout);
            observation.push_str(&out.stderr);
            status = out.status;
        }
        if observation.trim().is_empty() {
            observation = "(no output)".into();
        }
        observation = clip(observation.trim_end(), self.task.max_output_chars);
        if status != 0 {
            observation.push_str(&format!("\n[exit status {status}]"));
        }
        if self.task.actions == OsActions::Agentbench {
            observation = format!("The output of the OS:\n\n{observation}");
        }
        if self.steps >= self.task.max_steps {
            let mut result = self.finish(None).await?;
            result.observation = format!("{observation}\nThe step limit is reached. {}", result.observation);
            return Ok(result);
        }
        Ok(StepResult { observation, reward: 0.0, done: false })
    }
}
