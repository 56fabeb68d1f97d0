//! Deduplication for retort: exact (normalised-text hashes), near-duplicate (MinHash + LSH;
//! ROUGE-L over word sequences) and semantic (cosine similarity over embeddings).
//!
//! Every index is streaming: records are offered one at a time with `insert_if_new`, which
//! either keeps the record (returns `None`) or names the earlier record it duplicates.
//!
//! ```
//! use retort_dedup::{MinHashConfig, MinHashIndex};
//!
//! let mut index = MinHashIndex::new(MinHashConfig::default()).unwrap();
//! assert_eq!(index.insert_if_new(1, "The quick brown fox jumps over the lazy dog near the river bank"), None);
//! assert_eq!(index.insert_if_new(2, "the quick brown fox jumps over the lazy dog near the river bank!"), Some(1));
//! assert_eq!(index.insert_if_new(3, "An entirely different sentence about compilers and linkers"), None);
//! ```

mod cosine;
mod error;
mod exact;
mod lsh_params;
mod minhash;
mod normalize;
mod rouge;

pub use cosine::CosineIndex;
pub use error::DedupError;
pub use exact::ExactIndex;
pub use lsh_params::{optimal_lsh_params, LshParams};
pub use minhash::{estimate_jaccard, MinHashConfig, MinHashIndex, MinHasher, Shingle};
pub use normalize::{normalize, normalize_into, NormalizeOptions};
pub use rouge::{rouge_l, RougeIndex};
