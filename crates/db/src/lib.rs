//! Postgres access for Notegraph: the pool and its connection settings, the
//! migrations, the row types and every SQL statement the server runs.
//!
//! Reads that resolvers make per item are batched by key (`= any($1)` or a
//! lateral join over `unnest`ed keys) so that a loader turns N lookups into
//! one statement. Visibility (public, or the viewer's own) is enforced here,
//! in SQL, for every list and count. This crate knows nothing of GraphQL or
//! HTTP.
//!
//! Layout, one module a file (`bulk` a folder):
//! - `pool`: connection settings, connecting, readiness.
//! - `tls`: the URL's TLS parameters, read as libpq reads them.
//! - `refusal`: why a connection could not be made, in plain words.
//! - [`batch`]: group commit, many callers' writes in one statement.
//! - [`budget`]: statements under what is left of a request's deadline.
//! - [`measure`]: each statement counted and timed, for the api's metrics.
//! - `error`: [`Error`], the outcomes callers act on.
//! - `ids`: typed ids, [`Viewer`], [`notes::Visibility`] and [`Page`].
//! - [`users`], [`notes`], [`tags`]: reads and writes of each table.
//! - [`pages`]: pages of notes by author or tag, batched.
//! - [`search`]: vector search.
//! - [`vector_index`]: which index serves vector search.
//! - [`embeddings`]: the embedding column's size, re-embedding.
//! - [`notify`]: write events over `NOTIFY`.
//! - [`replication`]: how far a read replica has replayed.
//! - [`bulk`]: replacing all data in one load, for the seeder.
//! - [`bench`](mod@bench): the vector benchmark's own statements.
//!
//! The Postgres the server starts when no `DATABASE_URL` is given is not
//! here: it is a process supervisor, the `pgembed` crate.

mod error;
mod ids;
mod pool;
mod refusal;
mod tls;

pub mod batch;
pub mod bench;
pub mod budget;
pub mod bulk;
pub mod embeddings;
pub mod measure;
pub mod notes;
pub mod notify;
pub mod pages;
pub mod replication;
pub mod search;
pub mod tags;
pub mod users;
pub mod vector_index;

pub use budget::{Budget, within};
pub use error::Error;
pub use ids::{NoteId, Page, TagId, UserId, Viewer};
pub use measure::{StatementObserver, observe_statements};
pub use pool::{Settings, connect, is_ready};
pub use refusal::{Refusal, explain};
pub use sqlx::{PgConnection, PgPool};
pub use tls::mode_name as ssl_mode_name;

/// The schema migrations, embedded at compile time and applied at start-up.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The largest key, used as the open upper bound of a descending keyset page
/// so that `id < coalesce($after, MAX_ID)` stays an index range condition.
const MAX_ID: i64 = i64::MAX;

/// Records on the statement's span how many rows it returned (`db.rows`),
/// for traces; the rows pass through untouched.
fn counted<T>(rows: Vec<T>) -> Vec<T> {
    measure::record_on_own_span("db.rows", rows.len());
    rows
}
