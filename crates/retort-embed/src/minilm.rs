//! all-MiniLM-L6-v2 on the CPU with candle: BERT forward pass, mean pooling over the
//! attention mask, L2 normalisation (the sentence-transformers pipeline of that model).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::{Deserialize, Serialize};
use tokenizers::{Tokenizer, TruncationParams};

use crate::error::EmbedError;
use crate::{Embedder, MINILM_DIR_NAME};

/// Options of [`MiniLmEmbedder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MiniLmOptions {
    /// Texts per forward pass; each batch is padded to its longest text. Default 32.
    pub batch_size: usize,
    /// Tokens kept per text, `[CLS]` and `[SEP]` included; longer texts are truncated.
    /// Default 256 (the model's `max_seq_length` in sentence-transformers).
    pub max_tokens: usize,
}

impl Default for MiniLmOptions {
    fn default() -> Self {
        Self { batch_size: 32, max_tokens: 256 }
    }
}

/// all-MiniLM-L6-v2 sentence embeddings (dimension 384, unit norm) computed on the CPU.
///
/// Texts are tokenised with the model's `tokenizer.json` (lowercasing WordPiece), sorted by
/// length so that batches need little padding, run through the 6-layer BERT encoder in
/// batches of [`MiniLmOptions::batch_size`], mean-pooled over real tokens and L2-normalised.
pub struct MiniLmEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    options: MiniLmOptions,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder").field("dim", &self.dim).field("options", &self.options).finish_non_exhaustive()
    }
}

/// Files that must be present in the model directory.
pub(crate) const REQUIRED_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

impl MiniLmEmbedder {
    /// Loads the model from `dir` (holding `config.json`, `tokenizer.json` and
    /// `model.safetensors`) with default options.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        Self::load_with(dir, MiniLmOptions::default())
    }

    /// Loads the model from [`default_model_dir`](crate::default_model_dir).
    pub fn load_default() -> Result<Self, EmbedError> {
        Self::load(&crate::default_model_dir())
    }

    /// Loads the model from `dir` with `options`.
    pub fn load_with(dir: &Path, options: MiniLmOptions) -> Result<Self, EmbedError> {
        for file in REQUIRED_FILES {
            if !dir.join(file).is_file() {
                return Err(EmbedError::ModelMissing {
                    model: MINILM_DIR_NAME.to_string(),
                    dir: dir.to_path_buf(),
                    file: file.to_string(),
                });
            }
        }
        let config_path = dir.join("config.json");
        let config: Config = std::fs::read_to_string(&config_path)
            .map_err(|e| e.to_string())
            .and_then(|s| serde_json::from_str(&s).map_err(|e| e.to_string()))
            .map_err(|message| load_error("BERT config.json", &config_path, message))?;
        if options.batch_size == 0 {
            return Err(EmbedError::InvalidOptions { field: "batch_size", expected: "at least 1".into(), found: "0".into() });
        }
        if options.max_tokens < 2 || options.max_tokens > config.max_position_embeddings {
            return Err(EmbedError::InvalidOptions {
                field: "max_tokens",
                expected: format!("2..={}", config.max_position_embeddings),
                found: options.max_tokens.to_string(),
            });
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let mut tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| load_error("tokenizer.json", &tokenizer_path, e.to_string()))?;
        // The file carries fixed padding to 128 and truncation at 128; padding is done here
        // per batch, and truncation follows sentence-transformers' max_seq_length.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: options.max_tokens, ..TruncationParams::default() }))
            .map_err(|e| load_error("tokenizer.json", &tokenizer_path, e.to_string()))?;

        let weights_path = dir.join("model.safetensors");
        let device = Device::Cpu;
        let bytes = std::fs::read(&weights_path).map_err(|e| load_error("model.safetensors", &weights_path, e.to_string()))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| load_error("model.safetensors", &weights_path, e.to_string()))?;
        let model = BertModel::load(vb, &config).map_err(|e| load_error("BERT model.safetensors", &weights_path, e.to_string()))?;
        Ok(Self { model, tokenizer, device, dim: config.hidden_size, options })
    }

    /// The options in use.
    pub fn options(&self) -> &MiniLmOptions {
        &self.options
    }

    /// Number of tokens (special tokens included, after truncation) of each text.
    pub fn token_counts(&self, texts: &[&str]) -> Result<Vec<usize>, EmbedError> {
        Ok(self.encode(texts)?.iter().map(|ids| ids.len()).collect())
    }

    fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let encodings = self.tokenizer.encode_batch_fast(texts.to_vec(), true).map_err(|e| EmbedError::Tokenize(e.to_string()))?;
        Ok(encodings.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Embeds one batch of token id sequences; returns one unit vector per sequence.
    fn embed_batch(&self, batch: &[&[u32]]) -> candle_core::Result<Vec<Vec<f32>>> {
        let len = batch.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; batch.len() * len];
        let mut mask = vec![0u32; batch.len() * len];
        for (row, seq) in batch.iter().enumerate() {
            ids[row * len..row * len + seq.len()].copy_from_slice(seq);
            mask[row * len..row * len + seq.len()].iter_mut().for_each(|m| *m = 1);
        }
        let shape = (batch.len(), len);
        let input_ids = Tensor::from_vec(ids, shape, &self.device)?;
        let attention = Tensor::from_vec(mask, shape, &self.device)?;
        let token_types = input_ids.zeros_like()?;
        let hidden = self.model.forward(&input_ids, &token_types, Some(&attention))?;
        // Mean over real tokens: sum(hidden * mask) / max(sum(mask), 1e-9).
        let mask = attention.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        // L2 normalisation: x / max(|x|, 1e-12).
        let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norm)?.to_vec2::<f32>()
    }
}

fn load_error(what: &'static str, path: &Path, message: String) -> EmbedError {
    EmbedError::Load { what, path: PathBuf::from(path), message }
}

impl Embedder for MiniLmEmbedder {
    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encoded = self.encode(texts)?;
        // Longest first, so each batch holds texts of similar length (little padding).
        let mut order: Vec<usize> = (0..encoded.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(self.options.batch_size) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| encoded[i].as_slice()).collect();
            let vectors = self.embed_batch(&batch).map_err(|e| EmbedError::Inference(e.to_string()))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}
