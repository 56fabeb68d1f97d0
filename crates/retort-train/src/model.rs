//! The transformer (llama and qwen2) in candle, f32, with LoRA on chosen weights.
//!
//! The base weights are frozen tensors (dequantized from the GGUF file, so the trainer sees the
//! same weights llama.cpp runs, quantization included); each adapted weight gets a trainable
//! pair `A` (r, in), `B` (out, r), with `B` starting at zero so that step 0 is the base model.
//! The forward pass returns the log-probability of each target token, computed only at the
//! positions that are trained.

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use crate::data::Sequence;
use crate::error::TrainError;
use crate::frozen;
use crate::gguf::{AdapterTensor, Arch, Gguf, Hparams};

/// A LoRA pair on one weight.
struct Lora {
    a: Var,
    b: Var,
}

/// A linear layer: frozen weight, optional bias, optional LoRA.
struct Linear {
    name: String,
    weight: Tensor,
    bias: Option<Tensor>,
    lora: Option<Lora>,
}

impl Linear {
    fn forward(&self, x: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
        let mut y = frozen::linear(x, &self.weight)?;
        if let Some(bias) = &self.bias {
            y = y.broadcast_add(bias)?;
        }
        if let Some(lora) = &self.lora {
            // The scale on the rank-r product: one pass over (n, r), not over (n, out).
            let down = (x.matmul(&lora.a.as_tensor().t()?)? * scale)?;
            y = (y + down.matmul(&lora.b.as_tensor().t()?)?)?;
        }
        Ok(y)
    }
}

struct Block {
    attn_norm: Tensor,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    ffn_norm: Tensor,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// The weights LoRA may adapt, by their GGUF names within a block.
pub const TARGETS: [&str; 7] = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"];

/// A model ready to train.
pub(crate) struct Model {
    /// Its shape.
    pub(crate) hparams: Hparams,
    embed: Tensor,
    output: Tensor,
    output_norm: Tensor,
    blocks: Vec<Block>,
    scale: f64,
    rank: usize,
    alpha: f32,
}

use crate::fused::rms_norm;

impl Model {
    /// Loads the base model with fresh LoRA pairs of `rank` on the `targets` (names from
    /// [`TARGETS`]); `A` is drawn from `seed`, `B` is zero.
    pub(crate) fn load(path: &std::path::Path, rank: usize, alpha: f32, targets: &[String], seed: u64) -> Result<Model, TrainError> {
        let mut gguf = Gguf::open(path)?;
        let hparams = gguf.hparams()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let embed = gguf.tensor("token_embd.weight")?;
        let output = if gguf.has("output.weight") { gguf.tensor("output.weight")? } else { embed.clone() };
        let output_norm = gguf.tensor("output_norm.weight")?;
        let mut blocks = Vec::with_capacity(hparams.n_layer);
        for layer in 0..hparams.n_layer {
            let mut linear = |gguf: &mut Gguf, short: &str| -> Result<Linear, TrainError> {
                let name = format!("blk.{layer}.{short}.weight");
                let weight = gguf.tensor(&name)?;
                let bias_name = format!("blk.{layer}.{short}.bias");
                let bias = if gguf.has(&bias_name) { Some(gguf.tensor(&bias_name)?) } else { None };
                let lora = if targets.iter().any(|target| target == short) {
                    let (out, input) = weight.dims2()?;
                    // PEFT's default: Kaiming-uniform A (bound 1/sqrt(in)), zero B.
                    let bound = 1.0 / (input as f32).sqrt();
                    let values: Vec<f32> = (0..rank * input).map(|_| rng.random_range(-bound..bound)).collect();
                    let a = Var::from_tensor(&Tensor::from_vec(values, (rank, input), &Device::Cpu)?)?;
                    let b = Var::from_tensor(&Tensor::zeros((out, rank), DType::F32, &Device::Cpu)?)?;
                    Some(Lora { a, b })
                } else {
                    None
                };
                Ok(Linear { name, weight, bias, lora })
            };
            blocks.push(Block {
                attn_norm: gguf.tensor(&format!("blk.{layer}.attn_norm.weight"))?,
                q: linear(&mut gguf, "attn_q")?,
                k: linear(&mut gguf, "attn_k")?,
                v: linear(&mut gguf, "attn_v")?,
                o: linear(&mut gguf, "attn_output")?,
                ffn_norm: gguf.tensor(&format!("blk.{layer}.ffn_norm.weight"))?,
                gate: linear(&mut gguf, "ffn_gate")?,
                up: linear(&mut gguf, "ffn_up")?,
                down: linear(&mut gguf, "ffn_down")?,
            });
        }
        Ok(Model { hparams, embed, output, output_norm, blocks, scale: alpha as f64 / rank as f64, rank, alpha })
    }

    fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.blocks.iter().flat_map(|block| [&block.q, &block.k, &block.v, &block.o, &block.gate, &block.up, &block.down])
    }

    /// The trainable tensors, in a fixed order.
    pub(crate) fn vars(&self) -> Vec<Var> {
        self.linears().filter_map(|linear| linear.lora.as_ref()).flat_map(|lora| [lora.a.clone(), lora.b.clone()]).collect()
    }

    /// The LoRA pairs as they are now, for writing an adapter.
    pub(crate) fn adapter(&self) -> Vec<AdapterTensor> {
        self.linears()
            .filter_map(|linear| {
                linear.lora.as_ref().map(|lora| AdapterTensor {
                    name: linear.name.clone(),
                    a: lora.a.as_tensor().clone(),
                    b: lora.b.as_tensor().clone(),
                })
            })
            .collect()
    }

    /// The adapter's alpha and rank.
    pub(crate) fn alpha_rank(&self) -> (f32, usize) {
        (self.alpha, self.rank)
    }

    /// Sets the LoRA pairs from an adapter (same targets and rank), or to zero (`None`: the
    /// base model). A weight the adapter does not cover is set to zero.
    pub(crate) fn set_adapter(&self, adapter: Option<&crate::gguf::Adapter>) -> Result<(), TrainError> {
        if let Some(adapter) = adapter {
            if adapter.rank != self.rank && !adapter.tensors.is_empty() {
                return Err(TrainError::Settings(format!(
                    "the adapter has rank {}, the trainer was set to rank {}",
                    adapter.rank, self.rank
                )));
            }
            if (adapter.alpha - self.alpha).abs() > f32::EPSILON && !adapter.tensors.is_empty() {
                return Err(TrainError::Settings(format!(
                    "the adapter has alpha {}, the trainer was set to alpha {}",
                    adapter.alpha, self.alpha
                )));
            }
        }
        for linear in self.linears() {
            let Some(lora) = &linear.lora else { continue };
            match adapter.and_then(|adapter| adapter.tensors.get(&linear.name)) {
                Some((a, b)) => {
                    lora.a.set(a)?;
                    lora.b.set(b)?;
                }
                None => lora.b.set(&lora.b.zeros_like()?)?,
            }
        }
        Ok(())
    }

