//! The baseline that `docs/PERFORMANCE.md` compares Notegraph with: a bare
//! axum + sqlx server that answers the load-test queries (and nothing
//! else) with one prepared statement each and no GraphQL engine, no
//! loaders, no auth beyond a fixed viewer. Its CPU per request is what the
//! stack itself costs; the difference is what Notegraph's own work costs.
//!
//! Not a product: it recognises the queries by their text, and answers
//! every other request with 400.
//!
//! Run: `DATABASE_URL=… cargo run --profile production -p baseline -- 127.0.0.1:8090`
//! (the fat-LTO profile that bench/compare.sh builds it with, as the
//! Notegraph binaries it is compared with are built).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// The viewer every request acts as (the load test's `test-token`).
const VIEWER: i64 = 1;

#[derive(Deserialize)]
struct Params {
    query: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")?;
    let listen = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8090".to_owned());
    // Same pool size as Notegraph's default, and no ping per acquire.
    let pool = PgPoolOptions::new().max_connections(16).test_before_acquire(false).connect(&url).await?;
    let app = Router::new().route("/graphql", post(graphql)).with_state(pool);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

/// The first run of digits in `text` after `field(id: "`.
fn id_after(text: &str, field: &str) -> Option<i64> {
    let start = text.find(&format!("{field}(id: \""))? + field.len() + 6;
    let digits: String = text[start..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

async fn graphql(State(pool): State<PgPool>, body: Bytes) -> Response {
    let Ok(params) = serde_json::from_slice::<Params>(&body) else {
        return (StatusCode::BAD_REQUEST, "not a request").into_response();
    };
    let q = params.query.as_str();
    let data = if q.starts_with("{ users(first: 20)") {
        users(&pool).await
    } else if let Some(id) = q.starts_with("{ note(").then(|| id_after(q, "note")).flatten() {
        note(&pool, id).await
    } else if let Some(id) = q.starts_with("{ user(").then(|| id_after(q, "user")).flatten() {
        user_notes(&pool, id).await
    } else if q.starts_with("{ notes(first: 10)") {
        notes(&pool).await
    } else if q.starts_with("{ notes(first: 50) { id title author { name } tags { name } } }") {
        notes_page(&pool).await
    } else {
        return (StatusCode::BAD_REQUEST, "unknown query").into_response();
    };
    match data {
        Ok(data) => {
            let body = serde_json::to_vec(&json!({ "data": data })).unwrap_or_default();
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "database error").into_response(),
    }
}

async fn users(pool: &PgPool) -> sqlx::Result<Value> {
    let rows: Vec<(i64, String)> =
        sqlx::query_as("select id, name from users order by id limit 20").fetch_all(pool).await?;
    let users: Vec<Value> = rows.into_iter().map(|(id, name)| json!({ "id": id.to_string(), "name": name })).collect();
    Ok(json!({ "users": users }))
}

async fn note(pool: &PgPool, id: i64) -> sqlx::Result<Value> {
    let row: Option<(i64, String, String)> = sqlx::query_as(
        "select n.id, n.title, u.name from notes n join users u on u.id = n.author_id \
         where n.id = $1 and (n.visibility = 'public' or n.author_id = $2)",
    )
    .bind(id)
    .bind(VIEWER)
    .fetch_optional(pool)
    .await?;
    Ok(
        json!({ "note": row.map(|(id, title, name)| json!({ "id": id.to_string(), "title": title, "author": { "name": name } })) }),
    )
}

async fn user_notes(pool: &PgPool, id: i64) -> sqlx::Result<Value> {
    let rows: Vec<(i64, String, Vec<String>)> = sqlx::query_as(
        "select n.id, n.title, coalesce(array_agg(t.name order by t.name) filter (where t.name is not null), '{}') \
         from (select id, title from notes where author_id = $1 and (visibility = 'public' or author_id = $2) \
               order by id desc limit 20) n \
         left join note_tags nt on nt.note_id = n.id left join tags t on t.id = nt.tag_id \
         group by n.id, n.title order by n.id desc",
    )
    .bind(id)
    .bind(VIEWER)
    .fetch_all(pool)
    .await?;
    let notes: Vec<Value> = rows
        .into_iter()
        .map(|(id, title, tags)| {
            let tags: Vec<Value> = tags.into_iter().map(|name| json!({ "name": name })).collect();
            json!({ "id": id.to_string(), "title": title, "tags": tags })
        })
        .collect();
    Ok(json!({ "user": { "notes": notes } }))
}

async fn notes(pool: &PgPool) -> sqlx::Result<Value> {
    let rows: Vec<(i64, String, String)> = sqlx::query_as(
        "select n.id, n.title, u.name from notes n join users u on u.id = n.author_id \
         where n.visibility = 'public' or n.author_id = $1 order by n.id desc limit 10",
    )
    .bind(VIEWER)
    .fetch_all(pool)
    .await?;
    let notes: Vec<Value> = rows
        .into_iter()
        .map(|(id, title, name)| json!({ "id": id.to_string(), "title": title, "author": { "name": name } }))
        .collect();
    Ok(json!({ "notes": notes }))
}

/// A page of 50 notes with their authors and tags, in one statement.
async fn notes_page(pool: &PgPool) -> sqlx::Result<Value> {
    let rows: Vec<(i64, String, String, Vec<String>)> = sqlx::query_as(
        "with page as (select n.id, n.title, u.name from notes n join users u on u.id = n.author_id \
             where n.visibility = 'public' or n.author_id = $1 order by n.id desc limit 50) \
         select page.id, page.title, page.name, coalesce(g.names, '{}') from page left join ( \
             select nt.note_id, array_agg(t.name order by t.name) as names \
             from note_tags nt join tags t on t.id = nt.tag_id \
             where nt.note_id in (select id from page) group by nt.note_id) g on g.note_id = page.id \
         order by page.id desc",
    )
    .bind(VIEWER)
    .fetch_all(pool)
    .await?;
    let notes: Vec<Value> = rows
        .into_iter()
        .map(|(id, title, name, tags)| {
            let tags: Vec<Value> = tags.into_iter().map(|name| json!({ "name": name })).collect();
            json!({ "id": id.to_string(), "title": title, "author": { "name": name }, "tags": tags })
        })
        .collect();
    Ok(json!({ "notes": notes }))
}
