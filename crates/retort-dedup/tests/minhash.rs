//! Data-driven tests of the MinHash/LSH near-duplicate index.

use std::collections::HashSet;

use retort_dedup::{
    estimate_jaccard, optimal_lsh_params, DedupError, LshParams, MinHashConfig, MinHashIndex, MinHasher, NormalizeOptions, Shingle,
};

#[derive(serde::Deserialize)]
struct Fixture {
    near_duplicates: Vec<(String, String)>,
    distinct: Vec<String>,
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("data/near_duplicates.json")).unwrap()
}

/// Exact Jaccard similarity of character k-shingle sets, computed independently of the crate.
fn exact_char_jaccard(a: &str, b: &str, k: usize) -> f64 {
    let norm = |s: &str| retort_dedup::normalize(s, &NormalizeOptions::default());
    let set = |s: &str| -> HashSet<String> {
        let chars: Vec<char> = norm(s).chars().collect();
        if chars.len() <= k {
            return [chars.iter().collect()].into_iter().collect();
        }
        chars.windows(k).map(|w| w.iter().collect()).collect()
    };
    let (sa, sb) = (set(a), set(b));
    sa.intersection(&sb).count() as f64 / sa.union(&sb).count() as f64
}

#[test]
fn planted_near_duplicates_are_caught_and_their_jaccard_is_estimated() {
    let fx = fixture();
    let config = MinHashConfig::default();
    for (i, (original, variant)) in fx.near_duplicates.iter().enumerate() {
        let truth = exact_char_jaccard(original, variant, 5);
        assert!(truth >= 0.8, "fixture pair {i} has exact Jaccard {truth}, below 0.8");
        let mut index = MinHashIndex::new(config.clone()).unwrap();
        assert_eq!(index.insert_if_new(10, original), None);
        let (id, est) = index
            .insert_if_new_with_similarity(11, variant)
            .unwrap_or_else(|| panic!("pair {i} (exact Jaccard {truth:.3}) was not caught: {variant:?}"));
        assert_eq!(id, 10);
        assert!((est - truth).abs() < 0.15, "pair {i}: estimate {est} vs exact {truth}");
        assert_eq!(index.len(), 1, "a rejected text must not be inserted");
    }
}

#[test]
fn distinct_texts_are_all_kept() {
    let fx = fixture();
    let mut index = MinHashIndex::new(MinHashConfig::default()).unwrap();
    for (i, text) in fx.distinct.iter().enumerate() {
        assert_eq!(index.insert_if_new(i as u64, text), None, "distinct text {i} rejected");
    }
    assert_eq!(index.len(), fx.distinct.len());
    // The variants of the pairs whose originals are in `distinct` are now caught by the
    // streaming index, pointing at the right original.
    for (original, variant) in &fx.near_duplicates {
        if let Some(pos) = fx.distinct.iter().position(|d| d == original) {
            assert_eq!(index.insert_if_new(999, variant), Some(pos as u64), "{variant:?}");
        }
    }
}

