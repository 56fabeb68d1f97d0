//! The database environment: answer a question about a SQLite database by querying it
//! (read-only) and then stating the answer; reward 1 for the gold answer.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{answer_of, answers_match, Environment, StepResult};
use crate::error::EnvError;
use crate::tools::sqlite::{open_read_only, run_query, schema};

fn default_max_steps() -> u32 {
    10
}

fn default_max_rows() -> usize {
    20
}

/// One database question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteTask {
    /// The database file (opened read-only).
    pub database: PathBuf,
    /// The question.
    pub question: String,
    /// The gold answer (compared after normalisation, see [`answers_match`]).
    pub answer: String,
    /// Most actions before the episode ends with reward 0 (default 10).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    /// Most rows shown of a query result (default 20).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
}

/// Actions: a SQL query (its result is the observation) or `answer: X` (ends the episode,
/// reward 1 when X matches the gold answer, else 0).
#[derive(Debug)]
pub struct SqliteEnv {
    task: SqliteTask,
    steps: u32,
    done: bool,
}

impl SqliteEnv {
    /// An environment for this task (nothing is opened until `reset`).
    pub fn new(task: SqliteTask) -> SqliteEnv {
        SqliteEnv { task, steps: 0, done: true }
    }
}

#[async_trait]
impl Environment for SqliteEnv {
    async fn reset(&mut self) -> Result<String, EnvError> {
        let path = self.task.database.clone();
        let tables = tokio::task::spawn_blocking(move || open_read_only(&path, Duration::from_secs(2)).and_then(|c| schema(&c)))
            .await
            .map_err(|e| EnvError::Database(e.to_string()))?
            .map_err(EnvError::Database)?;
        self.steps = 0;
        self.done = false;
        Ok(format!(
            "Answer the question using the SQLite database below. Each action is either one read-only SQL query, whose result you will see, or `answer: <your answer>`, which ends the task.\n\nSchema:\n{tables}\n\nQuestion: {}",
            self.task.question
        ))
    }

    async fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        if self.done {
            return Err(EnvError::State("step called on a finished episode; call reset first".into()));
        }
        self.steps += 1;
        if let Some(answer) = answer_of(action) {
            self.done = true;
            let correct = answers_match(answer, &self.task.answer);
            let observation = if correct { "Correct." } else { "Incorrect." };
            return Ok(StepResult { observation: observation.into(), reward: if correct { 1.0 } else { 0.0 }, done: true });
        }
        let sql = crate::tools::simulated::strip_fences(action).trim().to_string();
        let (path, rows) = (self.task.database.clone(), self.task.max_rows);
        let result = tokio::task::spawn_blocking(move || run_query(&path, &sql, rows, Duration::from_secs(5)))
            .await
            .map_err(|e| EnvError::Database(e.to_string()))?;
        let mut observation = match result {
            Ok(output) => output.render(),
            Err(message) => message,
        };
        let done = self.steps >= self.task.max_steps;
        if done {
            self.done = true;
            observation.push_str("\nThe step limit is reached; the task ends without an answer.");
        }
        Ok(StepResult { observation, reward: 0.0, done })
    }
}
