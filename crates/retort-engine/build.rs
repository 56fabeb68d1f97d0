//! Rebuilds the engine when a built-in recipe changes: `include_dir!` embeds `recipes/`, which
//! lies outside this crate, so cargo would not look there on its own.

fn main() {
    println!("cargo:rerun-if-changed=../../recipes");
}
