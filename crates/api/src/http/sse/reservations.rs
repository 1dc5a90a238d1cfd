//! graphql-sse's single connection mode: one event stream per reservation
//! carries the results of every operation its client runs, each message
//! tagged with the operation's id.
//!
//! A reservation belongs to the viewer who made it (operations on it must
//! come with the same credentials) and has a bounded queue: when its
//! client reads slowly, operations wait to send, their subscriptions fall
//! behind the hub and skip ahead (with an error saying so), so memory stays
//! bounded. The stream's subscriptions count against the per-connection
//! cap. A reservation nobody connects to within [`UNCLAIMED_TTL`] is
//! dropped; one whose stream closes is dropped with its operations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_graphql::{Data, Executor as _};
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response as HttpResponse};
use futures::StreamExt as _;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::task::AbortHandle;

use super::{credentials, event, event_stream, reject};
use crate::auth::Viewer;
use crate::graphql::{ConnectionSubscriptions, TokenExpiry};
use crate::http::AppState;
use crate::pipeline::Rejection;
use crate::pipeline::document::{Params, into_request};
use crate::pipeline::encode::encode;

/// How long a reservation waits for its stream to connect.
const UNCLAIMED_TTL: Duration = Duration::from_secs(60);
/// Messages queued for one stream before its operations wait.
const QUEUE: usize = 64;
/// Reservations open at once in this process.
const MAX_RESERVATIONS: usize = 10_000;

/// The open reservations, by token.
#[derive(Clone, Default)]
pub struct Reservations(Arc<Mutex<HashMap<String, Arc<Reservation>>>>);

/// One reserved stream.
struct Reservation {
    viewer: Viewer,
    expires: Option<SystemTime>,
    /// Where operations send; taken away at shutdown so the stream can end
    /// once the operations running then have finished.
    sender: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Taken by the one stream that connects.
    receiver: Mutex<Option<mpsc::Receiver<Bytes>>>,
    /// Running operations by id.
    operations: Mutex<HashMap<String, AbortHandle>>,
    connection: ConnectionSubscriptions,
}

impl Reservations {
    fn get(&self, token: &str) -> Option<Arc<Reservation>> {
        lock(&self.0).get(token).cloned()
    }

    fn remove(&self, token: &str) {
        if let Some(reservation) = lock(&self.0).remove(token) {
            for (_, operation) in lock(&reservation.operations).drain() {
                operation.abort();
            }
        }
    }

    /// `PUT`: a new reservation for the request's viewer; 201 with its token.
    pub(super) async fn reserve(&self, state: &AppState, headers: &HeaderMap) -> HttpResponse {
        let (viewer, expires) = match credentials(state, headers).await {
            Ok(credentials) => credentials,
            Err(response) => return *response,
        };
        let (sender, receiver) = mpsc::channel(QUEUE);
        let reservation = Reservation {
            viewer,
            expires,
            sender: Mutex::new(Some(sender)),
            receiver: Mutex::new(Some(receiver)),
            operations: Mutex::default(),
            connection: ConnectionSubscriptions::default(),
        };
        let token = new_token();
        {
            let mut open = lock(&self.0);
            if open.len() >= MAX_RESERVATIONS {
                let message = format!("the server has {MAX_RESERVATIONS} open stream reservations, the most allowed");
                return reject(Rejection::new(StatusCode::TOO_MANY_REQUESTS, message, "RATE_LIMITED"));
            }
            open.insert(token.clone(), Arc::new(reservation));
        }
        let (reservations, unclaimed) = (self.clone(), token.clone());
        tokio::spawn(async move {
            tokio::time::sleep(UNCLAIMED_TTL).await;
            let claimed = reservations.get(&unclaimed).is_none_or(|r| lock(&r.receiver).is_none());
            if !claimed {
                reservations.remove(&unclaimed);
            }
        });
        let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
        (StatusCode::CREATED, [(header::CONTENT_TYPE, content_type)], token).into_response()
    }

    /// `GET` with a token: the reservation's event stream; 404 for an
    /// unknown token, 409 when its stream is already open.
    pub(super) fn open(&self, state: &AppState, token: &str) -> HttpResponse {
        let Some(reservation) = self.get(token) else { return not_found("no such stream reservation") };
        let Some(receiver) = lock(&reservation.receiver).take() else {
            return reject(Rejection::new(
                StatusCode::CONFLICT,
                "this reservation's stream is already open",
                "BAD_USER_INPUT",
            ));
        };
        let feed = Feed {
            receiver,
            reservation,
            token: token.to_owned(),
            reservations: self.clone(),
            stopping: state.streams.stopping.0.clone(),
            draining: false,
        };
        event_stream(futures::stream::unfold(feed, Feed::next), state.streams.heartbeat)
    }

