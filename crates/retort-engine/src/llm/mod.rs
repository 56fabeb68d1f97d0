//! A recipe's model as steps see it: a backend behind the run store's answer cache.
//!
//! Every answer is keyed by a hash of the fully rendered request (backend kind, model,
//! messages, parameters, seed). A key already in the store is answered from it and never sent.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use retort_core::{Backend, BackendError, BackendErrorKind, ChatRequest, ChatResponse, ScoreRequest, ScoreResponse};
use retort_store::RunStore;
use serde::Serialize;

use crate::error::EngineError;
use crate::stats::StepStats;

pub(crate) mod embedding;
#[cfg(feature = "local")]
mod gguf_embedder;
#[cfg(feature = "local")]
mod local;
mod openai;
mod scripted;

#[cfg(feature = "local")]
pub(crate) use local::local_backend;

/// An error of a backend's own making, boxed with its source.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a backend kind provides: its name in recipes, the problems of its settings (found
/// without building it), its model, a description for summaries, and how it is built. One
/// file per kind implements it on the kind's config type; [`backend_kinds!`] lists the kinds.
pub(crate) trait BackendKind: Clone + serde::de::DeserializeOwned {
    /// The kind's name, as `backend:` says it.
    const NAME: &'static str;
    /// Every problem of these settings, all at once.
    fn problems(&self) -> Vec<retort_core::ConfigProblem>;
    /// The model it asks.
    fn model(&self) -> &str;
    /// Asks another model from now on (a trainer's result).
    fn set_model(&mut self, model: &str);
    /// Which backend and model answer, for summaries and cards, with no secret in it.
    fn describe(&self) -> String;
    /// Builds the backend and the most requests it runs at once.
    fn build(&self, base_dir: &std::path::Path) -> Result<(Arc<dyn Backend>, usize), BoxError>;
}