/// A text of `n` distinct word tokens numbered from `start`.
fn tokens(start: usize, n: usize) -> String {
    (start..start + n).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn threshold_decides_on_controlled_jaccard() {
    // With single-word shingles over distinct tokens, texts [0, 100) and [d, 100 + d) have
    // exact Jaccard (100 - d) / (100 + d). Rejections are chosen well above the threshold:
    // LSH misses a pair with probability (1 - J^rows)^bands, about 1% just above it.
    // (shift d, exact Jaccard, threshold, expected rejected)
    let cases: &[(usize, f64, f64, bool)] = &[
        (0, 1.0, 0.8, true),
        (2, 0.961, 0.8, true),
        (3, 0.942, 0.8, true),
        (20, 0.667, 0.8, false),
        (33, 0.504, 0.8, false),
        (60, 0.25, 0.8, false),
        (10, 0.818, 0.5, true),
        (25, 0.6, 0.4, true),
        (5, 0.905, 0.99, false),
        (60, 0.25, 0.5, false),
    ];
    for &(d, jaccard, threshold, rejected) in cases {
        let config = MinHashConfig { shingle: Shingle::Words(1), num_perm: 256, threshold, ..MinHashConfig::default() };
        let mut index = MinHashIndex::new(config).unwrap();
        index.insert(1, &tokens(0, 100));
        let got = index.query(&tokens(d, 100));
        assert_eq!(got.is_some(), rejected, "shift {d} (Jaccard {jaccard}) threshold {threshold}: got {got:?}");
        if let Some((_, est)) = got {
            assert!(est >= threshold && (est - jaccard).abs() < 0.12, "estimate {est}");
        }
    }
}

#[test]
fn estimates_track_exact_jaccard_on_average() {
    let config = MinHashConfig { shingle: Shingle::Words(1), ..MinHashConfig::default() };
    let mut hasher = MinHasher::new(&config).unwrap();
    let mut total_err = 0.0;
    let shifts = 0..100usize;
    for d in shifts.clone() {
        let a = hasher.signature(&tokens(0, 100));
        let b = hasher.signature(&tokens(d, 100));
        let exact = (100 - d) as f64 / (100 + d) as f64;
        total_err += (estimate_jaccard(&a, &b) - exact).abs();
    }
    let mean = total_err / shifts.len() as f64;
    // Standard error at num_perm 128 is at most 0.044; the mean absolute error is lower.
    assert!(mean < 0.04, "mean absolute error {mean}");
}

#[test]
fn word_shingles_catch_reordered_tail_but_not_rewrites() {
    let config = MinHashConfig { shingle: Shingle::Words(3), threshold: 0.7, ..MinHashConfig::default() };
    let mut index = MinHashIndex::new(config).unwrap();
    let base = "the committee will meet on tuesday to review the budget proposal for the \
                coming fiscal year and vote on the new hiring plan";
    assert_eq!(index.insert_if_new(1, base), None);
    // One word appended: 21 of 22 shingles shared.
    assert_eq!(index.insert_if_new(2, &format!("{base} today")), Some(1));
    assert_eq!(index.insert_if_new(3, "a completely different note about the weather and the garden"), None);
}

#[test]
fn seed_determines_signatures_and_decisions() {
    let fx = fixture();
    let run = |seed: u64| {
        let config = MinHashConfig { seed, threshold: 0.7, ..MinHashConfig::default() };
        let mut hasher = MinHasher::new(&config).unwrap();
        let sigs: Vec<Vec<u32>> = fx.distinct.iter().map(|t| hasher.signature(t)).collect();
        let mut index = MinHashIndex::new(config).unwrap();
        let decisions: Vec<Option<(u64, f64)>> = fx
            .distinct
            .iter()
            .chain(fx.near_duplicates.iter().map(|(_, v)| v))
            .enumerate()
            .map(|(i, t)| index.insert_if_new_with_similarity(i as u64, t))
            .collect();
        (sigs, decisions)
    };
    let (sigs_a, dec_a) = run(7);
    let (sigs_b, dec_b) = run(7);
    let (sigs_c, _) = run(8);
    assert_eq!(sigs_a, sigs_b);
    assert_eq!(dec_a, dec_b);
    assert_ne!(sigs_a, sigs_c);
    // Same-seed signatures of identical text agree everywhere; different seeds do not.
    assert_eq!(estimate_jaccard(&sigs_a[0], &sigs_b[0]), 1.0);
    assert!(estimate_jaccard(&sigs_a[0], &sigs_c[0]) < 0.2);
}

#[test]
fn edge_texts() {
    let mut index = MinHashIndex::new(MinHashConfig::default()).unwrap();
    // Empty and whitespace-only texts have no shingle and are duplicates of each other.
    assert_eq!(index.insert_if_new(1, ""), None);
    assert_eq!(index.insert_if_new(2, "   \n"), Some(1));
    // Texts shorter than the shingle are one shingle: equal ones match, others do not.
    assert_eq!(index.insert_if_new(3, "Hi"), None);
    assert_eq!(index.insert_if_new(4, "hi"), Some(3));
    assert_eq!(index.insert_if_new(5, "yo"), None);
    // Non-ASCII text is shingled by characters, not bytes.
    assert_eq!(index.insert_if_new(6, "Größenänderung der Datenbank im laufenden Betrieb"), None);
    assert_eq!(index.insert_if_new(7, "größenänderung der datenbank im laufenden betrieb"), Some(6));
    assert_eq!(index.len(), 4);
}

#[test]
fn lsh_params_derived_or_given() {
    let index = MinHashIndex::new(MinHashConfig::default()).unwrap();
    assert_eq!(index.lsh_params(), LshParams { bands: 9, rows: 13 });
    assert_eq!(optimal_lsh_params(0.8, 128), LshParams { bands: 9, rows: 13 });
    let given = MinHashConfig { lsh: Some(LshParams { bands: 16, rows: 8 }), ..MinHashConfig::default() };
    assert_eq!(MinHashIndex::new(given).unwrap().lsh_params(), LshParams { bands: 16, rows: 8 });
}

#[test]
fn invalid_configs_are_rejected_with_the_field_named() {
    let cases: Vec<(MinHashConfig, &str)> = vec![
        (MinHashConfig { num_perm: 0, ..Default::default() }, "num_perm"),
        (MinHashConfig { threshold: 0.0, ..Default::default() }, "threshold"),
        (MinHashConfig { threshold: 1.5, ..Default::default() }, "threshold"),
        (MinHashConfig { threshold: f64::NAN, ..Default::default() }, "threshold"),
        (MinHashConfig { shingle: Shingle::Chars(0), ..Default::default() }, "shingle"),
        (MinHashConfig { lsh: Some(LshParams { bands: 20, rows: 7 }), ..Default::default() }, "lsh"),
        (MinHashConfig { lsh: Some(LshParams { bands: 0, rows: 7 }), ..Default::default() }, "lsh"),
    ];
    for (config, field) in cases {
        match MinHashIndex::new(config.clone()) {
            Err(DedupError::InvalidConfig { field: f, .. }) => assert_eq!(f, field, "{config:?}"),
            other => panic!("{config:?}: expected an InvalidConfig error, got {other:?}"),
        }
    }
}

#[test]
fn config_deserialises_with_defaults_and_rejects_unknown_fields() {
    let config: MinHashConfig = serde_json::from_str(r#"{"shingle": {"words": 3}, "threshold": 0.7}"#).unwrap();
    assert_eq!(config.shingle, Shingle::Words(3));
    assert_eq!(config.num_perm, 128);
    assert_eq!(config.threshold, 0.7);
    assert_eq!(config.lsh, None);
    let given: MinHashConfig = serde_json::from_str(r#"{"lsh": {"bands": 4, "rows": 8}, "seed": 3}"#).unwrap();
    assert_eq!(given.lsh, Some(LshParams { bands: 4, rows: 8 }));
    assert!(serde_json::from_str::<MinHashConfig>(r#"{"treshold": 0.7}"#).is_err());
}
