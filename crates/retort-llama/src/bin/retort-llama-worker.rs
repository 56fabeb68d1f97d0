//! The model worker as its own binary, for this crate's tests and benchmarks
//! (the `retort` binary runs the same code as `retort __llama-worker`).

fn main() {
    retort_llama::worker_main()
}
