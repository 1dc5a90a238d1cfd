//! Read replicas: a real streaming standby of the test database (made with
//! `pg_basebackup` from the embedded installation), its replay paused and
//! resumed to make it lag on demand. Queries read it; a viewer always reads
//! their own writes, on any server; a lagging replica is not read; and no
//! stale answer read from it is cached.

use pgembed::Standby;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, data_dir, database_url};

/// A standby of the test's database, and a connection to it that pauses
/// and resumes its replay.
pub(crate) async fn standby(options: &PgConnectOptions) -> (Standby, PgPool) {
    let primary = database_url(options);
    let database = options.get_database().expect("a database name").to_owned();
    let data_dir = data_dir();
    // Short (the socket path has a length limit) and unique to the test.
    let name = database.chars().rev().take(12).collect::<String>().to_lowercase();
    let standby = tokio::task::spawn_blocking(move || Standby::start(&data_dir, &primary, &name, &database))
        .await
        .unwrap()
        .expect("start a standby");
    let control = PgPoolOptions::new().max_connections(1).connect(standby.url()).await.expect("connect to the standby");
    (standby, control)
}

async fn pause_replay(standby: &PgPool) {
    sqlx::query("select pg_wal_replay_pause()").execute(standby).await.unwrap();
}

async fn resume_replay(standby: &PgPool) {
    sqlx::query("select pg_wal_replay_resume()").execute(standby).await.unwrap();
}

/// `data` of `query` as `token`, executed afresh (`Cache-Control:
/// no-cache`), so that it reads the database.
async fn fresh(app: &TestApp, token: &str, query: &str, variables: Value) -> Value {
    let (status, _, body) = app.post_cached(Some(token), query, variables, true).await;
    assert!(status.is_success() && body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The id of the first note of a `{ notes }` or `{ me { notes } }` answer.
fn first_id(notes: &Value) -> Option<&str> {
    notes[0]["id"].as_str()
}

const NOTE: &str = "query($id: ID!) { note(id: $id) { id title } }";
const LATEST: &str = "{ notes(first: 1) { id } }";
const MINE: &str = "{ me { notes(first: 1) { id } } }";

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn queries_read_the_replica_and_every_viewer_reads_their_own_writes_on_any_server(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: two servers over the same primary and standby; a lag bound
    // far longer than the test, so only read-your-writes keeps reads off
    // the paused replica.
    let (standby, control) = standby(&options).await;
    let args = ["--replica-max-lag-ms", "60000", "--read-your-writes-ms", "120000"];
    let writer = TestApp::spawn_replicated(options.clone(), standby.url(), &args).await;
    let other = TestApp::spawn_replicated(options, standby.url(), &args).await;
    for app in [&writer, &other] {
        app.wait_for_metric("notegraph_read_replica_ready", |ready| ready == 1.0).await;
    }
    pause_replay(&control).await;

    // Act: user 2 writes through one server while the replica stands still.
    let id = writer.create_note("user-2", "written while the replica is paused", "b", "PUBLIC", &[]).await;
    other.wait_for_metric("notegraph_read_replica_writes_total", |writes| writes >= 1.0).await;

    // Assert: the author sees the write on both servers, by id and in lists.
    for app in [&writer, &other] {
        let note = app.data_as(Some("user-2"), NOTE, json!({ "id": id })).await;
        assert_eq!(note["note"]["title"], "written while the replica is paused");
        let mine = app.data_as(Some("user-2"), MINE, json!({})).await;
        assert_eq!(first_id(&mine["me"]["notes"]), Some(id.as_str()));
    }
    // Other viewers read the replica, which does not have it yet; the
    // stale answer is not cached (asked twice, executed twice).
    let read_replica = other.metric("notegraph_read_replica_queries_total").await;
    for app in [&writer, &other] {
        assert!(fresh(app, "user-3", NOTE, json!({ "id": id })).await["note"].is_null());
        for _ in 0..2 {
            let (_, x_cache, body) = app.post_cached(None, LATEST, json!({}), false).await;
            assert_ne!(first_id(&body["data"]["notes"]), Some(id.as_str()), "the paused replica answered");
            assert_eq!(x_cache, "miss", "an answer read from a lagging replica was cached");
        }
    }
    assert!(other.metric("notegraph_read_replica_queries_total").await >= read_replica + 3.0);

    // Once the replica has replayed, everyone reads the write there.
    resume_replay(&control).await;
    for app in [&writer, &other] {
        app.wait_for_metric("notegraph_read_replica_unreplayed_writes", |behind| behind == 0.0).await;
        let read_replica = app.metric("notegraph_read_replica_queries_total").await;
        assert_eq!(first_id(&app.data(LATEST).await["notes"]), Some(id.as_str()));
        let mine = fresh(app, "user-2", MINE, json!({})).await;
        assert_eq!(first_id(&mine["me"]["notes"]), Some(id.as_str()));
        assert_eq!(app.metric("notegraph_read_replica_queries_total").await, read_replica + 2.0);
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_replica_further_behind_than_the_lag_bound_is_not_read(_: PgPoolOptions, options: PgConnectOptions) {
    // A lag bound the standby meets while it replays, however busy the
    // machine: it replays the whole cluster's WAL, other tests' databases
    // included, and must be proven caught up within the bound to be read.
    let (standby, control) = standby(&options).await;
    let app = TestApp::spawn_replicated(
        options,
        standby.url(),
        &["--replica-max-lag-ms", "3000", "--read-your-writes-ms", "6000"],
    )
    .await;
    app.wait_for_metric("notegraph_read_replica_ready", |ready| ready == 1.0).await;
    // Both pools report their connections, told apart by a label.
    let (_, _, body) = app.metrics().await;
    for pool in ["pool=\"primary\"", "pool=\"replica\""] {
        let max = crate::metrics::value(&body, "notegraph_db_pool_max_connections", &[pool]);
        assert!(max.unwrap_or_default() >= 1.0, "no {pool} pool gauge: {body}");
    }
    pause_replay(&control).await;

    let id = app.create_note("user-2", "the replica lags", "b", "PUBLIC", &[]).await;
    app.wait_for_metric("notegraph_read_replica_ready", |ready| ready == 0.0).await;

    // Past the bound every query reads the primary, so everyone sees it.
    let kept = app.metric("notegraph_read_replica_primary_queries_total").await;
    assert_eq!(fresh(&app, "user-3", NOTE, json!({ "id": id })).await["note"]["id"], id.as_str());
    assert_eq!(first_id(&app.data(LATEST).await["notes"]), Some(id.as_str()));
    assert_eq!(app.metric("notegraph_read_replica_primary_queries_total").await, kept + 2.0);

    // Caught up again, it is read again.
    resume_replay(&control).await;
    app.wait_for_metric("notegraph_read_replica_ready", |ready| ready == 1.0).await;
    let read_replica = app.metric("notegraph_read_replica_queries_total").await;
    assert_eq!(fresh(&app, "user-3", NOTE, json!({ "id": id })).await["note"]["id"], id.as_str());
    assert_eq!(app.metric("notegraph_read_replica_queries_total").await, read_replica + 1.0);
}
