//! Reading a GGUF model's weights (dequantized to f32) and writing and reading GGUF LoRA
//! adapters in the layout llama.cpp's `llama_adapter_lora_init` loads.
//!
//! An adapter holds, for each adapted weight `blk.N.NAME.weight` of shape (out, in), the
//! tensors `blk.N.NAME.weight.lora_a` (r, in) and `…lora_b` (out, r), and the keys
//! `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`; llama.cpp adds
//! `alpha / r · B·A·x` to the layer's output, as PEFT does.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

use crate::error::TrainError;

/// The architectures the trainer knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// Llama (SmolLM2): rotary embedding on adjacent pairs (llama.cpp's `NORM`).
    Llama,
    /// Qwen2: biases on q, k, v; rotary embedding on the two halves (`NEOX`).
    Qwen2,
}

impl Arch {
    /// The GGUF name.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
        }
    }
}

/// The shape of the network.
#[derive(Debug, Clone)]
pub struct Hparams {
    /// The architecture.
    pub arch: Arch,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Transformer blocks.
    pub n_layer: usize,
    /// Attention heads.
    pub n_head: usize,
    /// Key/value heads (grouped-query attention).
    pub n_head_kv: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// RMS norm epsilon.
    pub eps: f64,
    /// Rotary embedding base.
    pub rope_base: f32,
    /// Context the model was trained for.
    pub context: usize,
}

/// A GGUF model opened for training: its shape and its tensors, read on demand.
pub(crate) struct Gguf {
    path: std::path::PathBuf,
    content: gguf_file::Content,
    file: std::fs::File,
}

impl Gguf {
    /// Opens a GGUF file and reads its header.
    pub(crate) fn open(path: &Path) -> Result<Gguf, TrainError> {
        let mut file = std::fs::File::open(path).map_err(TrainError::io("open", path))?;
        let content = gguf_file::Content::read(&mut file)
            .map_err(|error| TrainError::Model { path: path.to_path_buf(), message: format!("not a readable GGUF file: {error}") })?;
        Ok(Gguf { path: path.to_path_buf(), content, file })
    }

    fn problem(&self, message: impl Into<String>) -> TrainError {
        TrainError::Model { path: self.path.clone(), message: message.into() }
    }

    fn meta(&self, key: &str) -> Result<&Value, TrainError> {
        self.content.metadata.get(key).ok_or_else(|| self.problem(format!("the key {key} is missing")))
    }

    fn meta_u32(&self, key: &str) -> Result<usize, TrainError> {
        self.meta(key)?.to_u32().map(|value| value as usize).map_err(|error| self.problem(format!("{key}: {error}")))
    }

    /// A metadata string, if present.
    pub(crate) fn meta_str(&self, key: &str) -> Option<String> {
        self.content.metadata.get(key).and_then(|value| value.to_string().ok()).cloned()
    }

    /// The network's shape; an architecture other than llama and qwen2 is refused.
    pub(crate) fn hparams(&self) -> Result<Hparams, TrainError> {
        let arch_name = self.meta_str("general.architecture").unwrap_or_default();
        let arch = match arch_name.as_str() {
            "llama" => Arch::Llama,
            "qwen2" => Arch::Qwen2,
            other => return Err(self.problem(format!("the trainer knows the llama and qwen2 architectures, found {other:?}"))),
        };
        let key = |name: &str| format!("{arch_name}.{name}");
        let n_embd = self.meta_u32(&key("embedding_length"))?;
        let n_head = self.meta_u32(&key("attention.head_count"))?;
        let n_head_kv = self.meta_u32(&key("attention.head_count_kv")).unwrap_or(n_head);
        let eps = self.meta(&key("attention.layer_norm_rms_epsilon"))?.to_f32().map_err(|error| self.problem(error.to_string()))? as f64;
        let rope_base = self.content.metadata.get(&key("rope.freq_base")).and_then(|value| value.to_f32().ok()).unwrap_or(10_000.0);
        let head_dim = self.meta_u32(&key("rope.dimension_count")).unwrap_or(n_embd / n_head.max(1));
        Ok(Hparams {
            arch,
            n_embd,
            n_layer: self.meta_u32(&key("block_count"))?,
            n_head,
            n_head_kv,
            head_dim,
            eps,
            rope_base,
            context: self.meta_u32(&key("context_length")).unwrap_or(2048),
        })
    }

