//! Benchmark: brute-force cosine index with 384-dimensional vectors (all-MiniLM-L6-v2 size):
//! streaming `insert_if_new` of N random vectors, then `nearest(k = 10)` queries against
//! the full index.
//!
//! Run: `cargo run --release -p retort-dedup --example cosine_bench [-- N]`

use std::time::Instant;

use retort_dedup::CosineIndex;

fn main() {
    let n: usize = std::env::args().nth(1).map(|s| s.parse().expect("N")).unwrap_or(20_000);
    let dim = 384;
    let mut state = 7u64;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let vectors: Vec<Vec<f32>> = (0..n).map(|_| (0..dim).map(|_| next()).collect()).collect();
    let mut index = CosineIndex::new(0.95).unwrap();
    let t = Instant::now();
    let mut rejected = 0;
    for (i, v) in vectors.iter().enumerate() {
        rejected += index.insert_if_new(i as u64, v).unwrap().is_some() as usize;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("insert_if_new of {n} vectors (dim {dim}): {secs:.2} s, {:.0} vectors/s, {rejected} rejected", n as f64 / secs);
    let queries = 200;
    let t = Instant::now();
    for v in vectors.iter().take(queries) {
        let _ = index.nearest(v, 10).unwrap();
    }
    let per = t.elapsed().as_secs_f64() / queries as f64;
    println!(
        "nearest(k=10) over {} vectors: {:.2} ms per query, {:.2} G multiply-adds/s",
        index.len(),
        per * 1e3,
        (index.len() * dim) as f64 / per / 1e9
    );
}
