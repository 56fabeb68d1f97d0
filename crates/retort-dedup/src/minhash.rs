//! MinHash signatures and a streaming LSH index for near-duplicate text detection.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use crate::error::DedupError;
use crate::exact::PassThroughHasher;
use crate::lsh_params::{optimal_lsh_params, LshParams};
use crate::normalize::{normalize_into, NormalizeOptions};

/// How a (normalised) text is cut into the shingles whose set MinHash estimates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shingle {
    /// Overlapping windows of `k` Unicode characters. Robust for short texts and typos.
    Chars(usize),
    /// Overlapping windows of `k` whitespace-separated words.
    Words(usize),
}

/// Configuration of a [`MinHashIndex`] (and of its [`MinHasher`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinHashConfig {
    /// Shingling of the normalised text; default `chars: 5`.
    pub shingle: Shingle,
    /// Number of hash permutations (signature length); default 128.
    pub num_perm: usize,
    /// Estimated Jaccard similarity at or above which a text is a near duplicate; default 0.8.
    pub threshold: f64,
    /// LSH banding; `None` (default) derives it from `threshold` and `num_perm` by the
    /// optimisation datasketch uses (see [`optimal_lsh_params`]).
    pub lsh: Option<LshParams>,
    /// Seed of the shingle hash and of the permutations; equal seeds give equal signatures.
    pub seed: u64,
    /// Normalisation applied before shingling; default lowercase + collapse whitespace.
    pub normalize: NormalizeOptions,
}

impl Default for MinHashConfig {
    fn default() -> Self {
        Self { shingle: Shingle::Chars(5), num_perm: 128, threshold: 0.8, lsh: None, seed: 1, normalize: NormalizeOptions::default() }
    }
}

impl MinHashConfig {
    /// Checks ranges and returns the LSH banding to use.
    pub fn validate(&self) -> Result<LshParams, DedupError> {
        let k = match self.shingle {
            Shingle::Chars(k) | Shingle::Words(k) => k,
        };
        if k == 0 {
            return Err(invalid("shingle", "a window of at least 1", "0"));
        }
        if self.num_perm == 0 || self.num_perm > 1024 {
            return Err(invalid("num_perm", "1..=1024", self.num_perm));
        }
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(invalid("threshold", "a Jaccard similarity in (0, 1]", self.threshold));
        }
        match self.lsh {
            None => Ok(optimal_lsh_params(self.threshold, self.num_perm)),
            Some(p) if p.bands == 0 || p.rows == 0 || p.bands * p.rows > self.num_perm => Err(invalid(
                "lsh",
                format!("bands >= 1, rows >= 1 and bands * rows <= num_perm ({})", self.num_perm),
                format!("bands {} rows {}", p.bands, p.rows),
            )),
            Some(p) => Ok(p),
        }
    }
}

fn invalid(field: &'static str, expected: impl ToString, found: impl ToString) -> DedupError {
    DedupError::InvalidConfig { field, expected: expected.to_string(), found: found.to_string() }
}

/// Computes MinHash signatures: `num_perm` 32-bit minima of permuted 64-bit shingle hashes.
///
/// Shingles are hashed once with XXH3 (seeded); permutation `i` maps a hash `h` to the top
/// 32 bits of `a_i * h + b_i (mod 2^64)` with odd random `a_i` (multiply-add-shift
/// universal hashing), so no per-shingle allocation and one multiply per permutation.
/// The signature of a text with no shingle (empty after normalisation) is all `u32::MAX`.
#[derive(Debug, Clone)]
pub struct MinHasher {
    shingle: Shingle,
    normalize: NormalizeOptions,
    seed: u64,
    a: Vec<u64>,
    b: Vec<u64>,
    text: String,
    bounds: Vec<usize>,
    words: Vec<u64>,
    hashes: Vec<u64>,
}

impl MinHasher {
    /// Creates a hasher for `config` (validating it).
    pub fn new(config: &MinHashConfig) -> Result<Self, DedupError> {
        config.validate()?;
        let mut state = config.seed ^ 0x005E_ED0F_D3D0_u64;
        let mut a = Vec::with_capacity(config.num_perm);
        let mut b = Vec::with_capacity(config.num_perm);
        for _ in 0..config.num_perm {
            a.push(splitmix64(&mut state) | 1);
            b.push(splitmix64(&mut state));
        }
        Ok(Self {
            shingle: config.shingle,
            normalize: config.normalize,
            seed: config.seed,
            a,
            b,
            text: String::new(),
            bounds: Vec::new(),
            words: Vec::new(),
            hashes: Vec::new(),
        })
    }

