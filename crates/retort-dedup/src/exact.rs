//! Exact deduplication over normalised text, storing 128-bit hashes instead of strings.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_128;

use crate::normalize::{normalize_into, NormalizeOptions};

/// A set of normalised-text hashes that remembers which record id first produced each one.
///
/// Memory is about 32 bytes per kept record (a 128-bit XXH3 hash, the id, and hash-table
/// overhead), independent of text length.
#[derive(Debug, Clone)]
pub struct ExactIndex {
    opts: NormalizeOptions,
    seen: HashMap<u128, u64, BuildHasherDefault<PassThroughHasher>>,
    buf: String,
}

impl ExactIndex {
    /// Creates an empty index that normalises text with `opts` before hashing.
    pub fn new(opts: NormalizeOptions) -> Self {
        Self { opts, seen: HashMap::default(), buf: String::new() }
    }

    /// The 128-bit hash of `text` after normalisation with this index's options.
    pub fn hash(&mut self, text: &str) -> u128 {
        normalize_into(text, &self.opts, &mut self.buf);
        xxh3_128(self.buf.as_bytes())
    }

    /// Keeps `text` under `id` unless an equal normalised text was kept before; in that case
    /// returns the id of the earlier record and leaves the index unchanged.
    pub fn insert_if_new(&mut self, id: u64, text: &str) -> Option<u64> {
        let h = self.hash(text);
        match self.seen.entry(h) {
            std::collections::hash_map::Entry::Occupied(e) => Some(*e.get()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(id);
                None
            }
        }
    }

    /// The id of a kept record whose normalised text equals that of `text`, if any.
    pub fn find(&mut self, text: &str) -> Option<u64> {
        let h = self.hash(text);
        self.seen.get(&h).copied()
    }

    /// Number of kept records.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no record has been kept.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The normalisation options in use.
    pub fn options(&self) -> &NormalizeOptions {
        &self.opts
    }
}

impl Default for ExactIndex {
    fn default() -> Self {
        Self::new(NormalizeOptions::default())
    }
}

/// Keys are already uniformly distributed hashes, so the table hashes them by folding.
#[derive(Default)]
pub(crate) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
    fn write_u128(&mut self, n: u128) {
        self.0 ^= (n as u64) ^ ((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_duplicates_after_normalisation() {
        // (text, expected result of insert_if_new) in order; ids are the positions.
        let cases: &[(&str, Option<u64>)] = &[
            ("Hello world", None),
            ("hello   WORLD", Some(0)),
            ("Hello world!", None),
            ("  hello world\n", Some(0)),
            ("Hello, world", None),
            ("goodbye", None),
            ("GOODBYE", Some(5)),
        ];
        let mut idx = ExactIndex::default();
        for (i, (text, want)) in cases.iter().enumerate() {
            assert_eq!(idx.insert_if_new(i as u64, text), *want, "text {text:?}");
        }
        assert_eq!(idx.len(), 4);
        assert_eq!(idx.find("HELLO WORLD"), Some(0));
        assert_eq!(idx.find("nothing like it"), None);
    }

    #[test]
    fn strip_punctuation_merges_more() {
        let mut idx = ExactIndex::new(NormalizeOptions::AGGRESSIVE);
        assert_eq!(idx.insert_if_new(1, "Hello, world!"), None);
        assert_eq!(idx.insert_if_new(2, "hello world"), Some(1));
        assert_eq!(idx.insert_if_new(3, "hello... world?"), Some(1));
        assert_eq!(idx.len(), 1);
    }
}
