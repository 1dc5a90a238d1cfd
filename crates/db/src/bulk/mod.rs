//! Replacing all data at once, for the seeder (the `seed` crate): it
//! generates the rows, this module holds every statement that loads them.
//!
//! A [`Replacement`] is one transaction that checks whether the present
//! data is the seeder's own ([`Replacement::holds_unseeded_data`]),
//! truncates users, notes, tags and note_tags, drops the HNSW index and the
//! foreign keys, takes the new rows through binary `COPY` (encoded with
//! [`CopyRows`]), then re-adds the keys, rebuilds the index, runs `analyze`
//! and records the run in `seed_runs`. Building the index once and
//! validating each key in one join is far faster than maintaining both row
//! by row. From [`Replacement::begin`] until [`Replacement::finish`]
//! commits, readers wait on the transaction's lock and then see only the new
//! data; a failure or a dropped `Replacement` rolls back and leaves the
//! previous data untouched.

use sqlx::postgres::PgCopyIn;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tracing::instrument;

use crate::Error;
use crate::vector_index::{self, IndexKind};

mod copy;

pub use copy::{CopyRows, NoteCopy};

/// The tables a [`Replacement`] fills, each with the column list its COPY
/// stream carries (the order [`CopyRows`] writes fields in).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// `users (id, name, email, created_at)`.
    Users,
    /// `tags (id, name)`.
    Tags,
    /// `notes (id, author_id, title, body, visibility, created_at,
    /// updated_at, embedding, embedded_with)`.
    Notes,
    /// `note_tags (note_id, tag_id)`.
    NoteTags,
}

impl Table {
    /// `freeze` writes the rows already frozen, which Postgres allows
    /// because the table was truncated in this transaction; it spares a
    /// later vacuum from rewriting every page.
    fn copy_statement(self) -> &'static str {
        match self {
            Table::Users => "copy users (id, name, email, created_at) from stdin with (format binary, freeze)",
            Table::Tags => "copy tags (id, name) from stdin with (format binary, freeze)",
            Table::Notes => {
                "copy notes (id, author_id, title, body, visibility, created_at, updated_at, embedding, \
                 embedded_with) \
                 from stdin with (format binary, freeze)"
            }
            Table::NoteTags => "copy note_tags (note_id, tag_id) from stdin with (format binary, freeze)",
        }
    }
}

/// What was loaded: how many rows of each table with an id (ids are 1 to
/// the count, so this is also where each id sequence must continue) and
/// the seed that generated them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loaded {
    /// The seed the rows were generated from, recorded in `seed_runs`.
    pub seed: u64,
    /// Users, ids 1 to `users`.
    pub users: i64,
    /// Notes, ids 1 to `notes`.
    pub notes: i64,
    /// Tags, ids 1 to `tags`.
    pub tags: i64,
}

/// One transaction that replaces all data; see the module documentation for
/// the order of calls.
pub struct Replacement {
    tx: Transaction<'static, Postgres>,
    /// The statements that re-add the foreign keys [`Replacement::clear`]
    /// dropped.
    foreign_keys: Vec<String>,
}

