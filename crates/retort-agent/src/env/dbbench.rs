//! AgentBench's database environment (DBBench, as AgentTuning used it): each task brings its
//! own tables, built into a fresh in-memory SQLite database per episode; the agent reasons,
//! then writes `Action: Operation` with one SQL statement (reads and writes) or
//! `Action: Answer` with `Final Answer: [...]`. Questions are scored against the label by
//! AgentBench's answer rules; INSERT, UPDATE and DELETE tasks by the table's contents against
//! those the gold statement leaves.
//!
//! AgentBench runs MySQL in Docker and hashes each table (`md5` of its sorted row hashes);
//! here the same comparison is made on the sorted rows themselves (each row's non-null values
//! joined by commas, as MySQL's `CONCAT_WS`), which is the hash's preimage. Statements cannot
//! attach files, change pragmas or run past a deadline.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use super::{first_fenced, Environment, StepResult};
use crate::error::EnvError;
use crate::tool::clip;

fn default_max_steps() -> u32 {
    15
}

/// One column of a task's table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbColumn {
    /// The column's name.
    pub name: String,
    /// Its declared type (AgentBench creates every column as TEXT).
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

/// A table's columns and rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbTableInfo {
    /// The columns.
    pub columns: Vec<DbColumn>,
    /// The rows, one value per column (any JSON scalar; stored as text).
    pub rows: Vec<Vec<serde_json::Value>>,
}

/// A table, in AgentBench's shape (`table_name`, `table_info: {columns, rows}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DbTable {
    /// The table's name.
    pub table_name: String,
    /// Its columns and rows.
    pub table_info: DbTableInfo,
}

/// One DBBench task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTask {
    /// What the agent is told (AgentBench: the table's description and the question).
    pub instruction: String,
    /// The tables created before the episode.
    pub tables: Vec<DbTable>,
    /// The task's type (`INSERT`, `UPDATE`, `DELETE`, or a kind of question: `counting`, ...).
    pub kind: String,
    /// The gold answer's items (questions), or the gold statement as its one item
    /// (INSERT, UPDATE, DELETE).
    pub label: Vec<String>,
    /// Most actions before the episode ends with reward 0 (default 15, AgentBench's rounds).
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
}

impl DbTask {
    /// Whether the task changes the database (scored by the tables, not by the answer).
    pub fn is_mutation(&self) -> bool {
        matches!(self.kind.to_ascii_uppercase().as_str(), "INSERT" | "UPDATE" | "DELETE")
    }
}

/// What one reply asks for, read AgentBench's way.
#[derive(Debug, Clone, PartialEq)]
pub enum DbAction {
    /// Run this statement (the first SQL code block after `Action: Operation`).
    Operation(String),
    /// Commit this answer (the text after `Final Answer:`).
    Answer(String),
    /// Neither pattern: AgentBench fails the task at once.
    Invalid(String),
}

/// Reads a reply: `Action: Operation` then a ```sql block, or `Action: Answer` then
/// `Final Answer: ...` (the last `Action:` line decides).
pub fn read_db_action(reply: &str) -> DbAction {
    let Some(at) = reply.rfind("Action:") else {
        return DbAction::Invalid("no `Action:` line".into());
    };
    let rest = &reply[at + "Action:".len()..];
    let head = rest.trim_start();
    if let Some(body) = head.strip_prefix("Operation") {
        let Some(sql) = first_fenced(body, &["sql", "SQL"]) else {
            return DbAction::Invalid("`Action: Operation` without a ```sql block".into());
        };
        let sql = sql.trim();
        if sql.is_empty() {
            return DbAction::Invalid("the SQL block is empty".into());
        }
        return DbAction::Operation(sql.to_string());
    }
    if head.starts_with("Answer") {
        return match head.find("Final Answer:") {
            Some(at) => DbAction::Answer(head[at + "Final Answer:".len()..].trim().to_string()),
            None => DbAction::Invalid("`Action: Answer` without `Final Answer:`".into()),
        };
    }
    DbAction::Invalid(format!("unknown action {:?} (expected Operation or Answer)", head.lines().next().unwrap_or_default()))
}

