//! Embedding deduplication and diversity queries by cosine similarity (exact, brute force).

use crate::error::DedupError;

/// A brute-force cosine-similarity index over L2-normalised embeddings.
///
/// Vectors are normalised on insertion and stored contiguously, so a query is one pass of
/// dot products over a `Vec<f32>`; this is meant for up to about 100k vectors. The dimension
/// is fixed by the first vector inserted.
#[derive(Debug, Clone)]
pub struct CosineIndex {
    threshold: f32,
    dim: usize,
    ids: Vec<u64>,
    data: Vec<f32>,
    buf: Vec<f32>,
}

impl CosineIndex {
    /// Creates an empty index; `insert_if_new` rejects vectors with cosine similarity
    /// `>= threshold` (in `[-1, 1]`) to a kept one.
    pub fn new(threshold: f32) -> Result<Self, DedupError> {
        if !(-1.0..=1.0).contains(&threshold) {
            return Err(DedupError::InvalidConfig {
                field: "threshold",
                expected: "a cosine similarity in [-1, 1]".into(),
                found: threshold.to_string(),
            });
        }
        Ok(Self { threshold, dim: 0, ids: Vec::new(), data: Vec::new(), buf: Vec::new() })
    }

    /// The similarity threshold.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The embedding dimension (0 while empty).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of kept vectors.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no vector has been kept.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Keeps `embedding` under `id` unless a kept vector has cosine similarity
    /// `>= threshold` with it; then returns the most similar kept vector's id and similarity
    /// and leaves the index unchanged.
    pub fn insert_if_new(&mut self, id: u64, embedding: &[f32]) -> Result<Option<(u64, f32)>, DedupError> {
        self.load_query("CosineIndex::insert_if_new", embedding)?;
        if let Some((i, sim)) = self.best() {
            if sim >= self.threshold {
                return Ok(Some((self.ids[i], sim)));
            }
        }
        self.push_query(id);
        Ok(None)
    }

    /// Keeps `embedding` under `id` without checking for duplicates.
    pub fn insert(&mut self, id: u64, embedding: &[f32]) -> Result<(), DedupError> {
        self.load_query("CosineIndex::insert", embedding)?;
        self.push_query(id);
        Ok(())
    }

    /// The `k` kept vectors most similar to `embedding`, most similar first (ties: earliest
    /// inserted first), as `(id, cosine similarity)`. Empty when the index is empty.
    pub fn nearest(&self, embedding: &[f32], k: usize) -> Result<Vec<(u64, f32)>, DedupError> {
        let mut query = Vec::with_capacity(embedding.len());
        self.check_dim("CosineIndex::nearest", embedding)?;
        normalised("CosineIndex::nearest", embedding, &mut query)?;
        if self.is_empty() || k == 0 {
            return Ok(Vec::new());
        }
        let mut all: Vec<(usize, f32)> = self.data.chunks_exact(self.dim).map(|row| dot(row, &query)).enumerate().collect();
        let k = k.min(all.len());
        let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, order);
            all.truncate(k);
        }
        all.sort_by(order);
        Ok(all.into_iter().map(|(i, s)| (self.ids[i], s)).collect())
    }

    /// The highest cosine similarity between `embedding` and any kept vector (`None` when
    /// empty). `1 - max_similarity` is a distance-to-existing diversity score.
    pub fn max_similarity(&self, embedding: &[f32]) -> Result<Option<f32>, DedupError> {
        Ok(self.nearest(embedding, 1)?.first().map(|&(_, s)| s))
    }

    fn check_dim(&self, operation: &'static str, embedding: &[f32]) -> Result<(), DedupError> {
        if self.dim != 0 && embedding.len() != self.dim {
            return Err(DedupError::DimensionMismatch { operation, expected: self.dim, found: embedding.len() });
        }
        Ok(())
    }

    fn load_query(&mut self, operation: &'static str, embedding: &[f32]) -> Result<(), DedupError> {
        self.check_dim(operation, embedding)?;
        normalised(operation, embedding, &mut self.buf)
    }

    fn best(&self) -> Option<(usize, f32)> {
        let mut best: Option<(usize, f32)> = None;
        for (i, row) in self.data.chunks_exact(self.dim.max(1)).enumerate() {
            let s = dot(row, &self.buf);
            if best.is_none_or(|(_, b)| s > b) {
                best = Some((i, s));
            }
        }
        best
    }

    fn push_query(&mut self, id: u64) {
        if self.dim == 0 {
            self.dim = self.buf.len();
        }
        self.ids.push(id);
        self.data.extend_from_slice(&self.buf);
    }
}

/// Writes `v / |v|` into `out`, rejecting empty, zero or non-finite vectors.
fn normalised(operation: &'static str, v: &[f32], out: &mut Vec<f32>) -> Result<(), DedupError> {
    if v.is_empty() {
        return Err(DedupError::BadEmbedding { operation, found: "an empty vector".into() });
    }
    if let Some(pos) = v.iter().position(|x| !x.is_finite()) {
        return Err(DedupError::BadEmbedding { operation, found: format!("a non-finite value {} at index {pos}", v[pos]) });
    }
    let norm = dot(v, v).sqrt();
    if norm == 0.0 || !norm.is_finite() {
        return Err(DedupError::BadEmbedding { operation, found: format!("norm {norm}") });
    }
    out.clear();
    out.extend(v.iter().map(|x| x / norm));
    Ok(())
}

/// Dot product with sixteen independent accumulators so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let ca = a.chunks_exact(16);
    let cb = b.chunks_exact(16);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = 0.0;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}
