//! Tests of the all-MiniLM-L6-v2 embedder against reference values from an independent numpy
//! implementation (tests/data/reference.py, output in tests/data/reference.jsonl).
//!
//! The model is loaded once per test binary from `default_model_dir()`; install it with
//! `scripts/setup-models.sh --embed`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use retort_embed::{default_model_dir, EmbedError, Embedder, MiniLmEmbedder, MiniLmOptions};

fn model() -> &'static MiniLmEmbedder {
    static MODEL: OnceLock<MiniLmEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| MiniLmEmbedder::load(&default_model_dir()).unwrap_or_else(|e| panic!("{e}")))
}

/// A second embedder with batch size 1 (no padding at all) and truncation at 24 tokens.
fn small_model() -> &'static MiniLmEmbedder {
    static MODEL: OnceLock<MiniLmEmbedder> = OnceLock::new();
    MODEL.get_or_init(|| {
        let options = MiniLmOptions { batch_size: 1, max_tokens: 24 };
        MiniLmEmbedder::load_with(&default_model_dir(), options).unwrap_or_else(|e| panic!("{e}"))
    })
}

#[derive(serde::Deserialize)]
struct Reference {
    text: String,
    tokens: usize,
    head: Vec<f32>,
    idx: BTreeMap<usize, f32>,
}

fn references(jsonl: &str) -> Vec<Reference> {
    jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn matches_reference_implementation() {
    check_against_reference(model(), include_str!("data/reference.jsonl"));
}

#[test]
fn truncation_matches_reference_implementation() {
    // Computed with truncation at 24 tokens: the long text keeps its first 22 word pieces.
    check_against_reference(small_model(), include_str!("data/reference_truncated.jsonl"));
}

fn check_against_reference(m: &MiniLmEmbedder, jsonl: &str) {
    let refs = references(jsonl);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(m.token_counts(&texts).unwrap(), refs.iter().map(|r| r.tokens).collect::<Vec<_>>());
    let got = m.embed(&texts).unwrap();
    assert_eq!(got.len(), refs.len());
    for (r, v) in refs.iter().zip(&got) {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{:?}: norm {norm}", r.text);
        let expected = r.head.iter().enumerate().map(|(i, x)| (i, *x)).chain(r.idx.clone());
        for (i, want) in expected {
            assert!((v[i] - want).abs() < 1e-4, "{:?}: component {i} is {}, reference {want}", r.text, v[i]);
        }
    }
}

#[test]
fn similar_sentences_are_closer_than_unrelated_ones() {
    let v = model()
        .embed(&[
            "How do I bake sourdough bread at home?",
            "What is a simple recipe for homemade sourdough?",
            "The stock market fell sharply after the interest rate decision.",
        ])
        .unwrap();
    let similar = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(similar > 0.6, "similar pair cosine {similar}");
    assert!(unrelated < 0.2, "unrelated pair cosine {unrelated}");
}

#[test]
fn batching_and_order_do_not_change_vectors() {
    let texts = ["short", "a somewhat longer sentence with more tokens in it", "mid length text", ""];
    let all = model().embed(&texts).unwrap();
    // Batch size 1 in a separately loaded embedder (no padding at all); every text here is
    // shorter than its 24-token truncation.
    let single = small_model();
    for (t, batched) in texts.iter().zip(&all) {
        let alone = single.embed(&[t]).unwrap().remove(0);
        let max_diff = alone.iter().zip(batched).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        assert!(max_diff < 1e-5, "{t:?}: batch vs single differ by {max_diff}");
    }
    // Deterministic: the same call gives bit-identical output.
    assert_eq!(model().embed(&texts).unwrap(), all);
    assert!(model().embed(&[]).unwrap().is_empty());
    assert_eq!(model().dim(), 384);
}

#[test]
fn missing_model_names_the_setup_script() {
    let dir = std::env::temp_dir().join("retort-embed-test-no-model");
    std::fs::create_dir_all(&dir).unwrap();
    let err = MiniLmEmbedder::load(&dir).unwrap_err();
    assert!(matches!(err, EmbedError::ModelMissing { ref file, .. } if file == "config.json"));
    let msg = err.to_string();
    assert!(msg.contains("scripts/setup-models.sh"), "{msg}");
    assert!(msg.contains("RETORT_MODELS"), "{msg}");
}

#[test]
fn invalid_options_are_rejected() {
    for (options, field) in [
        (MiniLmOptions { batch_size: 0, max_tokens: 256 }, "batch_size"),
        (MiniLmOptions { batch_size: 8, max_tokens: 1 }, "max_tokens"),
        (MiniLmOptions { batch_size: 8, max_tokens: 513 }, "max_tokens"),
    ] {
        match MiniLmEmbedder::load_with(&default_model_dir(), options) {
            Err(EmbedError::InvalidOptions { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{options:?}: expected InvalidOptions, got {other:?}"),
        }
    }
    let parsed: MiniLmOptions = serde_json::from_str(r#"{"batch_size": 4}"#).unwrap();
    assert_eq!(parsed, MiniLmOptions { batch_size: 4, max_tokens: 256 });
    assert!(serde_json::from_str::<MiniLmOptions>(r#"{"batchsize": 4}"#).is_err());
}
