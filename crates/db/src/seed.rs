//! The seeder: replaces all data with a generated, real-looking data set
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

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use embed::{Embedder as _, HashEmbedder};
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{PgConnection, PgPool};
use tokio::sync::mpsc;

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

/// Independent random streams per kind of row, so that adding a draw to one
/// generator does not reshuffle the others.
const USER_STREAM: u64 = 1;
const NOTE_STREAM: u64 = 2;

fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// A generated user; its id is its position plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    name: String,
    email: String,
    created_at: i64,
    /// Topics this user writes about most (indexes into [`TOPICS`]).
    favourite_topics: [u8; 2],
}

fn generate_users(count: u32, seed: u64, now: i64) -> Vec<User> {
    let mut rng = rng_for(seed, USER_STREAM);
    let mut emails = HashSet::with_capacity(count as usize);
    let first_note = now - NOTES_SPAN_MICROS;
    let slot = SIGNUP_SPAN_MICROS / i64::from(count.max(1));
    let mut users = Vec::with_capacity(count as usize);
    for index in 0..count {
        let first = FIRST_NAMES.choose(&mut rng).copied().unwrap_or("Alex");
        let last = LAST_NAMES.choose(&mut rng).copied().unwrap_or("Smith");
        let email = unique_email(&mut rng, &mut emails, first, last);
        // Sign-ups increase with id: one slot each, a random moment inside.
        let created_at = first_note - SIGNUP_SPAN_MICROS + i64::from(index) * slot + rng.random_range(0..slot.max(1));
        let favourite_topics = [rng_topic_index(&mut rng), rng_topic_index(&mut rng)];
        users.push(User { name: format!("{first} {last}"), email, created_at, favourite_topics });
    }
    users
}

fn rng_topic_index(rng: &mut ChaCha8Rng) -> u8 {
    // TOPICS has far fewer than 256 entries.
    u8::try_from(rng.random_range(0..TOPICS.len())).unwrap_or(0)
}

/// A lower-case address in one of a few common shapes; a number is added
/// when the shape is taken, which cannot collide with an unnumbered one.
fn unique_email(rng: &mut ChaCha8Rng, taken: &mut HashSet<String>, first: &str, last: &str) -> String {
    let first = email_part(first);
    let last = email_part(last);
    let initial = first.get(..1).unwrap_or("x");
    let local = match rng.random_range(0..5) {
        0 => format!("{first}.{last}"),
        1 => format!("{first}{last}"),
        2 => format!("{initial}{last}"),
        3 => format!("{first}_{last}"),
        _ => format!("{last}.{first}"),
    };
    let domain = EMAIL_DOMAINS.choose(rng).copied().unwrap_or("example.com");
    let plain = format!("{local}@{domain}");
    if taken.insert(plain.clone()) {
        return plain;
    }
    let mut number = 2_u32;
    loop {
        let numbered = format!("{local}{number}@{domain}");
        if taken.insert(numbered.clone()) {
            return numbered;
        }
        number += 1;
    }
}

/// Lower-case ASCII letters only ("O'Neil" -> "oneil").
fn email_part(name: &str) -> String {
    name.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect()
}

/// A generated tag; its id is its position plus one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tag {
    name: String,
    topic: u8,
}

/// The first `count` tags: the curated names taken round-robin across topics
/// (so a small set still covers every topic), then names derived from them.
fn generate_tags(count: u32) -> Vec<Tag> {
    let count = count as usize;
    let mut tags = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let deepest = TOPICS.iter().map(|t| t.tags.len()).max().unwrap_or(0);
    'curated: for depth in 0..deepest {
        for (topic, spec) in TOPICS.iter().enumerate() {
            if tags.len() == count {
                break 'curated;
            }
            if let Some(name) = spec.tags.get(depth)
                && seen.insert((*name).to_owned())
            {
                tags.push(Tag { name: (*name).to_owned(), topic: u8::try_from(topic).unwrap_or(0) });
            }
        }
    }
    // Beyond the list: "rust-basics", "postgres-basics", ..., then numbered
    // rounds ("rust-2"), skipping any name already used.
    let curated = tags.len();
    let mut round = 0_usize;
    while tags.len() < count && curated > 0 {
        let suffix =
            TAG_SUFFIXES.get(round).map_or_else(|| (round - TAG_SUFFIXES.len() + 2).to_string(), |s| (*s).to_owned());
        for base in 0..curated {
            if tags.len() == count {
                break;
            }
            let name = format!("{}-{suffix}", tags[base].name);
            if seen.insert(name.clone()) {
                let topic = tags[base].topic;
                tags.push(Tag { name, topic });
            }
        }
        round += 1;
    }
    tags
}

/// A generated note, ready to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Note {
    id: i64,
    /// Index into the users.
    author: u32,
    topic: u8,
    title: String,
    body: String,
    private: bool,
    created_at: i64,
    updated_at: i64,
    /// Indexes into the tags, ascending and distinct.
    tags: Vec<u32>,
}

