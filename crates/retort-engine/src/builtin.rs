//! The built-in recipes, one folder each under `recipes/`, compiled into the binary.

use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::error::EngineError;

static RECIPES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../recipes");

/// A built-in recipe, as `retort recipes` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Builtin {
    /// Its name: the folder's name, what `retort run NAME` takes.
    pub name: String,
    /// The paper it implements.
    pub paper: String,
    /// What it makes.
    pub description: String,
    /// What it outputs (SFT messages, DPO pairs, episodes, ...).
    pub outputs: String,
    /// What it needs beyond a chat model (sandbox, logprobs, trainer).
    pub needs: String,
}

/// Every built-in recipe, by name.
pub fn builtins() -> Vec<Builtin> {
    let mut found: Vec<Builtin> = RECIPES
        .dirs()
        .filter_map(|dir| {
            let name = dir.path().file_name()?.to_str()?.to_string();
            let file = dir.get_file(dir.path().join("recipe.yaml"))?;
            let header = crate::recipe::header(file.contents())?;
            Some(Builtin { name, paper: header.paper, description: header.description, outputs: header.outputs, needs: header.needs })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Whether `name` is a built-in recipe.
pub fn is_builtin(name: &str) -> bool {
    RECIPES.get_dir(name).is_some_and(|dir| dir.get_file(dir.path().join("recipe.yaml")).is_some())
}

/// Writes a built-in recipe's folder (recipe, templates, seed data) into `dest`; returns the
/// recipe file's path.
pub fn extract(name: &str, dest: &Path) -> Result<PathBuf, EngineError> {
    let dir = RECIPES.get_dir(name).ok_or_else(|| EngineError::Step {
        step: "recipes".into(),
        message: format!("no built-in recipe named `{name}`; `retort recipes` lists them"),
    })?;
    write_dir(dir, Path::new(name), dest)?;
    Ok(dest.join("recipe.yaml"))
}

fn write_dir(dir: &Dir<'_>, root: &Path, dest: &Path) -> Result<(), EngineError> {
    std::fs::create_dir_all(dest).map_err(EngineError::io("create", dest))?;
    for file in dir.files() {
        let relative = file.path().strip_prefix(root).unwrap_or(file.path());
        let target = dest.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(EngineError::io("create", parent))?;
        }
        std::fs::write(&target, file.contents()).map_err(EngineError::io("write", &target))?;
    }
    for sub in dir.dirs() {
        write_dir(sub, root, dest)?;
    }
    Ok(())
}
