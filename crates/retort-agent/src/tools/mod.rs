//! The tool implementations (one file each) and [`ToolConfig`], which builds them from a
//! recipe's list.

pub mod calculator;
pub mod datetime;
pub mod definition;
pub mod http;
pub mod python;
pub mod search;
pub mod simulated;
pub mod sqlite;
pub mod user;

use std::collections::BTreeMap;
use std::sync::Arc;

use retort_core::Backend;
use retort_sandbox::Sandbox;
use serde::{Deserialize, Serialize};

use crate::error::ToolBuildError;
use crate::tool::{Tool, ToolRegistry};

/// One tool as a recipe lists it, tagged by `kind`.
///
/// ```yaml
/// tools:
///   - kind: calculator
///   - kind: datetime
///     today: "2024-05-01"
///   - kind: python
///     limits: {timeout: 5}
///   - kind: sqlite
///     path: data/shop.db
///   - kind: search
///     documents: data/wiki.jsonl
///     top_k: 3
///   - kind: http
///     name: weather
///     url: http://127.0.0.1:8080/weather
///     method: GET
///     parameters: {type: object, properties: {city: {type: string}}, required: [city]}
///   - kind: simulated
///     name: flight_search
///     backend: simulator
///     documentation: "GET /flights?from=&to=&date= returns {flights: [...]}"
///   - kind: definition
///     name: segment_image
///     parameters: {type: object, properties: {image_path: {type: string}}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToolConfig {
    /// Safe arithmetic.
    Calculator(calculator::CalculatorConfig),
    /// Date arithmetic and calendars.
    Datetime(datetime::DateTimeConfig),
    /// Python in the sandbox.
    Python(python::PythonConfig),
    /// Read-only SQL over a database file.
    Sqlite(sqlite::SqliteConfig),
    /// BM25 search over a JSONL document set.
    Search(search::SearchConfig),
    /// A configured HTTP endpoint.
    Http(http::HttpConfig),
    /// An API played by a language model.
    Simulated(simulated::SimulatedConfig),
    /// A name, description and schema with nothing behind it: calls are recorded, not run.
    Definition(definition::DefinitionConfig),
    /// The person who gave the task, played by a language model (ToolAlpaca's `getDetails`).
    User(user::UserConfig),
}

/// What building tools may need from the caller.
#[derive(Clone, Default)]
pub struct BuildContext {
    /// The sandbox the `python` tool runs in (required only when one is listed).
    pub sandbox: Option<Arc<Sandbox>>,
    /// Backends by name, for `simulated` tools.
    pub backends: BTreeMap<String, Arc<dyn Backend>>,
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("sandbox", &self.sandbox.is_some())
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ToolConfig {
    /// The name the tool will have.
    pub fn name(&self) -> String {
        match self {
            ToolConfig::Calculator(c) => c.name.clone().unwrap_or_else(|| "calculator".into()),
            ToolConfig::Datetime(c) => c.name.clone().unwrap_or_else(|| "datetime".into()),
            ToolConfig::Python(c) => c.name.clone().unwrap_or_else(|| "python".into()),
            ToolConfig::Sqlite(c) => c.name.clone().unwrap_or_else(|| "sql".into()),
            ToolConfig::Search(c) => c.name.clone().unwrap_or_else(|| "search".into()),
            ToolConfig::Http(c) => c.name.clone(),
            ToolConfig::Simulated(c) => c.name.clone(),
            ToolConfig::Definition(c) => c.name.clone(),
            ToolConfig::User(c) => c.name.clone(),
        }
    }

    /// Builds the tool (opens files, indexes documents, looks up backends).
    pub fn build(&self, context: &BuildContext) -> Result<Arc<dyn Tool>, ToolBuildError> {
        let name = self.name();
        let invalid = |message: String| ToolBuildError::invalid(name.clone(), message);
        Ok(match self {
            ToolConfig::Calculator(c) => Arc::new(calculator::Calculator::new(c)),
            ToolConfig::Datetime(c) => Arc::new(datetime::DateTimeTool::new(c).map_err(invalid)?),
            ToolConfig::Python(c) => {
                let sandbox = context.sandbox.clone().ok_or_else(|| invalid("a python tool needs a sandbox, and none was given".into()))?;
                Arc::new(python::PythonTool::new(c, sandbox))
            }
            ToolConfig::Sqlite(c) => Arc::new(sqlite::SqliteTool::new(c).map_err(invalid)?),
            ToolConfig::Search(c) => Arc::new(search::Bm25Search::new(c).map_err(invalid)?),
            ToolConfig::Http(c) => Arc::new(http::HttpTool::new(c).map_err(invalid)?),
            ToolConfig::Simulated(c) => {
                let backend = context.backends.get(&c.backend).cloned().ok_or_else(|| {
                    invalid(format!(
                        "expected backend `{}` for the simulator, found only: {}",
                        c.backend,
                        context.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                Arc::new(simulated::SimulatedTool::new(c, backend))
            }
            ToolConfig::Definition(c) => Arc::new(definition::DefinitionTool::new(c)),
            ToolConfig::User(c) => {
                let backend = context.backends.get(&c.backend).cloned().ok_or_else(|| {
                    invalid(format!(
                        "expected backend `{}` for the user, found only: {}",
                        c.backend,
                        context.backends.keys().cloned().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                Arc::new(user::UserTool::new(c, backend))
            }
        })
    }
}

impl ToolRegistry {
    /// Builds every listed tool and registers it.
    pub fn from_configs(configs: &[ToolConfig], context: &BuildContext) -> Result<ToolRegistry, ToolBuildError> {
        let mut registry = ToolRegistry::new();
        for config in configs {
            registry.register(config.build(context)?)?;
        }
        Ok(registry)
    }
}
