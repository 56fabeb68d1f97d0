//! Sentence embeddings from a GGUF model through llama.cpp: the embedder that `dedup` uses
//! when a recipe names `gguf:` instead of the default all-MiniLM-L6-v2.

use std::sync::{Arc, OnceLock};

use retort_llama::{LocalBackend, LocalConfig};

/// Embeds with a local model's worker process: mean-pooled over tokens, L2-normalised.
pub(crate) struct GgufEmbedder {
    backend: Arc<LocalBackend>,
    model: String,
    dim: OnceLock<usize>,
}

impl GgufEmbedder {
    /// Starts (lazily, on the first text) a worker for `model`: a known local model's name or a GGUF path.
    pub(crate) fn new(model: &str) -> Result<GgufEmbedder, String> {
        let backend =
            crate::llm::local_backend(&LocalConfig::for_model(model)).map_err(|error| format!("embedding model {model}: {error}"))?;
        Ok(GgufEmbedder { backend: Arc::new(backend), model: model.to_string(), dim: OnceLock::new() })
    }

    /// Runs the worker's async call to completion from a synchronous caller: a blocking thread
    /// of the run's runtime (as [`Embedder`] asks of async callers), or a thread with none.
    fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> Result<T, String> {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => Ok(handle.block_on(work)),
            Err(_) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| format!("starting a runtime for {}: {error}", self.model))?;
                Ok(runtime.block_on(work))
            }
        }
    }
}

impl crate::llm::embedding::Embed for GgufEmbedder {
    fn dim(&self) -> usize {
        if let Some(dim) = self.dim.get() {
            return *dim;
        }
        match self.embed(&[" "]) {
            Ok(vectors) => vectors.first().map_or(0, Vec::len),
            Err(_) => 0,
        }
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let owned: Vec<String> = texts.iter().map(|text| text.to_string()).collect();
        let vectors = self.block_on(self.backend.embed(&owned))?.map_err(|error| format!("{} (model {})", error, self.model))?;
        if let Some(first) = vectors.first() {
            let _ = self.dim.set(first.len());
        }
        Ok(vectors)
    }
}
