//! Training rows → token sequences with the positions that are trained.
//!
//! The prompt is rendered with the model's own chat template and tokenised by llama.cpp
//! exactly as the local backend's worker does at inference (the same template code, the same
//! BOS rule, special tokens parsed), so a trained answer follows the prompt the model will see.
//! Each assistant turn is tokenised on its own after its prompt, as the model produces it.
//!
//! Rows (JSON lines), the shapes retort's `train` step and TRL use:
//! - SFT: `{"messages": [...]}` (every assistant turn is trained), or
//!   `{"prompt": ..., "completion" | "response": ...}` (strings or message lists);
//! - DPO: `{"prompt": ..., "chosen": ..., "rejected": ...}` (strings or message lists), with an
//!   optional soft `label` (the probability that `chosen` is preferred) and `margin`;
//! - weighted: an SFT row with `weights`, one per trained token (or the trainer's decay);
//!   any SFT row may carry a scalar `weight` (or `reward`) that scales all its tokens.

use std::num::NonZeroU16;
use std::path::Path;
use std::sync::OnceLock;

use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::LlamaModel;
use retort_core::{Message, Role};
use retort_llama::ChatTemplate;
use serde_json::Value;

use crate::error::TrainError;

static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();

/// The model's tokenizer and chat template.
pub(crate) struct Tokenizer {
    model: LlamaModel,
    template: Option<ChatTemplate>,
}

/// A sequence with the positions whose next token is trained, and each one's weight.
#[derive(Debug, Clone)]
pub(crate) struct Sequence {
    /// Every token, prompt and answer.
    pub tokens: Vec<u32>,
    /// Positions `i` such that `tokens[i + 1]` is trained.
    pub positions: Vec<u32>,
    /// A weight per position (1 unless the row gives weights).
    pub weights: Vec<f32>,
}

/// One training example.
#[derive(Debug, Clone)]
pub(crate) enum Example {
    /// Maximum likelihood on the answer tokens.
    Sft(Sequence),
    /// A preference pair: the answers after the same prompt.
    Pair {
        /// The preferred answer.
        chosen: Sequence,
        /// The other.
        rejected: Sequence,
        /// P(chosen preferred): 1 for a hard label.
        label: f32,
        /// A margin the implicit reward difference should exceed.
        margin: f32,
    },
}

impl Example {
    /// Tokens the example puts through the model.
    pub(crate) fn tokens(&self) -> usize {
        match self {
            Example::Sft(sequence) => sequence.tokens.len(),
            Example::Pair { chosen, rejected, .. } => chosen.tokens.len() + rejected.tokens.len(),
        }
    }
}

impl Tokenizer {
    /// Loads the vocabulary and chat template of a GGUF model.
    pub(crate) fn load(path: &Path) -> Result<Tokenizer, TrainError> {
        let backend = BACKEND.get_or_init(|| {
            // llama.cpp logs to stderr; quiet unless asked, as in the worker.
            let verbose = std::env::var("RETORT_LLAMA_LOG").is_ok_and(|value| value == "1");
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default().with_logs_enabled(verbose));
            LlamaBackend::init().map_err(|error| error.to_string())
        });
        let backend = backend
            .as_ref()
            .map_err(|message| TrainError::Model { path: path.to_path_buf(), message: format!("starting llama.cpp: {message}") })?;
        let params = LlamaModelParams::default().with_vocab_only(true);
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|error| TrainError::Model { path: path.to_path_buf(), message: format!("loading the vocabulary: {error}") })?;
        let vocab = model.vocab();
        let piece = |token| String::from_utf8_lossy(&vocab.token_to_piece(token, true, None::<NonZeroU16>)).into_owned();
        let (bos, eos) = (piece(vocab.bos()), piece(vocab.eos()));
        let template = match model.meta_val_str("tokenizer.chat_template") {
            Ok(source) => Some(ChatTemplate::new(&source, &bos, &eos).map_err(|error| TrainError::Model {
                path: path.to_path_buf(),
                message: format!("compiling the chat template: {error}"),
            })?),
            Err(_) => None,
        };
        Ok(Tokenizer { model, template })
    }

    /// Tokenises as the worker does: a prompt gets BOS where the template did not write it.
    fn tokenize(&self, text: &str, is_prompt: bool) -> Vec<u32> {
        let vocab = self.model.vocab();
        let add_bos = is_prompt && vocab.should_add_bos() && {
            let bos = vocab.token_to_piece(vocab.bos(), true, None::<NonZeroU16>);
            bos.is_empty() || !text.as_bytes().starts_with(&bos)
        };
        let mut tokens = vocab.tokenize(text.as_bytes(), add_bos, true);
        if !is_prompt && tokens.first() == Some(&vocab.bos()) {
            tokens.remove(0);
        }
        tokens.into_iter().map(|token| token.0 as u32).collect()
    }

    fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let template = self.template.as_ref().ok_or("the model has no chat template (tokenizer.chat_template); train an instruct model")?;
        template.render(messages, add_generation_prompt).map_err(|error| format!("rendering the chat template: {error:#}"))
    }

    /// The sequence of a conversation, training every assistant turn.
    pub(crate) fn conversation(&self, messages: &[Message], weights: Option<&[f32]>, max_length: usize) -> Result<Sequence, String> {
        if !messages.iter().any(|message| message.role == Role::Assistant) {
            return Err("no assistant turn to train".into());
        }
        let full = self.render(messages, false)?;
        let mut tokens: Vec<u32> = Vec::new();
        let mut positions = Vec::new();
        let mut consumed = 0usize;
        for (index, message) in messages.iter().enumerate() {
            if message.role != Role::Assistant {
                continue;
            }
            let prompt = self.render(&messages[..index], true)?;
            let through = self.render(&messages[..=index], false)?;
            if !through.starts_with(&prompt) || !full.starts_with(&through) || prompt.len() < consumed {
                return Err("the chat template does not render a conversation as a prefix of its continuation, so answer tokens cannot be told apart".into());
            }
            let before = &full[consumed..prompt.len()];
            tokens.extend(self.tokenize(before, consumed == 0));
            let answer = self.tokenize(&through[prompt.len()..], false);
            let start = tokens.len();
            if start == 0 {
                return Err("an assistant turn with no prompt before it".into());
            }
            positions.extend((start - 1..start - 1 + answer.len()).map(|position| position as u32));
            tokens.extend(answer);
            consumed = through.len();
        }
        if positions.is_empty() {
            return Err("the assistant turns are empty".into());
        }
        if tokens.len() > max_length {
            return Err(format!("{} tokens, more than max_length {max_length}", tokens.len()));
        }
        let weights = match weights {
            None => vec![1.0; positions.len()],
            Some(given) if given.len() == positions.len() => given.to_vec(),
            Some(given) => return Err(format!("`weights` has {} values for {} answer tokens", given.len(), positions.len())),
        };
        Ok(Sequence { tokens, positions, weights })
    }
}