/// One value as Python writes it in a tuple (`'text'`, `3`, `2.5`, `None`): AgentBench shows
/// the agent the raw result of `cursor.fetchall()`.
fn python_repr(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "None".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => {
            if f.fract() == 0.0 && f.abs() < 1e16 {
                format!("{f:.1}")
            } else {
                f.to_string()
            }
        }
        ValueRef::Text(t) => {
            let text = String::from_utf8_lossy(t);
            if text.contains('\'') && !text.contains('"') {
                format!("\"{text}\"")
            } else {
                format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
            }
        }
        ValueRef::Blob(b) => format!("b'<{} bytes>'", b.len()),
    }
}

/// A table or column name quoted for SQL (backticks, as AgentBench's MySQL statements).
fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn open(tables: &[DbTable]) -> Result<Connection, String> {
    let conn = Connection::open_in_memory().map_err(|e| format!("opening an in-memory database: {e}"))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(|e| format!("disabling ATTACH: {e}"))?;
    for table in tables {
        let columns: Vec<String> = table.table_info.columns.iter().map(|c| format!("{} TEXT", quote(&c.name))).collect();
        conn.execute(&format!("CREATE TABLE {} ({})", quote(&table.table_name), columns.join(", ")), [])
            .map_err(|e| format!("creating table {:?}: {e}", table.table_name))?;
        let marks = vec!["?"; columns.len()].join(", ");
        let mut insert = conn
            .prepare(&format!("INSERT INTO {} VALUES ({marks})", quote(&table.table_name)))
            .map_err(|e| format!("filling table {:?}: {e}", table.table_name))?;
        for (i, row) in table.table_info.rows.iter().enumerate() {
            if row.len() != columns.len() {
                return Err(format!("table {:?}: row {i} has {} values for {} columns", table.table_name, row.len(), columns.len()));
            }
            let values = row.iter().map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "None".into(),
                other => other.to_string(),
            });
            insert.execute(params_from_iter(values)).map_err(|e| format!("filling table {:?}: {e}", table.table_name))?;
        }
    }
    // The agent's statements: no files, no pragmas, no extensions.
    conn.authorizer(Some(|cx: AuthContext<'_>| match cx.action {
        AuthAction::Attach { .. } | AuthAction::Detach { .. } | AuthAction::Pragma { .. } => Authorization::Deny,
        AuthAction::Function { function_name } if function_name.eq_ignore_ascii_case("load_extension") => Authorization::Deny,
        _ => Authorization::Allow,
    }));
    Ok(conn)
}

/// Runs one statement with a deadline; the result as Python's repr of its rows.
fn execute(conn: &Connection, sql: &str, timeout: Duration) -> String {
    let start = Instant::now();
    conn.progress_handler(10_000, Some(move || start.elapsed() > timeout));
    let result = (|| -> Result<String, rusqlite::Error> {
        let mut stmt = conn.prepare(sql.trim().trim_end_matches(';'))?;
        let width = stmt.column_count();
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells: Vec<String> = (0..width).map(|i| row.get_ref(i).map(python_repr).unwrap_or_default()).collect();
            out.push(if cells.len() == 1 { format!("({},)", cells[0]) } else { format!("({})", cells.join(", ")) });
            if out.len() > 1000 {
                break;
            }
        }
        Ok(format!("[{}]", out.join(", ")))
    })();
    conn.progress_handler(0, None::<fn() -> bool>);
    match result {
        Ok(rows) => rows,
        Err(rusqlite::Error::SqliteFailure(code, _)) if code.code == rusqlite::ErrorCode::OperationInterrupted => {
            "Error: the statement ran past its time limit.".into()
        }
        Err(e) => format!("Error: {e}"),
    }
}

