//! `ApiError`: the one error type that decides what a client sees. Every
//! variant has a stable `extensions.code` from the schema's list; internal
//! causes are logged once, here, and replaced by a generic message.

use std::borrow::Cow;

use async_graphql::ErrorExtensions;
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};

/// The `extensions.service` (and metrics `service` label) of an embedding
/// provider that cannot serve.
pub const EMBEDDING: &str = "embedding";

/// An error as the client will see it.
///
/// Deliberately not `Display`: async-graphql converts any `Display` type
/// into an error without a code, and that must not happen by accident.
/// Conversion goes through the `From` impl below, which sets the code.
#[derive(Debug)]
pub enum ApiError {
    /// The request's arguments are invalid.
    BadUserInput(Cow<'static, str>),
    /// No viewer, or credentials that do not verify.
    Unauthenticated(Cow<'static, str>),
    /// The viewer may not do this.
    Forbidden(Cow<'static, str>),
    /// The thing does not exist or is not visible to the viewer.
    NotFound(Cow<'static, str>),
    /// The viewer, connection or server has as much of something open as
    /// it may (subscriptions).
    RateLimited(Cow<'static, str>),
    /// A deadline passed.
    Timeout,
    /// A dependency (the database) cannot serve right now; retrying later may work.
    ServiceUnavailable,
    /// The embedding provider cannot serve right now: SERVICE_UNAVAILABLE
    /// too, with `extensions.service = "embedding"` so that neither the
    /// client nor the alerts take it for a database outage.
    EmbeddingUnavailable,
    /// A bug or an unexpected state; the cause went to the log.
    Internal,
}

impl ApiError {
    /// The `extensions.code` of this error.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadUserInput(_) => "BAD_USER_INPUT",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "FORBIDDEN",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::RateLimited(_) => "RATE_LIMITED",
            ApiError::Timeout => "TIMEOUT",
            ApiError::ServiceUnavailable | ApiError::EmbeddingUnavailable => "SERVICE_UNAVAILABLE",
            ApiError::Internal => "INTERNAL",
        }
    }

    /// The `extensions.service` of this error: which dependency is
    /// unavailable, when it is not the database.
    pub fn service(&self) -> Option<&'static str> {
        match self {
            ApiError::EmbeddingUnavailable => Some(EMBEDDING),
            _ => None,
        }
    }

    /// The message the client sees: safe to show, never a cause chain.
    pub fn message(&self) -> &str {
        match self {
            ApiError::BadUserInput(m)
            | ApiError::Unauthenticated(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::RateLimited(m) => m,
            ApiError::Timeout => "the operation timed out",
            ApiError::ServiceUnavailable => "the service is temporarily unavailable",
            ApiError::EmbeddingUnavailable => "the embedding provider is temporarily unavailable",
            ApiError::Internal => "internal error",
        }
    }

    /// Shorthand for a [`ApiError::BadUserInput`].
    pub fn bad_input(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::BadUserInput(message.into())
    }
}

impl ApiError {
    /// What a database error means to the client, without logging it.
    fn classify(err: &db::Error) -> Self {
        match err {
            db::Error::NotFound => ApiError::NotFound("not found".into()),
            db::Error::NotOwner => ApiError::Forbidden("only the author may do this".into()),
            db::Error::Conflict(what) => ApiError::BadUserInput(format!("{what} already exists").into()),
            db::Error::Timeout => ApiError::Timeout,
            db::Error::Unavailable(_) => ApiError::ServiceUnavailable,
            db::Error::Unexpected(_) => ApiError::Internal,
        }
    }
}

impl From<&db::Error> for ApiError {
    /// Logs the failures a client cannot act on, once, then classifies.
    fn from(err: &db::Error) -> Self {
        match err {
            db::Error::Timeout => tracing::warn!(exception.type = "TIMEOUT", "database statement timed out"),
            db::Error::Unavailable(cause) => {
                tracing::warn!(exception.type = "SERVICE_UNAVAILABLE", error.message = %cause, "database unavailable");
            }
            db::Error::Unexpected(cause) => {
                tracing::error!(exception.type = "INTERNAL", error.message = %cause, "unexpected database error");
            }
            db::Error::NotFound | db::Error::NotOwner | db::Error::Conflict(_) => {}
        }
        ApiError::classify(err)
    }
}

impl From<db::Error> for ApiError {
    fn from(err: db::Error) -> Self {
        ApiError::from(&err)
    }
}

impl From<loaders::LoadError> for ApiError {
    /// The batch logged its failure once; each waiting resolver only maps it.
    fn from(err: loaders::LoadError) -> Self {
        match err {
            loaders::LoadError::Db(err) => ApiError::classify(&err),
            loaders::LoadError::Lost => ApiError::Internal,
        }
    }
}

impl ErrorExtensions for ApiError {
    fn extend(&self) -> async_graphql::Error {
        let (code, service) = (self.code(), self.service());
        async_graphql::Error::new(self.message()).extend_with(|_, ext| {
            ext.set("code", code);
            if let Some(service) = service {
                ext.set("service", service);
            }
        })
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(err: ApiError) -> Self {
        err.extend()
    }
}

/// The JSON error shape of every answer that is not an executed GraphQL
/// response: `{"errors":[{"message":…,"extensions":{"code":…}}]}`.
pub fn error_body(message: &str, code: &str) -> Value {
    json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })
}

/// An `application/json` response carrying one error.
pub fn error_response(status: StatusCode, error: &ApiError) -> Response {
    (status, axum::Json(error_body(error.message(), error.code()))).into_response()
}

/// `error` as a response-level GraphQL error (no path) with its code.
pub fn server_error(error: &ApiError) -> async_graphql::ServerError {
    let mut server_error = async_graphql::ServerError::new(error.message(), None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", error.code());
    if let Some(service) = error.service() {
        extensions.set("service", service);
    }
    server_error.extensions = Some(extensions);
    server_error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unexpected_database_errors_are_masked() {
        let err = db::Error::Unexpected(sqlx::Error::Protocol("select * from secret_table".into()));
        let gql: async_graphql::Error = ApiError::from(err).into();
        assert_eq!(gql.message, "internal error");
        let json = serde_json::to_string(&gql.extensions).unwrap_or_default();
        assert!(json.contains("INTERNAL"), "{json}");
    }

    #[test]
    fn an_embedding_outage_is_unavailable_and_says_which_service() {
        let gql: async_graphql::Error = ApiError::EmbeddingUnavailable.into();
        let json = serde_json::to_value(&gql.extensions).unwrap_or_default();
        assert_eq!(json, json!({ "code": "SERVICE_UNAVAILABLE", "service": "embedding" }));
        let db: async_graphql::Error = ApiError::ServiceUnavailable.into();
        assert_eq!(serde_json::to_value(&db.extensions).unwrap_or_default(), json!({ "code": "SERVICE_UNAVAILABLE" }));
    }

    #[test]
    fn codes_are_the_schema_codes() {
        assert_eq!(ApiError::bad_input("x").code(), "BAD_USER_INPUT");
        assert_eq!(ApiError::from(db::Error::Timeout).code(), "TIMEOUT");
        assert_eq!(ApiError::from(db::Error::NotOwner).code(), "FORBIDDEN");
    }
}
