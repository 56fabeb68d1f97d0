//! `generate`: render a prompt, ask a model (n samples), parse the answer into a field.

use std::sync::Arc;

use async_trait::async_trait;
use retort_core::{BackendErrorKind, ChatRequest, ChatResponse, FinishReason, Lineage, Message, Outcome, Record, SamplingParams};
use serde::Deserialize;
use serde_json::Value;

use crate::error::EngineError;
use crate::llm::Llm;
use crate::parse::{ParseConfig, Parsed};
use crate::steps::StepSpec;
use crate::runtime::{Miss, StageCx};
use crate::steps::prompt::{self, asks_a_model, SamplingSettings};
use crate::steps::{BuildCx, CheckCx, StepDef, TemplateSource};
use crate::runtime::{Built, RecordStep};

asks_a_model! {
    sampling;
    /// Settings of a `generate` step.
    #[derive(Debug, Clone, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GenerateConfig {
        /// The field the parsed answer is written to.
        pub into: String,
        /// Samples per record; more than one fans the record out into children `ID.0`, `ID.1`, ...
        #[serde(default = "one")]
        pub n: usize,
        /// How to read the answer.
        #[serde(default)]
        pub parse: ParseConfig,
        /// Also keep the whole answer text in this field (useful with `answer` or `tagged`).
        #[serde(default)]
        pub raw_into: Option<String>,
        /// Write the conversation (prompt and answer) as chat messages into this field.
        #[serde(default)]
        pub messages_into: Option<String>,
        /// Write the sample's index (0 to n-1) into this field.
        #[serde(default)]
        pub sample_into: Option<String>,
        /// Write the mean log-probability per token of the answer into this field (needs logprobs).
        #[serde(default)]
        pub logprob_into: Option<String>,
        /// On a parse failure, ask once more with the error, before failing the record.
        #[serde(default)]
        pub repair: bool,
        /// With `n` above 1, keep one record and write the parsed answers of its samples as a
        /// list into `into` (ToolEval's several judgments of one answer), instead of fanning out.
        /// Samples that fail are left out; the record fails only when all do.
        #[serde(default)]
        pub collect: bool,
    }
}

fn one() -> usize {
    1
}


impl StepDef for GenerateConfig {
    fn templates(&self) -> Vec<(String, TemplateSource)> {
        prompt::templates(self)
    }

    fn check(&self, cx: &mut CheckCx<'_>) {
        prompt::check(self, cx, &[]);
        cx.llm("llm", self.llm.as_deref());
        cx.range("n", self.n as u64, 1, crate::limits::MAX_SAMPLES);
        if let Some(max_tokens) = self.max_tokens {
            cx.range("max_tokens", u64::from(max_tokens), 1, crate::limits::MAX_TOKENS);
        }
        if let Some(grammar) = &self.grammar {
            if self.parse.schema().is_some() {
                cx.error("grammar", "expected a grammar or a JSON schema in `parse`, found both");
            }
            prompt::check_grammar(cx, grammar);
        }
        for problem in self.parse.problems() {
            cx.error("parse", problem);
        }
        if self.constrain != Some(false) && self.grammar.is_none() {
            for problem in self.parse.constrained_problems() {
                cx.error("parse", problem);
            }
        }
        match &self.parse {
            ParseConfig::Json { spread: true, schema } => {
                let properties = schema.as_ref().and_then(|schema| schema.get("properties")).and_then(Value::as_object);
                match properties {
                    Some(properties) => properties.keys().for_each(|key| cx.write(key)),
                    None => cx.fields.open = true,
                }
            }
            _ => cx.write(&self.into),
        }
        for field in [&self.raw_into, &self.messages_into, &self.logprob_into, &self.sample_into].into_iter().flatten() {
            cx.write(field);
        }
    }

    fn build(&self, spec: &StepSpec, cx: &BuildCx) -> Result<Built, EngineError> {
        let llm = cx.llm(&spec.path, self.llm.as_deref())?;
        let concurrency = cx.concurrency(spec, Some(&llm));
        let constrain = self.constrain.unwrap_or(true);
        let grammar = self.grammar.clone().filter(|_| constrain && llm.current().capabilities().grammar);
        let parser = self.parse.compile().map_err(|message| EngineError::Step { step: spec.path.clone(), message })?;
        Ok(Built::Record(Arc::new(Generate { config: self.clone(), parser, llm, grammar, concurrency })))
    }
}