    /// Signature length.
    pub fn num_perm(&self) -> usize {
        self.a.len()
    }

    /// The signature of `text`.
    pub fn signature(&mut self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        self.signature_into(text, &mut out);
        out
    }

    /// Writes the signature of `text` into `out` (resized to `num_perm`).
    pub fn signature_into(&mut self, text: &str, out: &mut Vec<u32>) {
        self.shingle_hashes(text);
        out.clear();
        out.resize(self.a.len(), u32::MAX);
        for &h in &self.hashes {
            for ((m, &a), &b) in out.iter_mut().zip(&self.a).zip(&self.b) {
                let v = (a.wrapping_mul(h).wrapping_add(b) >> 32) as u32;
                *m = (*m).min(v);
            }
        }
    }

    /// Fills `self.hashes` with one 64-bit hash per shingle of the normalised `text`.
    fn shingle_hashes(&mut self, text: &str) {
        normalize_into(text, &self.normalize, &mut self.text);
        self.hashes.clear();
        self.bounds.clear();
        let s = self.text.as_str();
        match self.shingle {
            Shingle::Chars(k) => {
                self.bounds.extend(s.char_indices().map(|(i, _)| i));
                self.bounds.push(s.len());
                let n = self.bounds.len() - 1; // number of chars
                if n == 0 {
                    return;
                }
                if n <= k {
                    self.hashes.push(xxh3_64_with_seed(s.as_bytes(), self.seed));
                    return;
                }
                for i in 0..=(n - k) {
                    let piece = &s.as_bytes()[self.bounds[i]..self.bounds[i + k]];
                    self.hashes.push(xxh3_64_with_seed(piece, self.seed));
                }
            }
            Shingle::Words(k) => {
                let words = &mut self.words;
                words.clear();
                words.extend(s.split_whitespace().map(|w| xxh3_64_with_seed(w.as_bytes(), self.seed)));
                if words.is_empty() {
                    return;
                }
                let k = k.min(words.len());
                for window in words.windows(k) {
                    let mut h = self.seed ^ 0xC0FF_EE00_D15E_A5E5;
                    for &w in window {
                        h = (h.rotate_left(23) ^ w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    }
                    self.hashes.push(fmix64(h));
                }
            }
        }
    }
}

/// Estimated Jaccard similarity of two signatures: the fraction of equal positions.
/// Returns 0 when the lengths differ or are zero.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let equal = a.iter().zip(b).filter(|(x, y)| x == y).count();
    equal as f64 / a.len() as f64
}

const NONE: u32 = u32::MAX;

/// A streaming near-duplicate index: MinHash signatures bucketed by LSH bands.
///
/// [`insert_if_new`](Self::insert_if_new) looks up the candidates that share a band with the
/// text, confirms them by estimated Jaccard similarity `>= threshold`, and either keeps the
/// text or returns the id of the most similar kept record. Memory per kept record is
/// `4 * num_perm` bytes of signature plus about `16 * bands` bytes of buckets.
#[derive(Debug, Clone)]
pub struct MinHashIndex {
    config: MinHashConfig,
    params: LshParams,
    hasher: MinHasher,
    ids: Vec<u64>,
    sigs: Vec<u32>,
    /// Per band: band key -> most recently inserted record index with that key.
    tables: Vec<HashMap<u64, u32, BuildHasherDefault<PassThroughHasher>>>,
    /// `next[record * bands + band]`: previous record with the same key in that band.
    next: Vec<u32>,
    /// Query generation at which each record was last compared, to compare each once.
    stamps: Vec<u32>,
    stamp: u32,
    sig_buf: Vec<u32>,
    key_buf: Vec<u64>,
}

