//! The SQLite tool: read-only SQL queries over one database file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use retort_core::ToolSpec;
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ToolError;
use crate::tool::Tool;

fn default_max_rows() -> usize {
    50
}

fn default_timeout() -> f64 {
    5.0
}

/// The SQLite tool's configuration (`kind: sqlite`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteConfig {
    /// The tool's name (default `sql`).
    #[serde(default)]
    pub name: Option<String>,
    /// What the database holds, shown to the model after the generic description.
    #[serde(default)]
    pub description: Option<String>,
    /// The database file (opened read-only; the caller resolves relative paths).
    pub path: PathBuf,
    /// Most rows shown of a result (default 50).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Seconds a query may run before it is interrupted (default 5).
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
}

/// Runs read-only SQL against a database file. The connection is opened read-only with
/// `query_only`, `ATTACH` disabled and a progress handler that interrupts long queries.
#[derive(Debug, Clone)]
pub struct SqliteTool {
    name: String,
    description: String,
    path: PathBuf,
    max_rows: usize,
    timeout: Duration,
}

impl SqliteTool {
    /// A tool over this database; fails when the file cannot be opened.
    pub fn new(config: &SqliteConfig) -> Result<SqliteTool, String> {
        let conn = open_read_only(&config.path, Duration::from_secs(1))?;
        let tables = schema(&conn)?;
        let mut description = format!(
            "Runs one read-only SQL query (SQLite dialect) against the database and returns the result rows (at most {}). Schema:\n{tables}",
            config.max_rows
        );
        if let Some(extra) = &config.description {
            description = format!("{extra}\n{description}");
        }
        Ok(SqliteTool {
            name: config.name.clone().unwrap_or_else(|| "sql".into()),
            description,
            path: config.path.clone(),
            max_rows: config.max_rows,
            timeout: Duration::try_from_secs_f64(config.timeout_secs).unwrap_or(Duration::from_secs(5)),
        })
    }
}

/// Opens a database read-only, with `ATTACH` disabled and a deadline on every statement.
pub(crate) fn open_read_only(path: &Path, timeout: Duration) -> Result<Connection, String> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| format!("opening {} read-only: {e}", path.display()))?;
    conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0).map_err(|e| format!("disabling ATTACH: {e}"))?;
    conn.pragma_update(None, "query_only", true).map_err(|e| format!("setting query_only: {e}"))?;
    let start = Instant::now();
    conn.progress_handler(10_000, Some(move || start.elapsed() > timeout));
    Ok(conn)
}

/// The `CREATE` statements of the database's tables and views.
pub(crate) fn schema(conn: &Connection) -> Result<String, String> {
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type IN ('table', 'view') AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .map_err(|e| format!("reading the schema: {e}"))?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(|e| format!("reading the schema: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("reading the schema: {e}"))?;
    Ok(rows.join(";\n") + if rows.is_empty() { "" } else { ";" })
}

/// A query's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct QueryOutput {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
    pub(crate) more: usize,
}

impl QueryOutput {
    /// The result as a `|`-separated table with a header, saying how many rows were left out.
    pub(crate) fn render(&self) -> String {
        if self.columns.is_empty() {
            return "(the statement returned no columns)".into();
        }
        let mut out = self.columns.join(" | ");
        for row in &self.rows {
            out.push('\n');
            out.push_str(&row.join(" | "));
        }
        if self.rows.is_empty() {
            out.push_str("\n(no rows)");
        }
        if self.more > 0 {
            out.push_str(&format!("\n({} more rows not shown)", self.more));
        }
        out
    }
}

fn cell(value: ValueRef<'_>) -> String {
    match value {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => crate::tools::calculator::format_number(f),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        ValueRef::Blob(b) => format!("<blob of {} bytes>", b.len()),
    }
}

/// Runs one statement on a fresh read-only connection (blocking; call from `spawn_blocking`).
pub(crate) fn run_query(path: &Path, sql: &str, max_rows: usize, timeout: Duration) -> Result<QueryOutput, String> {
    let conn = open_read_only(path, timeout)?;
    let sql = sql.trim().trim_end_matches(';').trim();
    if sql.is_empty() {
        return Err("the query is empty".into());
    }
    let mut stmt = conn.prepare(sql).map_err(|e| format!("SQL error: {e}"))?;
    let columns: Vec<String> = stmt.column_names().into_iter().map(str::to_string).collect();
    let mut rows_iter = stmt.query([]).map_err(|e| format!("SQL error: {e}"))?;
    let mut rows = Vec::new();
    let mut more = 0;
    while let Some(row) = rows_iter.next().map_err(|e| format!("SQL error: {e}"))? {
        if rows.len() < max_rows {
            rows.push((0..columns.len()).map(|i| row.get_ref(i).map(cell).unwrap_or_default()).collect());
        } else {
            more += 1;
            if more > 100_000 {
                break;
            }
        }
    }
    Ok(QueryOutput { columns, rows, more })
}

#[async_trait]
impl Tool for SqliteTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.name.clone(),
            description: self.description.clone(),
            parameters: json!({
                "type": "object",
                "properties": {"query": {"type": "string", "description": "One SQL statement (read-only)"}},
                "required": ["query"],
                "additionalProperties": false
            }),
        }
    }

    async fn call(&self, arguments: &Value) -> Result<String, ToolError> {
        let sql = arguments["query"].as_str().unwrap_or_default().to_string();
        let (path, max_rows, timeout) = (self.path.clone(), self.max_rows, self.timeout);
        tokio::task::spawn_blocking(move || run_query(&path, &sql, max_rows, timeout))
            .await
            .map_err(|e| ToolError::Failed(format!("the query task ended abnormally: {e}")))?
            .map(|out| out.render())
            .map_err(ToolError::InvalidInput)
    }
}
