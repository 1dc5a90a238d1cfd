//! Criterion benchmarks of the server's hot paths that need no database:
//! parsing the published queries (and copying a parsed one, as the
//! parsed-document cache does), the response cache's key (the document
//! normalised and hashed with its variables) and its hit path, assembling
//! and delivering loader batches, the default embedder, and serialising a
//! large response.
//!
//! `just bench` runs them all; `just bench parse` only those whose name
//! contains `parse`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, black_box, criterion_group, criterion_main};
use embed::HashEmbedder;
use futures::future::join_all;
use loaders::{Batched, Loader, Tracked};

/// The published mix (k6/lib/queries.js) and a deeper query of the README.
const DOCUMENTS: [(&str, &str); 4] = [
    ("userList", "{ users(first: 20) { id name } }"),
    ("noteDetail", r#"{ note(id: "4711") { id title author { name } } }"#),
    ("userNotes", r#"{ user(id: "42") { notes { id title tags { name } } } }"#),
    (
        "tagsNotesAuthors",
        "{ tags(first: 50) { notes(first: 10) { author { notes(first: 3) { id } } tags { name } } } }",
    ),
];

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse");
    for (name, document) in DOCUMENTS {
        group.bench_with_input(BenchmarkId::from_parameter(name), document, |b, document| {
            b.iter(|| async_graphql::parser::parse_query(black_box(document)).map(|_| ()));
        });
        // What the server's parsed-document cache does instead on a repeat.
        let parsed = async_graphql::parser::parse_query(document).expect("the documents parse");
        group.bench_with_input(BenchmarkId::new("copy of the parsed form", name), &parsed, |b, parsed| {
            b.iter(|| black_box(parsed).clone());
        });
    }
    group.finish();
}

/// A document with variables, one of them left to its default: the key
/// prints the variables in name order with the default applied.
const WITH_VARIABLES: &str =
    "query UserNotes($id: ID!, $first: Int = 10) { user(id: $id) { notes(first: $first) { id title } } }";

/// A request for `document` with `variables`, its parsed form already in
/// it, as the parsed-document cache leaves it before the key is computed.
fn parsed_request(document: &str, variables: serde_json::Value) -> async_graphql::Request {
    let mut request = async_graphql::Request::new(document).variables(async_graphql::Variables::from_json(variables));
    request.parsed_query().expect("the documents parse");
    request
}

/// The response cache's key for each published query (the document printed
/// in canonical form and hashed with the operation name and variables,
/// `api::fingerprint::fingerprint`), and for one with variables.
fn cache_key(c: &mut Criterion) {
    let mut group = c.benchmark_group("cache_key");
    let with_variables = [("withVariables", WITH_VARIABLES, serde_json::json!({ "id": "42" }))];
    let published = DOCUMENTS.into_iter().map(|(name, document)| (name, document, serde_json::json!({})));
    for (name, document, variables) in published.chain(with_variables) {
        let mut request = parsed_request(document, variables);
        assert!(api::fingerprint::fingerprint(&mut request).is_some(), "{name} has a key");
        group.bench_function(name, |b| b.iter(|| api::fingerprint::fingerprint(black_box(&mut request))));
    }
    group.finish();
}

/// Stores a response of the mix's size (about 100 bytes, shared like the
/// server's encoded bodies) under `key`, depending on a note and its author.
async fn store(responses: &cache::ResponseCache, key: cache::Key, note: u64) {
    static BODY: &[u8] =
        br#"{"data":{"note":{"id":"4711","title":"Keeping a sourdough starter alive","author":{"name":"Ada"}}}}"#;
    let tags = vec![cache::Tag::new(&format!("Note:{note}")), cache::Tag::new(&format!("User:{}", note % 10_000))];
    let body = bytes::Bytes::copy_from_slice(BODY);
    responses.insert(key, cache::Stored { body, tags, max_age: None, began: responses.begin() }).await;
    assert!(responses.get(key).await.is_some(), "the entry is held");
}

/// A response cache holding `entries` responses (see [`store`]).
fn filled_cache(entries: u64) -> cache::ResponseCache {
    let responses =
        cache::ResponseCache::new(cache::Config { max_bytes: 256 * 1024 * 1024, ttl: Duration::from_secs(300) });
    futures::executor::block_on(async {
        for i in 0..entries {
            let key = cache::Key::new(cache::Fingerprint::of([i.to_le_bytes().as_slice()]), cache::Scope::Shared);
            store(&responses, key, i).await;
        }
    });
    responses
}

/// What a cache hit costs once the request is parsed: the lookup alone in a
/// cache of 100,000 responses, and the key plus the lookup for the mix's
/// noteDetail (the server's hit path less HTTP, auth and the limits).
fn cache_hit(c: &mut Criterion) {
    let responses = filled_cache(100_000);
    let mut group = c.benchmark_group("cache_hit");
    let key = cache::Key::new(cache::Fingerprint::of([7_u64.to_le_bytes().as_slice()]), cache::Scope::Shared);
    group.bench_function("lookup_in_100k", |b| {
        b.iter(|| futures::executor::block_on(responses.get(black_box(key))).map(|body| body.len()))
    });
    let mut request = parsed_request(DOCUMENTS[1].1, serde_json::json!({}));
    let fingerprint = api::fingerprint::fingerprint(&mut request).expect("a query has a key");
    futures::executor::block_on(store(&responses, cache::Key::new(fingerprint, cache::Scope::Shared), 4711));
    group.bench_function("key_and_lookup_noteDetail", |b| {
        b.iter(|| {
            let fingerprint = api::fingerprint::fingerprint(black_box(&mut request))?;
            let key = cache::Key::new(fingerprint, cache::Scope::Shared);
            futures::executor::block_on(responses.get(key)).map(|body| body.len())
        })
    });
    group.finish();
}

/// Answers every key at once from memory: what is left to measure is the
/// batching itself (enqueueing, holding, dispatching, delivering).
struct Echo;

impl Loader<u64> for Echo {
    type Value = u64;

    fn load(
        &self,
        keys: &[u64],
        _: Option<db::Budget>,
    ) -> impl Future<Output = Result<HashMap<u64, u64>, db::Error>> + Send {
        let values = keys.iter().map(|&key| (key, key * 2)).collect();
        async move { Ok(values) }
    }
}

/// `requests` concurrent requests each loading 20 keys at one level (say
/// the authors of 20 notes), as one batch.
fn batches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    let loader = Arc::new(Batched::new(Echo, "echo", Duration::ZERO));
    let mut group = c.benchmark_group("loader_batch");
    for requests in [1_u64, 16] {
        group.throughput(Throughput::Elements(requests * 20));
        group.bench_with_input(BenchmarkId::new("requests_x20_keys", requests), &requests, |b, &requests| {
            b.iter(|| {
                runtime.block_on(join_all((0..requests).map(|request| {
                    let loader = Arc::clone(&loader);
                    Tracked::new(Box::pin(async move {
                        join_all((0..20).map(|i| loader.load_one(request * 1_000 + i))).await.len()
                    }))
                })))
            });
        });
    }
    group.finish();
}

