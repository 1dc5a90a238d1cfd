//! The seeder against a real database: each test gets a fresh, migrated one
//! from `sqlx::test` (run through `scripts/test.sh`, which provides the
//! server). An empty database and the seeder's own data are replaced; data
//! it did not create only when forced, and a refusal changes nothing.

// Tests fail by panicking: unwrap on a result that must be there is the
// clearest assertion.
#![allow(clippy::unwrap_used)]

use db::{Page, PgPool, UserId};
use embed::HashEmbedder;
use seed::{SeedError, SeedOptions};

/// A data set small enough to load in milliseconds.
fn small(force: bool) -> SeedOptions {
    SeedOptions { users: 5, notes: 20, tags: 6, seed: 7, force, ..SeedOptions::default() }
}

/// The emails of all users, in id order.
async fn emails(pool: &PgPool) -> Vec<String> {
    let users = db::users::list(pool, Page { first: 100, after: None }).await.unwrap();
    users.into_iter().map(|user| user.email).collect()
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn an_empty_database_is_seeded(pool: PgPool) {
    let report = seed::run(&pool, &small(false), &HashEmbedder::default()).await.unwrap();
    assert_eq!((report.users, report.notes, report.tags), (5, 20, 6));
    assert_eq!(emails(&pool).await.len(), 5);
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn the_seeders_own_data_is_replaced_without_force(pool: PgPool) {
    seed::run(&pool, &small(false), &HashEmbedder::default()).await.unwrap();
    let first = emails(&pool).await;
    let other = SeedOptions { users: 4, seed: 8, ..small(false) };
    seed::run(&pool, &other, &HashEmbedder::default()).await.unwrap();
    let second = emails(&pool).await;
    assert_eq!(second.len(), 4);
    assert_ne!(second, first[..4]);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("hand_written_user"))]
async fn data_the_seeder_did_not_create_is_replaced_only_when_forced(pool: PgPool) {
    let refused = seed::run(&pool, &small(false), &HashEmbedder::default()).await;
    assert!(matches!(refused, Err(SeedError::UnseededData)), "{refused:?}");
    let kept = db::users::fetch_by_ids(&pool, &[UserId(1)]).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].email, "hand@example.com");
    assert_eq!(emails(&pool).await.len(), 1, "a refusal changes nothing");

    seed::run(&pool, &small(true), &HashEmbedder::default()).await.unwrap();
    let replaced = emails(&pool).await;
    assert_eq!(replaced.len(), 5);
    assert!(!replaced.contains(&"hand@example.com".to_owned()), "{replaced:?}");

    // The forced run recorded itself, so its data is the seeder's own now.
    seed::run(&pool, &small(false), &HashEmbedder::default()).await.unwrap();
}