    /// For each sequence, the weighted sum of the log-probabilities of its trained tokens,
    /// with the gradient graph. The sequences are packed into one forward pass: their tokens
    /// concatenated, attention kept within each sequence (a block-diagonal causal mask) and
    /// positions counted from 0 in each, so a packed sequence sees what it would see alone.
    pub(crate) fn sequence_logprobs(&self, sequences: &[&Sequence]) -> candle_core::Result<Vec<Tensor>> {
        let hp = &self.hparams;
        let n: usize = sequences.iter().map(|sequence| sequence.tokens.len()).sum();
        let mut tokens = Vec::with_capacity(n);
        let mut position_ids = Vec::with_capacity(n);
        // Each sequence's (first token, length) in the pack: attention runs per sequence.
        let mut bounds = Vec::with_capacity(sequences.len());
        let mut picked = Vec::new();
        let mut targets = Vec::new();
        let mut weights = Vec::new();
        let mut spans = Vec::with_capacity(sequences.len());
        for sequence in sequences {
            let offset = tokens.len() as u32;
            bounds.push((tokens.len(), sequence.tokens.len()));
            let start = picked.len();
            for &position in &sequence.positions {
                picked.push(offset + position);
                targets.push(sequence.tokens[position as usize + 1]);
            }
            weights.extend_from_slice(&sequence.weights);
            spans.push((start, picked.len() - start));
            tokens.extend_from_slice(&sequence.tokens);
            position_ids.extend(0..sequence.tokens.len() as u32);
        }
        let ids = Tensor::from_slice(&tokens, n, &Device::Cpu)?;
        let mut h = self.embed.index_select(&ids, 0)?;
        let longest = sequences.iter().map(|sequence| sequence.tokens.len()).max().unwrap_or(1);
        let tables = crate::fused::RopeTables::new(&position_ids, hp.head_dim, hp.rope_base);
        let interleaved = hp.arch == Arch::Llama;
        // Attention runs per sequence (a causal mask of the longest, narrowed): a packed batch
        // of short rows would spend most of a block-diagonal n × n mask on zeros.
        let mut mask = vec![f32::NEG_INFINITY; longest * longest];
        for row in 0..longest {
            mask[row * longest..=row * longest + row].fill(0.0);
        }
        let mask = Tensor::from_vec(mask, (longest, longest), &Device::Cpu)?;
        let rep = hp.n_head / hp.n_head_kv;
        let scale = 1.0 / (hp.head_dim as f64).sqrt();
        for block in &self.blocks {
            let x = rms_norm(&h, &block.attn_norm, hp.eps)?;
            let q = block.q.forward(&x, self.scale)?.reshape((1, n, hp.n_head, hp.head_dim))?.transpose(1, 2)?.contiguous()?;
            let k = block.k.forward(&x, self.scale)?.reshape((1, n, hp.n_head_kv, hp.head_dim))?.transpose(1, 2)?.contiguous()?;
            let v = block.v.forward(&x, self.scale)?.reshape((1, n, hp.n_head_kv, hp.head_dim))?.transpose(1, 2)?.contiguous()?;
            let q = crate::fused::rope(&q, &tables, interleaved)?.squeeze(0)?;
            let k = crate::fused::rope(&k, &tables, interleaved)?.squeeze(0)?;
            let v = v.squeeze(0)?;
            let mut parts = Vec::with_capacity(bounds.len());
            for &(offset, len) in &bounds {
                let (q, k, v) = (q.narrow(1, offset, len)?.contiguous()?, k.narrow(1, offset, len)?, v.narrow(1, offset, len)?);
                let (k, v) = if rep > 1 {
                    let expand = |t: &Tensor| -> candle_core::Result<Tensor> {
                        t.unsqueeze(1)?.broadcast_as((hp.n_head_kv, rep, len, hp.head_dim))?.reshape((hp.n_head, len, hp.head_dim))
                    };
                    (expand(&k)?, expand(&v)?)
                } else {
                    (k.contiguous()?, v.contiguous()?)
                };
                let causal = mask.narrow(0, 0, len)?.narrow(1, 0, len)?;
                let scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?.broadcast_add(&causal)?;
                let attention = crate::softmax::softmax_last_dim(&scores)?;
                parts.push(attention.matmul(&v)?);
            }
            let attended = if parts.len() == 1 { parts.pop().unwrap() } else { Tensor::cat(&parts, 1)? };
            let attended = attended.transpose(0, 1)?.reshape((n, hp.n_head * hp.head_dim))?;
            h = (h + block.o.forward(&attended, self.scale)?)?;
            let x = rms_norm(&h, &block.ffn_norm, hp.eps)?;
            let gated = crate::fused::swiglu(&block.gate.forward(&x, self.scale)?, &block.up.forward(&x, self.scale)?)?;
            h = (h + block.down.forward(&gated, self.scale)?)?;
        }
        let count = picked.len();
        let index = Tensor::from_vec(picked, count, &Device::Cpu)?;
        let chosen = h.index_select(&index, 0)?;
        let normed = rms_norm(&chosen, &self.output_norm, hp.eps)?;
        let logits = frozen::linear(&normed, &self.output)?;
        let weights = Tensor::from_vec(weights, count, &Device::Cpu)?;
        let weighted = (crate::softmax::target_logprobs(&logits, targets)? * weights)?;
        spans.into_iter().map(|(start, len)| weighted.narrow(0, start, len)?.sum_all()).collect()
    }
}
