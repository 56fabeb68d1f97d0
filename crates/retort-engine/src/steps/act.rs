//! `act`: an agent works on a task, with tools or in an environment, and its trajectory is written.
//!
//! Tools (calculator, python, dates, SQLite, BM25 search, HTTP, LLM-simulated APIs) come from
//! `retort-agent`; so do the loop (native function calling or ReAct text), DFSDT tree search,
//! and the environments (SQLite questions, an OS shell, a Python REPL). Model requests go
//! through the run store like every other step's.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use retort_agent::{
    dfsdt, run_agent, run_episode, run_tora, AgentConfig, AgentFormat, DbEnv, DbTable, DbTask, DfsdtConfig, Environment, EpisodeConfig, OsActions, OsEnv, OsTask, ReplActions, ReplEnv, ReplTask, EXECUTE_CLOSE,
    SqliteEnv, SqliteTask, StopReason, ToolConfig, Trajectory,
};
use retort_core::{Message, Outcome, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::llm::{CachedBackend, Llm};
use crate::steps::StepSpec;
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};
use crate::steps::toolset::{self, ToolSet, ToolsFrom};

/// An environment the agent acts in, instead of calling tools. Text values are templates.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum EnvConfig {
    /// Answer a question by querying a database; reward 1 for the gold answer.
    Sqlite {
        /// The database file, relative to the recipe.
        database: String,
        /// The gold answer: a template.
        answer: String,
    },
    /// AgentBench's database tasks (DBBench): the record's tables are built into a fresh
    /// in-memory database; `Action: Operation` runs SQL, `Action: Answer` commits; questions
    /// are scored against the label, INSERT/UPDATE/DELETE by the tables the gold statement leaves.
    Dbbench {
        /// The field holding the table (or a list of tables) in AgentBench's shape (`table_name`, `table_info`).
        #[serde(default = "default_tables_from")]
        tables_from: String,
        /// The field holding the label: the answer's items, or the gold statement for a mutation.
        #[serde(default = "default_label_from")]
        label_from: String,
        /// The field holding the task's type (`INSERT`, `UPDATE`, `DELETE`, `counting`, ...; a string or a one-item list).
        #[serde(default = "default_type_from")]
        type_from: String,
    },
    /// Shell commands in the sandbox (an emulated POSIX shell); reward from a check or the expected answer.
    Os {
        /// A check command run at the end (exit 0 = success): a template.
        #[serde(default)]
        check: Option<String>,
        /// The expected answer: a template.
        #[serde(default)]
        expected_answer: Option<String>,
        /// A field holding files to create first (an object of path to content).
        #[serde(default)]
        files_from: Option<String>,
        /// A field holding setup commands run first (a list of command lines, or one).
        #[serde(default)]
        setup_from: Option<String>,
        /// How actions are written: `plain` (one command line, `answer: X`, `submit`) or
        /// `agentbench` (reasoning, then `Act: bash` with a ```bash block, `Act: answer(X)`, `Act: finish`).
        #[serde(default)]
        actions: OsActions,
    },
    /// A persistent Python interpreter (CodeAct); reward from a check or the expected answer.
    Repl {
        /// Code run before the agent starts: a template.
        #[serde(default)]
        setup_code: Option<String>,
        /// The expected answer: a template.
        #[serde(default)]
        expected_answer: Option<String>,
        /// Python run at the end with the answer in `ANSWER`; truthy = success: a template.
        #[serde(default)]
        check_code: Option<String>,
        /// How actions are written: `plain` (code, `answer: X`) or `codeact` (CodeAct's
        /// `<execute>` and `<solution>` tags; replies stop at `</execute>`).
        #[serde(default)]
        actions: ReplActions,
    },
}

