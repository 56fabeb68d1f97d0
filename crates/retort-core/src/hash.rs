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

/// [`stable_hash`] fed one part at a time, so that a large part (an input file) can be read in
/// pieces instead of being held in memory. Equal parts give the same digest as `stable_hash`.
pub struct StableHasher(Sha256);

impl Default for StableHasher {
    fn default() -> StableHasher {
        StableHasher(Sha256::new())
    }
}

impl StableHasher {
    /// Adds a part held in memory.
    pub fn part(&mut self, bytes: &[u8]) {
        self.0.update((bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    /// Adds the contents of a file as one part, read in pieces; a file that cannot be read
    /// counts as an empty part.
    pub fn file(&mut self, path: &std::path::Path) {
        use std::io::Read;
        let Ok(mut file) = std::fs::File::open(path) else { return self.part(&[]) };
        let Ok(len) = file.metadata().map(|metadata| metadata.len()) else { return self.part(&[]) };
        self.0.update(len.to_le_bytes());
        let mut buffer = vec![0u8; 1 << 16];
        let mut left = len;
        while left > 0 {
            let want = buffer.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            match file.read(&mut buffer[..want]) {
                Ok(0) | Err(_) => break,
                Ok(read) => {
                    self.0.update(&buffer[..read]);
                    left -= read as u64;
                }
            }
        }
    }

    /// The digest in hex.
    pub fn finish_hex(self) -> String {
        let digest: [u8; 32] = self.0.finalize().into();
        hex::encode(digest)
    }
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
    fn the_streaming_hasher_matches_stable_hash() {
        let dir = std::env::temp_dir().join(format!("retort-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("big");
        let contents: Vec<u8> = (0..200_000u32).map(|index| (index % 251) as u8).collect();
        std::fs::write(&file, &contents).unwrap();
        let mut hasher = StableHasher::default();
        hasher.part(b"recipe");
        hasher.file(&file);
        hasher.file(&dir.join("missing"));
        assert_eq!(hasher.finish_hex(), stable_hash_hex(&[b"recipe", &contents, b""]));
        std::fs::remove_dir_all(dir).unwrap();
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