impl MinHashIndex {
    /// Creates an empty index, validating `config`.
    pub fn new(config: MinHashConfig) -> Result<Self, DedupError> {
        let params = config.validate()?;
        let hasher = MinHasher::new(&config)?;
        Ok(Self {
            tables: (0..params.bands).map(|_| HashMap::default()).collect(),
            config,
            params,
            hasher,
            ids: Vec::new(),
            sigs: Vec::new(),
            next: Vec::new(),
            stamps: Vec::new(),
            stamp: 0,
            sig_buf: Vec::new(),
            key_buf: Vec::new(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &MinHashConfig {
        &self.config
    }

    /// The LSH banding in use (given or derived).
    pub fn lsh_params(&self) -> LshParams {
        self.params
    }

    /// Number of kept records.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no record has been kept.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Keeps `text` under `id` unless a kept record has estimated Jaccard similarity
    /// `>= threshold` with it; then returns that record's id (the most similar one, the
    /// earliest on ties) and leaves the index unchanged.
    pub fn insert_if_new(&mut self, id: u64, text: &str) -> Option<u64> {
        self.prepare(text);
        if let Some((found, _)) = self.best_candidate() {
            return Some(found);
        }
        self.push_prepared(id);
        None
    }

    /// Like [`insert_if_new`](Self::insert_if_new) but also returns the estimated Jaccard
    /// similarity of the near duplicate.
    pub fn insert_if_new_with_similarity(&mut self, id: u64, text: &str) -> Option<(u64, f64)> {
        self.prepare(text);
        if let Some(found) = self.best_candidate() {
            return Some(found);
        }
        self.push_prepared(id);
        None
    }

    /// The kept record most similar to `text` with estimated Jaccard `>= threshold`, and
    /// that similarity, without inserting.
    pub fn query(&mut self, text: &str) -> Option<(u64, f64)> {
        self.prepare(text);
        self.best_candidate()
    }

    /// Keeps `text` under `id` without checking for duplicates (e.g. to seed the index with
    /// records accepted earlier).
    pub fn insert(&mut self, id: u64, text: &str) {
        self.prepare(text);
        self.push_prepared(id);
    }

    /// Computes the signature and band keys of `text` into the scratch buffers.
    fn prepare(&mut self, text: &str) {
        self.hasher.signature_into(text, &mut self.sig_buf);
        self.key_buf.clear();
        let rows = self.params.rows;
        for band in 0..self.params.bands {
            let slice = &self.sig_buf[band * rows..(band + 1) * rows];
            self.key_buf.push(band_key(band, slice));
        }
    }

    fn best_candidate(&mut self) -> Option<(u64, f64)> {
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.stamps.iter_mut().for_each(|s| *s = 0);
            self.stamp = 1;
        }
        let n = self.hasher.num_perm();
        let bands = self.params.bands;
        let mut best: Option<(u32, f64)> = None;
        for (band, key) in self.key_buf.iter().enumerate() {
            let mut cur = self.tables[band].get(key).copied().unwrap_or(NONE);
            while cur != NONE {
                let c = cur as usize;
                if self.stamps[c] != self.stamp {
                    self.stamps[c] = self.stamp;
                    let sim = estimate_jaccard(&self.sig_buf, &self.sigs[c * n..(c + 1) * n]);
                    let better = match best {
                        None => true,
                        Some((bi, bs)) => sim > bs || (sim == bs && cur < bi),
                    };
                    if sim >= self.config.threshold && better {
                        best = Some((cur, sim));
                    }
                }
                cur = self.next[c * bands + band];
            }
        }
        best.map(|(i, s)| (self.ids[i as usize], s))
    }

    fn push_prepared(&mut self, id: u64) {
        let idx = self.ids.len() as u32;
        self.ids.push(id);
        self.sigs.extend_from_slice(&self.sig_buf);
        self.stamps.push(0);
        for (band, key) in self.key_buf.iter().enumerate() {
            let prev = self.tables[band].insert(*key, idx).unwrap_or(NONE);
            self.next.push(prev);
        }
    }
}

/// Hash of one band's rows (mixed with the band number).
fn band_key(band: usize, rows: &[u32]) -> u64 {
    let mut h = 0x2545_F491_4F6C_DD1D_u64 ^ (band as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for pair in rows.chunks(2) {
        let v = pair[0] as u64 | ((*pair.get(1).unwrap_or(&0) as u64) << 32);
        h = (h ^ v).wrapping_mul(0xFF51_AFD7_ED55_8CCD).rotate_left(29);
    }
    fmix64(h ^ rows.len() as u64)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    fmix64_splitmix(*state)
}

fn fmix64_splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    h ^= h >> 33;
    h = h.wrapping_mul(0xC4CE_B9FE_1A85_EC53);
    h ^ (h >> 33)
}
