//! The parameters of a GraphQL request, as GraphQL over HTTP defines them
//! (a POST body, or a GET query string), shared by `/graphql` and
//! `/graphql/stream`: their types checked, automatic persisted queries
//! applied, and what cannot be executed turned into a [`Rejection`] with
//! its HTTP status.

use async_graphql::{Request, Variables};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::graphql::sha256_hex;

/// A GraphQL request's parameters, as sent in a POST body.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Params {
    pub(super) query: Option<Value>,
    pub(super) operation_name: Option<Value>,
    pub(super) variables: Option<Value>,
    pub(super) extensions: Option<Value>,
}

/// A request that cannot be executed, with its HTTP status.
pub(super) struct Rejection {
    pub(super) status: StatusCode,
    pub(super) message: String,
    pub(super) code: &'static str,
}

impl Rejection {
    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        Rejection { status: StatusCode::BAD_REQUEST, message: message.into(), code: "BAD_USER_INPUT" }
    }

    /// Credentials that do not verify: 401 with their `UNAUTHENTICATED` error.
    pub(super) fn unauthorized(err: &crate::error::ApiError) -> Self {
        Rejection { status: StatusCode::UNAUTHORIZED, message: err.message().to_owned(), code: err.code() }
    }
}

/// The parameters of a POST body: `application/json` in UTF-8, read whole,
/// one JSON object. Batches (a JSON array of requests) are refused: one
/// body would buy many executions past the per-request limits and the
/// load shedding.
pub(super) fn body_params(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Params, Rejection> {
    check_content_type(headers)?;
    let body = body.map_err(|err| Rejection {
        status: err.status(),
        message: "the request body could not be read".into(),
        code: "BAD_USER_INPUT",
    })?;
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(Rejection::bad_request("batched requests (a JSON array) are not accepted; send one object"));
    }
    // One pass from bytes to parameters; serde's error category tells a
    // body that is not JSON from one that is not a parameter object.
    serde_json::from_slice::<Params>(&body).map_err(|err| match err.is_data() {
        true => Rejection::bad_request("the body must be a JSON object of request parameters"),
        false => Rejection::bad_request("the body is not valid JSON"),
    })
}

/// The comma-separated items of every `name` header, trimmed
/// (`Accept`, `Cache-Control`).
pub(super) fn list_items(headers: &HeaderMap, name: header::HeaderName) -> impl Iterator<Item = &str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).map(str::trim)
}

/// Validates the parameter types the specification requires.
pub(super) fn into_request(params: Params) -> Result<Request, Rejection> {
    let query = match params.query {
        Some(Value::String(q)) => q,
        Some(_) => return Err(Rejection::bad_request("`query` must be a string")),
        None => return Err(Rejection::bad_request("`query` is required")),
    };
    let mut request = Request::new(query);
    match params.operation_name {
        Some(Value::String(name)) => request = request.operation_name(name),
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`operationName` must be a string")),
    }
    match params.variables {
        Some(vars @ Value::Object(_)) => request = request.variables(Variables::from_json(vars)),
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`variables` must be an object")),
    }
    match params.extensions {
        Some(Value::Object(ext)) => {
            let ext = ext.into_iter().map(|(k, v)| (k, async_graphql::Value::from_json(v).unwrap_or_default()));
            request.extensions = async_graphql::Extensions(ext.collect());
        }
        None | Some(Value::Null) => {}
        Some(_) => return Err(Rejection::bad_request("`extensions` must be an object")),
    }
    Ok(request)
}

/// Applies the automatic persisted queries protocol: with
/// `extensions.persistedQuery` (version 1) and no `query`, fills the query
/// in from the store or fails with `PersistedQueryNotFound`; with both,
/// checks the hash and registers the document. With trusted documents,
/// only the trusted list answers hashes and nothing is registered.
pub(super) async fn persisted(state: &AppState, params: &mut Params) -> Result<(), Rejection> {
    let Some(Value::Object(extensions)) = &params.extensions else { return Ok(()) };
    let Some(persisted) = extensions.get("persistedQuery") else { return Ok(()) };
    if persisted.get("version") != Some(&json!(1)) {
        return Err(Rejection::bad_request("`persistedQuery.version` must be 1"));
    }
    let Some(hash) = persisted.get("sha256Hash").and_then(Value::as_str) else {
        return Err(Rejection::bad_request("`persistedQuery.sha256Hash` must be a string"));
    };
    let hash = hash.to_ascii_lowercase();
    if let Some(trusted) = state.schema.trusted() {
        // Only the list answers hashes, and nothing registers. A document
        // sent whole is checked against the list when it is admitted.
        return match (&params.query, trusted.get(&hash)) {
            (None, Some(text)) => {
                params.query = Some(Value::String(text.to_string()));
                Ok(())
            }
            (None, None) => Err(Rejection {
                status: StatusCode::OK,
                message: "only trusted documents run on this server, and no trusted document has this hash".into(),
                code: "FORBIDDEN",
            }),
            (Some(Value::String(text)), _) if sha256_hex(text) != hash => {
                Err(Rejection::bad_request("provided sha256Hash does not match the query"))
            }
            (Some(_), _) => Ok(()),
        };
    }
    match &params.query {
        None => {
            let found = state.documents.get(&hash).await;
            if let Some(metrics) = &state.metrics {
                metrics.persisted_query(found.is_some());
            }
            match found {
                Some(text) => {
                    params.query = Some(Value::String(text.to_string()));
                    Ok(())
                }
                None => Err(Rejection {
                    status: StatusCode::OK,
                    message: "PersistedQueryNotFound".into(),
                    code: "PERSISTED_QUERY_NOT_FOUND",
                }),
            }
        }
        Some(Value::String(text)) => {
            if sha256_hex(text) != hash {
                return Err(Rejection::bad_request("provided sha256Hash does not match the query"));
            }
            state.documents.insert(hash, text.as_str().into()).await;
            Ok(())
        }
        // `into_request` reports a query that is not a string.
        Some(_) => Ok(()),
    }
}

/// Parses the GET query string: `variables` and `extensions` are JSON.
pub(super) fn get_params(raw: Option<&str>) -> Result<Params, Rejection> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| Rejection::bad_request("malformed query string"))?;
    let mut params = Params { query: None, operation_name: None, variables: None, extensions: None };
    for (name, value) in pairs {
        let json = |v: &str| {
            serde_json::from_str::<Value>(v).map_err(|_| Rejection::bad_request(format!("`{name}` must be JSON")))
        };
        match name.as_str() {
            "query" => params.query = Some(Value::String(value)),
            "operationName" => params.operation_name = Some(Value::String(value)),
            "variables" => params.variables = Some(json(&value)?),
            "extensions" => params.extensions = Some(json(&value)?),
            _ => {}
        }
    }
    Ok(params)
}

/// POST bodies must be `application/json` in UTF-8.
pub(super) fn check_content_type(headers: &HeaderMap) -> Result<(), Rejection> {
    let unsupported = || Rejection {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: "send the request as `application/json`".into(),
        code: "BAD_USER_INPUT",
    };
    let value = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).ok_or_else(unsupported)?;
    let mut parts = value.split(';').map(str::trim);
    if !parts.next().unwrap_or_default().eq_ignore_ascii_case("application/json") {
        return Err(unsupported());
    }
    for param in parts {
        if let Some((name, charset)) = param.split_once('=')
            && name.trim().eq_ignore_ascii_case("charset")
            && !charset.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        {
            return Err(unsupported());
        }
    }
    Ok(())
}