struct Generate {
    config: GenerateConfig,
    /// The answer's parser, compiled once.
    parser: crate::parse::Parser,
    llm: Arc<Llm>,
    /// The grammar sent with every request: set, constrained, and the backend holds to it.
    grammar: Option<String>,
    concurrency: usize,
}

#[async_trait]
impl RecordStep for Generate {
    async fn apply(&self, record: Record, cx: &StageCx) -> Vec<Outcome> {
        let messages = match prompt::render(&self.config, &record, cx, None) {
            Ok(messages) => messages,
            Err(reason) => return vec![Outcome::fail(record, reason)],
        };
        let config = &self.config;
        let constrain = config.constrain.unwrap_or(true);
        let base = ChatRequest {
            messages,
            params: SamplingParams { seed: None, logprobs: config.logprob_into.as_ref().map(|_| 0), ..config.sampling() },
            json_schema: if constrain { config.parse.schema().cloned() } else { None },
            grammar: self.grammar.clone(),
            tools: Vec::new(),
            continue_final: false,
        };
        if config.collect && config.n > 1 {
            return self.collect(record, base, cx).await;
        }
        let samples = (0..config.n).map(|index| {
            let mut child = if config.n == 1 { record.clone() } else { record.child(index) };
            if let Some(field) = &config.sample_into {
                child.set(field.clone(), Value::from(index));
            }
            let mut request = base.clone();
            request.params.seed = Some(config.seed.unwrap_or_else(|| cx.seed(&record.id, index)));
            async move {
                match self.sample(&mut child, request, cx).await {
                    Ok(()) => Outcome::Keep(child),
                    Err(miss) => miss.outcome(child),
                }
            }
        });
        // Samples are made and sent as the backend takes them, not all allocated up front.
        use futures::StreamExt;
        futures::stream::iter(samples).buffered(self.llm.window().clamp(1, config.n)).collect().await
    }

    fn concurrency(&self) -> usize {
        self.concurrency
    }
}

impl Generate {
    /// The `collect` form: every sample on a copy of the record, the answers gathered in one list.
    async fn collect(&self, mut record: Record, base: ChatRequest, cx: &StageCx) -> Vec<Outcome> {
        let config = &self.config;
        let samples = (0..config.n).map(|index| {
            let mut copy = record.clone();
            copy.lineage.clear();
            let mut request = base.clone();
            request.params.seed = Some(config.seed.map_or_else(|| cx.seed(&record.id, index), |seed| seed.wrapping_add(index as u64)));
            async move { self.sample(&mut copy, request, cx).await.map(|()| copy) }
        });
        use futures::StreamExt;
        let results: Vec<Result<Record, Miss>> = futures::stream::iter(samples).buffered(self.llm.window().clamp(1, config.n)).collect().await;
        let mut answers = Vec::new();
        let mut first_miss = None;
        for result in results {
            match result {
                Ok(mut copy) => {
                    answers.push(copy.fields.remove(&config.into).unwrap_or(Value::Null));
                    record.lineage.append(&mut copy.lineage);
                }
                Err(Miss::Interrupted) => return vec![Outcome::Interrupted(record)],
                Err(miss) => {
                    first_miss.get_or_insert(miss);
                }
            }
        }
        match (answers.is_empty(), first_miss) {
            (true, Some(miss)) => vec![miss.outcome(record)],
            _ => {
                record.set(config.into.clone(), Value::Array(answers));
                vec![Outcome::Keep(record)]
            }
        }
    }

