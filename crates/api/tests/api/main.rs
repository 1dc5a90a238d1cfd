//! End-to-end tests: each starts the real server on a random port against
//! its own fresh, migrated Postgres database (`sqlx::test`), and speaks
//! HTTP to it. Run through `scripts/test.sh`, which provides the database.

// Tests fail by panicking: unwrap on a response that must be there is the
// clearest assertion.
#![allow(clippy::unwrap_used)]

mod auth;
mod cache;
mod helpers;
mod http_spec;
mod lifecycle;
mod mutations;
mod queries;
mod schema_contract;
mod seed_command;
mod statements;
mod subscriptions;
mod visibility;