/// The table of backend kinds: one line per kind (its doc, variant, config type and the
/// feature it needs) makes [`LlmConfig`], [`BACKENDS`] and every dispatch over them; a new
/// backend is one file (its [`BackendKind`]) and one line here.
macro_rules! backend_kinds {
    ($( $(#[doc = $doc:literal])* $(#[cfg($cfg:meta)])? $variant:ident($config:ty), )*) => {
        /// A backend and its settings, as a recipe gives them.
        #[derive(Debug, Clone)]
        pub enum LlmConfig {
            $( $(#[doc = $doc])* $(#[cfg($cfg)])? $variant($config), )*
        }

        /// Backend kinds a recipe can name (those this build has).
        pub(crate) const BACKENDS: &[&str] = &[ $( $(#[cfg($cfg)])? <$config as BackendKind>::NAME, )* ];

        impl LlmConfig {
            /// The backend kind.
            pub fn kind(&self) -> &'static str {
                match self {
                    $( $(#[cfg($cfg)])? LlmConfig::$variant(_) => <$config as BackendKind>::NAME, )*
                }
            }

            /// The keys the settings of `kind` accept, or `None` for a kind this build lacks.
            pub(crate) fn fields_of(kind: &str) -> Option<&'static [&'static str]> {
                $( $(#[cfg($cfg)])? if kind == <$config as BackendKind>::NAME { return Some(crate::introspect::struct_fields::<$config>()); } )*
                None
            }

            /// Reads the settings of `kind`; the path and message of the first problem otherwise.
            pub(crate) fn parse<'de, D: serde::Deserializer<'de>>(kind: &str, settings: D) -> Result<LlmConfig, (String, String)> {
                $( $(#[cfg($cfg)])? if kind == <$config as BackendKind>::NAME {
                    return serde_path_to_error::deserialize(settings).map(LlmConfig::$variant).map_err(|error| {
                        let path = error.path().to_string();
                        (if path == "." { String::new() } else { path }, crate::limits::friendly(&error.into_inner().to_string()))
                    });
                } )*
                Err((String::new(), format!("unknown backend `{kind}`")))
            }

            fn dispatch<T>(&self, visit: impl FnOnce(&dyn BackendKindDyn) -> T) -> T {
                match self {
                    $( $(#[cfg($cfg)])? LlmConfig::$variant(config) => visit(config), )*
                }
            }

            /// The same settings with another model (a trainer's output for the next round).
            pub fn with_model(&self, model: &str) -> LlmConfig {
                let mut config = self.clone();
                match &mut config {
                    $( $(#[cfg($cfg)])? LlmConfig::$variant(config) => config.set_model(model), )*
                }
                config
            }
        }
    };
}

backend_kinds! {
    /// Any OpenAI-compatible server.
    Openai(retort_backends::OpenAiConfig),
    /// The in-process model (llama.cpp), offline.
    #[cfg(feature = "local")]
    Local(retort_llama::LocalConfig),
    /// Answers chosen by rules, for tests.
    Scripted(retort_backends::ScriptedConfig),
}

/// The object-safe part of [`BackendKind`], for dispatch over [`LlmConfig`].
trait BackendKindDyn {
    fn problems(&self) -> Vec<retort_core::ConfigProblem>;
    fn model(&self) -> &str;
    fn describe(&self) -> String;
    fn build(&self, base_dir: &std::path::Path) -> Result<(Arc<dyn Backend>, usize), BoxError>;
}

impl<T: BackendKind> BackendKindDyn for T {
    fn problems(&self) -> Vec<retort_core::ConfigProblem> {
        BackendKind::problems(self)
    }
    fn model(&self) -> &str {
        BackendKind::model(self)
    }
    fn describe(&self) -> String {
        BackendKind::describe(self)
    }
    fn build(&self, base_dir: &std::path::Path) -> Result<(Arc<dyn Backend>, usize), BoxError> {
        BackendKind::build(self, base_dir)
    }
}

impl LlmConfig {
    /// What the model's tokens cost, when the settings say.
    pub fn price(&self) -> Option<retort_backends::Price> {
        match self {
            LlmConfig::Openai(config) => config.price,
            LlmConfig::Scripted(config) => config.price,
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// Every problem of the settings, found without building the backend.
    pub fn problems(&self) -> Vec<retort_core::ConfigProblem> {
        self.dispatch(|kind| kind.problems())
    }

    /// The model the settings ask.
    pub fn model(&self) -> String {
        self.dispatch(|kind| kind.model().to_string())
    }

    /// Which backend and model answer, with credentials redacted.
    pub fn describe(&self) -> String {
        self.dispatch(|kind| kind.describe())
    }
}

/// Builds a backend from its config; `name` is its name in the recipe.
pub fn build_backend(name: &str, config: &LlmConfig, base_dir: &std::path::Path) -> Result<(Arc<dyn Backend>, usize), EngineError> {
    config.dispatch(|kind| kind.build(base_dir)).map_err(|source| EngineError::Backend { name: name.to_string(), source })
}

const CHAT: &str = "chat";
const SCORE: &str = "score";

/// Which of a model's rounds a step asks: recipes say `llm: base`, `llm: previous`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handle {
    /// The model of the round now running (the newest).
    Current,
    /// The model the run started with.
    Base,
    /// The model of the round before (the base model in round 1).
    Previous,
    /// The reference the last `train` step named (the base model until then).
    Reference,
}

impl Handle {
    /// The handle a name in `llm:` stands for, if it is one.
    pub(crate) fn from_name(name: &str) -> Option<Handle> {
        match name {
            "current" => Some(Handle::Current),
            "base" => Some(Handle::Base),
            "previous" => Some(Handle::Previous),
            "reference" => Some(Handle::Reference),
            _ => None,
        }
    }
}

/// The models a recipe's model has been, round after round: the first is the base model.
struct History {
    /// (model string, backend), oldest first.
    models: Vec<(String, Arc<dyn Backend>)>,
    /// The index of the reference model.
    reference: usize,
}

/// A backend with its cache.
pub(crate) struct Llm {
    /// Its name in the recipe (`default` for `llm:`).
    name: String,
    /// Which round's model this view asks.
    handle: Handle,
    /// The models so far; a `train` step adds the next round's. Shared by the views.
    history: Arc<RwLock<History>>,
    /// The recipe's settings, from which a new model's backend is built.
    config: LlmConfig,
    base_dir: PathBuf,
    store: Arc<RunStore>,
    /// True when the store held no answers at start: lookups are skipped.
    fresh: bool,
    /// The most requests the backend runs at once.
    max_concurrency: usize,
}

impl History {
    fn index(&self, handle: Handle) -> usize {
        let last = self.models.len() - 1;
        match handle {
            Handle::Current => last,
            Handle::Base => 0,
            Handle::Previous => last.saturating_sub(1),
            Handle::Reference => self.reference.min(last),
        }
    }
}

/// An answer, with where it came from.
pub(crate) struct Answer<T> {
    pub value: T,
    /// The run-store key, in hex, for lineage.
    pub key: String,
}

/// The local backends a run has built, by their settings: recipe models with the same local
/// settings share one backend, so one worker process holds the model and batches every role's
/// requests (GRA's five roles on the default model would otherwise load it six times and fight
/// over the cores).
#[derive(Default)]
pub(crate) struct SharedLocal(#[cfg(feature = "local")] Vec<(retort_llama::LocalConfig, Arc<dyn Backend>, usize)>);

impl Llm {
    /// Builds the backend of a recipe's llm block (or reuses a local one with the same settings
    /// from `shared`); `fresh` skips store lookups.
    pub(crate) fn build(
        name: &str,
        config: &LlmConfig,
        base_dir: &std::path::Path,
        store: Arc<RunStore>,
        fresh: bool,
        shared: &mut SharedLocal,
    ) -> Result<Llm, EngineError> {
        let (backend, max_concurrency) = match config {
            #[cfg(feature = "local")]
            LlmConfig::Local(local) => match shared.0.iter().find(|(known, _, _)| known == local) {
                Some((_, backend, max_concurrency)) => (backend.clone(), *max_concurrency),
                None => {
                    let (backend, max_concurrency) = build_backend(name, config, base_dir)?;
                    shared.0.push((local.clone(), backend.clone(), max_concurrency));
                    (backend, max_concurrency)
                }
            },
            _ => {
                let _ = &shared;
                build_backend(name, config, base_dir)?
            }
        };
        let model = backend.model().to_string();
        Ok(Llm {
            name: name.to_string(),
            handle: Handle::Current,
            history: Arc::new(RwLock::new(History { models: vec![(model, backend)], reference: 0 })),
            config: config.clone(),
            base_dir: base_dir.to_path_buf(),
            store,
            fresh,
            max_concurrency: max_concurrency.max(1),
        })
    }

    /// The backend this view asks now.
    pub(crate) fn current(&self) -> Arc<dyn Backend> {
        let history = self.history.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        let index = history.index(self.handle);
        history.models[index].1.clone()
    }

    /// The model string of a round's model, by handle (`MODEL+lora:ADAPTER` for an adapted
    /// local model).
    pub(crate) fn model_of(&self, handle: Handle) -> String {
        let history = self.history.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        history.models[history.index(handle)].0.clone()
    }

    /// The same model seen through another handle.
    pub(crate) fn view(&self, handle: Handle) -> Llm {
        Llm {
            name: self.name.clone(),
            handle,
            history: self.history.clone(),
            config: self.config.clone(),
            base_dir: self.base_dir.clone(),
            store: self.store.clone(),
            fresh: self.fresh,
            max_concurrency: self.max_concurrency,
        }
    }

    /// The recipe's settings of this model.
    pub(crate) fn config(&self) -> &LlmConfig {
        &self.config
    }

    /// Answers with another model (a GGUF path, `MODEL+lora:ADAPTER` for `local`, a model name
    /// for a server) from now on: it becomes `current`, the one before `previous`.
    /// `reference` names the handle that becomes the reference, as it was before the switch.
    pub(crate) fn switch_model(&self, model: &str, reference: Handle) -> Result<(), EngineError> {
        let config = self.config.with_model(model);
        let (backend, _) = build_backend(&self.name, &config, &self.base_dir)?;
        let mut history = self.history.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        history.reference = history.index(reference);
        history.models.push((backend.model().to_string(), backend));
        Ok(())
    }

    /// Which backend and model answer, for the run's summary and card: `openai `m` at URL`
    /// (credentials redacted), `local `model` (in-process)`, `scripted `name``.
    pub(crate) fn describe(&self) -> String {
        self.config.with_model(&self.model()).describe()
    }

    /// The backend's kind.
    pub(crate) fn kind(&self) -> String {
        self.current().kind().to_string()
    }

    /// The model answering now.
    pub(crate) fn model(&self) -> String {
        self.current().model().to_string()
    }

    /// How many records a step using this model keeps in flight: enough beyond the backend's
    /// own limit that one slow answer does not idle it.
    pub(crate) fn window(&self) -> usize {
        (self.max_concurrency * 4).max(16)
    }

    fn key<T: Serialize>(backend: &dyn Backend, what: &str, request: &T) -> Vec<u8> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        retort_core::stable_hash(&[what.as_bytes(), backend.kind().as_bytes(), backend.model().as_bytes(), &body]).to_vec()
    }

    /// Answers a chat request from the store, or sends it and commits the answer.
    pub(crate) async fn chat(&self, request: &ChatRequest, stats: &StepStats) -> Result<Answer<ChatResponse>, BackendError> {
        let backend = self.current();
        let key = Llm::key(backend.as_ref(), CHAT, request);
        if let Some(response) = self.lookup::<ChatResponse>(CHAT, &key) {
            stats.cache_hit(response.usage);
            return Ok(Answer { value: response, key: hex::encode(key) });
        }
        stats.request_started();
        let started = std::time::Instant::now();
        let result = backend.chat(request).await;
        stats.latency(started.elapsed());
        stats.asked(&format!("{}:{}", backend.kind(), backend.model()));
        match result {
            Ok(response) => {
                stats.request_ended(true, Some(response.usage));
                if let Some(price) = self.config.price() {
                    stats.cost(price.cost(&response.usage));
                }
                // An empty answer is not kept: it is more often a server's fault than the
                // model's word, and a later run (`--retry-failed`) asks again.
                let empty = response.choices.iter().all(|choice| choice.text.trim().is_empty() && choice.tool_calls.is_empty());
                if !empty {
                    self.commit(CHAT, &key, &response)?;
                }
                Ok(Answer { value: response, key: hex::encode(key) })
            }
            Err(error) => {
                stats.request_ended(false, None);
                Err(error)
            }
        }
    }

    /// Scores a continuation, from the store or the backend.
    pub(crate) async fn score(&self, request: &ScoreRequest, stats: &StepStats) -> Result<Answer<ScoreResponse>, BackendError> {
        let backend = self.current();
        let key = Llm::key(backend.as_ref(), SCORE, request);
        if let Some(response) = self.lookup::<ScoreResponse>(SCORE, &key) {
            stats.cache_hit(retort_core::Usage::default());
            return Ok(Answer { value: response, key: hex::encode(key) });
        }
        stats.request_started();
        let started = std::time::Instant::now();
        let result = backend.score(request).await;
        stats.latency(started.elapsed());
        stats.asked(&format!("{}:{}", backend.kind(), backend.model()));
        stats.request_ended(result.is_ok(), None);
        let response = result?;
        self.commit(SCORE, &key, &response)?;
        Ok(Answer { value: response, key: hex::encode(key) })
    }

    fn lookup<T: serde::de::DeserializeOwned>(&self, kind: &str, key: &[u8]) -> Option<T> {
        if self.fresh {
            return None;
        }
        match self.store.get(kind, key) {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).ok(),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!("run store lookup failed, sending the request instead: {error}");
                None
            }
        }
    }

    fn commit<T: Serialize>(&self, kind: &str, key: &[u8], value: &T) -> Result<(), BackendError> {
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        self.store
            .put(kind, key.to_vec(), bytes)
            .map_err(|error| BackendError::new(BackendErrorKind::Protocol, format!("answer arrived but could not be stored: {error}")))
    }
}

/// A [`Backend`] view of an [`Llm`] for code that drives a model itself (the agent loop, games):
/// its requests still go through the run store and count in the step's statistics.
#[cfg(feature = "agent")]
pub(crate) struct CachedBackend {
    pub llm: Arc<Llm>,
    pub stats: Arc<StepStats>,
    /// Set when the run is stopping: no new request is sent.
    pub cancel: tokio_util::sync::CancellationToken,
}

#[cfg(feature = "agent")]
#[async_trait::async_trait]
impl Backend for CachedBackend {
    fn kind(&self) -> &str {
        "cached"
    }

    fn model(&self) -> &str {
        "cached"
    }

    fn capabilities(&self) -> retort_core::Capabilities {
        self.llm.current().capabilities()
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        if self.cancel.is_cancelled() {
            return Err(BackendError::new(BackendErrorKind::Cancelled, "the run is stopping: not sent"));
        }
        self.llm.chat(request, &self.stats).await.map(|answer| answer.value)
    }

    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        self.llm.score(request, &self.stats).await.map(|answer| answer.value)
    }
}

#[cfg(all(test, feature = "local"))]
mod tests {
    use super::*;

    /// Regression: each `llms:` entry on the default local model started its own worker, so GRA
    /// loaded the model six times and its workers fought over the cores.
    #[test]
    fn local_models_with_the_same_settings_share_one_backend() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.gguf");
        std::fs::write(&model, b"GGUF not really a model: no request is sent").unwrap();
        let store = Arc::new(RunStore::open(&dir.path().join("out")).unwrap());
        let local = |threads: Option<usize>| {
            LlmConfig::Local(retort_llama::LocalConfig { threads, ..retort_llama::LocalConfig::for_model(model.to_string_lossy()) })
        };
        let mut shared = SharedLocal::default();
        let mut build = |name: &str, config: LlmConfig| Llm::build(name, &config, dir.path(), store.clone(), true, &mut shared).unwrap();
        let default = build("default", local(None));
        let reviewer = build("reviewer", local(None));
        let other = build("other", local(Some(1)));
        assert!(Arc::ptr_eq(&default.current(), &reviewer.current()));
        assert!(!Arc::ptr_eq(&default.current(), &other.current()));
    }

    /// `llm: base`, `previous`, `current` and `reference` see the rounds a `train` step made.
    #[test]
    fn handles_name_the_rounds_models() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model.gguf");
        std::fs::write(&model, b"GGUF not really a model: no request is sent").unwrap();
        let store = Arc::new(RunStore::open(&dir.path().join("out")).unwrap());
        let config = LlmConfig::Local(retort_llama::LocalConfig::for_model(model.to_string_lossy()));
        let llm = Llm::build("default", &config, dir.path(), store, true, &mut SharedLocal::default()).unwrap();
        let base = model.to_string_lossy().to_string();
        let (previous, current, reference) = (llm.view(Handle::Previous), llm.view(Handle::Current), llm.view(Handle::Reference));
        assert_eq!([previous.model(), current.model(), reference.model()], [base.clone(), base.clone(), base.clone()]);
        llm.switch_model(&format!("{base}+lora:round-1.gguf"), Handle::Current).unwrap();
        llm.switch_model(&format!("{base}+lora:round-2.gguf"), Handle::Previous).unwrap();
        assert_eq!(llm.model(), format!("{base}+lora:round-2.gguf"));
        assert_eq!(current.model(), format!("{base}+lora:round-2.gguf"));
        assert_eq!(previous.model(), format!("{base}+lora:round-1.gguf"));
        assert_eq!(llm.view(Handle::Base).model(), base);
        // The second training named `previous` (the base model, before it switched) as its reference.
        assert_eq!(reference.model(), base);
    }
}
