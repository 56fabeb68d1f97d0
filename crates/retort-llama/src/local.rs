//! The `local` backend: a GGUF model run by llama.cpp in a supervised worker process.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use retort_core::{
    Backend, BackendError, BackendErrorKind, Capabilities, ChatRequest, ChatResponse, Choice, FinishReason, Message, ScoreRequest,
    ScoreResponse, Usage,
};

use crate::config::{resolve_model, LocalConfig, WorkerCommand};
use crate::error::LocalError;
use crate::protocol::{FailKind, Finish, FromWorker, Generate, Load, ToWorker};
use crate::supervisor::{Ready, Supervisor};
use crate::template::ChatTemplate;

/// The sampling seed when a request sets none.
const DEFAULT_SEED: u64 = 0x5EED;

/// The chat template and model facts learnt from the first worker.
struct ModelInfo {
    template: Option<ChatTemplate>,
    context_per_sequence: u32,
}

impl ModelInfo {
    /// Whether the model's chat template offers tools to it.
    fn offers_tools(&self) -> bool {
        self.template.as_ref().is_some_and(ChatTemplate::reads_tools)
    }
}

/// A local GGUF model behind the [`Backend`] trait.
///
/// The model runs in a worker process (see [`crate::worker_main`]) that this backend starts
/// on the first request and restarts when it dies.
pub struct LocalBackend {
    config: LocalConfig,
    /// The model string (`MODEL` or `MODEL+lora:ADAPTER`): part of every answer's key.
    name: String,
    model_path: String,
    supervisor: Supervisor,
    info: OnceLock<Arc<ModelInfo>>,
    in_flight: AtomicUsize,
    /// Prompt tokens the model evaluated (not taken from its cache), over all generations.
    evaluated: AtomicU64,
}

impl std::fmt::Debug for LocalBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBackend").field("config", &self.config).field("model_path", &self.model_path).finish()
    }
}

impl LocalBackend {
    /// A backend whose worker is this very binary re-launched as `<self> __llama-worker`.
    ///
    /// Fails at once when the model is missing or not GGUF; the model itself loads on the
    /// first request.
    pub fn new(config: LocalConfig) -> Result<LocalBackend, LocalError> {
        let command = WorkerCommand::current_exe()
            .map_err(|error| LocalError::Config(format!("finding the running binary to start the model worker: {error}")))?;
        LocalBackend::with_worker(config, command)
    }

    /// A backend whose worker is started with the given command.
    pub fn with_worker(config: LocalConfig, command: WorkerCommand) -> Result<LocalBackend, LocalError> {
        config.validate()?;
        let path = resolve_model(&config.model)?;
        let model_path = path.to_string_lossy().into_owned();
        let load = Load {
            model_path: model_path.clone(),
            context_size: config.context_size,
            max_sequences: config.max_sequences,
            threads: config.threads,
            batch_threads: config.batch_threads,
            batch_size: config.batch_size,
            prefix_cache: config.prefix_cache,
            adapter: config.adapter.clone(),
        };
        Ok(LocalBackend {
            name: config.model_string(),
            config,
            model_path,
            supervisor: Supervisor::new(command, load),
            info: OnceLock::new(),
            in_flight: AtomicUsize::new(0),
            evaluated: AtomicU64::new(0),
        })
    }

    /// The GGUF file this backend runs.
    pub fn model_path(&self) -> &str {
        &self.model_path
    }

    /// Prompt tokens the model has evaluated for generations so far, those taken from its
    /// cache of earlier prompts not counted.
    pub fn prompt_tokens_evaluated(&self) -> u64 {
        self.evaluated.load(Ordering::Relaxed)
    }

    /// How many worker processes this backend has started (1 unless a worker died).
    pub fn worker_starts(&self) -> u64 {
        self.supervisor.starts()
    }

    /// Starts the worker and loads the model now rather than on the first request.
    pub async fn warm_up(&self) -> Result<(), BackendError> {
        self.model_info().await.map(|_| ())
    }

    /// Tokens of context each sequence holds, prompt and answer together (starts the worker if needed).
    pub async fn context_per_sequence(&self) -> Result<u32, BackendError> {
        Ok(self.model_info().await?.context_per_sequence)
    }

    /// Renders a conversation with the model's chat template (starting the worker if needed).
    pub async fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, BackendError> {
        let info = self.model_info().await?;
        render(&info, &self.config.model, messages, add_generation_prompt)
    }