/// Yields notes one by one (an iterator) so the caller can stream them.
struct NoteGenerator {
    rng: ChaCha8Rng,
    next_id: i64,
    total: u32,
    now: i64,
    slot: i64,
    /// Users ordered by how much they write: a draw skewed towards the front
    /// makes a few prolific authors and a long tail.
    authors_by_rank: Vec<u32>,
    favourite_topics: Vec<[u8; 2]>,
    tags_by_topic: Vec<Vec<u32>>,
    tag_count: u32,
}

impl NoteGenerator {
    fn new(opts: &SeedOptions, users: &[User], tags: &[Tag], now: i64) -> Self {
        let mut rng = rng_for(opts.seed, NOTE_STREAM);
        let mut authors_by_rank: Vec<u32> = (0..opts.users).collect();
        authors_by_rank.shuffle(&mut rng);
        // User 1 is the most prolific author: the published load mix and the
        // examples read `user(id: "1") { notes }` and expect a full page.
        if let Some(first) = authors_by_rank.iter().position(|&u| u == 0) {
            authors_by_rank.swap(0, first);
        }
        let mut tags_by_topic = vec![Vec::new(); TOPICS.len()];
        for (index, tag) in (0_u32..).zip(tags) {
            tags_by_topic[usize::from(tag.topic)].push(index);
        }
        Self {
            rng,
            next_id: 1,
            total: opts.notes,
            now,
            slot: NOTES_SPAN_MICROS / i64::from(opts.notes.max(1)),
            authors_by_rank,
            favourite_topics: users.iter().map(|u| u.favourite_topics).collect(),
            tags_by_topic,
            tag_count: u32::try_from(tags.len()).unwrap_or(u32::MAX),
        }
    }

    /// About three tags (1 to 5), the first always from the note's topic
    /// when it has any, the others from it four times in five.
    fn pick_tags(&mut self, topic: u8) -> Vec<u32> {
        if self.tag_count == 0 {
            return Vec::new();
        }
        let wanted = match self.rng.random_range(0..100) {
            0..12 => 1,
            12..37 => 2,
            37..67 => 3,
            67..87 => 4,
            _ => 5,
        }
        .min(self.tag_count as usize);
        let on_topic = &self.tags_by_topic[usize::from(topic)];
        let mut chosen: Vec<u32> = Vec::with_capacity(wanted);
        let mut attempts = 0;
        while chosen.len() < wanted {
            attempts += 1;
            let candidate = if attempts > 32 {
                // A tiny tag set can make random draws repeat for long; take
                // the first unused tag to stay bounded.
                (0..self.tag_count).find(|t| !chosen.contains(t)).unwrap_or(0)
            } else if !on_topic.is_empty() && (chosen.is_empty() || self.rng.random_bool(0.8)) {
                *on_topic.choose(&mut self.rng).unwrap_or(&0)
            } else {
                self.rng.random_range(0..self.tag_count)
            };
            if !chosen.contains(&candidate) {
                chosen.push(candidate);
            }
        }
        // Ascending, so the COPY into note_tags follows its primary key.
        chosen.sort_unstable();
        chosen
    }
}

impl Iterator for NoteGenerator {
    type Item = Note;

    fn next(&mut self) -> Option<Note> {
        if self.next_id > i64::from(self.total) || self.authors_by_rank.is_empty() {
            return None;
        }
        let id = self.next_id;
        self.next_id += 1;
        let rng = &mut self.rng;

        // rank = n * u^2: the top 1% of users write about 10% of the notes,
        // the least active still a few.
        let u: f64 = rng.random();
        let rank = (u * u * self.authors_by_rank.len() as f64) as usize;
        let author = self.authors_by_rank[rank.min(self.authors_by_rank.len() - 1)];
        let topic = if rng.random_bool(0.75) {
            let favourites = self.favourite_topics[author as usize];
            favourites[usize::from(rng.random_bool(0.5))]
        } else {
            rng_topic_index(rng)
        };
        let spec = &TOPICS[usize::from(topic)];

        // The focus noun appears in the title and in most sentences, which is
        // what makes a note about one thing rather than a word salad.
        let focus = pick(rng, spec.nouns);
        let title_template = pick(rng, TITLE_TEMPLATES);
        let title = capitalize(&fill(rng, title_template, spec, focus));
        let sentences = rng.random_range(2..=5);
        let mut body = String::with_capacity(512);
        for template in SENTENCE_TEMPLATES.choose_multiple(rng, sentences) {
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(&capitalize(&fill(rng, template, spec, focus)));
        }

        // Creation times increase with id: one slot per note, a random
        // moment inside it.
        let start = self.now - NOTES_SPAN_MICROS;
        let created_at = start + (id - 1) * self.slot + rng.random_range(0..self.slot.max(1));
        let updated_at = if rng.random_bool(0.35) {
            let room = (self.now - created_at).min(MAX_EDIT_DELAY_MICROS);
            created_at + rng.random_range(0..=room.max(0))
        } else {
            created_at
        };

        let tags = self.pick_tags(topic);
        // Note 1 is always public: the published load mix reads `note(id: "1")`
        // anonymously and expects a note.
        let private = self.rng.random_bool(0.1) && id != 1;
        Some(Note { id, author, topic, title, body, private, created_at, updated_at, tags })
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or("")
}

/// Expands `{t}` (topic), `{n}` (the note's focus noun), `{m}` (another
/// noun), `{v}` (verb phrase) and `{a}` (adjective).
fn fill(rng: &mut ChaCha8Rng, template: &str, topic: &Topic, focus: &str) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let slot = rest.as_bytes().get(open + 1).copied();
        rest = rest.get(open + 3..).unwrap_or("");
        match slot {
            Some(b't') => out.push_str(topic.name),
            Some(b'n') => out.push_str(focus),
            Some(b'm') => {
                let mut other = pick(rng, topic.nouns);
                if other == focus {
                    other = pick(rng, topic.nouns);
                }
                out.push_str(other);
            }
            Some(b'v') => out.push_str(pick(rng, topic.verbs)),
            Some(b'a') => out.push_str(pick(rng, topic.adjectives)),
            _ => {}
        }
    }
    out.push_str(rest);
    out
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| first.to_uppercase().chain(chars).collect())
}

