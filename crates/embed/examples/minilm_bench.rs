//! How fast the local model embeds on this machine (docs/SEARCH.md, "The
//! local model"): one short query at a time (p50, p99, embeddings/s), and
//! note-sized texts one at a time and in batches (embeddings/s).
//!
//! ```sh
//! cargo run --release -p embed --example minilm_bench -- MODEL_DIR [QUERIES] [NOTES]
//! ```
//!
//! MODEL_DIR holds the model's files (`.notegraph/models/all-MiniLM-L6-v2`
//! once a server or the tests installed them).

use std::time::{Duration, Instant};

use embed::MiniLmEmbedder;

/// Words the texts are drawn from: note-like English.
const WORDS: &str = "the sourdough starter rose overnight and the bread came out with an open crumb while \
    rust lifetimes and the borrow checker rejected a reference that did not live long enough so we planted \
    tomatoes along the fence watered the garden in summer tuned postgres indexes for faster search reviewed \
    the pull request about caching graphql responses and wrote notes on the meeting with the design team";

/// A deterministic text of `count` words, varied by `seed`.
fn text(seed: usize, count: usize) -> String {
    let words: Vec<&str> = WORDS.split_whitespace().collect();
    (0..count).map(|i| words[(seed * 7 + i * 13 + i * i) % words.len()]).collect::<Vec<_>>().join(" ")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: minilm_bench MODEL_DIR [QUERIES] [NOTES]");
    let queries: usize = args.next().map_or(500, |n| n.parse().expect("QUERIES is a number"));
    let notes: usize = args.next().map_or(512, |n| n.parse().expect("NOTES is a number"));

    let started = Instant::now();
    let model = MiniLmEmbedder::load(dir.as_ref()).expect("load the model");
    println!("loaded in {:.2} s", started.elapsed().as_secs_f64());

    // Queries: 3 to 6 words, one at a time, as searchNotes(text:) sends them.
    let texts: Vec<String> = (0..queries).map(|i| text(i, 3 + i % 4)).collect();
    model.embed_blocking(&[texts[0].as_str()]).expect("warm-up");
    let mut times = Vec::with_capacity(queries);
    let all = Instant::now();
    for query in &texts {
        let one = Instant::now();
        model.embed_blocking(&[query.as_str()]).expect("embed");
        times.push(one.elapsed());
    }
    let total = all.elapsed();
    times.sort();
    println!(
        "{queries} queries one at a time: p50 {:.2} ms, p99 {:.2} ms, {:.0} embeddings/s",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        queries as f64 / total.as_secs_f64()
    );

    // Notes: 40 to 80 words (about 50 to 100 word pieces with the title).
    let texts: Vec<String> = (0..notes).map(|i| text(i, 40 + i % 41)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let single = Instant::now();
    for text in refs.iter().take(notes / 4) {
        model.embed_blocking(&[text]).expect("embed");
    }
    println!(
        "{} notes one at a time: {:.0} embeddings/s",
        notes / 4,
        (notes / 4) as f64 / single.elapsed().as_secs_f64()
    );
    for batch in [32, 256] {
        let batched = Instant::now();
        for chunk in refs.chunks(batch) {
            model.embed_blocking(chunk).expect("embed");
        }
        println!(
            "{notes} notes in calls of {batch}: {:.0} embeddings/s",
            notes as f64 / batched.elapsed().as_secs_f64()
        );
    }
}