    /// Whether the file holds a tensor of this name.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.content.tensor_infos.contains_key(name)
    }

    /// A tensor, dequantized to f32, in row-major (PyTorch) order: (out, in) for a weight.
    pub(crate) fn tensor(&mut self, name: &str) -> Result<Tensor, TrainError> {
        let tensor =
            self.content.tensor(&mut self.file, name, &Device::Cpu).map_err(|error| self.problem(format!("tensor {name}: {error}")))?;
        Ok(tensor.dequantize(&Device::Cpu)?)
    }
}

/// One adapted weight: `name` is the base tensor's (`blk.3.attn_q.weight`).
pub(crate) struct AdapterTensor {
    /// The base weight's name.
    pub name: String,
    /// (r, in).
    pub a: Tensor,
    /// (out, r).
    pub b: Tensor,
}

/// Writes a LoRA adapter that llama.cpp loads for a model of `arch`. The file appears under
/// its name only when complete.
pub(crate) fn write_adapter(path: &Path, arch: Arch, alpha: f32, tensors: &[AdapterTensor]) -> Result<(), TrainError> {
    let partial = path.with_extension("gguf.partial");
    let mut quantized = Vec::with_capacity(tensors.len() * 2);
    for tensor in tensors {
        quantized.push((format!("{}.lora_a", tensor.name), QTensor::quantize(&tensor.a.contiguous()?, GgmlDType::F32)?));
        quantized.push((format!("{}.lora_b", tensor.name), QTensor::quantize(&tensor.b.contiguous()?, GgmlDType::F32)?));
    }
    let metadata = [
        ("general.architecture", Value::String(arch.name().to_string())),
        ("general.type", Value::String("adapter".to_string())),
        ("general.name", Value::String("retort LoRA".to_string())),
        ("adapter.type", Value::String("lora".to_string())),
        ("adapter.lora.alpha", Value::F32(alpha)),
    ];
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(key, value)| (*key, value)).collect();
    let refs: Vec<(&str, &QTensor)> = quantized.iter().map(|(name, tensor)| (name.as_str(), tensor)).collect();
    let mut file = std::io::BufWriter::new(std::fs::File::create(&partial).map_err(TrainError::io("create", &partial))?);
    gguf_file::write(&mut file, &metadata, &refs)?;
    let file = file.into_inner().map_err(|error| TrainError::Io { action: "write", path: partial.clone(), source: error.into_error() })?;
    file.sync_all().map_err(TrainError::io("write", &partial))?;
    std::fs::rename(&partial, path).map_err(TrainError::io("rename", path))?;
    Ok(())
}

/// A LoRA adapter read back: alpha and the (a, b) pairs by base weight name.
pub struct Adapter {
    /// The adapter's alpha.
    pub alpha: f32,
    /// Its rank.
    pub rank: usize,
    /// (a, b) by base weight name.
    pub tensors: HashMap<String, (Tensor, Tensor)>,
}

/// Reads an adapter written by [`write_adapter`] (or any llama.cpp LoRA adapter in f32/f16).
pub fn read_adapter(path: &Path) -> Result<Adapter, TrainError> {
    let mut gguf = Gguf::open(path)?;
    if gguf.meta_str("general.type").as_deref() != Some("adapter") {
        return Err(gguf.problem("expected a LoRA adapter (general.type = adapter)"));
    }
    let alpha = gguf.content.metadata.get("adapter.lora.alpha").and_then(|value| value.to_f32().ok()).unwrap_or(0.0);
    let names: Vec<String> = gguf.content.tensor_infos.keys().filter_map(|name| name.strip_suffix(".lora_a").map(str::to_string)).collect();
    let mut tensors = HashMap::new();
    let mut rank = 0;
    for name in names {
        let a = gguf.tensor(&format!("{name}.lora_a"))?;
        let b = gguf.tensor(&format!("{name}.lora_b"))?;
        rank = a.dim(0)?;
        tensors.insert(name, (a, b));
    }
    Ok(Adapter { alpha, rank, tensors })
}