    /// `POST` with a token: runs an operation whose results go to the
    /// reserved stream; 202 once it is running.
    pub(super) async fn run(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        peer: Option<std::net::SocketAddr>,
        token: &str,
        mut params: Params,
    ) -> HttpResponse {
        let Some(reservation) = self.get(token) else { return not_found("no such stream reservation") };
        match credentials(state, headers).await {
            Ok((viewer, _)) if viewer == reservation.viewer => {}
            Ok(_) => {
                return reject(Rejection::new(
                    StatusCode::FORBIDDEN,
                    "the reservation belongs to another viewer",
                    "FORBIDDEN",
                ));
            }
            Err(response) => return *response,
        }
        let id = match params.extensions.as_ref().and_then(|e| e.get("operationId")).and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() => id.to_owned(),
            _ => return reject(Rejection::bad_request("`extensions.operationId` is required on a reserved stream")),
        };
        if let Err(rejection) = state.persisted.resolve(&mut params).await {
            return reject(rejection);
        }
        let request = match into_request(params) {
            Ok(request) => request.data(reservation.viewer),
            Err(rejection) => return reject(rejection),
        };
        let Some(sender) = lock(&reservation.sender).clone() else {
            return reject(Rejection::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server is shutting down",
                "SERVICE_UNAVAILABLE",
            ));
        };
        let mut operations = lock(&reservation.operations);
        if operations.contains_key(&id) {
            return reject(Rejection::new(
                StatusCode::CONFLICT,
                "an operation with this id is running",
                "BAD_USER_INPUT",
            ));
        }
        let mut session = Data::default();
        session.insert(reservation.connection.clone());
        if let Some(client) = super::budget_client(state, &reservation.viewer, peer, headers) {
            session.insert(client);
        }
        if let Some(expires) = reservation.expires {
            session.insert(TokenExpiry(expires));
        }
        let mut results = state.schema.execute_stream(request, Some(Arc::new(session)));
        let finished = Arc::downgrade(&reservation);
        let operation_id = id.clone();
        let task = tokio::spawn(async move {
            while let Some(response) = results.next().await {
                let payload = encode(response).body;
                let data =
                    format!(r#"{{"id":{},"payload":{}}}"#, json!(operation_id), String::from_utf8_lossy(&payload));
                if sender.send(event("next", data.as_bytes())).await.is_err() {
                    return;
                }
            }
            let complete = json!({ "id": operation_id }).to_string();
            let _ = sender.send(event("complete", complete.as_bytes())).await;
            if let Some(reservation) = finished.upgrade() {
                lock(&reservation.operations).remove(&operation_id);
            }
        });
        operations.insert(id, task.abort_handle());
        StatusCode::ACCEPTED.into_response()
    }

    /// `DELETE`: stops an operation (no `complete` follows: the client
    /// asked); 200 even when it had already finished.
    pub(super) fn stop(&self, token: &str, operation: Option<&str>) -> HttpResponse {
        let Some(reservation) = self.get(token) else { return not_found("no such stream reservation") };
        let Some(operation) = operation.filter(|id| !id.is_empty()) else {
            return reject(Rejection::bad_request("`operationId` is required"));
        };
        if let Some(task) = lock(&reservation.operations).remove(operation) {
            task.abort();
        }
        StatusCode::OK.into_response()
    }
}

/// A reserved stream's state between events.
struct Feed {
    receiver: mpsc::Receiver<Bytes>,
    reservation: Arc<Reservation>,
    token: String,
    reservations: Reservations,
    stopping: watch::Receiver<bool>,
    draining: bool,
}

impl Feed {
    async fn next(mut self) -> Option<(Bytes, Self)> {
        loop {
            let event = tokio::select! {
                biased;
                event = self.receiver.recv() => event,
                _ = self.stopping.wait_for(|stopping| *stopping), if !self.draining => {
                    // No new operations; the running ones complete (their
                    // subscriptions see the same signal), and with the last
                    // sender gone the stream ends.
                    self.draining = true;
                    lock(&self.reservation.sender).take();
                    continue;
                }
            };
            return event.map(|event| (event, self));
        }
    }
}

impl Drop for Feed {
    /// The client left (or the stream ended): the reservation and its
    /// operations go.
    fn drop(&mut self) {
        self.reservations.remove(&self.token);
    }
}

/// An unguessable token: 128 random bits, hex.
fn new_token() -> String {
    use rand::RngCore as _;
    let mut bytes = [0_u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn not_found(message: &'static str) -> HttpResponse {
    reject(Rejection::new(StatusCode::NOT_FOUND, message, "NOT_FOUND"))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
