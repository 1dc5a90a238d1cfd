//! Semantic search with exact expectations: a hand-built data set whose
//! nearest neighbours and scores are known in closed form, tag filters at
//! low selectivity on both the exact and the HNSW path, visibility, input
//! validation, a provider that is down, the start-up dimension check, and
//! the start-up switch between the HNSW and IVFFlat indexes.

use pgvector::Vector;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, database_url, serve_process, serving_address};

/// Public notes 1..=PUBLIC at angle i × STEP from the query axis e0.
const PUBLIC: i64 = 200;
const STEP_DEGREES: f64 = 0.5;
/// Tagged `rare`: 3 notes of 201 (1.5%), all far down the ranking.
const RARE: [i64; 3] = [150, 170, 190];
/// User 2's private note, on the axis itself and tagged `rare`.
const PRIVATE: i64 = PUBLIC + 1;

const SEARCH: &str = "query($v: [Float!], $tag: String, $first: Int) { searchNotes(vector: $v, tag: $tag, first: $first) { score note { id } } }";

/// A 384-dimension unit vector at `degrees` from e0 in the (e0, e1) plane.
fn at(degrees: f64) -> Vec<f32> {
    let mut v = vec![0.0_f32; 384];
    v[0] = degrees.to_radians().cos() as f32;
    v[1] = degrees.to_radians().sin() as f32;
    v
}

/// Loads the data set: notes get ids 1..=201 in insertion order.
async fn load(pool: &PgPool) {
    for i in 1..=PRIVATE {
        let (author, visibility, degrees) =
            if i == PRIVATE { (2_i64, "private", 0.0) } else { (1, "public", i as f64 * STEP_DEGREES) };
        sqlx::query(
            "insert into notes (id, author_id, title, body, visibility, embedding) \
             values ($1, $2, $3, '', $4::note_visibility, $5)",
        )
        .bind(i)
        .bind(author)
        .bind(format!("note {i}"))
        .bind(visibility)
        .bind(Vector::from(at(degrees)))
        .execute(pool)
        .await
        .unwrap();
    }
    sqlx::query("insert into tags (id, name) values (1, 'rare')").execute(pool).await.unwrap();
    sqlx::query("insert into note_tags (note_id, tag_id) select unnest($1::bigint[]), 1")
        .bind(RARE.iter().copied().chain([PRIVATE]).collect::<Vec<i64>>())
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("analyze").execute(pool).await.unwrap();
}