fn embedder(c: &mut Criterion) {
    let embedder = HashEmbedder::default();
    let note = "Sourdough starter notes. Feed the starter twice a day with equal weights of flour and water; \
                it is ready when it doubles within six hours and smells sweet and sour. Rye flour speeds it up, \
                a cold kitchen slows it down, and a spoonful of the old starter is all a new batch needs.";
    let mut group = c.benchmark_group("embed");
    for (name, text) in [("search_text", "sourdough starter"), ("note_300_chars", note)] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), text, |b, text| {
            b.iter(|| embedder.embed_one(black_box(text)));
        });
    }
    group.finish();
}

/// `{ notes(first: 100) { id title author { name } tags { name } } }` as
/// the server answers it: 100 notes with an author and three tags each.
fn large_response() -> async_graphql::Response {
    let notes: Vec<serde_json::Value> = (1..=100)
        .map(|id| {
            serde_json::json!({
                "id": id.to_string(),
                "title": format!("Note {id}: keeping a sourdough starter alive through the winter"),
                "author": { "name": format!("Author {}", id % 37) },
                "tags": [{ "name": "baking" }, { "name": "sourdough" }, { "name": format!("tag-{}", id % 200) }],
            })
        })
        .collect();
    let data = async_graphql::Value::from_json(serde_json::json!({ "notes": notes })).expect("a GraphQL value");
    async_graphql::Response::new(data)
}

fn serialize(c: &mut Criterion) {
    let response = large_response();
    let bytes = serde_json::to_vec(&response).expect("serialisable").len();
    let mut group = c.benchmark_group("serialize");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("notes_100_with_author_and_tags", |b| {
        b.iter(|| serde_json::to_vec(black_box(&response)).map(|body| body.len()));
    });
    group.finish();
}

criterion_group!(benches, parse, cache_key, cache_hit, batches, embedder, serialize);
criterion_main!(benches);
