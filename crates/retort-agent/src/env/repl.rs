//! The Python REPL environment (CodeAct): actions are code run in one persistent sandboxed
//! interpreter; the episode ends with an answer, rewarded by a checker. Actions are plain
//! (fenced or bare code, `answer: X`) or CodeAct's tags (`<execute>` code, `<solution>`).

use std::sync::Arc;

use async_trait::async_trait;
use retort_sandbox::{ExecStatus, Sandbox, Session};
use serde::{Deserialize, Serialize};

use super::{answer_of, answers_match, Environment, StepResult};
use crate::error::EnvError;
use crate::tool::clip;

fn default_max_steps() -> u32 {
    10
}

fn default_max_chars() -> usize {
    4000
}

/// How the agent writes its actions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplActions {
    /// Code fenced or bare; `answer: X` ends the episode.
    #[default]
    Plain,
    /// CodeAct's tags: code in `<execute>...</execute>`, the answer in `<solution>...</solution>`;
    /// the output comes back as `Observation:`; a reply with neither is told the convention.
    Codeact,
}

/// The tag that opens CodeAct's code action (generation may stop at its closing tag).
pub const EXECUTE_OPEN: &str = "<execute>";
/// The tag that closes CodeAct's code action.
pub const EXECUTE_CLOSE: &str = "</execute>";

/// The text between `open` and `close` (or the end, when generation stopped at `close`)
/// of each tagged block, in order.
fn tagged<'a>(text: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        let body = &rest[start + open.len()..];
        match body.find(close) {
            Some(end) => {
                blocks.push(&body[..end]);
                rest = &body[end + close.len()..];
            }
            None => {
                blocks.push(body);
                break;
            }
        }
    }
    blocks
}

/// What a CodeAct reply asks for.
#[derive(Debug, PartialEq)]
enum CodeactAction {
    Execute(String),
    Solution(String),
    Neither,
}

fn read_codeact(action: &str) -> CodeactAction {
    // An answer ends the episode even beside code (CodeAct's environments check the solution first).
    if let Some(solution) = tagged(action, "<solution>", "</solution>").last() {
        return CodeactAction::Solution(solution.trim().to_string());
    }
    let code: Vec<&str> = tagged(action, EXECUTE_OPEN, EXECUTE_CLOSE).into_iter().map(str::trim).filter(|c| !c.is_empty()).collect();
    if code.is_empty() {
        CodeactAction::Neither
    } else {
        CodeactAction::Execute(code.join("\n"))
    }
}

/// CodeAct's reminder for a reply with neither tag.
pub const CODEACT_REMINDER: &str = "I don't understand your input. If you want to execute code, please use <execute> YOUR_CODE_HERE </execute>. If you want to give me an answer, please use <solution> YOUR_SOLUTION_HERE </solution>.";

/// One CodeAct task. At least one of `expected_answer` and `check_code` is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplTask {
    /// What the agent must do, shown at reset.
    pub instruction: String,
    /// Code run in the interpreter before the task starts (definitions, data).
    #[serde(default)]
    pub setup_code: Option<String>,
    /// The expected answer (compared after normalisation).
    #[serde(default)]
    pub expected_answer: Option<String>,
    /// Python run in the same interpreter when the agent answers (the answer is in the
    /// variable `ANSWER`); success when it raises nothing, e.g. `assert solve(3) == 9`.
    #[serde(default)]
    pub check_code: Option<String>,
    /// Most actions before the episode ends unsolved (default 10).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Most characters of output shown per action (default 4000).
    #[serde(default = "default_max_chars")]
    pub max_output_chars: usize,
    /// How actions are written: `plain` (default) or CodeAct's tags.
    #[serde(default)]
    pub actions: ReplActions,
}

/// Actions: Python code (fenced or bare; variables persist between actions) or
/// `answer: X` (ends the episode; reward 1 when the checker accepts).
pub struct ReplEnv {
    sandbox: Arc<Sandbox>,
    task: ReplTask,
    session: Option<Session>,
    steps: u32,
}

impl std::fmt::Debug for ReplEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplEnv").field("steps", &self.steps).field("active", &self.session.is_some()).finish()
    }
}

/// The code of an action: the ```python (or plain ```) blocks joined, or the whole text.
pub fn code_of(action: &str) -> String {
    let mut blocks = Vec::new();
    let mut rest = action;
    while let Some(start) = rest.find("```") {
        let after = &rest[start + 3..];
        let Some(newline) = after.find('\n') else { break };
        let lang = after[..newline].trim().to_ascii_lowercase();
        let body = &after[newline + 1..];
        let Some(end) = body.find("```") else { break };
        if lang.is_empty() || lang == "python" || lang == "py" {
            blocks.push(body[..end].trim_end().to_string());
        }
        rest = &body[end + 3..];
    }
    if blocks.is_empty() {
        action.trim().to_string()
    } else {
        blocks.join("\n")
    }
}

impl ReplEnv {
    /// An environment for this task, running in this sandbox.
    pub fn new(sandbox: Arc<Sandbox>, task: ReplTask) -> ReplEnv {
        ReplEnv { sandbox, task, session: None, steps: 0 }
    }

