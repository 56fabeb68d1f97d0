//! Every recipe in the repository (examples and built-ins) loads and validates, so none rots.

use std::path::Path;

use retort_engine::{Overrides, Recipe};

fn recipes_under(root: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).unwrap().flatten() {
        let file = entry.path().join("recipe.yaml");
        if file.is_file() {
            found.push(file);
        }
    }
    found.sort();
    found
}

#[test]
fn every_recipe_in_the_repository_validates() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for folder in ["examples", "recipes"] {
        for file in recipes_under(&repo.join(folder)) {
            if let Err(problems) = Recipe::load(&file, &Overrides::default()) {
                panic!("{problems}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 1);
}

#[test]
fn built_in_recipes_extract_and_validate() {
    for builtin in retort_engine::builtin::builtins() {
        assert!(!builtin.paper.is_empty(), "{} names no paper", builtin.name);
        let dir = tempfile::tempdir().unwrap();
        let file = retort_engine::builtin::extract(&builtin.name, dir.path()).unwrap();
        if let Err(problems) = Recipe::load(&file, &Overrides::default()) {
            panic!("{}: {problems}", builtin.name);
        }
    }
}
