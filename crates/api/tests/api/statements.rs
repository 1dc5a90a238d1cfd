//! No N+1, and no split batches: every counted query costs exactly its
//! stated number of SQL statements on every run — the first request of a
//! fresh server, warm runs, runs with 32 other requests in flight, and all
//! of those again with both cores saturated by busy loops. Statements are
//! counted by pg_stat_statements in the test's own database. The server
//! runs on a multi-threaded runtime of its own, as in production.
//!
//! With other requests in flight, the count of a run is the statements
//! whose texts the background requests never run; the background mix is
//! chosen so that those sets are disjoint, and the test checks that they
//! are before it relies on it. The background requests still go through
//! the same executor, runtime and loader machinery (`note(id:)` is a
//! loader), which is what used to split batches under contention.
//!
//! Writes are counted the same way: each mutation is one statement that
//! writes, links tags and notifies (an update of the title or body alone
//! reads the note first, to embed its other half).
//!
//! Each condition runs 50 times in the stress step (`just stress`) and 5
//! times in the default suite, where the tests of this module run one at a
//! time beside the others (.config/nextest.toml, group `exclusive`).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, stress};

/// Every counted run executes: the response cache would answer repeats.
/// A fixed concurrency limit above the background's 33 requests: with
/// the cores saturated, latency rises and the adaptive limit would shed
/// the background (which is what it is for, and not what is counted here).
pub(crate) const NO_CACHE: &[&str] = &["--cache-enabled", "false", "--max-concurrent-requests", "1000"];
/// Runs of each counted query in each condition: 50 in the stress step
/// (`just stress`), 5 in the default suite.
pub(crate) fn runs() -> usize {
    if stress() { 50 } else { 5 }
}
/// Requests kept in flight beside the counted one.
const CONCURRENT: usize = 32;

/// Requests whose statements are disjoint from every counted query's:
/// vector search, a tag by name, a note by id (a loader) and introspection
/// (no SQL at all, only executor work).
pub(crate) const BACKGROUND: &[&str] = &[
    r#"{ searchNotes(text: "body of a note", first: 5) { score note { id title } } }"#,
    r#"{ tag(name: "tag3") { name } }"#,
    r#"{ a: note(id: "7") { id title } b: note(id: "8") { id } c: note(id: "9") { id } }"#,
    "{ __schema { types { name fields { name } } } }",
];

/// Statement texts a request ran, with their calls.
pub(crate) type Calls = BTreeMap<String, i64>;

/// The background mix without its loader read, beside a counted request
/// that runs the same loader statement (an update that reads the note it
/// embeds): the statement would be both counted and ignored.
const BACKGROUND_WITHOUT_LOADERS: &[&str] = &[BACKGROUND[0], BACKGROUND[1], BACKGROUND[3]];

/// The statements one request ran, leaving out texts in `ignore`.
pub(crate) async fn count_one(app: &TestApp, query: &str, ignore: &BTreeSet<String>) -> (i64, Calls) {
    let before = app.statement_calls().await;
    let data = app.data_as(Some("test-token"), query, json!({})).await;
    assert!(!data.as_object().unwrap().is_empty());
    calls_since(app, &before, ignore).await
}

/// The statements run since `before` (a reading of
/// `TestApp::statement_calls`), leaving out texts in `ignore`, and how
/// many.
pub(crate) async fn calls_since(app: &TestApp, before: &Calls, ignore: &BTreeSet<String>) -> (i64, Calls) {
    let ran: Calls = app
        .statement_calls()
        .await
        .into_iter()
        .filter(|(text, _)| !ignore.contains(text))
        .map(|(text, calls)| {
            let new = calls - before.get(&text).copied().unwrap_or(0);
            (text, new)
        })
        .filter(|(_, new)| *new > 0)
        .collect();
    (ran.values().sum(), ran)
}

/// Records every count of one condition and fails with all of them, and
/// the statements of the first wrong run, if any run differs.
#[derive(Default)]
pub(crate) struct Tally {
    counts: Vec<i64>,
    wrong: Option<Calls>,
}