    fn learn(&self, ready: &Ready) -> Result<(), BackendError> {
        if self.info.get().is_some() {
            return Ok(());
        }
        let template = match &ready.chat_template {
            Some(source) => Some(ChatTemplate::new(source, &ready.bos_token, &ready.eos_token).map_err(|error| {
                BackendError::new(BackendErrorKind::BadRequest, format!("compiling the chat template of {}: {error}", self.model_path))
            })?),
            None => None,
        };
        let _ = self.info.set(Arc::new(ModelInfo { template, context_per_sequence: ready.context_per_sequence }));
        Ok(())
    }

    async fn model_info(&self) -> Result<Arc<ModelInfo>, BackendError> {
        if let Some(info) = self.info.get() {
            return Ok(info.clone());
        }
        // A score of nothing starts the worker and returns at once.
        self.supervisor
            .call(|id| ToWorker::Score { id, prompt: String::from(" "), continuation: String::new() }, |ready| self.learn(ready))
            .await?;
        Ok(self.info.get().expect("the worker said it was ready").clone())
    }

    /// Embeds texts with the model: mean-pooled over tokens, L2-normalised, one vector per text.
    pub async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, BackendError> {
        let _counted = InFlight::new(&self.in_flight);
        let answer = self.supervisor.call(|id| ToWorker::Embed { id, texts: texts.to_vec() }, |ready| self.learn(ready)).await?;
        match answer {
            FromWorker::Embedded { vectors, .. } => Ok(vectors),
            other => Err(unexpected(other)),
        }
    }

    async fn generate(&self, job: Generate) -> Result<FromWorker, BackendError> {
        self.supervisor.call(|id| ToWorker::Generate { id, job: job.clone() }, |ready| self.learn(ready)).await
    }

    async fn chat_inner(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        let info = self.model_info().await?;
        let with_tools = !request.tools.is_empty();
        let offered: Vec<&str> = request.tools.iter().map(|tool| tool.name.as_str()).collect();
        if with_tools && !info.offers_tools() {
            return Err(BackendError::new(
                BackendErrorKind::Unsupported,
                format!(
                    "the chat template of {} does not offer tools (it reads no `tools`); use a model whose template does (qwen2.5-coder-0.5b) or describe the tools in the prompt (agent format react)",
                    self.config.model
                ),
            ));
        }
        let prompt = match request.messages.split_last() {
            // Prefill: the conversation up to the answer's start, then the start itself.
            Some((last, earlier)) if request.continue_final && last.role == retort_core::Role::Assistant => {
                render_with_tools(&info, &self.config.model, earlier, &request.tools, true)? + &last.content
            }
            _ => render_with_tools(&info, &self.config.model, &request.messages, &request.tools, true)?,
        };
        let params = &request.params;
        let json_schema = match &request.json_schema {
            Some(schema) => Some(
                serde_json::to_string(schema)
                    .map_err(|error| BackendError::new(BackendErrorKind::BadRequest, format!("writing the JSON schema: {error}")))?,
            ),
            None => None,
        };
        if json_schema.is_some() && request.grammar.is_some() {
            return Err(BackendError::new(
                BackendErrorKind::BadRequest,
                "a request holds its answer to a JSON schema or to a grammar, not both",
            ));
        }
        let base_seed = params.seed.unwrap_or(DEFAULT_SEED);
        let n = params.n.max(1);
        let jobs = (0..n).map(|index| {
            let seed = base_seed.wrapping_add(u64::from(index));
            self.generate(Generate {
                prompt: prompt.clone(),
                temperature: params.temperature.unwrap_or(0.8),
                top_p: params.top_p.unwrap_or(1.0),
                max_tokens: params.max_tokens.unwrap_or(self.config.default_max_tokens),
                stop: params.stop.clone(),
                seed: (seed ^ (seed >> 32)) as u32,
                logprobs: params.logprobs,
                json_schema: json_schema.clone(),
                grammar: request.grammar.clone(),
            })
        });
        let answers = futures::future::join_all(jobs).await;
        let mut choices = Vec::new();
        let mut usage = Usage::default();
        let mut evaluated = 0;
        for answer in answers {
            match answer? {
                FromWorker::Generated { text, finish, logprobs, prompt_tokens, cached_tokens, completion_tokens, .. } => {
                    // One prompt for all samples, counted once; what every sample evaluated
                    // of it counts against the cached part.
                    usage.prompt_tokens = prompt_tokens;
                    evaluated += prompt_tokens.saturating_sub(cached_tokens);
                    usage.completion_tokens += completion_tokens;
                    // With tools offered, the template's call blocks become tool calls.
                    let (text, tool_calls) =
                        if with_tools { crate::template::parse_tool_calls(&text, &offered) } else { (text, Vec::new()) };
                    let finish_reason = match finish {
                        Finish::Stop if !tool_calls.is_empty() => FinishReason::ToolCalls,
                        Finish::Stop => FinishReason::Stop,
                        Finish::Length => FinishReason::Length,
                    };
                    choices.push(Choice { text, tool_calls, finish_reason, logprobs });
                }
                other => return Err(unexpected(other)),
            }
        }
        self.evaluated.fetch_add(evaluated, Ordering::Relaxed);
        usage.cached_tokens = usage.prompt_tokens.saturating_sub(evaluated);
        Ok(ChatResponse { choices, usage, model: self.config.model.clone() })
    }