/// Settings of an `act` step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActConfig {
    /// The task, sent as the user's message: a template.
    pub task: String,
    /// A system message: a template.
    #[serde(default)]
    pub system: Option<String>,
    /// The tools the agent may call (`kind: calculator | datetime | python | sqlite | search | http | simulated | definition`).
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
    /// More tools, listed in a field of each record (ToolBench's `api_list`, a tool set per task).
    #[serde(default)]
    pub tools_from: Option<ToolsFrom>,
    /// The loop: `format` (function_calling, react), `max_steps`, `max_errors`, `temperature`, `max_tokens`, ...
    #[serde(default)]
    pub agent: AgentConfig,
    /// Search over actions (ToolLLM's DFSDT: `width`, `max_expansions`, `keep_paths`) instead of one pass.
    #[serde(default)]
    pub search: Option<DfsdtConfig>,
    /// An environment to act in, instead of tools.
    #[serde(default)]
    pub env: Option<EnvConfig>,
    /// A field holding the start of the agent's answer, which the model continues
    /// (`agent.format: tora`): ToRA's output-space shaping has a teacher complete the prefix
    /// of a failed solution. Taken as it is (not a template, so no whitespace is trimmed);
    /// an empty or missing value means a fresh answer.
    #[serde(default)]
    pub prefix_from: Option<String>,
    /// The field the trajectory is written to.
    #[serde(default = "default_into")]
    pub into: String,
    /// Also write the whole conversation as chat `messages` into this field (SFT data).
    #[serde(default)]
    pub messages_into: Option<String>,
    /// Also write the tools the agent was offered (OpenAI function specs) into this field, for
    /// an export's `tools`.
    #[serde(default)]
    pub tools_into: Option<String>,
    /// Drop trajectories that did not reach a final answer (or, in an environment, a reward of 1).
    #[serde(default)]
    pub require_success: bool,
    /// The model, by name in `llms:`; the `llm:` block by default.
    #[serde(default)]
    pub llm: Option<String>,
}

fn default_tables_from() -> String {
    "table".to_string()
}

fn default_label_from() -> String {
    "label".to_string()
}

fn default_type_from() -> String {
    "type".to_string()
}

fn default_into() -> String {
    "trajectory".to_string()
}

impl EnvConfig {
    fn templates(&self) -> Vec<(&'static str, &String)> {
        match self {
            EnvConfig::Sqlite { answer, .. } => vec![("env.answer", answer)],
            EnvConfig::Dbbench { .. } => Vec::new(),
            EnvConfig::Os { check, expected_answer, .. } => {
                [("env.check", check), ("env.expected_answer", expected_answer)].into_iter().filter_map(|(key, text)| text.as_ref().map(|text| (key, text))).collect()
            }
            EnvConfig::Repl { setup_code, expected_answer, check_code, .. } => [
                ("env.setup_code", setup_code),
                ("env.expected_answer", expected_answer),
                ("env.check_code", check_code),
            ]
            .into_iter()
            .filter_map(|(key, text)| text.as_ref().map(|text| (key, text)))
            .collect(),
        }
    }
}

