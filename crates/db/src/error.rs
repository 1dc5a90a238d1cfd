//! The database error type: the few outcomes callers act on, with anything
//! unexpected kept whole for the log (never for the client).

/// Why a database call failed, classified once here so callers match on
/// meaning instead of on SQLSTATE codes.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The row does not exist, or the viewer may not see it.
    #[error("not found")]
    NotFound,
    /// The row exists and is visible, but belongs to someone else.
    #[error("not the owner")]
    NotOwner,
    /// A unique constraint refused the write; the name says which.
    #[error("conflict on {0}")]
    Conflict(&'static str),
    /// The statement ran past its `statement_timeout`.
    #[error("statement timed out")]
    Timeout,
    /// No connection could be had (server down, pool exhausted or closed).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: a bug or an unexpected server state.
    #[error("unexpected database error")]
    Unexpected(#[source] sqlx::Error),
}

impl Error {
    /// Why a connection failed, in plain words ([`crate::explain`]).
    pub fn refusal(&self) -> crate::Refusal {
        match self {
            Error::Unavailable(err) | Error::Unexpected(err) => crate::explain(err),
            other => crate::Refusal { cause: other.to_string(), transient: false },
        }
    }
}

impl Error {
    /// The same outcome again, for another caller of a statement that
    /// served several (a batch): the kind is kept, and a driver error
    /// that cannot be copied is kept as its message.
    pub fn again(&self) -> Error {
        let message = |err: &sqlx::Error| sqlx::Error::Protocol(err.to_string());
        match self {
            Error::NotFound => Error::NotFound,
            Error::NotOwner => Error::NotOwner,
            Error::Conflict(name) => Error::Conflict(name),
            Error::Timeout => Error::Timeout,
            Error::Unavailable(err) => Error::Unavailable(sqlx::Error::Io(std::io::Error::other(err.to_string()))),
            Error::Unexpected(err) => Error::Unexpected(message(err)),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::RowNotFound => Error::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
                Error::Unavailable(err)
            }
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // query_canceled: raised by statement_timeout.
                Some("57014") => Error::Timeout,
                // unique_violation and foreign_key_violation.
                Some("23505" | "23503") => on_constraint(db.constraint()).unwrap_or(Error::Unexpected(err)),
                // admin_shutdown, crash_shutdown, cannot_connect_now, and the
                // whole connection-exception class.
                Some(code) if code.starts_with("57P") || code.starts_with("08") => Error::Unavailable(err),
                _ => Error::Unexpected(err),
            },
            _ => Error::Unexpected(err),
        }
    }
}

/// Maps the unique constraints a client can hit to a stable name.
fn on_constraint(name: Option<&str>) -> Option<Error> {
    match name? {
        "users_email_key" => Some(Error::Conflict("email")),
        "tags_name_key" => Some(Error::Conflict("tag name")),
        // A note whose author does not exist (a token for a deleted user).
        "notes_author_id_fkey" => Some(Error::NotFound),
        _ => None,
    }
}
