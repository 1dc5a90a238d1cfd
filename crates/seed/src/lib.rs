//! The seeder: replaces all data in the database with a generated, real-looking data set
//! (users, notes with embeddings, tags) for demos, benchmarks and tests.
//!
//! Everything is generated from one seed (ChaCha8), so a seed and a size give
//! the same rows every time; only the timestamps follow the clock unless
//! [`run_at`] pins it. Notes are written from per-topic vocabulary
//! so that notes on one topic share words and search by meaning (with any
//! embedder) finds sensible neighbours.
//!
//! Loading uses binary `COPY` inside one transaction that also truncates,
//! drops the HNSW index and the foreign keys and restores them after the load
//! (a bulk build or a single validating join is far faster than maintaining
//! them row by row), so a failure at any point leaves the previous data
//! untouched. Generation runs on a blocking
//! thread and streams chunks to the connection through a bounded channel, so
//! Postgres ingests while the next rows are generated and memory stays flat.
//!
//! It does not run migrations (the schema must be current) and does not
//! check that the schema matches what it writes beyond what Postgres checks.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use embed::{Embedder as _, HashEmbedder};
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

use generate::{Note, NoteGenerator, Tag, User, generate_tags, generate_users};

mod generate;
mod vocabulary;

/// The HNSW index on `notes.embedding`, dropped before the load and built
/// again after it.
///
/// Must stay identical to `notes_embedding_hnsw_idx` in the migration
/// `20261123000001_schema.sql`: the seeder recreates the index from this text,
/// so any divergence would silently change the schema of a seeded database.
pub const HNSW_INDEX_DDL: &str = "create index notes_embedding_hnsw_idx on notes \
     using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 64)";

/// The size of `notes.embedding` (`vector(384)` in the migration).
const EMBEDDING_DIMENSION: usize = 384;

/// How much COPY data one message carries: large enough that per-message
/// overhead vanishes, small enough that a few chunks in flight stay cheap.
const CHUNK_BYTES: usize = 4 << 20;

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