/// Each table's rows as sorted strings (non-null values joined by commas), tables sorted by
/// name: what AgentBench's table hash is computed from.
fn contents(conn: &Connection, tables: &[DbTable]) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in tables {
        let columns: Vec<String> = table.table_info.columns.iter().map(|c| quote(&c.name)).collect();
        let sql = format!("SELECT {} FROM {}", columns.join(", "), quote(&table.table_name));
        let read = || -> Result<Vec<String>, rusqlite::Error> {
            let mut stmt = conn.prepare(&sql)?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let values: Vec<String> = (0..columns.len())
                    .filter_map(|i| match row.get_ref(i) {
                        Ok(ValueRef::Null) | Err(_) => None,
                        Ok(ValueRef::Text(t)) => Some(String::from_utf8_lossy(t).into_owned()),
                        Ok(ValueRef::Integer(n)) => Some(n.to_string()),
                        Ok(ValueRef::Real(f)) => Some(f.to_string()),
                        Ok(ValueRef::Blob(b)) => Some(String::from_utf8_lossy(b).into_owned()),
                    })
                    .collect();
                out.push(values.join(","));
            }
            out.sort();
            Ok(out)
        };
        // A dropped or renamed table reads as empty: it cannot equal the gold contents.
        all.push((table.table_name.clone(), read().unwrap_or_default()));
    }
    all.sort();
    all
}

/// A value normalised AgentBench's way: percent signs and thousands separators dropped,
/// `none`, `null`, `nan`, `inf`, empty and the like read as `0`.
fn normalize_value(value: &str) -> String {
    let mut text = value.trim().to_string();
    if let Some(stripped) = text.strip_suffix('%') {
        text = stripped.trim().to_string();
    }
    if text.contains(',') && !(text.starts_with('[') && text.ends_with(']')) {
        text = text.replace(',', "");
    }
    match text.to_ascii_lowercase().as_str() {
        "none" | "null" | "undefined" | "nan" | "inf" | "infinity" | "-inf" | "-infinity" | "" => "0".into(),
        _ => text,
    }
}

fn strip_quotes(item: &str) -> &str {
    item.trim().trim_matches(|c| c == '\'' || c == '"')
}

/// An answer as AgentBench cleans it: a bracketed list (of values or one-value tuples) gives
/// its items, anything else is one value; each item is normalised.
pub fn clean_answer(answer: &str) -> Vec<String> {
    let text = answer.trim();
    let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) else {
        return vec![normalize_value(strip_quotes(text))];
    };
    let mut items = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == '\\' => {
                if let Some(next) = chars.next() {
                    if next != q {
                        current.push('\\');
                    }
                    current.push(next);
                }
            }
            Some(q) if c == q => quote = None,
            Some(_) => current.push(c),
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '(' || c == ')' => {}
            None if c == ',' => {
                if !current.trim().is_empty() {
                    items.push(normalize_value(current.trim()));
                }
                current.clear();
            }
            None => current.push(c),
        }
    }
    if !current.trim().is_empty() {
        items.push(normalize_value(current.trim()));
    }
    items
}

fn as_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// Whether an answer matches the label by AgentBench's rules: one item each compares as
/// floats within 0.01 or as exact strings; several items compare as floats matched one to
/// one within 0.01, or as sets of strings.
pub fn db_answer_matches(answer: &str, label: &[String]) -> bool {
    let answer = clean_answer(answer);
    let gold: Vec<String> = label.iter().map(|l| normalize_value(strip_quotes(l))).collect();
    let close = |a: &str, b: &str| matches!((as_float(a), as_float(b)), (Some(x), Some(y)) if (x - y).abs() <= 1e-2);
    if answer.len() == 1 && gold.len() == 1 {
        let (a, g) = (&answer[0], &gold[0]);
        return close(a, g) || a == g;
    }
    if answer.iter().chain(&gold).all(|v| as_float(v).is_some()) {
        if answer.len() != gold.len() {
            return false;
        }
        let mut used = vec![false; gold.len()];
        return answer.iter().all(|a| {
            let found = gold.iter().enumerate().find(|(i, g)| !used[*i] && close(a, g)).map(|(i, _)| i);
            found.map(|i| used[i] = true).is_some()
        });
    }
    let set = |v: &[String]| v.iter().cloned().collect::<std::collections::BTreeSet<String>>();
    set(&answer) == set(&gold)
}

/// The environment: one in-memory database per episode.
pub struct DbEnv {
    task: DbTask,
    conn: Option<Connection>,
    steps: u32,
}

