//! The seeder: replaces all data in the database with a generated,
//! real-looking data set (users, notes with embeddings, tags) for demos,
//! benchmarks and tests.
//!
//! Everything is generated from one seed (ChaCha8), so a seed and a size give
//! the same rows every time; only the timestamps follow the clock unless
//! [`run_at`] pins it. Notes are written from per-topic vocabulary
//! so that notes on one topic share words and search by meaning (with any
//! embedder) finds sensible neighbours.
//!
//! Loading goes through [`db::bulk`], which holds every statement: one
//! transaction truncates, takes the rows through binary `COPY` and rebuilds
//! indexes and keys, so a failure at any point leaves the previous data
//! untouched. Generation runs on a blocking thread and streams chunks to the
//! connection through a bounded channel, so Postgres ingests while the next
//! rows are generated and memory stays flat.
//!
//! It only replaces data it created itself: each run is recorded in
//! `seed_runs` in the same transaction as the load, and a database that
//! holds users, notes or tags without such a record is refused unless
//! [`SeedOptions::force`] is set. An empty database is always seeded.
//!
//! It does not run migrations (the schema must be current) and does not
//! check that the schema matches what it writes beyond what Postgres checks.
//!
//! # Layout
//! - `lib.rs`: the options, loading through `db`, and the checks around it.
//! - `generate`: users, tags and notes from one seed.
//! - `vocabulary`: the words and topics the notes are written with.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use db::bulk::{CopyRows, Loaded, NoteCopy, Replacement, Table};
use db::notes::Visibility;
pub use db::vector_index::IndexKind;
use db::{NoteId, PgPool, TagId, UserId};
use embed::{Embedder as _, HashEmbedder};
use tokio::sync::mpsc;

use generate::{NoteGenerator, Tag, User, generate_tags, generate_users};

mod generate;
mod vocabulary;

/// The size of `notes.embedding` (`vector(384)` in the migration).
const EMBEDDING_DIMENSION: usize = 384;

/// How much COPY data one message carries: large enough that per-message
/// overhead vanishes, small enough that a few chunks in flight stay cheap.
const CHUNK_BYTES: usize = 4 << 20;

/// What a COPY buffer is allocated with: a chunk plus room for the row that
/// crosses the chunk boundary, so that filling one never reallocates.
const STREAM_BUFFER_BYTES: usize = CHUNK_BYTES + (64 << 10);

/// Chunks the generator may run ahead of Postgres; bounds memory to about
/// `(CHUNKS_IN_FLIGHT + 2) * CHUNK_BYTES`.
const CHUNKS_IN_FLIGHT: usize = 4;

/// Notes span the two years before `now`.
const NOTES_SPAN_MICROS: i64 = 730 * DAY_MICROS;
/// Users sign up during the year before the first note, so no note predates
/// its author.
const SIGNUP_SPAN_MICROS: i64 = 365 * DAY_MICROS;
const DAY_MICROS: i64 = 86_400 * 1_000_000;
/// The longest gap between a note's creation and its last edit.
const MAX_EDIT_DELAY_MICROS: i64 = 60 * DAY_MICROS;

/// How big a data set to generate, from which seed, and whether it may
/// replace data the seeder did not create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedOptions {
    /// Number of users.
    pub users: u32,
    /// Number of notes (each written by one of the users).
    pub notes: u32,
    /// Number of tags; the first 210 come from a curated list, more are
    /// derived from those names.
    pub tags: u32,
    /// The seed of every random choice.
    pub seed: u64,
    /// Replace users, notes and tags that the seeder did not create, which
    /// it otherwise refuses to do ([`SeedError::UnseededData`]).
    pub force: bool,
    /// The vector index built after the load (`NOTEGRAPH_VECTOR_INDEX`).
    pub vector_index: IndexKind,
    /// Its ef_construction when it is HNSW (`NOTEGRAPH_HNSW_EF_CONSTRUCTION`).
    pub hnsw_ef_construction: u32,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            users: 10_000,
            notes: 100_000,
            tags: 200,
            seed: 42,
            force: false,
            vector_index: IndexKind::Hnsw,
            hnsw_ef_construction: db::vector_index::DEFAULT_EF_CONSTRUCTION,
        }
    }
}

