//! `RETORT_MODELS` handling, in its own test binary because it sets a process variable.

use std::path::PathBuf;

use retort_embed::{default_model_dir, models_dir};

#[test]
fn models_dir_follows_the_environment() {
    std::env::remove_var("RETORT_MODELS");
    let fallback = default_model_dir();
    assert!(fallback.ends_with("models/all-minilm-l6-v2"), "{}", fallback.display());
    std::env::set_var("RETORT_MODELS", "/opt/retort-models");
    assert_eq!(models_dir(), PathBuf::from("/opt/retort-models"));
    assert_eq!(default_model_dir(), PathBuf::from("/opt/retort-models/all-minilm-l6-v2"));
    std::env::set_var("RETORT_MODELS", "");
    assert_eq!(default_model_dir(), fallback);
}
