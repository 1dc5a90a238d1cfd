//! Reads of `users`: by id in batches, and the keyset-paged list.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, PgPool};
use tracing::instrument;

use crate::{Error, Page, UserId};

/// One row of `users`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Primary key.
    pub id: UserId,
    /// Display name.
    pub name: String,
    /// Private to the user; the api decides who may read it.
    pub email: String,
    /// When the account was created.
    pub created_at: DateTime<Utc>,
}

/// Users with the given ids, in no particular order; missing ids are absent.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, batch = ids.len()))]
pub async fn fetch_by_ids<'c>(db: impl PgExecutor<'c>, ids: &[UserId]) -> Result<Vec<UserRow>, Error> {
    let _statement = crate::measure::Statement::start("users.fetch_by_ids");
    let rows = sqlx::query_as("select id, name, email, created_at from users where id = any($1)")
        .bind(ids)
        .fetch_all(db)
        .await?;
    Ok(crate::counted(rows))
}

/// Users oldest first (by id asc), a keyset page at a time.
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty, db.rows = tracing::field::Empty, first = page.first))]
pub async fn list<'c>(db: impl PgExecutor<'c>, page: Page<UserId>) -> Result<Vec<UserRow>, Error> {
    let _statement = crate::measure::Statement::start("users.list");
    // Ids start at 1, so `coalesce(after, 0)` keeps this a range condition
    // on the primary key instead of an `or` the planner cannot index.
    let rows = sqlx::query_as(
        "select id, name, email, created_at from users \
         where id > coalesce($1, 0) order by id limit $2",
    )
    .bind(page.after)
    .bind(page.first)
    .fetch_all(db)
    .await?;
    Ok(crate::counted(rows))
}

/// True when there are no users at all (a fresh database).
#[instrument(level = "debug", skip_all, fields(db.operation = tracing::field::Empty))]
pub async fn is_empty(pool: &PgPool) -> Result<bool, Error> {
    let _statement = crate::measure::Statement::start("users.is_empty");
    let any: bool = sqlx::query_scalar("select exists (select 1 from users)").fetch_one(pool).await?;
    Ok(!any)
}