/// A subject people keep notes about, with the words such notes use.
struct Topic {
    /// How sentences name the topic ("Most guides on {t} ...").
    name: &'static str,
    /// Curated tag names, most general first.
    tags: &'static [&'static str],
    nouns: &'static [&'static str],
    /// Base-form verb phrases ("to {v}", "I will {v}").
    verbs: &'static [&'static str],
    adjectives: &'static [&'static str],
}

/// Title shapes; placeholders as in [`fill`].
const TITLE_TEMPLATES: &[&str] = &[
    "Notes on {n}",
    "How to {v}",
    "{n} vs {m}",
    "Why I care about {n}",
    "A {a} guide to {n}",
    "What I learned about {n}",
    "{t}: notes on {n}",
    "Checklist: {n}",
    "Quick tip: {v}",
    "Understanding {n}",
    "Setting up {n}",
    "Lessons from {n}",
    "{t} log: {n}",
    "Getting started with {n}",
    "Common mistakes with {n}",
    "When to {v}",
    "Questions about {n}",
    "Revisiting {n}",
];

/// Body sentences, each about one focus noun so a note stays on its subject.
const SENTENCE_TEMPLATES: &[&str] = &[
    "I spent the weekend looking into {n} and it turned out simpler than expected.",
    "The trick with {n} is to keep it {a} and to {v} early.",
    "Most guides on {t} skip {n}, but it matters more than {m}.",
    "Next time I will {v} before touching {m}.",
    "A {a} approach to {n} beats a clever one every time.",
    "It helps to {v} first, then compare {n} with {m}.",
    "I keep a short list of {t} notes so that {n} never surprises me again.",
    "The biggest win this month came from {n}: I learned to {v}.",
    "{n} and {m} are easy to confuse, so I wrote down the difference.",
    "If something about {n} feels off, try to {v} and look again.",
    "My current rule of thumb for {t}: {v}, and leave {m} for later.",
    "A friend told me to {v}, which made {n} much more {a}.",
    "There is no {a} answer for {n}; it depends on {m}.",
    "Looking back, {n} turned out to be the part of {t} I underestimated.",
    "Before I {v}, I check {m} and write the result down.",
    "The docs on {n} are thin, but the examples around {m} help.",
    "Open question: what changes about {n} when you {v}?",
    "I tried three approaches to {n} and the {a} one won.",
    "Someone asked me about {m}, so here is what I know about {n} in {t}.",
    "Doing this weekly keeps {n} {a} and {m} under control.",
    "Remember to {v}; skipping it cost me an afternoon with {m}.",
    "The best resource on {t} I found explains {n} with {m} as the example.",
    "Small steps: {v}, review {n}, repeat.",
    "Worth revisiting: {n}, {m} and how they fit into {t}.",
];

/// Suffixes for tags beyond the curated list.
const TAG_SUFFIXES: &[&str] =
    &["basics", "advanced", "tips", "tools", "ideas", "reference", "questions", "projects", "history", "resources"];

/// Reserved example domains (RFC 2606), so no generated address is real.
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net", "mail.example.com", "inbox.example.org"];

