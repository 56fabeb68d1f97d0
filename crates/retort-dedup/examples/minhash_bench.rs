//! Benchmark: streams 100,000 generated short texts (about 20 words) with planted
//! near-duplicates through `MinHashIndex::insert_if_new` and prints throughput and the
//! precision/recall of the planted duplicates.
//!
//! Run: `cargo run --release -p retort-dedup --example minhash_bench [-- N [chars|words]]`

use std::collections::HashSet;
use std::time::Instant;

use retort_dedup::{normalize, MinHashConfig, MinHashIndex, MinHasher, NormalizeOptions, Shingle};

/// Deterministic generator (splitmix64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// One planted edit of a source text (word list).
fn perturb(words: &[String], vocab: &[String], rng: &mut Rng) -> String {
    let mut w = words.to_vec();
    match rng.below(6) {
        0 => {
            let i = rng.below(w.len());
            w[i] = vocab[rng.below(vocab.len())].clone();
        }
        1 => {
            w.remove(rng.below(w.len()));
        }
        2 => {
            let i = rng.below(w.len() + 1);
            w.insert(i, vocab[rng.below(vocab.len())].clone());
        }
        3 => {
            let i = rng.below(w.len() - 1);
            w.swap(i, i + 1);
        }
        4 => {
            // Case and whitespace only.
            let mut s = w.join("  ");
            s.replace_range(0..1, &s[0..1].to_uppercase());
            return format!("{s}\n");
        }
        _ => {
            // Punctuation added.
            let i = rng.below(w.len());
            w[i].push(',');
            return format!("{}.", w.join(" "));
        }
    }
    w.join(" ")
}

fn exact_jaccard(a: &str, b: &str, shingle: Shingle) -> f64 {
    let set = |s: &str| -> HashSet<String> {
        let s = normalize(s, &NormalizeOptions::default());
        match shingle {
            Shingle::Chars(k) => {
                let c: Vec<char> = s.chars().collect();
                if c.len() <= k {
                    return [s.clone()].into_iter().collect();
                }
                c.windows(k).map(|w| w.iter().collect()).collect()
            }
            Shingle::Words(k) => {
                let w: Vec<&str> = s.split_whitespace().collect();
                let k = k.min(w.len());
                w.windows(k).map(|x| x.join(" ")).collect()
            }
        }
    };
    let (x, y) = (set(a), set(b));
    x.intersection(&y).count() as f64 / x.union(&y).count() as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().expect("N")).unwrap_or(100_000);
    let shingle = match args.get(2).map(String::as_str) {
        Some("words") => Shingle::Words(3),
        _ => Shingle::Chars(5),
    };
    let mut rng = Rng(42);
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    let vocab: Vec<String> = (0..20_000)
        .map(|_| {
            let len = 2 + rng.below(8);
            (0..len).map(|_| letters[rng.below(26)] as char).collect()
        })
        .collect();

    // 10% planted near-duplicates of a random earlier original.
    let mut originals: Vec<Vec<String>> = Vec::new();
    let mut texts: Vec<String> = Vec::with_capacity(n);
    let mut planted: Vec<Option<usize>> = Vec::with_capacity(n); // index of the source text
    let mut original_text_index: Vec<usize> = Vec::new();
    for i in 0..n {
        if !originals.is_empty() && rng.below(10) == 0 {
            let src = rng.below(originals.len());
            texts.push(perturb(&originals[src], &vocab, &mut rng));
            planted.push(Some(original_text_index[src]));
        } else {
            let len = 15 + rng.below(11);
            let words: Vec<String> = (0..len).map(|_| vocab[rng.below(vocab.len())].clone()).collect();
            texts.push(words.join(" "));
            originals.push(words);
            original_text_index.push(i);
            planted.push(None);
        }
    }
    let words: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    let config = MinHashConfig { shingle, ..MinHashConfig::default() };
    println!(
        "{n} texts, {:.1} words on average, {} planted near-duplicates; shingle {shingle:?}, \
         num_perm {}, threshold {}",
        words as f64 / n as f64,
        planted.iter().flatten().count(),
        config.num_perm,
        config.threshold
    );

    // Signatures alone.
    let mut hasher = MinHasher::new(&config).unwrap();
    let mut sig = Vec::new();
    let t = Instant::now();
    let mut checksum = 0u64;
    for text in &texts {
        hasher.signature_into(text, &mut sig);
        checksum = checksum.wrapping_add(sig[0] as u64);
    }
    let secs = t.elapsed().as_secs_f64();
    println!("signatures only: {secs:.3} s, {:.0} texts/s (checksum {checksum})", n as f64 / secs);

    // Streaming dedup.
    let mut index = MinHashIndex::new(config.clone()).unwrap();
    println!("LSH {:?}", index.lsh_params());
    let t = Instant::now();
    let decisions: Vec<Option<u64>> = texts.iter().enumerate().map(|(i, text)| index.insert_if_new(i as u64, text)).collect();
    let secs = t.elapsed().as_secs_f64();
    println!("insert_if_new: {secs:.3} s, {:.0} texts/s, {} kept", n as f64 / secs, index.len());

    let rejected = decisions.iter().filter(|d| d.is_some()).count();
    let true_pos = decisions.iter().zip(&planted).filter(|(d, p)| d.is_some() && p.is_some()).count();
    let planted_n = planted.iter().flatten().count();
    // Planted pairs whose exact Jaccard reaches the threshold: what a perfect detector catches.
    let above: Vec<bool> = planted
        .iter()
        .enumerate()
        .map(|(i, p)| p.is_some_and(|s| exact_jaccard(&texts[i], &texts[s], shingle) >= config.threshold))
        .collect();
    let above_n = above.iter().filter(|x| **x).count();
    let caught_above = decisions.iter().zip(&above).filter(|(d, a)| d.is_some() && **a).count();
    println!(
        "precision {:.4} ({true_pos}/{rejected} rejected were planted), recall {:.4} \
         ({true_pos}/{planted_n} planted caught)",
        true_pos as f64 / rejected.max(1) as f64,
        true_pos as f64 / planted_n.max(1) as f64
    );
    println!(
        "planted with exact Jaccard >= {}: {above_n}; recall on those {:.4} ({caught_above}/{above_n})",
        config.threshold,
        caught_above as f64 / above_n.max(1) as f64
    );
}