impl StepDef for ActConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        let mut templates = vec![("task".to_string(), TemplateSource::Inline(self.task.clone()))];
        if let Some(system) = &self.system {
            templates.push(("system".to_string(), TemplateSource::Inline(system.clone())));
        }
        if let Some(env) = &self.env {
            templates.extend(env.templates().into_iter().map(|(key, text)| (key.to_string(), TemplateSource::Inline(text.clone()))));
        }
        templates
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        cx.template("task", &[]);
        if self.system.is_some() {
            cx.template("system", &[]);
        }
        if let Some(env) = &self.env {
            for (key, _) in env.templates() {
                cx.template(key, &[]);
            }
            match env {
                EnvConfig::Sqlite { database, .. } => {
                    cx.file("env.database", database);
                }
                EnvConfig::Dbbench { tables_from, label_from, type_from } => {
                    for (key, field) in [("env.tables_from", tables_from), ("env.label_from", label_from), ("env.type_from", type_from)] {
                        cx.read(key, field);
                    }
                }
                EnvConfig::Os { files_from, setup_from, .. } => {
                    for (key, field) in [("env.files_from", files_from), ("env.setup_from", setup_from)] {
                        if let Some(field) = field {
                            cx.read(key, field);
                        }
                    }
                }
                EnvConfig::Repl { .. } => {}
            }
            if !self.tools.is_empty() || self.tools_from.is_some() {
                cx.error("tools", "an agent acts either with tools or in an `env`, not both");
            }
            if self.search.is_some() {
                cx.error("search", "tree search runs over tools, not in an `env`");
            }
        }
        if let Some(field) = &self.prefix_from {
            cx.read("prefix_from", field);
        }
        if self.agent.format == AgentFormat::Tora {
            // ToRA's programs run in the sandbox itself: there is nothing else to call.
            if !self.tools.is_empty() || self.tools_from.is_some() || self.env.is_some() || self.search.is_some() {
                cx.error("agent.format", "format `tora` runs its own ```python blocks in the sandbox: it takes no `tools`, `tools_from`, `env` or `search`");
            }
        } else if self.prefix_from.is_some() {
            cx.error("prefix_from", "a prefix is continued by format `tora` only (set `agent.format: tora`)");
        }
        toolset::check(&self.tools, self.tools_from.as_ref(), cx);
        cx.llm("llm", self.llm.as_deref());
        cx.write(&self.into);
        for field in [&self.messages_into, &self.tools_into].into_iter().flatten() {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let fail = |message: String| EngineError::Step { step: spec.path.clone(), message };
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        let tools = ToolSet::build(&spec.path, &self.tools, self.tools_from.as_ref(), cx)?;
        // The OS and REPL environments and ToRA's programs run in the sandbox themselves.
        let runs_code = matches!(self.env, Some(EnvConfig::Os { .. } | EnvConfig::Repl { .. })) || self.agent.format == AgentFormat::Tora;
        let sandbox = if runs_code { Some(crate::steps::verify::shared_sandbox().map_err(fail)?) } else { tools.sandbox() };
        let concurrency = cx.concurrency(spec, Some(&llm));
        Ok(Built::Record(Arc::new(Act { config: self.clone(), llm, tools, sandbox, base_dir: cx.base_dir.clone(), concurrency })))
    }
}

struct Act {
    config: ActConfig,
    llm: Arc<Llm>,
    tools: ToolSet,
    sandbox: Option<Arc<retort_sandbox::Sandbox>>,
    base_dir: std::path::PathBuf,
    concurrency: usize,
}

impl Act {
    fn render(&self, cx: &StageCx, record: &Record, key: &str) -> Result<String, String> {
        cx.run.templates.render(&format!("{}.{key}", cx.step), record, cx.round).map_err(|error| format!("template `{key}` failed: {error}"))
    }

    /// An optional template's value; one that renders empty counts as not set (a task of a
    /// mixed file with no check, or no expected answer).
    fn optional(&self, cx: &StageCx, record: &Record, key: &str, text: &Option<String>) -> Result<Option<String>, String> {
        Ok(text.as_ref().map(|_| self.render(cx, record, key)).transpose()?.filter(|value| !value.trim().is_empty()))
    }