// The name and vocabulary tables are kept dense (rustfmt would put every
// entry on a line of its own and triple their length).
#[rustfmt::skip]
const FIRST_NAMES: &[&str] = &[
    "Aaliyah", "Aaron", "Abigail", "Adam", "Aisha", "Alejandro", "Alex", "Alice", "Amara",
    "Amelia", "Ana", "Andrei", "Anna", "Arjun", "Ava", "Benjamin", "Bianca", "Carlos", "Caroline",
    "Chen", "Chloe", "Daniel", "David", "Diego", "Dmitri", "Elena", "Elif", "Elijah", "Emma",
    "Ethan", "Fatima", "Felix", "Freya", "Gabriel", "Grace", "Hana", "Hannah", "Hiroshi", "Ibrahim",
    "Ines", "Isaac", "Isabella", "Ivan", "Jack", "Jakob", "James", "Jana", "Javier", "Jia",
    "Jonas", "Julia", "Kai", "Karan", "Kenji", "Laila", "Lars", "Laura", "Leila", "Leo", "Liam",
    "Lina", "Lucas", "Lucia", "Mai", "Marco", "Maria", "Mateo", "Maya", "Mei", "Mia", "Mohammed",
    "Nadia", "Naomi", "Nina", "Noah", "Nora", "Olga", "Oliver", "Omar", "Pablo", "Priya",
    "Rafael", "Ravi", "Rosa", "Ruth", "Sakura", "Samuel", "Sara", "Sebastian", "Sofia", "Sven",
    "Tariq", "Theo", "Tomas", "Valentina", "Victor", "Wei", "Yara", "Yusuf", "Zara", "Zoe",
];

#[rustfmt::skip]
const LAST_NAMES: &[&str] = &[
    "Abe", "Adams", "Ahmed", "Ali", "Alvarez", "Andersen", "Bauer", "Becker", "Bianchi", "Brown",
    "Campbell", "Castro", "Chen", "Clark", "Costa", "Cruz", "Davies", "Dubois", "Eriksson",
    "Evans", "Fernandez", "Fischer", "Garcia", "Gomez", "Gonzalez", "Gupta", "Hansen", "Hoffmann",
    "Hughes", "Ibrahim", "Ito", "Jansen", "Johnson", "Jones", "Kaur", "Khan", "Kim", "Kowalski",
    "Kumar", "Larsen", "Lee", "Lopez", "Martin", "Martinez", "Meyer", "Moreau", "Morris", "Muller",
    "Nakamura", "Nguyen", "Nielsen", "Novak", "O'Brien", "Okafor", "Olsen", "Ortiz", "Park",
    "Patel", "Perez", "Petrov", "Popescu", "Quinn", "Ramirez", "Reyes", "Rossi", "Russo", "Sato",
    "Schmidt", "Schneider", "Shah", "Silva", "Singh", "Smith", "Sousa", "Suzuki", "Tanaka",
    "Taylor", "Thomas", "Torres", "Tran", "Wagner", "Walker", "Wang", "Weber", "White", "Williams",
    "Wilson", "Wong", "Yamamoto", "Yilmaz", "Young", "Zhang",
];