    /// The step's result: the episode goes on, unless this was the last step allowed.
    async fn over_limit(&mut self, observation: String) -> StepResult {
        if self.steps >= self.task.max_steps {
            if let Some(session) = self.session.take() {
                session.close().await;
            }
            return StepResult {
                observation: format!("{observation}\nThe step limit is reached without an answer."),
                reward: 0.0,
                done: true,
            };
        }
        StepResult { observation, reward: 0.0, done: false }
    }

    async fn finish(&mut self, answer: &str) -> Result<StepResult, EnvError> {
        let mut ok = true;
        let mut notes = Vec::new();
        if let Some(expected) = &self.task.expected_answer {
            let matched = answers_match(answer, expected);
            ok &= matched;
            notes.push(if matched { "the answer is correct".to_string() } else { "the answer is wrong".to_string() });
        }
        if let (Some(check), Some(session)) = (self.task.check_code.clone(), self.session.as_mut()) {
            let code = format!("ANSWER = {}\n{check}", serde_json::to_string(answer).expect("a string serialises"));
            let result = session.execute(&code).await?;
            let passed = result.status == ExecStatus::Ok;
            ok &= passed;
            notes.push(if passed {
                "the check passed".into()
            } else {
                format!("the check failed ({})", result.reason.unwrap_or_default())
            });
        }
        if let Some(session) = self.session.take() {
            session.close().await;
        }
        Ok(StepResult { observation: format!("Episode over: {}.", notes.join(", ")), reward: if ok { 1.0 } else { 0.0 }, done: true })
    }
}

#[async_trait]
impl Environment for ReplEnv {
    async fn reset(&mut self) -> Result<String, EnvError> {
        if self.task.expected_answer.is_none() && self.task.check_code.is_none() {
            return Err(EnvError::Task("a REPL task needs expected_answer or check_code, and has neither".into()));
        }
        if let Some(old) = self.session.take() {
            old.close().await;
        }
        let mut session = self.sandbox.session().await?;
        if let Some(setup) = &self.task.setup_code {
            let result = session.execute(setup).await?;
            if result.status != ExecStatus::Ok {
                return Err(EnvError::Task(format!("the setup code failed: {}", result.reason.unwrap_or_default())));
            }
        }
        self.session = Some(session);
        self.steps = 0;
        Ok(match self.task.actions {
            ReplActions::Plain => format!(
                "{}\n\nEach action is Python code, run in a persistent interpreter (variables stay defined; a bare final expression is echoed). When you know the answer, reply `answer: <answer>`.",
                self.task.instruction
            ),
            ReplActions::Codeact => self.task.instruction.clone(),
        })
    }

    async fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        let Some(session) = self.session.as_mut() else {
            return Err(EnvError::State("step called with no episode running; call reset first".into()));
        };
        self.steps += 1;
        let code = match self.task.actions {
            ReplActions::Plain => {
                if let Some(answer) = answer_of(action) {
                    return self.finish(answer).await;
                }
                code_of(action)
            }
            ReplActions::Codeact => match read_codeact(action) {
                CodeactAction::Solution(answer) => return self.finish(&answer).await,
                CodeactAction::Execute(code) => code,
                CodeactAction::Neither => return Ok(self.over_limit(CODEACT_REMINDER.to_string()).await),
            },
        };
        let result = session.execute(&code).await?;
        let mut observation = String::new();
        if !result.stdout.trim().is_empty() {
            observation.push_str(result.stdout.trim_end());
        }
        if !result.stderr.trim().is_empty() {
            if !observation.is_empty() {
                observation.push('\n');
            }
            observation.push_str(result.stderr.trim_end());
        }
        observation = clip(&observation, self.task.max_output_chars);
        if result.status != ExecStatus::Ok {
            observation.push_str(&format!("\n[{}: {}]", result.status.as_str(), result.reason.clone().unwrap_or_default()));
        }
        if observation.trim().is_empty() {
            observation = "(no output)".into();
        }
        if !session.is_alive() {
            if let Some(session) = self.session.take() {
                session.close().await;
            }
            return Ok(StepResult {
                observation: format!("{observation}\nThe interpreter died; the episode is over."),
                reward: 0.0,
                done: true,
            });
        }
        if self.task.actions == ReplActions::Codeact {
            observation = format!("Observation:\n{observation}");
        }
        Ok(self.over_limit(observation).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codeact_replies_are_read_by_their_tags() {
        let cases = [
            ("Let me compute.\n<execute>\nx = 2 + 2\nprint(x)\n</execute>", CodeactAction::Execute("x = 2 + 2\nprint(x)".into())),
            ("<execute>print(1)", CodeactAction::Execute("print(1)".into())),
            ("<execute>a = 1</execute> then <execute>print(a)</execute>", CodeactAction::Execute("a = 1\nprint(a)".into())),
            ("The answer is <solution> 18 </solution>", CodeactAction::Solution("18".into())),
            ("<execute>print(3)</execute><solution>3</solution>", CodeactAction::Solution("3".into())),
            ("I think it is 4.", CodeactAction::Neither),
            ("<execute>   </execute>", CodeactAction::Neither),
        ];
        for (reply, expected) in cases {
            assert_eq!(read_codeact(reply), expected, "{reply}");
        }
    }
}
