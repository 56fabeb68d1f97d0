//! The framed JSON protocol between the backend and its worker process.
//!
//! Each frame is one line: the marker [`FRAME_PREFIX`] and then one JSON value. Lines
//! without the marker (anything the C library might print) are not frames and are logged,
//! so stray output cannot break the framing.

use retort_core::TokenLogprob;
use serde::{Deserialize, Serialize};

/// Starts every frame line.
pub(crate) const FRAME_PREFIX: &str = "@retort-llama ";

/// What the worker must load, sent once as the first frame.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Load {
    pub(crate) model_path: String,
    pub(crate) context_size: u32,
    pub(crate) max_sequences: usize,
    pub(crate) threads: Option<usize>,
    pub(crate) batch_threads: Option<usize>,
    pub(crate) batch_size: u32,
    /// Keep and reuse evaluated prefixes (see `LocalConfig::prefix_cache`).
    #[serde(default)]
    pub(crate) prefix_cache: bool,
    /// A LoRA adapter to apply (a GGUF path).
    #[serde(default)]
    pub(crate) adapter: Option<String>,
}

/// A frame from the backend to the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ToWorker {
    /// Load the model; answered by `Ready` or `LoadFailed`.
    Load(Load),
    /// Generate an answer.
    Generate { id: u64, job: Generate },
    /// Score a continuation.
    Score { id: u64, prompt: String, continuation: String },
    /// Embed texts (mean-pooled, L2-normalised).
    Embed { id: u64, texts: Vec<String> },
}

/// One generation job: a rendered prompt and how to sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Generate {
    pub(crate) prompt: String,
    pub(crate) temperature: f32,
    pub(crate) top_p: f32,
    pub(crate) max_tokens: u32,
    pub(crate) stop: Vec<String>,
    pub(crate) seed: u32,
    pub(crate) logprobs: Option<u8>,
    pub(crate) json_schema: Option<String>,
    /// A GBNF grammar (root rule `root`); never together with `json_schema`.
    #[serde(default)]
    pub(crate) grammar: Option<String>,
}

/// Why a job failed, as the worker says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FailKind {
    ContextLength,
    BadRequest,
    Server,
}

/// The end of a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Finish {
    Stop,
    Length,
}

/// A frame from the worker to the backend.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum FromWorker {
    /// The model is loaded.
    Ready { chat_template: Option<String>, bos_token: String, eos_token: String, context_per_sequence: u32 },
    /// The model could not be loaded.
    LoadFailed { message: String },
    /// A generation finished; `cached_tokens` of its `prompt_tokens` came from the KV cache.
    Generated {
        id: u64,
        text: String,
        finish: Finish,
        logprobs: Option<Vec<TokenLogprob>>,
        prompt_tokens: u64,
        #[serde(default)]
        cached_tokens: u64,
        completion_tokens: u64,
    },
    /// A continuation was scored.
    Scored { id: u64, tokens: Vec<TokenLogprob> },
    /// Texts were embedded.
    Embedded { id: u64, vectors: Vec<Vec<f32>> },
    /// A job failed.
    Failed { id: u64, kind: FailKind, message: String },
}

impl FromWorker {
    /// The job the frame answers, if any.
    pub(crate) fn id(&self) -> Option<u64> {
        match self {
            FromWorker::Generated { id, .. }
            | FromWorker::Scored { id, .. }
            | FromWorker::Embedded { id, .. }
            | FromWorker::Failed { id, .. } => Some(*id),
            FromWorker::Ready { .. } | FromWorker::LoadFailed { .. } => None,
        }
    }
}

/// Writes a frame as one line.
pub(crate) fn encode<T: Serialize>(frame: &T) -> String {
    let mut line = String::from(FRAME_PREFIX);
    line.push_str(&serde_json::to_string(frame).expect("protocol frames serialize"));
    line.push('\n');
    line
}

/// Reads a frame line; `None` for a line that is not a frame.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(line: &str) -> Option<Result<T, serde_json::Error>> {
    let body = line.trim_end_matches(['\n', '\r']).strip_prefix(FRAME_PREFIX)?;
    Some(serde_json::from_str(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_stray_lines_are_not_frames() {
        let frame = ToWorker::Score { id: 7, prompt: "a\nb".into(), continuation: "c".into() };
        let line = encode(&frame);
        assert_eq!(line.matches('\n').count(), 1, "a frame is one line: {line:?}");
        match decode::<ToWorker>(&line) {
            Some(Ok(ToWorker::Score { id, prompt, continuation })) => {
                assert_eq!((id, prompt.as_str(), continuation.as_str()), (7, "a\nb", "c"));
            }
            other => panic!("expected the score frame back, found {other:?}"),
        }
        assert!(decode::<ToWorker>("llama_model_loader: loaded meta data\n").is_none());
        assert!(matches!(decode::<ToWorker>("@retort-llama {not json\n"), Some(Err(_))));
    }
}