    async fn score_inner(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        let prompt = if request.raw {
            request.raw_prompt()
        } else {
            let info = self.model_info().await?;
            render(&info, &self.config.model, &request.messages, true)?
        };
        let answer = self
            .supervisor
            .call(
                |id| ToWorker::Score { id, prompt: prompt.clone(), continuation: request.continuation.clone() },
                |ready| self.learn(ready),
            )
            .await?;
        match answer {
            FromWorker::Scored { tokens, .. } => Ok(ScoreResponse { tokens }),
            other => Err(unexpected(other)),
        }
    }
}

fn render(info: &ModelInfo, model: &str, messages: &[Message], add_generation_prompt: bool) -> Result<String, BackendError> {
    render_with_tools(info, model, messages, &[], add_generation_prompt)
}

fn render_with_tools(
    info: &ModelInfo,
    model: &str,
    messages: &[Message],
    tools: &[retort_core::ToolSpec],
    add_generation_prompt: bool,
) -> Result<String, BackendError> {
    let Some(template) = &info.template else {
        return Err(BackendError::new(
            BackendErrorKind::BadRequest,
            format!(
                "the model {model} has no chat template (GGUF key tokenizer.chat_template), so it cannot answer chat messages; use an instruct model with a template"
            ),
        ));
    };
    let prompt = template
        .render_with_tools(messages, tools, add_generation_prompt)
        .map_err(|error| BackendError::new(BackendErrorKind::BadRequest, format!("rendering the chat template of {model}: {error:#}")))?;
    Ok(prompt)
}

fn unexpected(frame: FromWorker) -> BackendError {
    match frame {
        FromWorker::Failed { kind, message, .. } => BackendError::new(
            match kind {
                FailKind::ContextLength => BackendErrorKind::ContextLength,
                FailKind::BadRequest => BackendErrorKind::BadRequest,
                FailKind::Server => BackendErrorKind::Server,
            },
            message,
        ),
        other => BackendError::new(BackendErrorKind::Protocol, format!("the model worker answered with an unexpected frame: {other:?}")),
    }
}

/// Counts a request in flight while it lives.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(counter: &'a AtomicUsize) -> InFlight<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        InFlight(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl Backend for LocalBackend {
    fn kind(&self) -> &str {
        "local"
    }

    fn model(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        // Native tool calls where the model's template offers tools (known once the worker
        // has loaded the model; a request with tools is refused with the reason otherwise).
        let tools = self.info.get().is_some_and(|info| info.offers_tools());
        Capabilities { n: true, logprobs: true, score: true, json_schema: true, grammar: true, tools }
    }

    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, BackendError> {
        let _counted = InFlight::new(&self.in_flight);
        self.chat_inner(request).await
    }

    async fn score(&self, request: &ScoreRequest) -> Result<ScoreResponse, BackendError> {
        let _counted = InFlight::new(&self.in_flight);
        self.score_inner(request).await
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_without_a_template_is_a_clear_error() {
        let info = ModelInfo { template: None, context_per_sequence: 64 };
        let error = render(&info, "base-model", &[Message::user("hi")], true).unwrap_err();
        assert_eq!(error.kind, BackendErrorKind::BadRequest);
        assert!(error.message.contains("base-model has no chat template"), "{error}");
    }

    #[test]
    fn worker_failures_map_to_backend_error_kinds() {
        let cases = [
            (FailKind::ContextLength, BackendErrorKind::ContextLength),
            (FailKind::BadRequest, BackendErrorKind::BadRequest),
            (FailKind::Server, BackendErrorKind::Server),
        ];
        for (kind, expected) in cases {
            let error = unexpected(FromWorker::Failed { id: 1, kind, message: "m".into() });
            assert_eq!((error.kind, error.message.as_str()), (expected, "m"));
        }
        let error = unexpected(FromWorker::Scored { id: 1, tokens: Vec::new() });
        assert_eq!(error.kind, BackendErrorKind::Protocol);
    }
}