    async fn in_env(&self, env: &EnvConfig, task: String, record: &Record, cx: &StageCx, backend: &CachedBackend) -> Result<(Trajectory, bool), String> {
        let sandbox = || self.sandbox.clone().ok_or_else(|| "no sandbox".to_string());
        let max_steps = self.config.agent.max_steps;
        let mut environment: Box<dyn Environment> = match env {
            EnvConfig::Sqlite { database, .. } => Box::new(SqliteEnv::new(SqliteTask {
                database: self.base_dir.join(database),
                question: task,
                answer: self.render(cx, record, "env.answer")?,
                max_steps,
                max_rows: 20,
            })),
            EnvConfig::Dbbench { tables_from, label_from, type_from } => Box::new(DbEnv::new(db_task(record, task, tables_from, label_from, type_from, max_steps)?)),
            EnvConfig::Os { check, expected_answer, files_from, setup_from, actions } => Box::new(OsEnv::new(
                sandbox()?,
                OsTask {
                    instruction: task,
                    files: files_from.as_deref().map(|field| os_files(record, field)).transpose()?.unwrap_or_default(),
                    setup: setup_from.as_deref().map(|field| strings(record, field, "env.setup_from")).transpose()?.unwrap_or_default(),
                    check: self.optional(cx, record, "env.check", check)?,
                    expected_answer: self.optional(cx, record, "env.expected_answer", expected_answer)?,
                    max_steps,
                    max_output_chars: 4000,
                    actions: *actions,
                },
            )),
            EnvConfig::Repl { setup_code, expected_answer, check_code, actions } => Box::new(ReplEnv::new(
                sandbox()?,
                ReplTask {
                    instruction: task,
                    setup_code: self.optional(cx, record, "env.setup_code", setup_code)?,
                    expected_answer: self.optional(cx, record, "env.expected_answer", expected_answer)?,
                    check_code: self.optional(cx, record, "env.check_code", check_code)?,
                    max_steps,
                    max_output_chars: 4000,
                    actions: *actions,
                },
            )),
        };
        let episode = EpisodeConfig {
            max_steps,
            seed: cx.seed(&record.id, 0),
            temperature: self.config.agent.temperature,
            max_tokens: self.config.agent.max_tokens,
            system_prompt: self.config.system.as_ref().map(|_| self.render(cx, record, "system")).transpose()?,
            stop: match env {
                EnvConfig::Repl { actions: ReplActions::Codeact, .. } => vec![EXECUTE_CLOSE.to_string()],
                _ => Vec::new(),
            },
        };
        let trajectory = run_episode(backend, environment.as_mut(), &episode).await.map_err(|error| format!("environment: {error}"))?;
        let success = trajectory.steps.last().and_then(|step| step.reward).is_some_and(|reward| reward >= 1.0);
        Ok((trajectory, success))
    }
}

/// A field's strings: a list of strings, or one string (`key` names the setting in errors).
fn strings(record: &Record, field: &str, key: &str) -> Result<Vec<String>, String> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(one)) => Ok(vec![one.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                other => Err(format!("{key}: field `{field}`: expected a list of strings, found an item {other}")),
            })
            .collect(),
        Some(other) => Err(format!("{key}: field `{field}`: expected a string or a list of strings, found {other}")),
    }
}

fn os_files(record: &Record, field: &str) -> Result<BTreeMap<String, String>, String> {
    match record.get(field) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(path, content)| match content {
                Value::String(text) => Ok((path.clone(), text.clone())),
                other => Err(format!("env.files_from: field `{field}`: file {path:?}: expected its content as a string, found {other}")),
            })
            .collect(),
        Some(other) => Err(format!("env.files_from: field `{field}`: expected an object of path to content, found {other}")),
    }
}

fn db_task(record: &Record, instruction: String, tables_from: &str, label_from: &str, type_from: &str, max_steps: u32) -> Result<DbTask, String> {
    let tables = match record.get(tables_from) {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        other => return Err(format!("env.tables_from: field `{tables_from}`: expected a table or a list of tables, found {}", other.map_or("nothing".to_string(), Value::to_string))),
    };
    let tables = tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| serde_json::from_value::<DbTable>(table).map_err(|e| format!("env.tables_from: field `{tables_from}`: table {i}: expected `table_name` and `table_info: {{columns, rows}}`: {e}")))
        .collect::<Result<Vec<_>, _>>()?;
    let label = match record.get(label_from) {
        Some(Value::Array(items)) => items.iter().map(|item| item.as_str().map_or_else(|| item.to_string(), str::to_string)).collect(),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Number(n)) => vec![n.to_string()],
        other => return Err(format!("env.label_from: field `{label_from}`: expected a list of answers or the gold statement, found {}", other.map_or("nothing".to_string(), Value::to_string))),
    };
    let kind = strings(record, type_from, "env.type_from")?.into_iter().next().ok_or_else(|| format!("env.type_from: field `{type_from}` is missing or empty"))?;
    Ok(DbTask { instruction, tables, kind, label, max_steps })
}