impl Tally {
    pub(crate) fn record(&mut self, expected: i64, (count, ran): (i64, Calls)) {
        if count != expected && self.wrong.is_none() {
            self.wrong = Some(ran);
        }
        self.counts.push(count);
    }

    pub(crate) fn check(self, condition: &str, query: &str, expected: i64) {
        let (min, max) = (self.counts.iter().min().unwrap(), self.counts.iter().max().unwrap());
        println!("{condition}: {} runs, min {min}, max {max}: {query}", self.counts.len());
        assert!(
            self.counts.iter().all(|&c| c == expected),
            "{condition}: expected {expected} statements every run of {query}, got {:?}; a wrong run: {:#?}",
            self.counts,
            self.wrong
        );
    }
}

/// Two processes spinning on both cores while alive.
pub(crate) struct BusyLoops(Vec<Child>);

impl BusyLoops {
    pub(crate) fn start() -> Self {
        BusyLoops(
            (0..2)
                .map(|_| Command::new("sh").args(["-c", "while :; do :; done"]).spawn().expect("busy loop"))
                .collect(),
        )
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// [`CONCURRENT`] clients sending the background mix until dropped.
pub(crate) struct Background {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    pub(crate) fn start(app: &TestApp, mix: &'static [&'static str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..CONCURRENT)
            .map(|i| {
                let (client, url, stop) = (app.client.clone(), app.url("/graphql"), Arc::clone(&stop));
                tokio::spawn(async move {
                    let mut n = i;
                    while !stop.load(Ordering::Relaxed) {
                        let query = mix[n % mix.len()];
                        let response = client.post(&url).bearer_auth("test-token").json(&json!({ "query": query }));
                        let body: serde_json::Value = response.send().await.unwrap().json().await.unwrap();
                        assert!(body.get("errors").is_none(), "background request failed: {body}");
                        n += 1;
                    }
                })
            })
            .collect();
        Background { stop, tasks }
    }

    pub(crate) async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            task.await.expect("background client");
        }
    }
}

/// Checks `query` in every condition. `options` reach the test's database.
async fn assert_exact(options: PgConnectOptions, query: &str, expected: i64) {
    assert_each(options, BACKGROUND, &|| query.to_owned(), expected).await;
}