#[rustfmt::skip]
const TOPICS: &[Topic] = &[
    Topic {
        name: "Rust",
        tags: &[
            "rust", "cargo", "async", "tokio", "borrow-checker", "traits", "macros", "webassembly",
            "embedded", "clippy",
        ],
        nouns: &[
            "the borrow checker", "lifetimes", "trait objects", "async runtimes", "error handling",
            "cargo workspaces", "procedural macros", "iterators", "unsafe code",
            "the tokio scheduler", "generic bounds", "compile times",
        ],
        verbs: &[
            "profile the build", "split the crate", "run clippy", "write a property test",
            "pin the toolchain", "read the compiler error twice", "benchmark the hot loop",
            "replace the clone with a borrow",
        ],
        adjectives: &["explicit", "idiomatic", "zero-cost", "predictable", "strict", "ergonomic"],
    },
    Topic {
        name: "Postgres",
        tags: &[
            "postgres", "sql", "indexing", "query-planning", "migrations", "replication", "sqlite",
            "vacuum", "transactions", "pgvector",
        ],
        nouns: &[
            "query plans", "btree indexes", "autovacuum", "connection pooling", "row locks",
            "the write-ahead log", "partial indexes", "transaction isolation", "foreign keys",
            "common table expressions", "replication slots", "table bloat",
        ],
        verbs: &[
            "run explain analyze", "add a covering index", "tune work_mem", "vacuum the table",
            "batch the inserts", "check pg_stat_statements", "rewrite the subquery as a join",
            "test the migration on a copy",
        ],
        adjectives: &["consistent", "durable", "indexed", "normalized", "slow", "transactional"],
    },
    Topic {
        name: "GraphQL",
        tags: &[
            "graphql", "rest", "api-design", "schema-design", "dataloader", "pagination", "http",
            "grpc", "openapi", "caching",
        ],
        nouns: &[
            "resolvers", "the N+1 problem", "cursor pagination", "schema stitching",
            "input validation", "field deprecation", "dataloader batching",
            "query complexity limits", "error extensions", "persisted queries", "subscriptions",
            "nullable fields",
        ],
        verbs: &[
            "batch the resolver calls", "version the schema", "add a complexity limit",
            "cache the response", "document every field", "deprecate the old field",
            "trace each resolver", "paginate with cursors",
        ],
        adjectives: &["typed", "versioned", "paginated", "backwards-compatible", "cacheable", "chatty"],
    },
    Topic {
        name: "web development",
        tags: &[
            "javascript", "typescript", "react", "css", "html", "accessibility",
            "web-performance", "svelte", "bundlers", "design-systems",
        ],
        nouns: &[
            "component state", "CSS grid", "bundle size", "hydration", "form validation",
            "keyboard navigation", "the virtual DOM", "type definitions", "responsive layouts",
            "web fonts", "service workers", "color contrast",
        ],
        verbs: &[
            "split the bundle", "add alt text", "memoize the component", "lazy-load the images",
            "audit the page with Lighthouse", "type the props", "test with a screen reader",
            "remove the unused CSS",
        ],
        adjectives: &["accessible", "responsive", "lightweight", "reactive", "semantic", "fast"],
    },
    Topic {
        name: "DevOps",
        tags: &[
            "docker", "kubernetes", "ci-cd", "terraform", "observability", "monitoring", "linux",
            "nginx", "incident-response", "cloud",
        ],
        nouns: &[
            "container images", "deployment pipelines", "health checks", "log aggregation",
            "alert fatigue", "rolling updates", "infrastructure as code", "resource limits",
            "on-call rotations", "reverse proxies", "secrets management", "postmortems",
        ],
        verbs: &[
            "shrink the image", "add a readiness probe", "pin the base image", "write a runbook",
            "roll back the deploy", "set resource limits", "rotate the secrets",
            "page the right person",
        ],
        adjectives: &["reproducible", "observable", "automated", "resilient", "immutable", "noisy"],
    },
    Topic {
        name: "machine learning",
        tags: &[
            "machine-learning", "deep-learning", "embeddings", "nlp", "pytorch", "data-science",
            "llm", "statistics", "computer-vision", "vector-search",
        ],
        nouns: &[
            "training data", "embeddings", "overfitting", "learning rates", "evaluation metrics",
            "feature engineering", "transformers", "fine-tuning", "tokenizers",
            "gradient descent", "cross-validation", "vector similarity",
        ],
        verbs: &[
            "normalize the features", "hold out a test set", "lower the learning rate",
            "plot the loss curve", "label more examples", "compare against a baseline",
            "fine-tune the model", "check for data leakage",
        ],
        adjectives: &["noisy", "overfit", "robust", "labeled", "sparse", "calibrated"],
    },
    Topic {
        name: "Python",
        tags: &[
            "python", "pandas", "numpy", "jupyter", "django", "fastapi", "packaging", "pytest",
            "type-hints", "scripting",
        ],
        nouns: &[
            "virtual environments", "dataframes", "list comprehensions", "type hints",
            "decorators", "pytest fixtures", "dependency pinning", "notebooks", "generators",
            "the standard library", "async views", "import cycles",
        ],
        verbs: &[
            "pin the dependencies", "add type hints", "write a fixture", "vectorize the loop",
            "profile the script", "freeze the environment", "split the notebook into modules",
            "run the linter",
        ],
        adjectives: &["pythonic", "readable", "dynamic", "typed", "reproducible", "quick"],
    },
    Topic {
        name: "cooking",
        tags: &[
            "cooking", "recipes", "baking", "bread", "vegetarian", "meal-prep", "fermentation",
            "coffee", "spices", "desserts",
        ],
        nouns: &[
            "sourdough starter", "knife skills", "cast iron pans", "weeknight dinners",
            "roasted vegetables", "homemade stock", "spice blends", "pizza dough", "kimchi",
            "pour-over coffee", "chocolate cake", "lentil soup",
        ],
        verbs: &[
            "salt the pasta water", "proof the dough overnight", "toast the spices",
            "sharpen the knife", "prep vegetables on Sunday", "taste before serving",
            "brown the butter", "rest the meat",
        ],
        adjectives: &["crispy", "fragrant", "savory", "seasonal", "hearty", "tangy"],
    },
    Topic {
        name: "travel",
        tags: &[
            "travel", "hiking", "backpacking", "japan", "italy", "road-trips", "packing-lists",
            "budget-travel", "camping", "city-guides",
        ],
        nouns: &[
            "train passes", "carry-on luggage", "trail maps", "night markets", "travel insurance",
            "hostels", "mountain huts", "jet lag", "local buses", "old towns", "ferry schedules",
            "street food",
        ],
        verbs: &[
            "book the train early", "pack a rain jacket", "learn a few phrases",
            "walk the old town", "check the trail conditions", "carry some cash",
            "download offline maps", "travel in the shoulder season",
        ],
        adjectives: &["scenic", "affordable", "crowded", "remote", "walkable", "unforgettable"],
    },
    Topic {
        name: "fitness",
        tags: &[
            "fitness", "running", "strength-training", "yoga", "nutrition", "sleep", "cycling",
            "mobility", "marathon", "mental-health",
        ],
        nouns: &[
            "interval training", "recovery days", "protein intake", "running shoes", "deadlifts",
            "morning stretches", "heart rate zones", "progressive overload", "long runs",
            "sleep quality", "hydration", "training plans",
        ],
        verbs: &[
            "warm up properly", "track the heart rate", "add one rest day",
            "increase the load slowly", "stretch after running", "sleep eight hours",
            "log every workout", "run the easy days easy",
        ],
        adjectives: &["sustainable", "intense", "consistent", "sore", "energizing", "steady"],
    },
    Topic {
        name: "productivity",
        tags: &[
            "productivity", "time-management", "note-taking", "habits", "focus", "journaling",
            "gtd", "zettelkasten", "planning", "remote-work",
        ],
        nouns: &[
            "daily reviews", "inbox zero", "deep work", "to-do lists", "calendar blocking",
            "linked notes", "weekly planning", "meeting notes", "habit streaks", "distractions",
            "morning routines", "project templates",
        ],
        verbs: &[
            "block focus time", "review the week on Friday", "capture everything in one inbox",
            "link the new note", "turn off notifications", "write tomorrow's plan tonight",
            "batch the small tasks", "say no to one meeting",
        ],
        adjectives: &["focused", "calm", "organized", "deliberate", "sustainable", "cluttered"],
    },
    Topic {
        name: "reading",
        tags: &[
            "books", "reading-list", "fiction", "science-fiction", "history", "philosophy",
            "poetry", "book-review", "biographies", "essays",
        ],
        nouns: &[
            "reading lists", "science fiction", "historical novels", "margin notes",
            "book clubs", "short stories", "the library", "audiobooks", "classic essays",
            "unreliable narrators", "world-building", "ancient philosophy",
        ],
        verbs: &[
            "read before bed", "take margin notes", "finish one book before starting another",
            "join a book club", "reread the last chapter", "summarize each chapter",
            "borrow from the library", "write a short review",
        ],
        adjectives: &["gripping", "thoughtful", "dense", "moving", "slow-burning", "timeless"],
    },
    Topic {
        name: "music",
        tags: &[
            "music", "guitar", "piano", "music-theory", "jazz", "songwriting", "home-recording",
            "vinyl", "synthesizers", "concerts",
        ],
        nouns: &[
            "chord progressions", "scales", "practice routines", "home recording",
            "vinyl records", "ear training", "drum patterns", "song structure", "analog synths",
            "live concerts", "sight reading", "jazz standards",
        ],
        verbs: &[
            "practice with a metronome", "learn one new chord", "record every session",
            "transcribe a solo", "slow the tempo down", "tune before playing",
            "write the chorus first", "play along with records",
        ],
        adjectives: &["melodic", "rhythmic", "warm", "improvised", "catchy", "soulful"],
    },
    Topic {
        name: "gardening",
        tags: &[
            "gardening", "houseplants", "composting", "vegetables", "permaculture", "herbs",
            "seeds", "pruning", "balcony-garden", "soil",
        ],
        nouns: &[
            "raised beds", "compost piles", "tomato plants", "seed starting",
            "companion planting", "houseplant watering", "mulch", "fruit trees", "soil health",
            "slug control", "herb pots", "crop rotation",
        ],
        verbs: &[
            "water in the morning", "turn the compost", "prune after flowering",
            "sow the seeds indoors", "test the soil", "mulch the beds", "rotate the crops",
            "repot the plant in spring",
        ],
        adjectives: &["organic", "shady", "fertile", "drought-tolerant", "lush", "perennial"],
    },
    Topic {
        name: "personal finance",
        tags: &[
            "personal-finance", "budgeting", "investing", "taxes", "savings", "retirement",
            "index-funds", "frugality", "mortgages", "side-income",
        ],
        nouns: &[
            "emergency funds", "index funds", "monthly budgets", "tax returns",
            "retirement accounts", "credit cards", "compound interest", "subscriptions",
            "mortgage rates", "savings goals", "expense tracking", "asset allocation",
        ],
        verbs: &[
            "automate the savings", "rebalance once a year", "cancel unused subscriptions",
            "track every expense", "pay off the card in full", "compare the fees",
            "file the taxes early", "max out the retirement account",
        ],
        adjectives: &["frugal", "diversified", "long-term", "predictable", "risky", "cheap"],
    },
    Topic {
        name: "photography",
        tags: &[
            "photography", "cameras", "lenses", "photo-editing", "film-photography", "portraits",
            "street-photography", "landscape-photography", "composition", "lighting",
        ],
        nouns: &[
            "prime lenses", "golden hour", "exposure settings", "the rule of thirds",
            "raw files", "film stock", "portrait lighting", "street scenes", "white balance",
            "tripods", "depth of field", "color grading",
        ],
        verbs: &[
            "shoot in raw", "wait for the golden hour", "underexpose slightly", "use a tripod",
            "edit in small steps", "walk with one lens", "back up the photos",
            "check the histogram",
        ],
        adjectives: &["sharp", "moody", "grainy", "balanced", "candid", "bright"],
    },
    Topic {
        name: "DIY projects",
        tags: &[
            "diy", "woodworking", "home-repair", "tools", "electronics", "3d-printing",
            "renovation", "arduino", "raspberry-pi", "soldering",
        ],
        nouns: &[
            "wood joints", "power tools", "the workbench", "wall anchors", "soldering irons",
            "3D printed parts", "wiring diagrams", "paint finishes", "microcontrollers",
            "sanding grits", "shelf brackets", "sensor boards",
        ],
        verbs: &[
            "measure twice and cut once", "pre-drill the holes", "sand with a finer grit",
            "label the wires", "clamp the joint overnight", "calibrate the printer",
            "check the voltage", "wear safety glasses",
        ],
        adjectives: &["sturdy", "handmade", "precise", "cheap", "wobbly", "reusable"],
    },
    Topic {
        name: "security",
        tags: &[
            "security", "cryptography", "authentication", "oauth", "jwt", "passwords",
            "threat-modeling", "tls", "privacy", "vulnerabilities",
        ],
        nouns: &[
            "password managers", "two-factor authentication", "access tokens", "threat models",
            "TLS certificates", "session cookies", "dependency audits", "phishing emails",
            "key rotation", "input sanitization", "audit logs", "least privilege",
        ],
        verbs: &[
            "rotate the keys", "enable two-factor authentication", "audit the dependencies",
            "hash the passwords", "expire the tokens", "log every login",
            "review the permissions", "patch the server",
        ],
        adjectives: &["encrypted", "least-privileged", "auditable", "hardened", "leaky", "trusted"],
    },
    Topic {
        name: "language learning",
        tags: &[
            "language-learning", "japanese", "spanish", "french", "german", "grammar",
            "vocabulary", "flashcards", "pronunciation", "immersion",
        ],
        nouns: &[
            "spaced repetition", "verb conjugations", "kanji", "listening practice",
            "language exchanges", "flashcard decks", "pronunciation drills", "grammar tables",
            "graded readers", "podcasts for learners", "false friends", "sentence mining",
        ],
        verbs: &[
            "review the flashcards daily", "shadow a native speaker", "read a graded reader",
            "speak from day one", "mine sentences from shows", "write a short diary entry",
            "label things around the house", "repeat the tricky sounds",
        ],
        adjectives: &["fluent", "native", "tricky", "irregular", "conversational", "immersive"],
    },
    Topic {
        name: "career growth",
        tags: &[
            "career", "interviewing", "management", "mentoring", "hiring", "leadership",
            "meetings", "feedback", "onboarding", "technical-writing",
        ],
        nouns: &[
            "one-on-ones", "performance reviews", "job interviews", "onboarding plans",
            "design docs", "team meetings", "feedback conversations", "career ladders",
            "mentoring sessions", "hiring loops", "decision logs", "status updates",
        ],
        verbs: &[
            "write the agenda first", "give feedback early", "ask open questions",
            "document the decision", "shadow a senior colleague", "prepare three stories",
            "set clear goals", "cancel the recurring meeting",
        ],
        adjectives: &["candid", "supportive", "clear", "asynchronous", "structured", "honest"],
    },
    Topic {
        name: "systems design",
        tags: &[
            "algorithms", "data-structures", "distributed-systems", "concurrency", "compilers",
            "networking", "operating-systems", "performance", "testing", "software-architecture",
        ],
        nouns: &[
            "hash tables", "consensus protocols", "cache invalidation", "lock contention",
            "binary trees", "message queues", "tail latency", "garbage collection",
            "load balancers", "property-based tests", "parsers", "memory layouts",
        ],
        verbs: &[
            "measure before optimizing", "add a cache", "shard the data", "write a benchmark",
            "remove the lock", "retry with backoff", "draw the sequence diagram",
            "test the failure mode",
        ],
        adjectives: &[
            "distributed", "concurrent", "eventually consistent", "lock-free", "scalable",
            "deterministic",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_790_000_000_000_000;

    fn options(users: u32, notes: u32, tags: u32, seed: u64) -> SeedOptions {
        SeedOptions { users, notes, tags, seed }
    }

    fn generate_notes(opts: &SeedOptions) -> Vec<Note> {
        let users = generate_users(opts.users, opts.seed, NOW);
        let tags = generate_tags(opts.tags);
        NoteGenerator::new(opts, &users, &tags, NOW).collect()
    }

    #[test]
    fn same_seed_same_data_other_seed_other_data() {
        let opts = options(40, 300, 25, 7);
        assert_eq!(generate_users(40, 7, NOW), generate_users(40, 7, NOW));
        assert_eq!(generate_notes(&opts), generate_notes(&opts));
        assert_ne!(generate_users(40, 8, NOW), generate_users(40, 7, NOW));
        assert_ne!(generate_notes(&options(40, 300, 25, 8)), generate_notes(&opts));
    }

    #[test]
    fn sizes_are_as_asked() {
        let opts = options(50, 500, 30, 42);
        assert_eq!(generate_users(50, 42, NOW).len(), 50);
        assert_eq!(generate_tags(30).len(), 30);
        let notes = generate_notes(&opts);
        assert_eq!(notes.len(), 500);
        assert_eq!(notes.last().map(|n| n.id), Some(500));
        assert!(generate_notes(&options(0, 0, 0, 1)).is_empty());
    }

    #[test]
    fn emails_are_unique_and_lower_case() {
        // More users than first x last name pairs forces numbered addresses.
        let users = generate_users(20_000, 42, NOW);
        let emails: HashSet<&str> = users.iter().map(|u| u.email.as_str()).collect();
        assert_eq!(emails.len(), users.len());
        for user in &users {
            assert_eq!(user.email, user.email.to_lowercase());
            assert!(user.email.is_ascii() && user.email.contains('@'), "{}", user.email);
        }
    }

    #[test]
    fn tag_names_are_unique_beyond_the_curated_list() {
        let curated: usize = TOPICS.iter().map(|t| t.tags.len()).sum();
        for count in [0, 1, 30, 200, curated as u32, 1_000, 5_000] {
            let tags = generate_tags(count);
            assert_eq!(tags.len(), count as usize);
            let names: HashSet<&str> = tags.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names.len(), tags.len(), "duplicates among {count}");
            for tag in &tags {
                assert_eq!(tag.name, tag.name.trim().to_lowercase());
            }
        }
        // A small set still has a tag for every topic.
        let topics: HashSet<u8> = generate_tags(TOPICS.len() as u32).iter().map(|t| t.topic).collect();
        assert_eq!(topics.len(), TOPICS.len());
    }

    #[test]
    fn notes_are_well_formed() {
        let opts = options(100, 2_000, 40, 3);
        let notes = generate_notes(&opts);
        let mut previous = i64::MIN;
        let mut private = 0;
        let mut links = 0;
        for note in &notes {
            assert!(note.author < opts.users);
            assert!(note.created_at > previous, "created_at must grow with id");
            assert!(note.created_at >= NOW - NOTES_SPAN_MICROS);
            assert!(note.updated_at >= note.created_at && note.updated_at <= NOW);
            assert!((1..=5).contains(&note.tags.len()));
            assert!(note.tags.windows(2).all(|w| w[0] < w[1]));
            assert!(note.tags.iter().all(|&t| t < opts.tags));
            let sentences = note.body.matches(['.', '?']).count();
            assert!((2..=5).contains(&sentences), "{}", note.body);
            assert!(!note.title.is_empty() && !note.title.contains('{'));
            assert!(!note.body.contains('{'));
            previous = note.created_at;
            private += usize::from(note.private);
            links += note.tags.len();
        }
        assert!((100..300).contains(&private), "{private} private");
        let mean = links as f64 / notes.len() as f64;
        assert!((2.6..3.4).contains(&mean), "{mean} tags per note");
    }

    #[test]
    fn some_authors_are_prolific() {
        let opts = options(1_000, 20_000, 50, 42);
        let mut per_author = vec![0_u32; 1_000];
        for note in generate_notes(&opts) {
            per_author[note.author as usize] += 1;
        }
        per_author.sort_unstable_by(|a, b| b.cmp(a));
        let top_ten: u32 = per_author[..10].iter().sum();
        // Uniform authors would give the top 1% about 1.3% of the notes.
        assert!(top_ten > 1_500, "top 10 authors wrote {top_ten}");
    }

    #[test]
    fn tags_follow_the_topic() {
        let opts = options(100, 2_000, 200, 5);
        let tags = generate_tags(200);
        let notes = generate_notes(&opts);
        let on_topic = notes.iter().filter(|n| n.tags.iter().any(|&t| tags[t as usize].topic == n.topic)).count();
        assert_eq!(on_topic, notes.len());
    }

    #[test]
    fn notes_on_one_topic_embed_closer_than_across_topics() {
        let embedder = HashEmbedder::default();
        let opts = options(50, 400, 30, 11);
        let notes = generate_notes(&opts);
        let vectors: Vec<Vec<f32>> =
            notes.iter().map(|n| embedder.embed_one(&format!("{}\n{}", n.title, n.body))).collect();
        let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        let (mut same, mut same_n, mut other, mut other_n) = (0.0, 0, 0.0, 0);
        for i in 0..notes.len() {
            for j in (i + 1)..notes.len() {
                let c = cosine(&vectors[i], &vectors[j]);
                if notes[i].topic == notes[j].topic {
                    same += c;
                    same_n += 1;
                } else {
                    other += c;
                    other_n += 1;
                }
            }
        }
        let (same, other) = (same / same_n as f32, other / other_n as f32);
        assert!(same > other + 0.1, "same topic {same}, other {other}");
    }

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
