//! Notegraph's server: a GraphQL API over notes, users and tags, with
//! search by meaning, on axum and async-graphql over Postgres+pgvector.
//!
//! # Layout
//! - [`cli`]: the command line: the commands and their arguments.
//! - [`config`]: the typed configuration every command shares.
//! - [`commands`]: what each command does.
//! - [`console`]: what a person reads at start-up.
//! - [`app`]: [`Application`], the server that `main` and the tests start.
//! - [`database`]: the pool, and the embedded Postgres when no URL is set.
//! - [`http`]: the router, its layers and routes: `/graphql` runs the
//!   [`pipeline`], `/graphql/stream` and `/graphql/ws` stream.
//! - [`pipeline`]: the request path of `/graphql`, stage by stage.
//! - [`graphql`]: the schema, its types and resolvers.
//! - [`parsed`], [`source`]: small shared types (parsed documents and the
//!   operation they select; where a request reads).
//! - [`fingerprint`], [`response_cache`]: what makes two requests the
//!   same question; the cache's dependency tags and invalidation.
//! - [`replica`], [`read_your_writes`]: reading a replica, and reading
//!   past it (and the cache) after one's own writes.
//! - [`reembed`]: re-embedding every note after a model change.
//! - [`notifications`]: the `LISTEN` connection that feeds the cache's
//!   invalidation and the subscriptions.
//! - [`budgets`]: per-client budgets on operation cost, and the client's
//!   address behind trusted proxies.
//! - [`metrics`]: the Prometheus families behind `/metrics`.
//! - [`auth`], [`error`], [`telemetry`], [`shutdown`].

pub mod app;
pub mod auth;
pub mod budgets;
pub mod cli;
pub mod commands;
pub mod config;
pub mod console;
pub mod database;
pub mod error;
pub mod fingerprint;
pub mod graphql;
pub mod http;
pub mod metrics;
pub mod notifications;
pub mod parsed;
pub mod pipeline;
pub mod read_your_writes;
pub mod reembed;
pub mod replica;
pub mod response_cache;
pub mod shutdown;
pub mod source;
pub mod telemetry;

pub use app::Application;
pub use cli::Cli;
pub use config::Config;
