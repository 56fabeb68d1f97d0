//! The local backend's configuration, and where its models are found.

use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LocalError;

/// The default model's name.
pub const DEFAULT_MODEL: &str = "smollm2-135m";

/// The models retort knows by name: (name, file under the models folder, setup script flag).
const KNOWN_MODELS: &[(&str, &str, &str)] = &[
    ("smollm2-135m", "smollm2-135m-instruct.q4_1.gguf", ""),
    ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b-instruct.q4_k_m.gguf", " --qwen"),
];

/// The recipe's `llm: {backend: local, ...}` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalConfig {
    /// A model name (`smollm2-135m`, `qwen2.5-coder-0.5b`) or the path of a GGUF file.
    #[serde(default = "default_model")]
    pub model: String,
    /// Tokens of context per sequence (prompt and answer together).
    #[serde(default = "default_context_size")]
    pub context_size: u32,
    /// How many sequences are decoded together in one batch.
    #[serde(default = "default_max_sequences")]
    pub max_sequences: usize,
    /// CPU threads for decode steps of a single token (one sequence answering); all cores when unset.
    #[serde(default)]
    pub threads: Option<usize>,
    /// CPU threads for steps of several tokens (many sequences, or prompts); `threads` when unset.
    #[serde(default)]
    pub batch_threads: Option<usize>,
    /// The most tokens one decode step evaluates (prompt chunks and answers of all sequences).
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// The answer length when a request sets no `max_tokens`.
    #[serde(default = "default_max_tokens")]
    pub default_max_tokens: u32,
    /// Reuse evaluated prompt prefixes: a sequence keeps its cache after its job, a new
    /// prompt starts from the longest prefix any sequence holds, and the `n` samples of one
    /// prompt evaluate it once. Off, every prompt is evaluated in full (the old scheduler).
    #[serde(default = "default_prefix_cache")]
    pub prefix_cache: bool,
    /// A LoRA adapter (a GGUF file, as retort's trainer writes) applied to the model. A model
    /// string `MODEL+lora:ADAPTER` (what the trainer hands the next round) sets both.
    #[serde(default)]
    pub adapter: Option<String>,
}

/// The separator of a model string that names an adapter: `MODEL+lora:ADAPTER`.
pub const ADAPTER_SEPARATOR: &str = "+lora:";

impl LocalConfig {
    /// Sets the model from a model string, `MODEL` or `MODEL+lora:ADAPTER`.
    pub fn set_model_string(&mut self, model: &str) {
        match model.split_once(ADAPTER_SEPARATOR) {
            Some((base, adapter)) => {
                self.model = base.to_string();
                self.adapter = Some(adapter.to_string());
            }
            None => {
                self.model = model.to_string();
                self.adapter = None;
            }
        }
    }

    /// The model string: `MODEL`, or `MODEL+lora:ADAPTER` with an adapter.
    pub fn model_string(&self) -> String {
        match &self.adapter {
            Some(adapter) => format!("{}{ADAPTER_SEPARATOR}{adapter}", self.model),
            None => self.model.clone(),
        }
    }
}

fn default_prefix_cache() -> bool {
    true
}

fn default_model() -> String {
    DEFAULT_MODEL.to_string()
}

fn default_context_size() -> u32 {
    2048
}

fn default_max_sequences() -> usize {
    8
}

fn default_batch_size() -> u32 {
    512
}

fn default_max_tokens() -> u32 {
    256
}

impl Default for LocalConfig {
    fn default() -> LocalConfig {
        LocalConfig {
            model: default_model(),
            context_size: default_context_size(),
            max_sequences: default_max_sequences(),
            threads: None,
            batch_threads: None,
            batch_size: default_batch_size(),
            default_max_tokens: default_max_tokens(),
            prefix_cache: default_prefix_cache(),
            adapter: None,
        }
    }
}

impl LocalConfig {
    /// A default config for the given model name or path.
    pub fn for_model(model: impl Into<String>) -> LocalConfig {
        LocalConfig { model: model.into(), ..LocalConfig::default() }
    }

    /// Every problem of these settings, the model file included, found without loading it:
    /// what `retort validate` reports and what building the backend would refuse.
    pub fn problems(&self) -> Vec<retort_core::ConfigProblem> {
        use retort_core::ConfigProblem;
        let mut problems = Vec::new();
        if let Err(LocalError::Config(message)) = self.validate() {
            let key =
                ["context_size", "max_sequences", "batch_size", "threads"].into_iter().find(|key| message.starts_with(key)).unwrap_or("");
            problems.push(ConfigProblem::new(key, message));
        }
        if self.default_max_tokens == 0 {
            problems.push(ConfigProblem::new("default_max_tokens", "default_max_tokens must be at least 1, found 0"));
        }
        if let Err(error) = resolve_model(&self.model) {
            problems.push(ConfigProblem::new("model", error.to_string()));
        }
        if let Some(adapter) = &self.adapter {
            if let Err(error) = check_gguf(std::path::Path::new(adapter)) {
                problems.push(ConfigProblem::new("adapter", format!("the LoRA adapter: {error}")));
            }
        }
        problems
    }

    pub(crate) fn validate(&self) -> Result<(), LocalError> {
        if self.context_size < 16 {
            return Err(LocalError::Config(format!("context_size must be at least 16 tokens, found {}", self.context_size)));
        }
        if self.max_sequences == 0 || self.max_sequences > 256 {
            return Err(LocalError::Config(format!("max_sequences must be between 1 and 256, found {}", self.max_sequences)));
        }
        if self.batch_size < 16 {
            return Err(LocalError::Config(format!("batch_size must be at least 16 tokens, found {}", self.batch_size)));
        }
        if self.threads == Some(0) || self.batch_threads == Some(0) {
            return Err(LocalError::Config("threads and batch_threads must be at least 1, found 0".to_string()));
        }
        Ok(())
    }
}

