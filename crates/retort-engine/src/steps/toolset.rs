//! The tools of an `act` or `call` step: the recipe's list, built once, plus the tools a record
//! lists in a field (`tools_from`), built per record. Simulated tools answer through the run
//! store, so a resumed run does not pay for their answers twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use retort_agent::{tool_config, BuildContext, CatalogFormat, Tool, ToolConfig, ToolRegistry};
use retort_core::{Backend, Record};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::llm::{CachedBackend, Llm};
use crate::runtime::StageCx;
use crate::steps::{BuildCx, CheckCx};

/// Tools listed in a field of each record.
///
/// ```yaml
/// tools_from:
///   field: api_list        # a list of tool definitions
///   format: toolbench      # or plain (default): {name, description, parameters, documentation}
///   simulate: simulator    # the model that plays them from their documentation
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFrom {
    /// The field holding the list.
    pub field: String,
    /// How its items are written.
    #[serde(default)]
    pub format: CatalogFormat,
    /// The model, by name in `llms:`, that answers calls from each tool's documentation; without
    /// it the tools are definition-only (calls are recorded, not run).
    #[serde(default)]
    pub simulate: Option<String>,
}

/// Checks a step's tools: files exist, simulators are known models, the field is known.
pub(crate) fn check(tools: &[ToolConfig], from: Option<&ToolsFrom>, cx: &mut CheckCx<'_>) {
    for (index, tool) in tools.iter().enumerate() {
        match tool {
            ToolConfig::Sqlite(config) => {
                cx.file(&format!("tools[{index}].path"), &config.path.to_string_lossy());
            }
            ToolConfig::Search(config) => {
                cx.file(&format!("tools[{index}].documents"), &config.documents.to_string_lossy());
            }
            ToolConfig::Simulated(config) => cx.llm(&format!("tools[{index}].backend"), Some(&config.backend)),
            ToolConfig::User(config) => cx.llm(&format!("tools[{index}].backend"), Some(&config.backend)),
            _ => {}
        }
    }
    if let Some(from) = from {
        cx.read("tools_from.field", &from.field);
        if let Some(simulator) = &from.simulate {
            cx.llm("tools_from.simulate", Some(simulator));
        }
    }
}

/// The built tools of one step.
pub(crate) struct ToolSet {
    /// Tools built once (everything but the model-played ones).
    fixed: Vec<Arc<dyn Tool>>,
    /// Tools a model plays (simulated APIs, the user), built per record over the run store.
    played: Vec<ToolConfig>,
    from: Option<ToolsFrom>,
    /// The models that play simulated tools, by name.
    simulators: BTreeMap<String, Arc<Llm>>,
    /// The sandbox of the recipe's python tools (none without them).
    sandbox: Option<Arc<retort_sandbox::Sandbox>>,
}

impl ToolSet {
    /// Builds the recipe's tools (paths resolved from the recipe's directory).
    pub(crate) fn build(step: &str, tools: &[ToolConfig], from: Option<&ToolsFrom>, cx: &BuildCx) -> Result<ToolSet, EngineError> {
        let fail = |message: String| EngineError::Step { step: step.to_string(), message };
        let needs_sandbox = tools.iter().any(|tool| matches!(tool, ToolConfig::Python(_)));
        let sandbox = if needs_sandbox { Some(crate::steps::verify::shared_sandbox().map_err(fail)?) } else { None };
        let context = BuildContext { sandbox: sandbox.clone(), backends: BTreeMap::new() };
        let mut fixed = Vec::new();
        let mut played = Vec::new();
        let mut simulators = BTreeMap::new();
        for tool in tools {
            let mut tool = tool.clone();
            match &mut tool {
                ToolConfig::Sqlite(config) => config.path = cx.base_dir.join(&config.path),
                ToolConfig::Search(config) => config.documents = cx.base_dir.join(&config.documents),
                _ => {}
            }
            match &tool {
                ToolConfig::Simulated(retort_agent::tools::simulated::SimulatedConfig { backend, .. })
                | ToolConfig::User(retort_agent::tools::user::UserConfig { backend, .. }) => {
                    simulators.insert(backend.clone(), cx.llm(step, Some(backend))?);
                    played.push(tool);
                }
                other => fixed.push(other.build(&context).map_err(|error| fail(error.to_string()))?),
            }
        }
        if let Some(name) = from.and_then(|from| from.simulate.as_ref()) {
            simulators.insert(name.clone(), cx.llm(step, Some(name))?);
        }
        let set = ToolSet { fixed, played, from: from.cloned(), simulators, sandbox };
        // The recipe's own list must register (no duplicate names, schemas that compile).
        set.register(&mut ToolRegistry::new(), &BTreeMap::new(), None).map_err(fail)?;
        Ok(set)
    }

    /// The sandbox the recipe's python tools run in, if any.
    pub(crate) fn sandbox(&self) -> Option<Arc<retort_sandbox::Sandbox>> {
        self.sandbox.clone()
    }

    /// Registers the fixed tools, and, given the task (per record), the model-played ones.
    fn register(
        &self,
        registry: &mut ToolRegistry,
        backends: &BTreeMap<String, Arc<dyn Backend>>,
        task: Option<&str>,
    ) -> Result<(), String> {
        for tool in &self.fixed {
            registry.register(tool.clone()).map_err(|error| error.to_string())?;
        }
        let Some(task) = task else { return Ok(()) };
        let context = BuildContext { sandbox: self.sandbox.clone(), backends: backends.clone() };
        for config in &self.played {
            let mut config = config.clone();
            if let ToolConfig::User(user) = &mut config {
                user.task = task.to_string();
            }
            let tool = config.build(&context).map_err(|error| error.to_string())?;
            registry.register(tool).map_err(|error| error.to_string())?;
        }
        Ok(())
    }

    /// The registry for one record working on `task`: the recipe's tools, then the record's (a
    /// name already taken is skipped: the first definition wins).
    pub(crate) fn registry(&self, record: &Record, task: &str, cx: &StageCx) -> Result<ToolRegistry, String> {
        let backends: BTreeMap<String, Arc<dyn Backend>> = self
            .simulators
            .iter()
            .map(|(name, llm)| {
                let backend: Arc<dyn Backend> =
                    Arc::new(CachedBackend { llm: llm.clone(), stats: cx.stats.clone(), cancel: cx.run.cancel.clone() });
                (name.clone(), backend)
            })
            .collect();
        let mut registry = ToolRegistry::new();
        self.register(&mut registry, &backends, Some(task))?;
        let Some(from) = &self.from else { return Ok(registry) };
        let items = match record.get(&from.field) {
            Some(Value::Array(items)) => items.clone(),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
                Ok(Value::Array(items)) => items,
                _ => return Err(format!("tools_from: `{}` holds text that is not a JSON list of tools", from.field)),
            },
            Some(Value::Null) | None => Vec::new(),
            Some(other) => {
                return Err(format!("tools_from: expected a list of tools in `{}`, found {}", from.field, crate::parse::kind_of(other)))
            }
        };
        let context = BuildContext { sandbox: self.sandbox.clone(), backends };
        for (index, item) in items.iter().enumerate() {
            let config = tool_config(item, from.format, from.simulate.as_deref())
                .map_err(|error| format!("tools_from: `{}[{index}]`: {error}", from.field))?;
            if registry.get(&config.name()).is_some() {
                continue;
            }
            let tool = config.build(&context).map_err(|error| format!("tools_from: `{}[{index}]`: {error}", from.field))?;
            registry.register(tool).map_err(|error| format!("tools_from: `{}[{index}]`: {error}", from.field))?;
        }
        Ok(registry)
    }
}
