//! `GET /graphql/ws`: GraphQL over WebSocket (graphql-transport-ws, and the
//! older graphql-ws), on async-graphql's protocol state machine with our
//! own socket loop around it, for what async-graphql-axum's loop does not
//! do:
//! - a refused `connection_init` closes with the protocol's 4403
//!   (Forbidden), not 1002; one whose token names a signing key that could
//!   not be fetched closes with 1013 (try again later);
//! - messages are bounded by the HTTP body limit, and queries and mutations
//!   run under the same deadline as over HTTP ([`BatchedSchema`]);
//! - subscriptions per socket are capped, and a subscription ends with
//!   UNAUTHENTICATED when the token given at `connection_init` expires;
//! - at shutdown every subscription completes, then the socket closes with
//!   1001 (going away).
//!
//! The viewer comes from the `Authorization` entry of the `connection_init`
//! payload, since browsers cannot set headers on a WebSocket.
//!
//! [`BatchedSchema`]: crate::graphql::BatchedSchema

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use async_graphql::Data;
use std::str::FromStr as _;

use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocket as Protocol, WebSocketProtocols as Protocols, WsMessage};
use axum::Extension;
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use futures::{SinkExt as _, StreamExt as _, future};

use super::AppState;
use crate::auth::AuthError;
use crate::graphql::{ConnectionSubscriptions, TokenExpiry};

/// graphql-transport-ws: the server refused `connection_init`.
const FORBIDDEN: u16 = 4403;
/// RFC 6455 (IANA registry): try again later, as when the signing keys a
/// token needs could not be fetched.
const TRY_AGAIN_LATER: u16 = 1013;
/// RFC 6455: the server is going away.
const GOING_AWAY: u16 = 1001;
/// How often a shutting-down socket checks whether its last subscription
/// has completed.
const DRAIN_POLL: Duration = Duration::from_millis(10);

/// Upgrades to a GraphQL WebSocket session.
pub(super) async fn subscribe(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The first subprotocol offered that we speak.
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|value| value.to_str().ok())
        .and_then(|offered| offered.split(',').find_map(|p| Protocols::from_str(p.trim()).ok()));
    let Some(protocol) = protocol else {
        let body =
            crate::error::error_body("offer the graphql-transport-ws (or graphql-ws) subprotocol", "BAD_USER_INPUT");
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let limit = state.streams.body_limit_bytes;
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| session(socket, state, protocol, Budgeted { peer, headers }))
}

/// What names the socket's client for the per-client budgets: the upgrade
/// request's peer and headers (`X-Forwarded-For` from a trusted proxy).
struct Budgeted {
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
}

/// Runs one socket until the client leaves, the protocol closes it, or the
/// server shuts down.
async fn session(socket: WebSocket, state: AppState, protocol: Protocols, budgeted: Budgeted) {
    let (mut sink, source) = socket.split();
    let input = source.take_while(|message| future::ready(message.is_ok())).filter_map(|message| {
        future::ready(match message {
            Ok(Message::Text(text)) => Some(text.as_bytes().to_vec()),
            Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
            _ => None,
        })
    });
    // The close code of a refused `connection_init` (0: not refused).
    let refused = Arc::new(AtomicU16::new(0));
    let connection = ConnectionSubscriptions::default();
    let init = {
        let (auth, refused, connection) = (state.auth.clone(), Arc::clone(&refused), connection.clone());
        let budgets = state.schema.budgets().cloned();
        move |payload: serde_json::Value| async move {
            let header = ["Authorization", "authorization"]
                .iter()
                .find_map(|key| payload.get(*key)?.as_str())
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|_| async_graphql::Error::new("the Authorization value is not a valid header"));
            let header = header.inspect_err(|_| refused.store(FORBIDDEN, Ordering::SeqCst))?;
            let (viewer, expires) = auth.credentials(header.as_ref()).await.map_err(|err| {
                let code = if err == AuthError::KeysUnavailable { TRY_AGAIN_LATER } else { FORBIDDEN };
                refused.store(code, Ordering::SeqCst);
                async_graphql::Error::from(err)
            })?;
            let mut data = Data::default();
            let peer = budgeted.peer.map(|Extension(ConnectInfo(peer))| peer);
            if let Some(client) = budgets.and_then(|budgets| budgets.client(&viewer, peer, &budgeted.headers)) {
                // The schema charges each operation of the socket to it.
                data.insert(client);
            }
            data.insert(viewer);
            data.insert(connection);
            if let Some(expires) = expires {
                data.insert(TokenExpiry(expires));
            }
            Ok(data)
        }
    };
    let mut messages = Protocol::new(state.schema.clone(), input, protocol).on_connection_init(init);
    let mut stopping = state.streams.stopping.0.clone();
    let mut draining = false;
    loop {
        let outgoing = tokio::select! {
            biased;
            message = messages.next() => message,
            _ = stopping.wait_for(|stopping| *stopping), if !draining => {
                // Subscriptions see the same signal and complete; their
                // `complete` messages go out before the socket closes.
                draining = true;
                continue;
            }
            () = tokio::time::sleep(DRAIN_POLL), if draining => {
                if connection.open() > 0 {
                    continue;
                }
                Some(WsMessage::Close(GOING_AWAY, "the server is shutting down".into()))
            }
        };
        let message = match outgoing {
            None => break,
            Some(WsMessage::Text(text)) => Message::Text(text.into()),
            Some(WsMessage::Close(code, reason)) => {
                // async-graphql closes a refused init with 1002, like a
                // protocol error; the protocol asks for 4403.
                let code = match refused.load(Ordering::SeqCst) {
                    0 => code,
                    refused => refused,
                };
                let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                break;
            }
        };
        if sink.send(message).await.is_err() {
            break;
        }
    }
}