/// The folder that holds installed models: `$RETORT_MODELS` if set, else `<repo>/models`.
///
/// `<repo>` is the nearest folder, from the current directory upwards, that holds
/// `scripts/setup-models.sh`; failing that, the workspace this crate was built in.
pub fn models_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RETORT_MODELS").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Ok(current) = std::env::current_dir() {
        for dir in current.ancestors() {
            if dir.join("scripts").join("setup-models.sh").is_file() {
                return dir.join("models");
            }
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("models")
}

/// Finds the GGUF file for a model name or path, and checks that it is GGUF.
pub fn resolve_model(model: &str) -> Result<PathBuf, LocalError> {
    resolve_model_in(&models_dir(), model)
}

/// Finds the GGUF file for a model name (in `dir`) or path, and checks that it is GGUF.
pub fn resolve_model_in(dir: &Path, model: &str) -> Result<PathBuf, LocalError> {
    let path = match KNOWN_MODELS.iter().find(|(name, _, _)| *name == model) {
        Some((name, file, flag)) => {
            let path = dir.join(file);
            if !path.is_file() {
                return Err(LocalError::ModelNotInstalled { name: name.to_string(), path, flag });
            }
            path
        }
        None => {
            let path = PathBuf::from(OsString::from(model));
            if !path.is_file() {
                return Err(LocalError::MissingFile { path });
            }
            path
        }
    };
    check_gguf(&path)?;
    Ok(path)
}

/// Checks a file's magic bytes: a GGUF file starts with `GGUF`.
pub fn check_gguf(path: &Path) -> Result<(), LocalError> {
    let mut magic = [0u8; 4];
    let mut file = std::fs::File::open(path).map_err(|source| LocalError::Read { path: path.to_path_buf(), source })?;
    let mut read = 0;
    while read < magic.len() {
        match file.read(&mut magic[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(source) => return Err(LocalError::Read { path: path.to_path_buf(), source }),
        }
    }
    if &magic[..read] != b"GGUF" {
        return Err(LocalError::NotGguf { path: path.to_path_buf(), found: String::from_utf8_lossy(&magic[..read]).into_owned() });
    }
    Ok(())
}

/// How to start the model's worker process.
///
/// In the `retort` binary this is the binary itself with the hidden subcommand
/// `__llama-worker`, whose handler calls [`crate::worker_main`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerCommand {
    /// The program to run.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl WorkerCommand {
    /// The running binary re-launched as `<self> __llama-worker`.
    pub fn current_exe() -> std::io::Result<WorkerCommand> {
        Ok(WorkerCommand { program: std::env::current_exe()?, args: vec!["__llama-worker".to_string()], env: Vec::new() })
    }

    /// A worker started as `program args...`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> WorkerCommand {
        WorkerCommand { program: program.into(), args, env: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_and_paths_resolve_or_say_how_to_fix_them() {
        let dir = tempfile::tempdir().unwrap();
        let error = resolve_model_in(dir.path(), "smollm2-135m").unwrap_err().to_string();
        assert!(error.contains("smollm2-135m-instruct.q4_1.gguf"), "{error}");
        assert!(error.contains("run scripts/setup-models.sh to install it"), "{error}");
        let error = resolve_model_in(dir.path(), "qwen2.5-coder-0.5b").unwrap_err().to_string();
        assert!(error.contains("run scripts/setup-models.sh --qwen to install it"), "{error}");

        let missing = dir.path().join("nope.gguf");
        let error = resolve_model_in(dir.path(), missing.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("nope.gguf does not exist"), "{error}");

        let text = dir.path().join("model.bin");
        std::fs::write(&text, b"PK\x03\x04 not a model").unwrap();
        let error = resolve_model_in(dir.path(), text.to_str().unwrap()).unwrap_err().to_string();
        assert!(error.contains("is not a GGUF file") && error.contains("PK"), "{error}");

        let short = dir.path().join("short.gguf");
        std::fs::write(&short, b"GG").unwrap();
        assert!(matches!(resolve_model_in(dir.path(), short.to_str().unwrap()), Err(LocalError::NotGguf { .. })));

        let gguf = dir.path().join("smollm2-135m-instruct.q4_1.gguf");
        std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00").unwrap();
        assert_eq!(resolve_model_in(dir.path(), "smollm2-135m").unwrap(), gguf);
        assert_eq!(resolve_model_in(dir.path(), gguf.to_str().unwrap()).unwrap(), gguf);
        for error in [
            resolve_model_in(dir.path(), "qwen2.5-coder-0.5b").unwrap_err(),
            resolve_model_in(dir.path(), text.to_str().unwrap()).unwrap_err(),
        ] {
            assert!(!error.to_string().contains('\n'), "one line: {error}");
        }
    }

    #[test]
    fn config_reads_the_recipe_block_with_defaults() {
        let config: LocalConfig = serde_json::from_value(serde_json::json!({"model": "qwen2.5-coder-0.5b", "threads": 2})).unwrap();
        assert_eq!(config, LocalConfig { threads: Some(2), ..LocalConfig::for_model("qwen2.5-coder-0.5b") });
        let config: LocalConfig = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!((config.model.as_str(), config.context_size, config.max_sequences), ("smollm2-135m", 2048, 8));
        let error = serde_json::from_value::<LocalConfig>(serde_json::json!({"modle": "x"})).unwrap_err();
        assert!(error.to_string().contains("unknown field `modle`"), "{error}");
        for bad in [
            LocalConfig { max_sequences: 0, ..LocalConfig::default() },
            LocalConfig { context_size: 8, ..LocalConfig::default() },
            LocalConfig { threads: Some(0), ..LocalConfig::default() },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