#[async_trait]
impl RecordStep for Act {
    async fn apply(&self, mut record: Record, cx: &StageCx) -> Vec<Outcome> {
        let task = match self.render(cx, &record, "task") {
            Ok(task) => task,
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        let backend = CachedBackend { llm: self.llm.clone(), stats: cx.stats.clone(), cancel: cx.run.cancel.clone() };
        let (trajectory, success, search) = if let Some(env) = &self.config.env {
            match self.in_env(env, task, &record, cx, &backend).await {
                Ok((trajectory, success)) => (trajectory, success, None),
                Err(reason) => return vec![Outcome::fail(record, reason)],
            }
        } else {
            let mut messages = Vec::new();
            if self.config.system.is_some() {
                match self.render(cx, &record, "system") {
                    Ok(system) => messages.push(Message::system(system)),
                    Err(reason) => return vec![Outcome::fail(record, reason)],
                }
            }
            let registry = match self.tools.registry(&record, &task, cx) {
                Ok(registry) => registry,
                Err(reason) => return vec![Outcome::fail(record, format!("act: {reason}"))],
            };
            messages.push(Message::user(task));
            if let Some(field) = &self.config.tools_into {
                let mut specs = registry.specs();
                if self.config.agent.finish == retort_agent::FinishStyle::Toolbench {
                    specs.push(retort_agent::finish_spec());
                }
                record.set(field.clone(), Value::Array(specs.iter().map(retort_core::ToolSpec::to_openai).collect()));
            }
            let mut agent = self.config.agent.clone();
            agent.seed = cx.seed(&record.id, 0);
            if agent.format == AgentFormat::Tora {
                let prefix = match self.config.prefix_from.as_ref().and_then(|field| record.get(field)) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(prefix)) => prefix.clone(),
                    Some(other) => {
                        let reason = format!("act: prefix_from: expected a string, found {other}");
                        return vec![Outcome::fail(record, reason)];
                    }
                };
                let Some(sandbox) = &self.sandbox else { return vec![Outcome::fail(record, "act: no sandbox for format tora".to_string())] };
                let trajectory = run_tora(&backend, sandbox, &agent, messages, &prefix).await;
                let success = trajectory.stop_reason == StopReason::FinalAnswer && trajectory.final_answer.is_some();
                return self.finish(record, trajectory, success, None);
            }
            match &self.config.search {
                Some(search) => {
                    let result = dfsdt(&backend, &registry, &agent, search, messages).await;
                    if result.cancelled {
                        return vec![Outcome::Interrupted(record)];
                    }
                    let stats = serde_json::to_value(&result.stats).unwrap_or(Value::Null);
                    match result.trajectory {
                        Some(trajectory) => (trajectory, true, Some(stats)),
                        None => {
                            let reason = result.backend_error.unwrap_or_else(|| format!("search found no successful path ({stats})"));
                            return vec![Outcome::Drop(record, format!("act: {reason}"))];
                        }
                    }
                }
                None => {
                    let trajectory = run_agent(&backend, &registry, &agent, messages).await;
                    let success = trajectory.stop_reason == StopReason::FinalAnswer;
                    (trajectory, success, None)
                }
            }
        };
        self.finish(record, trajectory, success, search)
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

impl Act {
    /// Writes a trajectory into the record, or says why the record does not go on.
    fn finish(&self, mut record: Record, trajectory: Trajectory, success: bool, search: Option<Value>) -> Vec<Outcome> {
        if trajectory.stop_reason == StopReason::Cancelled {
            return vec![Outcome::Interrupted(record)];
        }
        if let Some(error) = &trajectory.backend_error {
            return vec![Outcome::fail(record, format!("act: model request failed: {error}"))];
        }
        if let Some(field) = &self.config.messages_into {
            record.set(field.clone(), serde_json::to_value(&trajectory.messages).unwrap_or(Value::Null));
        }
        let mut value = serde_json::to_value(&trajectory).unwrap_or(Value::Null);
        if let (Some(search), Value::Object(map)) = (search, &mut value) {
            map.insert("search".to_string(), search);
        }
        record.set(self.config.into.clone(), value);
        if self.config.require_success && !success {
            let reason = format!("act: no success ({:?} after {} steps)", trajectory.stop_reason, trajectory.steps.len());
            return vec![Outcome::Drop(record, reason)];
        }
        vec![Outcome::Keep(record)]
    }
}
