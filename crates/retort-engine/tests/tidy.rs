//! The rules of the codebase that a compiler does not check, checked here (as rust-analyzer's
//! tidy test does): every file says what it is for, ARCHITECTURE.md names only what exists,
//! only the CLI and the worker binaries print, only `recipe/` knows YAML, the engine's modules
//! import only modules below them, and every file in `src/` is compiled.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return files };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                files.extend(rust_files(&path));
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo()).unwrap_or(path).display().to_string()
}

/// The code of a file before its unit tests (`#[cfg(test)]`), where the rules below apply.
fn code_before_tests(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn every_rust_file_starts_with_a_doc_line() {
    let missing: Vec<String> = rust_files(&repo().join("crates"))
        .into_iter()
        .chain(rust_files(&repo().join("bench")))
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| relative(&path))
        .collect();
    assert!(missing.is_empty(), "files that do not start with a `//!` line saying what they are for:\n{}", missing.join("\n"));
}

#[test]
fn only_the_cli_and_the_worker_binaries_print() {
    let allowed = [
        "crates/retort-cli/src/",
        "crates/retort-llama/src/worker.rs",
        "crates/retort-train/src/worker.rs",
        "crates/retort-mock/src/bin/",
        "crates/retort-agent/src/bin/",
        "/build.rs",
    ];
    let mut found = Vec::new();
    for crate_dir in std::fs::read_dir(repo().join("crates")).unwrap() {
        for path in rust_files(&crate_dir.unwrap().path().join("src")) {
            let name = relative(&path);
            if allowed.iter().any(|allowed| name.contains(allowed)) {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (number, line) in code_before_tests(&text).lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                if ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("].iter().any(|call| code.contains(call)) {
                    found.push(format!("{name}:{}: {}", number + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "printing outside the CLI and the worker binaries (use `tracing`):\n{}", found.join("\n"));
}

#[test]
fn only_the_recipe_module_knows_yaml() {
    let src = repo().join("crates/retort-engine/src");
    let found: Vec<String> = rust_files(&src)
        .into_iter()
        .filter(|path| !path.starts_with(src.join("recipe")))
        .filter(|path| code_before_tests(&std::fs::read_to_string(path).unwrap()).contains("serde_yaml"))
        .map(|path| relative(&path))
        .collect();
    assert!(found.is_empty(), "YAML outside crates/retort-engine/src/recipe/ (steps see typed configs):\n{}", found.join("\n"));
}

/// The engine's modules, lowest first. A module may import itself, the modules before it, and
/// no module after it.
const LAYERS: &[&str] = &[
    "error",
    "limits",
    "introspect",
    "template",
    "stats",
    "flow",
    "source",
    "parse",
    "output",
    "llm",
    "runtime",
    "steps",
    "recipe",
    "run",
    "builtin",
];

/// The top-level engine modules `text` refers to (`crate::NAME`).
fn imported(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (index, _) in text.match_indices("crate::") {
        let rest = &text[index + "crate::".len()..];
        let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            found.insert(name);
        }
    }
    // `use crate::{a, b::c}` lists.
    for (index, _) in text.match_indices("use crate::{") {
        let rest = &text[index + "use crate::{".len()..];
        let list = &rest[..rest.find("};").unwrap_or(0)];
        for item in list.split(',') {
            let name: String = item.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// Checks a set of module files against a layer order; returns the violations.
fn layer_violations(files: &[(String, String)], layers: &[&str]) -> Vec<String> {
    let rank = |name: &str| layers.iter().position(|layer| *layer == name);
    let mut violations = Vec::new();
    for (module, text) in files {
        let Some(own) = rank(module) else {
            violations.push(format!("module `{module}` is not in the layer list"));
            continue;
        };
        for name in imported(text) {
            if let Some(other) = rank(&name) {
                if other > own {
                    violations.push(format!("`{module}` imports `{name}`, which is above it"));
                }
            }
        }
    }
    violations
}

#[test]
fn engine_modules_import_only_modules_below_them() {
    let src = repo().join("crates/retort-engine/src");
    let mut files = Vec::new();
    for path in rust_files(&src) {
        let inside = path.strip_prefix(&src).unwrap();
        let module = inside.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if module == "lib" {
            continue;
        }
        files.push((module, std::fs::read_to_string(&path).unwrap()));
    }
    let violations = layer_violations(&files, LAYERS);
    assert!(violations.is_empty(), "layers ({}):\n{}", LAYERS.join(" → "), violations.join("\n"));
    // The check itself: a lower module importing a higher one is caught.
    let broken = vec![("llm".to_string(), "use crate::run::PreparedRun;".to_string())];
    assert_eq!(layer_violations(&broken, LAYERS), ["`llm` imports `run`, which is above it"]);
}

#[test]
fn every_file_in_a_source_folder_is_compiled() {
    // A file is compiled when its parent module declares it (`mod name;`, or through the step
    // table's `Variant(name::Config)` line for step kinds).
    let mut unused = Vec::new();
    for crate_dir in std::fs::read_dir(repo().join("crates")).unwrap() {
        let src = crate_dir.unwrap().path().join("src");
        for path in rust_files(&src) {
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if ["lib", "main", "mod"].contains(&name.as_str()) || path.parent().unwrap().ends_with("bin") {
                continue;
            }
            let dir = path.parent().unwrap();
            let parents: Vec<PathBuf> =
                if dir == src { vec![src.join("lib.rs"), src.join("main.rs")] } else { vec![dir.join("mod.rs"), dir.with_extension("rs")] };
            let declared = parents
                .iter()
                .filter_map(|parent| std::fs::read_to_string(parent).ok())
                .any(|text| text.contains(&format!("mod {name};")) || text.contains(&format!("({name}::")));
            if !declared {
                unused.push(relative(&path));
            }
        }
    }
    assert!(unused.is_empty(), "files no module declares (so they are not compiled):\n{}", unused.join("\n"));
}

#[test]
fn architecture_md_names_only_what_exists() {
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let mut sources = String::new();
    for path in rust_files(&repo().join("crates")) {
        sources.push_str(&std::fs::read_to_string(path).unwrap());
    }
    let mut missing = Vec::new();
    for (index, token) in text.split('`').enumerate() {
        if index % 2 == 0 || token.contains(' ') {
            continue;
        }
        let token = token.trim_end_matches("()");
        let looks_like_path =
            token.contains('/') || [".rs", ".md", ".sh", ".py", ".yaml", ".lua"].iter().any(|extension| token.ends_with(extension));
        if looks_like_path {
            let name = token.trim_end_matches('/');
            let exists = repo().join(name).exists()
                || rust_files(&repo().join("crates")).iter().chain(bench_and_scripts().iter()).any(|file| file.ends_with(name))
                || find_dir(&repo().join("crates"), name);
            if !exists {
                missing.push(format!("path `{token}`"));
            }
            continue;
        }
        // A type, or a `Type::item`: its first part must be defined somewhere.
        let first = token.split("::").next().unwrap_or("");
        let is_type = first.len() > 1
            && first.starts_with(|c: char| c.is_ascii_uppercase())
            && first.chars().all(|c| c.is_ascii_alphanumeric())
            && first.chars().any(|c| c.is_ascii_lowercase());
        if is_type {
            let defined =
                ["struct ", "enum ", "trait ", "type ", "const "].iter().any(|keyword| sources.contains(&format!("{keyword}{first}")));
            if !defined {
                missing.push(format!("type `{token}`"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "ARCHITECTURE.md names what does not exist:\n{}", missing.join("\n"));
}

fn bench_and_scripts() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["bench", "scripts", "examples", "recipes"] {
        if let Ok(entries) = std::fs::read_dir(repo().join(dir)) {
            files.extend(entries.map(|entry| entry.unwrap().path()));
        }
    }
    files
}

fn find_dir(root: &Path, name: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(root) else { return false };
    entries
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir() && !path.ends_with("target"))
        .any(|path| path.ends_with(name) || find_dir(&path, name))
}