/// How big a data set to generate and from which seed.
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
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self { users: 10_000, notes: 100_000, tags: 200, seed: 42 }
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
    /// A statement or the COPY stream failed.
    #[error("seeding the database failed")]
    Database(#[from] sqlx::Error),
    /// The generator thread panicked (a bug in this module).
    #[error("seed data generator failed")]
    Generator(#[source] tokio::task::JoinError),
}

/// Replaces all data with a generated data set.
///
/// One transaction truncates users, notes, tags and note_tags, loads the new
/// rows, rebuilds the HNSW index and runs `analyze`; readers wait on the
/// truncate's lock until it commits and then see only the new data.
///
/// # Errors
///
/// [`SeedError::InvalidOptions`] for notes without users or an embedder whose
/// dimension does not fit the column, before anything is touched; otherwise
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

    let mut tx = pool.begin().await?;
    // The index build alone can outlast a statement timeout meant for API
    // queries; `set local` ends with the transaction, so the pooled
    // connection keeps its settings.
    sqlx::query("set local statement_timeout = 0").execute(&mut *tx).await?;

    let phase = Instant::now();
    // Cascade: a table added later that references these is seeded data too
    // (empty after a reseed) rather than a reason to fail.
    sqlx::query("truncate table note_tags, notes, tags, users restart identity cascade").execute(&mut *tx).await?;
    sqlx::query("drop index if exists notes_embedding_hnsw_idx").execute(&mut *tx).await?;
    let foreign_keys = drop_foreign_keys(&mut tx).await?;
    let prepare = phase.elapsed();
    tracing::info!(
        foreign_keys = foreign_keys.len(),
        elapsed = ?prepare,
        "tables truncated, vector index and foreign keys dropped"
    );

    let phase = Instant::now();
    let users = generate_users(opts.users, opts.seed, now);
    let tags = generate_tags(opts.tags);
    copy_buffer(
        &mut tx,
        "copy users (id, name, email, created_at) from stdin with (format binary, freeze)",
        &encode_users(&users),
    )
    .await?;
    copy_buffer(&mut tx, "copy tags (id, name) from stdin with (format binary, freeze)", &encode_tags(&tags)).await?;
    let users_and_tags = phase.elapsed();
    tracing::info!(
        users = users.len(),
        tags = tags.len(),
        elapsed = ?users_and_tags,
        "users and tags loaded"
    );

    let phase = Instant::now();
    let generator = NoteGenerator::new(opts, &users, &tags, now);
    let links = copy_notes(&mut tx, generator, embedder.clone()).await?;
    let notes_copy = phase.elapsed();
    tracing::info!(
        notes = opts.notes,
        private = links.private_notes,
        elapsed = ?notes_copy,
        "notes generated, embedded and loaded"
    );

    let phase = Instant::now();
    copy_buffer(&mut tx, "copy note_tags (note_id, tag_id) from stdin with (format binary, freeze)", &links.note_tags)
        .await?;
    let note_tags_copy = phase.elapsed();
    tracing::info!(
        note_tags = links.count,
        elapsed = ?note_tags_copy,
        "note tags loaded"
    );

    let phase = Instant::now();
    for statement in &foreign_keys {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    // Rows carry explicit ids, so the sequences are moved past them for the
    // rows the server inserts later.
    for (table, rows) in [("users", users.len()), ("notes", opts.notes as usize), ("tags", tags.len())] {
        if rows > 0 {
            sqlx::query("select setval(pg_get_serial_sequence($1, 'id'), $2)")
                .bind(table)
                .bind(i64::try_from(rows).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
    }
    let constraints = phase.elapsed();
    tracing::info!(elapsed = ?constraints, "foreign keys validated and sequences advanced");

    let phase = Instant::now();
    // pgvector builds the graph in memory when it fits in
    // maintenance_work_mem (a few hundred MB for 100k notes) and otherwise
    // falls back to a much slower on-disk build; a parallel build reserves
    // all of it as shared memory up front, so the server needs that much
    // room in /dev/shm (Docker's default of 64 MB is not). Two workers plus
    // the leader on two cores measured fastest (23-29 s against 22-38 s with
    // one worker and 54 s serial for 100k notes): the build waits on graph
    // locks often enough that a third process fills the gaps. Both settings
    // end with the transaction.
    sqlx::query("set local maintenance_work_mem = '1GB'").execute(&mut *tx).await?;
    sqlx::query("set local max_parallel_maintenance_workers = 2").execute(&mut *tx).await?;
    sqlx::query(HNSW_INDEX_DDL).execute(&mut *tx).await?;
    let index = phase.elapsed();
    tracing::info!(elapsed = ?index, "vector index built");

    let phase = Instant::now();
    sqlx::query("analyze users, notes, tags, note_tags").execute(&mut *tx).await?;
    tx.commit().await?;
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

/// Drops the foreign keys of the seeded tables and returns the statements
/// that re-add them.
///
/// Checking a foreign key row by row costs a trigger and a lookup per row
/// (measured: the note_tags COPY took 8.8 s with its two keys and 1.3 s
/// without); re-adding the key validates all rows in one join in about 0.1 s.
/// The definitions come from the catalog rather than from constants here so
/// that they cannot drift from the migrations.
async fn drop_foreign_keys(conn: &mut PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let keys: Vec<(String, String)> = sqlx::query_as(
        "select format('alter table %s drop constraint %I', conrelid::regclass, conname), \
                format('alter table %s add constraint %I %s', conrelid::regclass, conname, \
                       pg_get_constraintdef(oid)) \
         from pg_constraint \
         where contype = 'f' \
           and conrelid = any (array['users', 'notes', 'tags', 'note_tags']::regclass[]) \
         order by conrelid::regclass::text, conname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut restore = Vec::with_capacity(keys.len());
    for (drop, add) in keys {
        sqlx::query(&drop).execute(&mut *conn).await?;
        restore.push(add);
    }
    Ok(restore)
}

/// Sends an in-memory COPY stream in chunks.
async fn copy_buffer(conn: &mut PgConnection, statement: &str, data: &[u8]) -> Result<u64, sqlx::Error> {
    let mut copy = conn.copy_in_raw(statement).await?;
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
    conn: &mut PgConnection,
    generator: NoteGenerator,
    embedder: HashEmbedder,
) -> Result<NoteLinks, SeedError> {
    let (sender, mut receiver) = mpsc::channel::<Vec<u8>>(CHUNKS_IN_FLIGHT);
    let producer = tokio::task::spawn_blocking(move || {
        let mut links = CopyEncoder::new();
        let mut count = 0_u64;
        let mut private_notes = 0_u64;
        let mut out = CopyEncoder::new();
        let mut text = String::new();
        for note in generator {
            text.clear();
            text.push_str(&note.title);
            text.push('\n');
            text.push_str(&note.body);
            let embedding = embedder.embed_one(&text);
            out.note(&note, &embedding);
            for &tag in &note.tags {
                links.row(2);
                links.int8(note.id);
                links.int8(i64::from(tag) + 1);
            }
            count += note.tags.len() as u64;
            private_notes += u64::from(note.private);
            if out.buf.len() >= CHUNK_BYTES && sender.blocking_send(out.take()).is_err() {
                // The receiver is gone because the COPY failed; that error is
                // what the caller reports, so stop without a result of our own.
                break;
            }
        }
        out.trailer();
        links.trailer();
        // Fails only after a failed COPY, as above.
        let _ = sender.blocking_send(out.take());
        NoteLinks { note_tags: links.buf, count, private_notes }
    });

    let mut copy = conn
        .copy_in_raw(
            "copy notes (id, author_id, title, body, visibility, created_at, updated_at, \
             embedding) from stdin with (format binary, freeze)",
        )
        .await?;
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

/// Writes Postgres' binary COPY format.
///
/// Hand-written because sqlx only offers raw COPY and the format is a header,
/// length-prefixed big-endian fields and a trailer. Binary rather than text:
/// a vector in text is 384 decimal floats that Postgres parses one by one
/// (measured for 100k notes: 7.2 s against 2.3 s in Postgres alone, and
/// 290 MB against 190 MB on the wire).
struct CopyEncoder {
    buf: Vec<u8>,
}

/// Microseconds from the Unix epoch to Postgres' epoch (2000-01-01 UTC), the
/// origin of binary timestamps.
const POSTGRES_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl CopyEncoder {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(CHUNK_BYTES + (64 << 10));
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0_i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0_i32.to_be_bytes()); // header extension length
        Self { buf }
    }

    /// Hands over what is buffered and keeps going with an empty buffer (the
    /// header is only at the start of the stream).
    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES + (64 << 10)))
    }

    fn trailer(&mut self) {
        self.buf.extend_from_slice(&(-1_i16).to_be_bytes());
    }

    fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn int8(&mut self, value: i64) {
        self.buf.extend_from_slice(&8_i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
    }

    /// Text, and enums, whose binary form is their label.
    fn text(&mut self, value: &str) {
        self.field_len(value.len());
        self.buf.extend_from_slice(value.as_bytes());
    }

    fn timestamptz(&mut self, unix_micros: i64) {
        self.int8(unix_micros - POSTGRES_EPOCH_MICROS);
    }

    /// pgvector's binary form: dimension and an unused word as int16, then
    /// the components as float4.
    fn vector(&mut self, values: &[f32]) {
        self.field_len(4 + 4 * values.len());
        let dimension = i16::try_from(values.len()).unwrap_or(i16::MAX);
        self.buf.extend_from_slice(&dimension.to_be_bytes());
        self.buf.extend_from_slice(&0_i16.to_be_bytes());
        for value in values {
            self.buf.extend_from_slice(&value.to_be_bytes());
        }
    }

    fn field_len(&mut self, len: usize) {
        // Fields here are at most a few kilobytes; an oversized one would be
        // rejected by Postgres rather than wrap around.
        let len = i32::try_from(len).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
    }

    fn note(&mut self, note: &Note, embedding: &[f32]) {
        self.row(8);
        self.int8(note.id);
        self.int8(i64::from(note.author) + 1);
        self.text(&note.title);
        self.text(&note.body);
        self.text(if note.private { "private" } else { "public" });
        self.timestamptz(note.created_at);
        self.timestamptz(note.updated_at);
        self.vector(embedding);
    }
}

fn encode_users(users: &[User]) -> Vec<u8> {
    let mut out = CopyEncoder::new();
    for (id, user) in (1_i64..).zip(users) {
        out.row(4);
        out.int8(id);
        out.text(&user.name);
        out.text(&user.email);
        out.timestamptz(user.created_at);
    }
    out.trailer();
    out.buf
}

fn encode_tags(tags: &[Tag]) -> Vec<u8> {
    let mut out = CopyEncoder::new();
    for (id, tag) in (1_i64..).zip(tags) {
        out.row(2);
        out.int8(id);
        out.text(&tag.name);
    }
    out.trailer();
    out.buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_encoding_has_header_rows_and_trailer() {
        let tags = generate_tags(2);
        let data = encode_tags(&tags);
        assert!(data.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert!(data.ends_with(&[0xff, 0xff]));
        // header 19 + per row: 2 + (4 + 8) + (4 + name)
        let names: usize = tags.iter().map(|t| t.name.len()).sum();
        assert_eq!(data.len(), 19 + 2 * 18 + names + 2);
        let mut vector = CopyEncoder::new();
        vector.buf.clear();
        vector.vector(&[1.0, -2.0]);
        assert_eq!(vector.buf, [0, 0, 0, 12, 0, 2, 0, 0, 0x3f, 0x80, 0, 0, 0xc0, 0, 0, 0]);
    }
}