impl std::fmt::Debug for DbEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbEnv").field("steps", &self.steps).field("active", &self.conn.is_some()).finish()
    }
}

impl DbEnv {
    /// An environment for this task (the database is built at `reset`).
    pub fn new(task: DbTask) -> DbEnv {
        DbEnv { task, conn: None, steps: 0 }
    }

    fn finish(&mut self, answer: &str) -> Result<StepResult, EnvError> {
        let conn = self.conn.take().ok_or_else(|| EnvError::State("no episode is running".into()))?;
        let correct = if self.task.is_mutation() {
            let gold = open(&self.task.tables).map_err(EnvError::Task)?;
            let statement =
                self.task.label.first().ok_or_else(|| EnvError::Task("a mutation task needs its gold statement as the label".into()))?;
            gold.execute_batch(statement).map_err(|e| EnvError::Task(format!("the gold statement does not run: {e}")))?;
            contents(&conn, &self.task.tables) == contents(&gold, &self.task.tables)
        } else {
            db_answer_matches(answer, &self.task.label)
        };
        let observation = if correct { "The answer is correct." } else { "The answer is wrong." };
        Ok(StepResult { observation: observation.into(), reward: if correct { 1.0 } else { 0.0 }, done: true })
    }
}

#[async_trait]
impl Environment for DbEnv {
    async fn reset(&mut self) -> Result<String, EnvError> {
        self.conn = Some(open(&self.task.tables).map_err(EnvError::Task)?);
        self.steps = 0;
        Ok(self.task.instruction.clone())
    }

    async fn step(&mut self, action: &str) -> Result<StepResult, EnvError> {
        if self.conn.is_none() {
            return Err(EnvError::State("step called with no episode running; call reset first".into()));
        }
        self.steps += 1;
        match read_db_action(action) {
            DbAction::Answer(answer) => self.finish(&answer),
            DbAction::Invalid(reason) => {
                self.conn = None;
                Ok(StepResult { observation: format!("Invalid reply: {reason}. The task is failed."), reward: 0.0, done: true })
            }
            DbAction::Operation(sql) => {
                let conn = self.conn.as_ref().expect("checked above");
                let observation = clip(&execute(conn, &sql, Duration::from_secs(5)), 4000);
                if self.steps >= self.task.max_steps {
                    self.conn = None;
                    return Ok(StepResult {
                        observation: format!("{observation}\nThe round limit is reached; the task is failed."),
                        reward: 0.0,
                        done: true,
                    });
                }
                Ok(StepResult { observation, reward: 0.0, done: false })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_are_read_agentbench_s_way() {
        let cases = [
            ("Thought.\nAction: Operation\n```sql\nSELECT 1;\n```", DbAction::Operation("SELECT 1;".into())),
            ("Action: Answer\nFinal Answer: [\"a\", \"b\"]", DbAction::Answer("[\"a\", \"b\"]".into())),
            ("I think so.", DbAction::Invalid("no `Action:` line".into())),
        ];
        for (reply, expected) in cases {
            assert_eq!(read_db_action(reply), expected, "{reply}");
        }
    }

    #[test]
    fn answers_are_compared_by_agentbench_s_rules() {
        let label = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let cases: [(&str, Vec<String>, bool); 9] = [
            ("[\"March 19, 1998\"]", label(&["March 19, 1998"]), true),
            ("[('1.0',)]", label(&["1"]), true),
            ("[1.004]", label(&["1.0"]), true),
            ("['b', 'a']", label(&["a", "b"]), true),
            ("[2, 1]", label(&["1.0", "2.0"]), true),
            ("[None]", label(&["none"]), true),
            ("['Checco D\\'Angelo']", label(&["Checco D'Angelo"]), true),
            ("[\"march 19, 1998\"]", label(&["March 19, 1998"]), false),
            ("['a']", label(&["a", "b"]), false),
        ];
        for (answer, gold, expected) in cases {
            assert_eq!(db_answer_matches(answer, &gold), expected, "{answer} vs {gold:?}");
        }
    }
}
