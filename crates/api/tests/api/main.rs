//! End-to-end tests: each starts the real server on a random port against
//! its own fresh, migrated Postgres database (`sqlx::test`), and speaks
//! HTTP to it. Run through `scripts/test.sh`, which provides the database.

// Tests fail by panicking: unwrap on a response that must be there is the
// clearest assertion.
#![allow(clippy::unwrap_used)]

mod auth;
mod budgets;
mod cache;
mod chromium;
mod cors;
mod deploy_compose;
mod deploy_k8s;
mod embedding_tls;
mod environment;
mod fast_path;
mod first_run;
mod fuzz;
mod graphiql;
mod group_commit;
mod haproxy;
mod healthcheck;
mod helpers;
mod hostile_http;
mod http_spec;
mod incremental;
mod jwks;
mod layout;
mod lifecycle;
mod limits;
mod list_pages;
mod loader_errors;
mod metrics;
mod minilm;
mod mutations;
mod overload;
mod pgbouncer;
mod postgres_tls;
mod queries;
mod read_your_writes;
mod readme;
mod reembed;
mod replica;
mod request_logs;
mod schema_contract;
mod seed_command;
mod server_tls;
mod signing_keys;
mod sse;
mod statements;
mod subscriptions;
mod tls;
mod trace_sampling;
mod traces;
mod trusted;
mod vector_search;
mod visibility;
mod write_share;
