//! `GET /graphql/ws`: subscriptions over WebSocket (graphql-transport-ws,
//! and the older graphql-ws), served by async-graphql-axum. The viewer comes
//! from the `Authorization` entry of the `connection_init` payload, since
//! browsers cannot set headers on a WebSocket.

use async_graphql::Data;
use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql_axum::{GraphQLProtocol, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderValue;
use axum::response::Response;

use super::AppState;

/// Upgrades to a GraphQL WebSocket session.
pub(super) async fn subscribe(
    State(state): State<AppState>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        let auth = state.auth.clone();
        GraphQLWebSocket::new(socket, state.schema.clone(), protocol)
            .on_connection_init(move |payload| async move {
                let header = ["Authorization", "authorization"]
                    .iter()
                    .find_map(|key| payload.get(*key)?.as_str())
                    .map(HeaderValue::from_str)
                    .transpose()
                    .map_err(|_| async_graphql::Error::new("the Authorization value is not a valid header"))?;
                let viewer = auth.viewer(header.as_ref())?;
                let mut data = Data::default();
                data.insert(viewer);
                Ok(data)
            })
            .serve()
    })
}