    async fn sample(&self, record: &mut Record, request: ChatRequest, cx: &StageCx) -> Result<(), Miss> {
        let config = &self.config;
        let accept = config.accept();
        let (mut response, key) = ask(&self.llm, &request, cx, accept).await?;
        let mut finish_reason = response.choices[0].finish_reason;
        let mut text = std::mem::take(&mut response.choices[0].text);
        // The request the kept answer came from: this one, or the repair.
        let mut repaired: Option<ChatRequest> = None;
        let parsed = match self.parser.parse(&text) {
            Ok(parsed) => parsed,
            Err(reason) if config.repair => {
                let mut retry = request.clone();
                retry.messages.push(Message::assistant(text.clone()));
                retry.messages.push(Message::user(format!(
                    "Your answer could not be used: {reason}. Reply again with only the corrected answer, nothing else."
                )));
                let (second, _) = ask(&self.llm, &retry, cx, accept).await.map_err(|miss| miss.or_raw(|| text.clone()))?;
                let second_text = second.choices[0].text.clone();
                finish_reason = second.choices[0].finish_reason;
                let parsed = self
                    .parser
                    .parse(&second_text)
                    .map_err(|again| Miss::with_raw(format!("{again} (after one repair attempt; first: {reason})"), second_text.clone()))?;
                text = second_text;
                repaired = Some(retry);
                parsed
            }
            Err(reason) => return Err(Miss::with_raw(reason, text)),
        };
        let lineage_request = repaired.unwrap_or(request);
        match parsed {
            Parsed::Value(value) => record.set(config.into.clone(), value),
            Parsed::Fields(fields) => record.fields.extend(fields),
        }
        if let Some(field) = &config.raw_into {
            record.set(field.clone(), Value::String(text.clone()));
        }
        if let Some(field) = &config.messages_into {
            let mut conversation = lineage_request.messages.clone();
            conversation.push(Message::assistant(text.trim()));
            record.set(field.clone(), serde_json::to_value(conversation).unwrap_or(Value::Null));
        }
        if let Some(field) = &config.logprob_into {
            let logprobs = response.choices[0].logprobs.as_ref().filter(|tokens| !tokens.is_empty()).ok_or_else(|| {
                Miss::with_raw(format!("`logprob_into` needs token log-probabilities, and the {} backend returned none", self.llm.kind()), text.clone())
            })?;
            let mean = logprobs.iter().map(|token| token.logprob).sum::<f64>() / logprobs.len() as f64;
            record.set(field.clone(), serde_json::json!(mean));
        }
        record.lineage.push(lineage(&self.llm, cx, &config.into, lineage_request, key, Some(finish_reason)));
        Ok(())
    }
}

/// Which damaged answers a step takes as they are instead of failing the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Accept {
    /// An answer with no text and no tool calls.
    pub empty: bool,
    /// An answer cut short by `max_tokens` (`finish_reason: length`).
    pub truncated: bool,
}

/// Sends a request through the cache; a failure becomes the record's reason (with the raw
/// answer when there was one), and so does an empty or cut answer the step does not accept.
pub(crate) async fn ask(llm: &Llm, request: &ChatRequest, cx: &StageCx, accept: Accept) -> Result<(ChatResponse, String), Miss> {
    let (response, key) = ask_with_kind(llm, request, cx).await.map_err(|(kind, reason)| match kind {
        Some(BackendErrorKind::Cancelled) => Miss::Interrupted,
        _ => Miss::failed(reason),
    })?;
    let choice = &response.choices[0];
    if !accept.empty && choice.text.trim().is_empty() && choice.tool_calls.is_empty() {
        return Err(Miss::failed("the model answered with an empty text; set `allow_empty: true` on the step to keep such answers"));
    }
    if !accept.truncated && choice.finish_reason == FinishReason::Length {
        let max = request.params.max_tokens.map(|max| format!(" at {max} tokens")).unwrap_or_default();
        return Err(Miss::with_raw(
            format!("the answer was cut by max_tokens{max} (finish_reason: length); raise `max_tokens`, or set `allow_truncated: true` to keep cut answers"),
            choice.text.clone(),
        ));
    }
    Ok((response, key))
}

/// As `ask`, with the backend's error kind when the request itself failed (a step that can
/// carry on after some failures, like `converse` at the context limit, looks at it).
pub(crate) async fn ask_with_kind(
    llm: &Llm,
    request: &ChatRequest,
    cx: &StageCx,
) -> Result<(ChatResponse, String), (Option<BackendErrorKind>, String)> {
    if cx.run.cancel.is_cancelled() {
        return Err((Some(BackendErrorKind::Cancelled), "the run is stopping: not sent".to_string()));
    }
    let answer = llm.chat(request, &cx.stats).await.map_err(|error| (Some(error.kind), format!("model request failed: {error}")))?;
    if answer.value.choices.is_empty() {
        return Err((None, "model answered with no choices".to_string()));
    }
    Ok((answer.value, answer.key))
}

/// The lineage entry of a generated field, from the request sent and the answer used.
pub(crate) fn lineage(llm: &Llm, cx: &StageCx, field: &str, request: ChatRequest, key: String, finish_reason: Option<FinishReason>) -> Lineage {
    Lineage {
        field: field.to_string(),
        step: cx.step.to_string(),
        backend: llm.kind(),
        model: llm.model(),
        prompt: request.messages,
        params: request.params,
        request_key: key,
        finish_reason,
    }
}
