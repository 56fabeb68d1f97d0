//! Benchmark: embeds 1,000 generated short sentences with all-MiniLM-L6-v2 and prints
//! embeddings per second.
//!
//! Run: `cargo run --release -p retort-embed --example embed_bench [-- N BATCH]`
//! (the model must be installed: `scripts/setup-models.sh --embed`).

use std::time::Instant;

use retort_embed::{default_model_dir, Embedder, MiniLmEmbedder, MiniLmOptions};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse().expect("N")).unwrap_or(1000);
    let batch_size: usize = args.get(2).map(|s| s.parse().expect("BATCH")).unwrap_or(32);
    let subjects = [
        "The engineer",
        "A small cat",
        "Our team",
        "The new model",
        "My neighbour",
        "The committee",
        "This recipe",
        "The old bridge",
        "A student",
        "The algorithm",
    ];
    let verbs = [
        "quickly reviewed",
        "carefully explained",
        "never understood",
        "happily built",
        "slowly repaired",
        "strongly criticised",
        "finally published",
        "briefly described",
    ];
    let objects = [
        "the quarterly budget report",
        "a tricky sorting problem",
        "the garden fence",
        "an elegant proof of the theorem",
        "the noisy database migration",
        "our holiday plans",
        "the first draft of the paper",
        "a faster compression scheme",
        "the weather forecast",
    ];
    let tails = [
        "before lunch.",
        "in great detail.",
        "for the third time this week.",
        "without asking anyone for help.",
        "during the long meeting.",
        ".",
    ];
    let texts: Vec<String> = (0..n)
        .map(|i| {
            format!(
                "{} {} {} {}",
                subjects[i % subjects.len()],
                verbs[(i / 3) % verbs.len()],
                objects[(i / 7) % objects.len()],
                tails[(i / 11) % tails.len()]
            )
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();

    let t = Instant::now();
    let options = MiniLmOptions { batch_size, ..MiniLmOptions::default() };
    let model = MiniLmEmbedder::load_with(&default_model_dir(), options).unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(1)
    });
    println!("load: {:.2} s", t.elapsed().as_secs_f64());
    let tokens: usize = model.token_counts(&refs).unwrap().iter().sum();
    println!(
        "{n} sentences, {:.1} tokens on average, batch {batch_size}, {} threads",
        tokens as f64 / n as f64,
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    let _ = model.embed(&refs[..batch_size.min(n)]).unwrap(); // warm-up
    let t = Instant::now();
    let vectors = model.embed(&refs).unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(vectors.len(), n);
    println!("embed: {secs:.2} s, {:.0} embeddings/s", n as f64 / secs);
}