/// What was loaded and how long each phase took.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SeedReport {
    /// Users written.
    pub users: u64,
    /// Notes written.
    pub notes: u64,
    /// Of which private.
    pub private_notes: u64,
    /// Tags written.
    pub tags: u64,
    /// Note-to-tag links written.
    pub note_tags: u64,
    /// Truncating the tables, dropping the HNSW index and the foreign keys.
    pub prepare: Duration,
    /// Generating and copying users and tags.
    pub users_and_tags: Duration,
    /// Generating, embedding and copying notes (generation overlaps the copy).
    pub notes_copy: Duration,
    /// Copying note-to-tag links.
    pub note_tags_copy: Duration,
    /// Re-adding (and so validating) the foreign keys, advancing sequences.
    pub constraints: Duration,
    /// Building the HNSW index.
    pub index: Duration,
    /// `analyze` and commit.
    pub analyze_and_commit: Duration,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Why seeding failed; the previous data is intact in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The options or the embedder cannot produce a loadable data set.
    #[error("invalid seed options: {0}")]
    InvalidOptions(&'static str),
    /// The database holds users, notes or tags that no seed run recorded,
    /// and [`SeedOptions::force`] was not set.
    #[error("the database holds users, notes or tags that the seeder did not create")]
    UnseededData,
    /// A statement or the COPY stream failed.
    #[error("seeding the database failed")]
    Database(#[from] db::Error),
    /// The generator thread panicked (a bug in this module).
    #[error("seed data generator failed")]
    Generator(#[source] tokio::task::JoinError),
}

/// Replaces all data with a generated data set.
///
/// One transaction checks that the data present is the seeder's own (or
/// none, or `force` is set), truncates users, notes, tags and note_tags,
/// loads the new rows, rebuilds the HNSW index, runs `analyze` and records
/// the run; readers wait on its lock until it commits and then see only the
/// new data.
///
/// # Errors
///
/// [`SeedError::InvalidOptions`] for notes without users or an embedder whose
/// dimension does not fit the column, and [`SeedError::UnseededData`] for
/// data the seeder did not create, before anything is touched; otherwise
/// any database error, after which the transaction is rolled back.
pub async fn run(pool: &PgPool, opts: &SeedOptions, embedder: &HashEmbedder) -> Result<SeedReport, SeedError> {
    run_at(pool, opts, embedder, Utc::now()).await
}

/// [`run`] with the clock pinned: the data set ends at `now` (notes cover
/// the two years before it), so the same arguments give byte-identical rows.
///
/// # Errors
///
/// As [`run`].
pub async fn run_at(
    pool: &PgPool,
    opts: &SeedOptions,
    embedder: &HashEmbedder,
    now: DateTime<Utc>,
) -> Result<SeedReport, SeedError> {
    if opts.notes > 0 && opts.users == 0 {
        return Err(SeedError::InvalidOptions("notes need at least one user"));
    }
    if embedder.dimension() != EMBEDDING_DIMENSION {
        return Err(SeedError::InvalidOptions("the embedder's dimension must match notes.embedding (384)"));
    }
    let started = Instant::now();
    let now = now.timestamp_micros();
    tracing::info!(users = opts.users, notes = opts.notes, tags = opts.tags, seed = opts.seed, "seeding started");

    let mut load = Replacement::begin(pool).await?;
    if !opts.force && load.holds_unseeded_data().await? {
        // Dropping `load` rolls back: nothing was touched.
        return Err(SeedError::UnseededData);
    }

    let phase = Instant::now();
    let foreign_keys = load.clear().await?;
    let prepare = phase.elapsed();
    tracing::info!(foreign_keys, elapsed = ?prepare, "tables truncated, vector index and foreign keys dropped");

    let phase = Instant::now();
    let users = generate_users(opts.users, opts.seed, now);
    let tags = generate_tags(opts.tags);
    copy_buffer(&mut load, Table::Users, &encode_users(&users)).await?;
    copy_buffer(&mut load, Table::Tags, &encode_tags(&tags)).await?;
    let users_and_tags = phase.elapsed();
    tracing::info!(
        users = users.len(),
        tags = tags.len(),
        elapsed = ?users_and_tags,
        "users and tags loaded"
    );

    let phase = Instant::now();
    let generator = NoteGenerator::new(opts, &users, &tags, now);
    let links = copy_notes(&mut load, generator, embedder.clone()).await?;
    let notes_copy = phase.elapsed();
    tracing::info!(
        notes = opts.notes,
        private = links.private_notes,
        elapsed = ?notes_copy,
        "notes generated, embedded and loaded"
    );

    let phase = Instant::now();
    copy_buffer(&mut load, Table::NoteTags, &links.note_tags).await?;
    let note_tags_copy = phase.elapsed();
    tracing::info!(
        note_tags = links.count,
        elapsed = ?note_tags_copy,
        "note tags loaded"
    );

    let phase = Instant::now();
    let loaded = Loaded {
        seed: opts.seed,
        users: row_count(users.len()),
        notes: i64::from(opts.notes),
        tags: row_count(tags.len()),
    };
    load.restore_constraints(&loaded).await?;
    let constraints = phase.elapsed();
    tracing::info!(elapsed = ?constraints, "foreign keys validated and sequences advanced");

    let phase = Instant::now();
    load.build_vector_index(opts.vector_index, opts.hnsw_ef_construction).await?;
    let index = phase.elapsed();
    tracing::info!(elapsed = ?index, "vector index built");

    let phase = Instant::now();
    load.finish(&loaded).await?;
    let analyze_and_commit = phase.elapsed();

    let report = SeedReport {
        users: users.len() as u64,
        notes: u64::from(opts.notes),
        private_notes: links.private_notes,
        tags: tags.len() as u64,
        note_tags: links.count,
        prepare,
        users_and_tags,
        notes_copy,
        note_tags_copy,
        constraints,
        index,
        analyze_and_commit,
        elapsed: started.elapsed(),
    };
    tracing::info!(
        analyze_and_commit = ?analyze_and_commit,
        elapsed = ?report.elapsed,
        "seeding finished"
    );
    Ok(report)
}

/// A generated row count as the database counts (users and tags are at
/// most `u32::MAX`, so this never saturates).
fn row_count(rows: usize) -> i64 {
    i64::try_from(rows).unwrap_or(i64::MAX)
}

/// Sends an in-memory COPY stream in chunks.
async fn copy_buffer(load: &mut Replacement, table: Table, data: &[u8]) -> Result<u64, db::Error> {
    let mut copy = load.copy_in(table).await?;
    for chunk in data.chunks(CHUNK_BYTES) {
        copy.send(chunk).await?;
    }
    copy.finish().await
}

/// What the notes phase leaves for the next: the note_tags COPY stream,
/// collected while the notes streamed because one connection cannot run two
/// COPYs at once (about 8 MB for 300k links).
struct NoteLinks {
    note_tags: Vec<u8>,
    count: u64,
    private_notes: u64,
}

/// Streams the notes from a blocking generator thread into `COPY notes`.
async fn copy_notes(
    load: &mut Replacement,
    generator: NoteGenerator,
    embedder: HashEmbedder,
) -> Result<NoteLinks, SeedError> {
    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let producer = tokio::task::spawn_blocking(move || {
        let mut links = CopyRows::with_capacity(STREAM_BUFFER_BYTES);
        let mut count = 0_u64;
        let mut private_notes = 0_u64;
        let model = embedder.identity();
        let mut out = CopyRows::with_capacity(STREAM_BUFFER_BYTES);
        let mut text = String::new();
        for note in generator {
            text.clear();
            text.push_str(&note.title);
            text.push('\n');
            text.push_str(&note.body);
            let embedding = embedder.embed_one(&text);
            out.note(&NoteCopy {
                id: NoteId(note.id),
                author_id: user_id(note.author),
                title: &note.title,
                body: &note.body,
                visibility: if note.private { Visibility::Private } else { Visibility::Public },
                created_at_micros: note.created_at,
                updated_at_micros: note.updated_at,
                embedding: &embedding,
                embedded_with: &model,
            });
            for &tag in &note.tags {
                links.note_tag(NoteId(note.id), tag_id(tag));
            }
            count += note.tags.len() as u64;
            private_notes += u64::from(note.private);
            if out.buffered() >= CHUNK_BYTES && sender.blocking_send(out.take()).is_err() {
                // The receiver is gone because the COPY failed; that error is
                // what the caller reports, so stop without a result of our own.
                break;
            }
        }
        // Fails only after a failed COPY, as above.
        let _ = sender.blocking_send(out.finish());
        NoteLinks { note_tags: links.finish(), count, private_notes }
    });

    let mut copy = load.copy_in(Table::Notes).await?;
    while let Some(chunk) = receiver.recv().await {
        copy.send(chunk).await?;
    }
    // The channel closes when the generator is done or has panicked.
    match producer.await {
        Ok(links) => {
            copy.finish().await?;
            Ok(links)
        }
        Err(join) => {
            // The panic is the error worth reporting; the rollback that
            // follows discards the COPY whether or not the abort went through.
            let _ = copy.abort("seed generator panicked").await;
            Err(SeedError::Generator(join))
        }
    }
}

/// The id of the generated user at `index` (ids are positions plus one).
fn user_id(index: u32) -> UserId {
    UserId(i64::from(index) + 1)
}

/// The id of the generated tag at `index` (ids are positions plus one).
fn tag_id(index: u32) -> TagId {
    TagId(i64::from(index) + 1)
}

fn encode_users(users: &[User]) -> Vec<u8> {
    let mut out = CopyRows::with_capacity(STREAM_BUFFER_BYTES);
    for (id, user) in (1_i64..).zip(users) {
        out.user(UserId(id), &user.name, &user.email, user.created_at);
    }
    out.finish()
}

fn encode_tags(tags: &[Tag]) -> Vec<u8> {
    let mut out = CopyRows::with_capacity(STREAM_BUFFER_BYTES);
    for (id, tag) in (1_i64..).zip(tags) {
        out.tag(TagId(id), &tag.name);
    }
    out.finish()
}
