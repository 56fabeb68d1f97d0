//! Typed errors of tools, tool configurations and environments.

use thiserror::Error;

/// A tool call that failed. The registry turns it into an observation for the model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ToolError {
    /// The arguments passed the schema but make no sense (a parse error, a bad date, a
    /// division by zero); the model can fix its call.
    #[error("{0}")]
    InvalidInput(String),
    /// The tool could not do its work (sandbox, database, network failure).
    #[error("{0}")]
    Failed(String),
}

/// A tool configuration that cannot be built into a tool.
#[derive(Debug, Error)]
pub enum ToolBuildError {
    /// The configuration is inconsistent or names something that is not there.
    #[error("building tool `{tool}`: {message}")]
    Invalid {
        /// The tool's name.
        tool: String,
        /// What is wrong.
        message: String,
    },
    /// Two tools of one registry share a name.
    #[error("registering tool `{0}`: a tool of that name is already registered")]
    Duplicate(String),
    /// The tool's `parameters` is not a valid JSON schema.
    #[error("registering tool `{tool}`: its parameters are not a valid JSON schema: {message}")]
    Schema {
        /// The tool's name.
        tool: String,
        /// The validator's complaint.
        message: String,
    },
}

impl ToolBuildError {
    pub(crate) fn invalid(tool: impl Into<String>, message: impl Into<String>) -> ToolBuildError {
        ToolBuildError::Invalid { tool: tool.into(), message: message.into() }
    }
}

/// An environment that could not reset or step (infrastructure, not the agent's fault: an
/// agent's bad action is an observation, never an error).
#[derive(Debug, Error)]
pub enum EnvError {
    /// The sandbox failed to start or run.
    #[error("environment sandbox: {0}")]
    Sandbox(#[from] retort_sandbox::SandboxError),
    /// The database could not be opened or read.
    #[error("environment database: {0}")]
    Database(String),
    /// `step` was called before `reset` or after the episode ended.
    #[error("environment state: {0}")]
    State(String),
    /// The task description is unusable.
    #[error("environment task: {0}")]
    Task(String),
}