/// Checks the requests `next` makes, one per run, in every condition,
/// beside `mix` as the background (a write's request differs from run to
/// run: a delete cannot delete the same note twice).
async fn assert_each(
    options: PgConnectOptions,
    mix: &'static [&'static str],
    next: &dyn Fn() -> String,
    expected: i64,
) {
    let app = TestApp::spawn_multi_threaded(options.clone(), NO_CACHE).await;
    let evictions = app.statement_evictions().await;

    // The background statements, learnt by running the mix alone; none may
    // be one the counted query runs, or the counts below would be unsound.
    let nothing = BTreeSet::new();
    let mut ignore = BTreeSet::new();
    for background in mix {
        ignore.extend(count_one(&app, background, &nothing).await.1.into_keys());
    }
    let query = next();
    let (_, own) = count_one(&app, &query, &nothing).await;
    assert!(own.keys().all(|text| !ignore.contains(text)), "background and counted statements overlap: {own:#?}");

    for busy in [false, true] {
        let _loops = busy.then(BusyLoops::start);
        let label = |condition: &str| format!("{condition}{}", if busy { ", cores saturated" } else { "" });

        let mut cold = Tally::default();
        for _ in 0..runs() {
            let fresh = TestApp::spawn_multi_threaded(options.clone(), NO_CACHE).await;
            cold.record(expected, count_one(&fresh, &next(), &ignore).await);
        }
        cold.check(&label("cold (first request of a fresh server)"), &query, expected);

        let mut warm = Tally::default();
        for _ in 0..runs() {
            warm.record(expected, count_one(&app, &next(), &ignore).await);
        }
        warm.check(&label("warm"), &query, expected);

        let background = Background::start(&app, mix);
        let mut loaded = Tally::default();
        for _ in 0..runs() {
            loaded.record(expected, count_one(&app, &next(), &ignore).await);
        }
        background.finish().await;
        loaded.check(&label("32 concurrent requests"), &query, expected);
    }
    // An entry evicted and made again between two readings loses its
    // calls: raise pg_stat_statements.max (the embedded Postgres sets it).
    assert_eq!(app.statement_evictions().await, evictions, "pg_stat_statements evicted entries during the counts");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_note_with_its_author_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // The note joined with its author: the mix's noteDetail.
    assert_exact(options, "{ note(id: \"8\") { id title author { name } } }", 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_user_with_a_page_of_notes_and_their_tags_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // The user, its page of notes and their tags: the mix's userNotes.
    assert_exact(options, r#"{ user(id: "2") { notes { id title tags { name } } } }"#, 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_page_of_users_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // The mix's userList.
    assert_exact(options, "{ users(first: 20) { id name } }", 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn notes_by_id_at_several_root_keys_batch_into_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // Root fields resolve together, on the fast path as in the engine: their
    // loads share one batch.
    let query = r#"{ a: note(id: "8") { id author { name } } b: note(id: "9") { title author { id } } }"#;
    assert_exact(options, query, 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn fifty_notes_with_authors_and_tags_cost_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // The page joined with its authors and its tags aggregated per note,
    // as the bare server's one statement: the nplus1 load scenario.
    assert_exact(options, "{ notes(first: 50) { id title author { name } tags { name } } }", 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_hundred_item_list_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // A list longer than async-graphql's 32-item polling chunk, three times
    // over: notes with their authors and tags in one statement.
    assert_exact(options, "{ notes(first: 100) { id author { name } tags { name } } }", 1).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn every_shape_of_the_root_list_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // Only tags, only authors, by author, by tag (with both): each one
    // statement of its own text. The stress step leaves this test at the
    // default 5 runs (.config/nextest.toml says why).
    for query in [
        "{ notes(first: 50) { id tags { name } } }",
        "{ notes(first: 50) { title author { name } } }",
        r#"{ notes(first: 20, authorId: "2") { id title tags { name } } }"#,
        r#"{ notes(first: 20, tag: "tag3") { id author { name } tags { name } } }"#,
    ] {
        assert_exact(options.clone(), query, 1).await;
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn relations_below_a_joined_author_still_batch(_: PgPoolOptions, options: PgConnectOptions) {
    // The page with authors and tags, then one batch of the authors' notes.
    let query = "{ notes(first: 50) { id author { name notes(first: 3) { id } } tags { name } } }";
    assert_exact(options, query, 2).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn users_with_notes_tags_and_authors_cost_three_statements(_: PgPoolOptions, options: PgConnectOptions) {
    // users, notes with their tags by author, users by id.
    assert_exact(options, "{ users(first: 20) { notes(first: 5) { tags { name } author { name } } } }", 3).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn counts_and_tag_pages_are_batched_too(_: PgPoolOptions, options: PgConnectOptions) {
    // tags, notes by tag, count by tag, users by id, count by author, similar.
    let query =
        "{ tags(first: 10) { noteCount notes(first: 3) { author { noteCount } similar(first: 2) { score } } } }";
    assert_exact(options, query, 6).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn four_levels_of_tags_notes_and_authors_cost_four_statements(_: PgPoolOptions, options: PgConnectOptions) {
    // tags, notes with their tags by tag, users by id, notes by author.
    let query = "{ tags(first: 50) { notes(first: 10) { author { notes(first: 3) { id } } tags { name } } } }";
    assert_exact(options, query, 4).await;
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_loader_statement_is_planned_once_per_connection(_: PgPoolOptions, options: PgConnectOptions) {
    // Left to choose, Postgres plans `= any($1)` afresh at every execution:
    // a generic plan's estimate (ten keys) never beats a custom plan's (one).
    let app = TestApp::spawn(options).await;
    let mut conn = app.pool.acquire().await.unwrap();

    for id in 1..=20 {
        db::users::fetch_by_ids(&mut *conn, &[db::UserId(id)]).await.unwrap();
    }

    let (generic, custom): (i64, i64) = sqlx::query_as(
        "select generic_plans, custom_plans from pg_prepared_statements \
         where statement like '%from users where id = any($1)%'",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!((generic, custom), (20, 0), "executions on the generic plan, and plans made for one execution");
}

/// A create with tags, answered with every field of the note, its author
/// and its tags: all of it from the one statement that writes the note,
/// its tags and their links and sends the event.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_create_with_tags_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    let query = r#"mutation { createNote(input: { title: "Counted", body: "Made by the statement test", tags: ["tag3", "new-tag"] }) {
        id title body visibility createdAt updatedAt author { name } tags { name } } }"#;
    assert_exact(options, query, 1).await;
}

/// Updates that need nothing read first: a new title and body (embedded
/// from the input alone), or visibility and tags, answered with the
/// note's fields, author and tags. Each run alternates between the two, so
/// that the note's tags really change every time.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_update_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    // Note 30 is user 1's (the token's), away from the background's 7-9.
    let run = std::sync::atomic::AtomicUsize::new(0);
    let next = || {
        let input = match run.fetch_add(1, Ordering::Relaxed) % 2 {
            0 => r#"{ title: "Counted", body: "Updated by the statement test" }"#,
            _ => r#"{ visibility: PRIVATE, tags: ["tag1", "other"] }"#,
        };
        format!(
            r#"mutation {{ updateNote(id: "30", input: {input}) {{ id title body visibility updatedAt author {{ name }} tags {{ name }} }} }}"#
        )
    };
    assert_each(options, BACKGROUND, &next, 1).await;
}

/// An update of the title alone costs two statements, in every condition:
/// the embedding is of title and body together and is made outside the
/// database, so the body must be read (the note loader's statement) before
/// the write can be sent. The write itself is still one statement, which
/// applies only if the note is still as read.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_update_of_the_title_alone_costs_two_statements(_: PgPoolOptions, options: PgConnectOptions) {
    let run = std::sync::atomic::AtomicUsize::new(0);
    let next = || {
        let n = run.fetch_add(1, Ordering::Relaxed);
        format!(
            r#"mutation {{ updateNote(id: "30", input: {{ title: "Title {n}" }}) {{ id title tags {{ name }} }} }}"#
        )
    };
    assert_each(options, BACKGROUND_WITHOUT_LOADERS, &next, 2).await;
}

/// A delete: one statement reads the note and its tags for the event,
/// deletes it and sends the event. Every run deletes a note of its own.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_delete_costs_one_statement(_: PgPoolOptions, options: PgConnectOptions) {
    let pool = PgPoolOptions::new().max_connections(1).connect_with(options.clone()).await.unwrap();
    // One note per run (six conditions) and one for the overlap check,
    // each with tags, by the token's user.
    let count = (6 * runs() + 1) as i64;
    let ids: Vec<i64> = sqlx::query_scalar(
        "with made as (insert into notes (author_id, title, body, embedding) \
             select 1, 'To delete ' || i, 'Deleted by the statement test', (select embedding from notes where id = 1) \
             from generate_series(1, $1) i returning id), \
         linked as (insert into note_tags (note_id, tag_id) select made.id, t.id from made, tags t where t.id <= 3) \
         select id from made order by id",
    )
    .bind(count)
    .fetch_all(&pool)
    .await
    .unwrap();
    let ids = std::sync::Mutex::new(ids);
    let next = || {
        let id = ids.lock().unwrap().pop().expect("a note left to delete");
        format!(r#"mutation {{ deleteNote(id: "{id}") }}"#)
    };
    assert_each(options, BACKGROUND, &next, 1).await;
}
