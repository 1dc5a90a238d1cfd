//! `notegraph seed` as run from a shell: it refuses to replace data it did
//! not create, exiting non-zero with a message that names `--force`, and
//! replaces it when given `--force`.

use std::process::Output;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

use crate::helpers::database_url;

/// Runs `notegraph seed` with a tiny data set and `extra` arguments.
async fn seed(url: &str, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .args(["seed", "--users", "3", "--notes", "5", "--tags", "2"])
        .args(extra)
        .env("DATABASE_URL", url)
        .output()
        .await
        .expect("run notegraph seed")
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn seed_replaces_data_it_did_not_create_only_with_force(_: PgPoolOptions, options: PgConnectOptions) {
    let url = database_url(&options);

    let refused = seed(&url, &[]).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("notegraph seed --force"), "{stderr}");

    let forced = seed(&url, &["--force"]).await;
    assert!(forced.status.success(), "{}", String::from_utf8_lossy(&forced.stderr));
    assert!(String::from_utf8_lossy(&forced.stdout).starts_with("seeded 3 users, 5 notes, 2 tags"));

    // The data is the seeder's own now: no --force needed.
    let again = seed(&url, &[]).await;
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
}