impl Replacement {
    /// Begins the transaction and locks the tables it replaces.
    ///
    /// The statement timeout meant for API queries is lifted: the index
    /// build alone can outlast it. `set local` ends with the transaction, so
    /// the pooled connection keeps its settings. The lock is the one the
    /// truncate would take anyway, taken first so that nothing can be
    /// written between [`Replacement::holds_unseeded_data`] and the truncate;
    /// it waits for transactions that use the tables to end.
    ///
    /// # Errors
    ///
    /// Any database error.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn begin(pool: &PgPool) -> Result<Self, Error> {
        let _statement = crate::measure::Statement::start("bulk.begin");
        let mut tx = pool.begin().await?;
        sqlx::query("set local statement_timeout = 0").execute(&mut *tx).await?;
        sqlx::query("lock table users, notes, tags, note_tags, seed_runs in access exclusive mode")
            .execute(&mut *tx)
            .await?;
        Ok(Self { tx, foreign_keys: Vec::new() })
    }

    /// True when users, notes or tags exist that no seed run recorded:
    /// data the seeder did not create and should not drop unasked. An empty
    /// database and one the seeder loaded last both give false.
    ///
    /// # Errors
    ///
    /// Any database error.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn holds_unseeded_data(&mut self) -> Result<bool, Error> {
        let _statement = crate::measure::Statement::start("bulk.holds_unseeded_data");
        let unseeded = sqlx::query_scalar(
            "select not exists (select 1 from seed_runs) \
                and (exists (select 1 from users) or exists (select 1 from notes) \
                     or exists (select 1 from tags))",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(unseeded)
    }

    /// Truncates the tables (and the record of the previous seed run), drops
    /// the HNSW index and the foreign keys of the seeded tables; returns how
    /// many keys were dropped.
    ///
    /// Truncation cascades: a table added later that references these is
    /// seeded data too (empty after a reseed) rather than a reason to fail.
    ///
    /// # Errors
    ///
    /// Any database error.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn clear(&mut self) -> Result<usize, Error> {
        let _statement = crate::measure::Statement::start("bulk.clear");
        sqlx::query("truncate table note_tags, notes, tags, users, seed_runs restart identity cascade")
            .execute(&mut *self.tx)
            .await?;
        for index in [vector_index::HNSW_INDEX, vector_index::IVFFLAT_INDEX] {
            sqlx::query(&format!("drop index if exists {index}")).execute(&mut *self.tx).await?;
        }
        self.foreign_keys = drop_foreign_keys(&mut self.tx).await?;
        Ok(self.foreign_keys.len())
    }

    /// Opens the COPY stream into `table`; send it [`CopyRows`] data for
    /// that table. One stream at a time: finish it before opening the next.
    ///
    /// # Errors
    ///
    /// Any database error.
    pub async fn copy_in(&mut self, table: Table) -> Result<CopyIn<'_>, Error> {
        let conn: &mut PgConnection = &mut self.tx;
        Ok(CopyIn(conn.copy_in_raw(table.copy_statement()).await?))
    }

    /// Re-adds (and so validates) the foreign keys, and moves the id
    /// sequences past the loaded rows, which carry explicit ids, so that
    /// rows the server inserts later get fresh ones.
    ///
    /// # Errors
    ///
    /// A key the loaded rows violate, or any other database error.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn restore_constraints(&mut self, loaded: &Loaded) -> Result<(), Error> {
        let _statement = crate::measure::Statement::start("bulk.restore_constraints");
        for statement in std::mem::take(&mut self.foreign_keys) {
            sqlx::query(&statement).execute(&mut *self.tx).await?;
        }
        sqlx::query(
            "select setval(pg_get_serial_sequence(s.table_name, 'id'), s.last_id) \
             from unnest(array['users', 'notes', 'tags'], array[$1, $2, $3]::bigint[]) as s(table_name, last_id) \
             where s.last_id > 0",
        )
        .bind(loaded.users)
        .bind(loaded.notes)
        .bind(loaded.tags)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Builds the `kind` index on `notes.embedding` (HNSW or IVFFlat, the
    /// one `NOTEGRAPH_VECTOR_INDEX` names).
    ///
    /// pgvector builds the graph in memory when it fits in
    /// maintenance_work_mem (a few hundred MB for 100k notes) and otherwise
    /// falls back to a much slower on-disk build; a parallel build reserves
    /// all of it as shared memory up front, so the server needs that much
    /// room in /dev/shm (Docker's default of 64 MB is not). Two workers plus
    /// the leader on two cores measured fastest (23-29 s against 22-38 s with
    /// one worker and 54 s serial for 100k notes): the build waits on graph
    /// locks often enough that a third process fills the gaps. Both settings
    /// end with the transaction.
    ///
    /// # Errors
    ///
    /// Any database error.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn build_vector_index(&mut self, kind: IndexKind, ef_construction: u32) -> Result<(), Error> {
        let _statement = crate::measure::Statement::start("bulk.build_vector_index");
        sqlx::query("set local maintenance_work_mem = '1GB'").execute(&mut *self.tx).await?;
        sqlx::query("set local max_parallel_maintenance_workers = 2").execute(&mut *self.tx).await?;
        vector_index::build_in(&mut self.tx, kind, ef_construction).await
    }

    /// Runs `analyze` on the loaded tables, so the planner knows their new
    /// sizes at once, records the run in `seed_runs` (so that the next run
    /// knows the data as its own) and commits.
    ///
    /// # Errors
    ///
    /// Any database error; nothing is committed then.
    #[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
    pub async fn finish(mut self, loaded: &Loaded) -> Result<(), Error> {
        let _statement = crate::measure::Statement::start("bulk.finish");
        sqlx::query("analyze users, notes, tags, note_tags").execute(&mut *self.tx).await?;
        sqlx::query("insert into seed_runs (seed, users, notes, tags) values ($1::numeric, $2, $3, $4)")
            .bind(loaded.seed.to_string())
            .bind(loaded.users)
            .bind(loaded.notes)
            .bind(loaded.tags)
            .execute(&mut *self.tx)
            .await?;
        self.tx.commit().await?;
        Ok(())
    }
}

/// Drops the foreign keys of the seeded tables and returns the statements
/// that re-add them.
///
/// Checking a foreign key row by row costs a trigger and a lookup per row
/// (measured: the note_tags COPY took 8.8 s with its two keys and 1.3 s
/// without); re-adding the key validates all rows in one join in about 0.1 s.
/// The definitions come from the catalog rather than from constants here so
/// that they cannot drift from the migrations.
async fn drop_foreign_keys(conn: &mut PgConnection) -> Result<Vec<String>, Error> {
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

/// An open COPY stream into one table of a [`Replacement`].
pub struct CopyIn<'c>(PgCopyIn<&'c mut PgConnection>);

impl CopyIn<'_> {
    /// Sends the next piece of the stream; pieces need not end on a row.
    ///
    /// # Errors
    ///
    /// Any database error (for instance a row Postgres rejects).
    pub async fn send(&mut self, data: impl std::ops::Deref<Target = [u8]>) -> Result<(), Error> {
        self.0.send(data).await?;
        Ok(())
    }

    /// Ends the stream; returns the number of rows Postgres took.
    ///
    /// # Errors
    ///
    /// Malformed data, a rejected row, or any other database error.
    pub async fn finish(self) -> Result<u64, Error> {
        Ok(self.0.finish().await?)
    }

    /// Abandons the stream; the transaction must then be rolled back.
    ///
    /// # Errors
    ///
    /// Any database error while aborting.
    pub async fn abort(self, reason: &str) -> Result<(), Error> {
        Ok(self.0.abort(reason).await?)
    }
}