/// `(id, score)` of each hit.
fn hits(data: &Value) -> Vec<(i64, f64)> {
    data["searchNotes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["note"]["id"].as_str().unwrap().parse().unwrap(), h["score"].as_f64().unwrap()))
        .collect()
}

/// Asserts ids in order and each score equal to cos(angle) within f32 precision.
fn assert_hits(got: &[(i64, f64)], expected: &[(i64, f64)]) {
    let ids: Vec<i64> = got.iter().map(|h| h.0).collect();
    let want: Vec<i64> = expected.iter().map(|h| h.0).collect();
    assert_eq!(ids, want, "hits {got:?}");
    for ((_, score), (id, degrees)) in got.iter().zip(expected) {
        let exact = degrees.to_radians().cos();
        assert!((score - exact).abs() < 1e-5, "note {id}: score {score}, expected {exact}");
    }
}

fn public(id: i64) -> (i64, f64) {
    (id, id as f64 * STEP_DEGREES)
}

async fn search(app: &TestApp, token: Option<&str>, tag: Option<&str>, first: i64) -> Vec<(i64, f64)> {
    hits(&app.data_as(token, SEARCH, json!({ "v": at(0.0), "tag": tag, "first": first })).await)
}

/// The same expectations hold on the exact tag path (the default threshold
/// covers this tag) and on the HNSW path with a small `ef_search`, where
/// only the iterative scan finds the far-away tagged notes.
async fn expectations_hold(app: &TestApp) {
    // Nearest public notes, best first, exact cosine scores.
    assert_hits(&search(app, None, None, 3).await, &[public(1), public(2), public(3)]);
    // All three `rare` public notes although 147 closer notes do not carry it.
    let rare: Vec<(i64, f64)> = RARE.iter().map(|&id| public(id)).collect();
    assert_hits(&search(app, None, Some("rare"), 10).await, &rare);
    assert_hits(&search(app, Some("user-1"), Some("rare"), 2).await, &rare[..2]);
    // The author sees the private note first, with or without the tag.
    assert_hits(&search(app, Some("user-2"), None, 2).await, &[(PRIVATE, 0.0), public(1)]);
    assert_hits(&search(app, Some("user-2"), Some("rare"), 2).await, &[(PRIVATE, 0.0), public(150)]);
    // `similar` of note 1 (0.5°): the private note is as close as note 2
    // and never shown to anyone else.
    let similar =
        app.data_as(Some("user-1"), r#"{ note(id: "1") { similar(first: 2) { note { id } } } }"#, json!({})).await;
    assert_eq!(similar["note"]["similar"], json!([{ "note": { "id": "2" } }, { "note": { "id": "3" } }]));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn exact_tag_path_finds_known_neighbours_and_scores(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    load(&app.pool).await;
    expectations_hold(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn hnsw_tag_path_finds_known_neighbours_and_scores(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_with_args(options, &["--exact-tag-notes", "0", "--hnsw-ef-search", "10"]).await;
    load(&app.pool).await;
    expectations_hold(&app).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn invalid_search_input_is_bad_user_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let mut huge: Vec<f64> = at(0.0).into_iter().map(f64::from).collect();
    huge[5] = 1e39; // beyond f32: infinite once parsed
    let long = "word ".repeat(401);
    let bad = [
        (SEARCH, json!({ "v": huge })),
        (SEARCH, json!({ "v": at(0.0)[..383] })),
        (SEARCH, json!({ "v": at(0.0), "first": 101 })),
        (SEARCH, json!({ "v": at(0.0), "first": -1 })),
        ("query($t: String) { searchNotes(text: $t) { score } }", json!({ "t": long })),
        ("query($t: String) { searchNotes(text: $t, vector: [1.0]) { score } }", json!({ "t": "rust" })),
    ];
    for (query, variables) in bad {
        assert_eq!(app.error_code(None, query, variables.clone()).await, "BAD_USER_INPUT", "{variables}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_write_while_the_provider_is_down_is_refused_and_not_half_stored(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Nothing listens on port 1: every embedding call fails fast.
    let args = ["--embed-url", "http://127.0.0.1:1/v1/embeddings", "--embed-timeout-ms", "1000"];
    let app = TestApp::spawn_with_args(options, &args).await;
    let create = "mutation { createNote(input: { title: \"Lost?\", body: \"no\", visibility: PUBLIC }) { id } }";
    assert_eq!(app.error_code(Some("user-1"), create, json!({})).await, "SERVICE_UNAVAILABLE");
    let (_, body) = app.post(Some("user-1"), create, json!({})).await;
    assert!(!body.to_string().contains("127.0.0.1"), "leaks the provider address: {body}");
    let notes: i64 = sqlx::query_scalar("select count(*) from notes").fetch_one(&app.pool).await.unwrap();
    assert_eq!(notes, 0, "a refused write stores nothing");
    let search = r#"{ searchNotes(text: "rust") { score } }"#;
    assert_eq!(app.error_code(None, search, json!({})).await, "SERVICE_UNAVAILABLE");
}

#[sqlx::test(migrator = "db::MIGRATOR")]
async fn a_provider_of_another_dimension_is_refused_at_start_up(pool: PgPool) {
    api::commands::check_embedding_dimension(&pool, 384).await.unwrap();
    let message = api::commands::check_embedding_dimension(&pool, 1536).await.unwrap_err().to_string();
    for needle in ["1536", "vector(384)", "NOTEGRAPH_EMBED_DIMENSION=384", "notegraph reembed"] {
        assert!(message.contains(needle), "{needle:?} missing from: {message}");
    }
}

/// The vector indexes on `notes`.
async fn vector_indexes(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "select indexname::text from pg_indexes where tablename = 'notes' and indexname like 'notes_embedding%' \
         order by 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn serve_switches_the_vector_index_to_ivfflat_and_back(_: PgPoolOptions, options: PgConnectOptions) {
    // The in-process server does not touch the index; `--exact-tag-notes 0`
    // sends tag filters through the index too.
    let app = TestApp::spawn_with_args(options.clone(), &["--exact-tag-notes", "0"]).await;
    load(&app.pool).await;
    assert_eq!(vector_indexes(&app.pool).await, ["notes_embedding_hnsw_idx"]);
    let url = database_url(&options);
    for (index, expected) in [("ivfflat", "notes_embedding_ivfflat_idx"), ("hnsw", "notes_embedding_hnsw_idx")] {
        let (mut server, mut logs) = serve_process(&[
            ("DATABASE_URL", url.as_str()),
            ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
            ("NOTEGRAPH_VECTOR_INDEX", index),
        ]);
        let base = format!("http://{}", serving_address(&mut logs).await);
        assert_eq!(vector_indexes(&app.pool).await, [expected], "after starting with {index}");
        let request = json!({ "query": SEARCH, "variables": { "v": at(0.0), "first": 3 } });
        let response = reqwest::Client::new().post(format!("{base}/graphql")).json(&request).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert_hits(&hits(&body["data"]), &[public(1), public(2), public(3)]);
        expectations_hold(&app).await;
        server.kill().await.unwrap();
    }
}

/// The HNSW index's options, as `pg_class` lists them.
async fn hnsw_options(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("select unnest(reloptions) from pg_class where relname = 'notes_embedding_hnsw_idx'")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn serve_rebuilds_an_hnsw_index_built_with_other_options(_: PgPoolOptions, options: PgConnectOptions) {
    // The migrations leave the m = 24 index of 20261128000001; the
    // default is now m = 16, ef_construction = 100.
    let app = TestApp::spawn(options.clone()).await;
    load(&app.pool).await;
    assert_eq!(hnsw_options(&app.pool).await, ["m=24", "ef_construction=128"]);
    let url = database_url(&options);
    let (mut server, mut logs) = serve_process(&[
        ("DATABASE_URL", url.as_str()),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_VECTOR_INDEX", "hnsw"),
    ]);
    let base = format!("http://{}", serving_address(&mut logs).await);
    assert_eq!(vector_indexes(&app.pool).await, ["notes_embedding_hnsw_idx"], "one index, under its name");
    assert_eq!(hnsw_options(&app.pool).await, ["m=16", "ef_construction=100"]);
    let request = json!({ "query": SEARCH, "variables": { "v": at(0.0), "first": 3 } });
    let response = reqwest::Client::new().post(format!("{base}/graphql")).json(&request).send().await.unwrap();
    let body: Value = response.json().await.unwrap();
    assert_hits(&hits(&body["data"]), &[public(1), public(2), public(3)]);
    server.kill().await.unwrap();

    // `NOTEGRAPH_HNSW_EF_CONSTRUCTION` rebuilds it with the one asked for;
    // unset again (the hash embedder's 100), it is rebuilt back.
    for (ef_construction, expected) in [(Some("64"), "ef_construction=64"), (None, "ef_construction=100")] {
        let mut env = vec![("DATABASE_URL", url.as_str()), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")];
        env.extend(ef_construction.map(|value| ("NOTEGRAPH_HNSW_EF_CONSTRUCTION", value)));
        let (mut server, mut logs) = serve_process(&env);
        let base = format!("http://{}", serving_address(&mut logs).await);
        assert_eq!(vector_indexes(&app.pool).await, ["notes_embedding_hnsw_idx"], "one index, under its name");
        assert_eq!(hnsw_options(&app.pool).await, ["m=16", expected]);
        let response = reqwest::Client::new().post(format!("{base}/graphql")).json(&request).send().await.unwrap();
        let body: Value = response.json().await.unwrap();
        assert_hits(&hits(&body["data"]), &[public(1), public(2), public(3)]);
        server.kill().await.unwrap();
    }
}

/// Calls of the statement that sets `hnsw.ef_search` for one search (its
/// setting's name is a constant, which pg_stat_statements hides: the
/// statement names its column after it).
async fn ef_settings(app: &TestApp) -> i64 {
    app.statement_calls().await.iter().filter(|(query, _)| query.contains("as hnsw_ef_search")).map(|(_, n)| n).sum()
}

/// `searchNotes(text:)` runs at its own `ef_search` (one `set_config` in a
/// transaction around the search), vectors and `similar` at the
/// connection's; with the two equal, text costs one statement too.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn text_searches_run_at_their_own_ef_search(_: PgPoolOptions, options: PgConnectOptions) {
    let text = r#"{ searchNotes(text: "note 12", first: 5) { score note { id } } }"#;
    let app = TestApp::spawn_with_args(
        options.clone(),
        &["--cache-enabled", "false", "--hnsw-ef-search", "20", "--hnsw-ef-search-text", "200"],
    )
    .await;
    load(&app.pool).await;
    let before = ef_settings(&app).await;
    let found = hits(&app.data(text).await);
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(found.windows(2).all(|w| w[0].1 >= w[1].1), "best first: {found:?}");
    assert_eq!(ef_settings(&app).await, before + 1);
    // Vectors and `similar` keep the connection's own setting.
    assert_hits(&search(&app, None, None, 3).await, &[public(1), public(2), public(3)]);
    app.data(r#"{ note(id: "1") { similar(first: 2) { note { id } } } }"#).await;
    assert_eq!(ef_settings(&app).await, before + 1);

    let same = TestApp::spawn_with_args(options, &["--cache-enabled", "false", "--hnsw-ef-search-text", "40"]).await;
    let before = ef_settings(&same).await;
    assert_eq!(hits(&same.data(text).await).len(), 5);
    assert_eq!(ef_settings(&same).await, before);
}

/// The setting lasts for its one search: the connection goes back to the
/// pool with its own, also when the search fails.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_search_at_its_own_ef_search_leaves_the_connection_as_it_was(pool: PgPool) {
    load(&pool).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("set hnsw.ef_search = 33").execute(&mut *conn).await.unwrap();
    let setting = async |conn: &mut sqlx::PgConnection| -> String {
        sqlx::query_scalar("select current_setting('hnsw.ef_search')").fetch_one(conn).await.unwrap()
    };
    let query = Vector::from(at(0.0));
    let found = db::search::by_embedding_with_ef(&mut conn, 400, &query, None, 3, None).await.unwrap();
    assert_eq!(found.iter().map(|h| h.note.id.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(setting(&mut conn).await, "33");
    // A vector of the wrong dimension fails inside the transaction.
    let wrong = Vector::from(vec![1.0_f32; 3]);
    assert!(db::search::by_embedding_with_ef(&mut conn, 400, &wrong, None, 3, None).await.is_err());
    assert_eq!(setting(&mut conn).await, "33");
}
