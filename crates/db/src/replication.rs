//! Where a streaming replica stands against its primary, in WAL positions
//! (bytes since the start of the WAL), so the api can tell whether a read
//! replica has replayed the writes it knows of.

use sqlx::PgPool;
use tracing::instrument;

use crate::Error;

/// The primary's current WAL write position: every transaction that
/// committed before this call lies at or before it.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
pub async fn primary_position(primary: &PgPool) -> Result<i64, Error> {
    let _statement = crate::measure::Statement::start("replication.primary_position");
    let position =
        sqlx::query_scalar("select (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint").fetch_one(primary).await?;
    Ok(position)
}

/// How far the server behind `pool` has replayed the WAL: a standby's
/// replay position, or a primary's own write position (a "replica" that is
/// in fact the primary is never behind).
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
pub async fn replayed_position(pool: &PgPool) -> Result<i64, Error> {
    let _statement = crate::measure::Statement::start("replication.replayed_position");
    let position = sqlx::query_scalar(
        "select (case when pg_is_in_recovery() then pg_last_wal_replay_lsn() else pg_current_wal_lsn() end
                 - '0/0'::pg_lsn)::bigint",
    )
    .fetch_one(pool)
    .await?;
    Ok(position)
}
