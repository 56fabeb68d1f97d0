//! Deterministic seeds: every model request of a run gets a seed derived from a base seed.

/// Mixes a base seed with a sequence of indices (splitmix64 finaliser per step), so that
/// `derive_seed(s, &[step])` differs for every step and is the same on every run.
pub fn derive_seed(base: u64, parts: &[u64]) -> u64 {
    let mut state = mix(base ^ 0x5851_f42d_4c95_7f2d);
    for part in parts {
        state = mix(state ^ mix(part.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    }
    // Keep it within i64 so servers that read signed integers accept it.
    state >> 1
}

/// A stable 64-bit hash of bytes (FNV-1a).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
