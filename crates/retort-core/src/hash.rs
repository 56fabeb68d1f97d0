//! Stable hashes for cache keys, fingerprints and derived seeds.

use sha2::{Digest, Sha256};

/// Hashes a sequence of byte parts; each part is length-prefixed so `["ab","c"]` and
/// `["a","bc"]` differ.
pub fn stable_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// The hex form of [`stable_hash`].
pub fn stable_hash_hex(parts: &[&[u8]]) -> String {
    hex::encode(stable_hash(parts))
}

/// Derives a per-record, per-sample seed from the run seed and a path of identifiers.
///
/// The result fits in 31 bits, since some servers read `seed` as a signed 32-bit integer.
pub fn derive_seed(run_seed: u64, parts: &[&str]) -> u64 {
    let run_seed_bytes = run_seed.to_le_bytes();
    let mut all: Vec<&[u8]> = vec![&run_seed_bytes];
    all.extend(parts.iter().map(|part| part.as_bytes()));
    let digest = stable_hash(&all);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first) & 0x7fff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_length_prefixed() {
        assert_ne!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"a", b"bc"]));
        assert_eq!(stable_hash(&[b"ab", b"c"]), stable_hash(&[b"ab", b"c"]));
    }

    #[test]
    fn seeds_are_stable_and_distinct() {
        let first = derive_seed(7, &["steps[1]", "3", "0"]);
        assert_eq!(first, derive_seed(7, &["steps[1]", "3", "0"]));
        assert_ne!(first, derive_seed(7, &["steps[1]", "3", "1"]));
        assert_ne!(first, derive_seed(8, &["steps[1]", "3", "0"]));
        assert!(first <= i32::MAX as u64);
    }
}
