//! `notegraph seed` as run from a shell: it refuses to replace data it did
//! not create, exiting non-zero with a message that names `--force`, and
//! replaces it when given `--force`; it builds the vector index
//! `NOTEGRAPH_VECTOR_INDEX` names and records the embedder of every vector.

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

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn seed_if_empty_loads_a_fresh_database_once_and_then_changes_nothing(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = database_url(&options);
    let pool = pool.connect_with(options).await.unwrap();

    let first = seed(&url, &["--if-empty"]).await;
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).starts_with("seeded 3 users, 5 notes"));

    // A write made after the seed survives a second start of the step.
    sqlx::query("update notes set title = 'kept' where id = (select min(id) from notes)").execute(&pool).await.unwrap();
    let second = seed(&url, &["--if-empty"]).await;
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stdout).contains("nothing seeded"));
    let kept: i64 =
        sqlx::query_scalar("select count(*) from notes where title = 'kept'").fetch_one(&pool).await.unwrap();
    assert_eq!(kept, 1);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn seed_builds_the_vector_index_configured_and_marks_the_embedder(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let url = database_url(&options);
    let pool = pool.connect_with(options).await.unwrap();
    for (index, expected) in [("ivfflat", "notes_embedding_ivfflat_idx"), ("hnsw", "notes_embedding_hnsw_idx")] {
        let seeded = seed(&url, &["--vector-index", index]).await;
        assert!(seeded.status.success(), "{}", String::from_utf8_lossy(&seeded.stderr));
        let indexes: Vec<String> = sqlx::query_scalar(
            "select indexname::text from pg_indexes where tablename = 'notes' and indexname like 'notes_embedding%'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(indexes, [expected], "after seeding with {index}");
    }
    // Seeded vectors are the built-in embedder's: `notegraph reembed` with
    // it has nothing to do.
    let unmarked: i64 =
        sqlx::query_scalar("select count(*) from notes where embedded_with is distinct from 'notegraph-hash-v1/384'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(unmarked, 0);
}