/// A message list from a row's value: a string is one message of `role`.
fn messages(value: &Value, role: Role, what: &str) -> Result<Vec<Message>, String> {
    match value {
        Value::String(text) => Ok(vec![Message::new(role, text.clone())]),
        Value::Array(_) => serde_json::from_value(value.clone())
            .map_err(|error| format!("`{what}`: expected chat messages with role and content: {error}")),
        other => Err(format!("`{what}`: expected a string or a list of messages, found {other}")),
    }
}

/// What a row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowKind {
    /// Messages or prompt/completion.
    Sft,
    /// Prompt, chosen, rejected.
    Pair,
}

/// The kind of a row, from its keys.
pub(crate) fn row_kind(row: &serde_json::Map<String, Value>) -> RowKind {
    if row.contains_key("chosen") && row.contains_key("rejected") {
        RowKind::Pair
    } else {
        RowKind::Sft
    }
}

/// Turns one row into an example. `decay`: weights `max(0, 1 − decay·t)` for the answer's
/// t-th token when the row gives none and the objective is weighted (Toolformer's).
pub(crate) fn example(
    tokenizer: &Tokenizer,
    row: &serde_json::Map<String, Value>,
    decay: Option<f32>,
    max_length: usize,
) -> Result<Example, String> {
    let row_weights: Option<Vec<f32>> = match row.get("weights") {
        None | Some(Value::Null) => None,
        Some(Value::Array(values)) => {
            Some(values.iter().map(|value| value.as_f64().map(|w| w as f32).ok_or("`weights` must be numbers")).collect::<Result<_, _>>()?)
        }
        Some(other) => return Err(format!("`weights`: expected a list of numbers, found {other}")),
    };
    match row_kind(row) {
        RowKind::Pair => {
            let prompt = messages(row.get("prompt").ok_or("a preference row needs `prompt`")?, Role::User, "prompt")?;
            let side = |key: &str| -> Result<Sequence, String> {
                let mut conversation = prompt.clone();
                conversation.extend(messages(&row[key], Role::Assistant, key)?);
                tokenizer.conversation(&conversation, None, max_length).map_err(|error| format!("`{key}`: {error}"))
            };
            let number = |key: &str, default: f32| -> Result<f32, String> {
                match row.get(key) {
                    None | Some(Value::Null) => Ok(default),
                    Some(value) => value.as_f64().map(|v| v as f32).ok_or(format!("`{key}`: expected a number, found {value}")),
                }
            };
            let label = number("label", 1.0)?;
            if !(0.0..=1.0).contains(&label) {
                return Err(format!("`label`: expected a probability in [0, 1], found {label}"));
            }
            Ok(Example::Pair { chosen: side("chosen")?, rejected: side("rejected")?, label, margin: number("margin", 0.0)? })
        }
        RowKind::Sft => {
            let conversation = if let Some(list) = row.get("messages") {
                messages(list, Role::User, "messages")?
            } else {
                let prompt = row.get("prompt").ok_or("an SFT row needs `messages`, or `prompt` and `completion`")?;
                let answer = row
                    .get("completion")
                    .or_else(|| row.get("response"))
                    .ok_or("an SFT row with `prompt` needs `completion` (or `response`)")?;
                let mut conversation = messages(prompt, Role::User, "prompt")?;
                conversation.extend(messages(answer, Role::Assistant, "completion")?);
                conversation
            };
            let mut sequence = tokenizer.conversation(&conversation, row_weights.as_deref(), max_length)?;
            if row_weights.is_none() {
                if let Some(decay) = decay {
                    sequence.weights = (0..sequence.positions.len()).map(|t| (1.0 - decay * t as f32).max(0.0)).collect();
                }
            }
            // A row's own weight (`weight`, or `reward` as SPAG's reward-weighted imitation
            // writes it) scales all its tokens.
            let scalar = row.get("weight").or_else(|| row.get("reward")).filter(|value| !value.is_null());
            if let Some(value) = scalar {
                let weight = value.as_f64().ok_or(format!("`weight`/`reward`: expected a number, found {value}"))? as f32;
                sequence.weights.iter_mut().for_each(|w| *w *= weight);
            }
            Ok(Example::Sft(sequence))
        }
    }
}
