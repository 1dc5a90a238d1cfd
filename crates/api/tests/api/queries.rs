//! Reads: the published load mix, paging, filters, limits and search.

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, ids};

/// The four queries of the published k6 mix, sent verbatim.
const LOAD_MIX: [&str; 4] = [
    r#"{ users(first: 20) { id name } }"#,
    r#"{ note(id: "1") { id title author { name } } }"#,
    r#"{ user(id: "1") { notes { id title tags { name } } } }"#,
    r#"{ notes(first: 10) { id title author { name } } }"#,
];

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn published_load_mix_returns_data_without_errors(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    for query in LOAD_MIX {
        let data = app.data_as(Some("test-token"), query, json!({})).await;
        let root = data.as_object().unwrap().values().next().unwrap();
        let non_empty = match root {
            serde_json::Value::Array(items) => !items.is_empty(),
            serde_json::Value::Object(fields) => fields.values().all(|v| !v.is_null() && v != &json!([])),
            _ => false,
        };
        assert!(non_empty, "{query} returned {data}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn users_are_paged_oldest_first_with_after(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let first = app.data(r#"{ users(first: 3) { id } }"#).await;
    assert_eq!(ids(&first["users"]), ["1", "2", "3"]);
    let next = app.data(r#"{ users(first: 3, after: "3") { id } }"#).await;
    assert_eq!(ids(&next["users"]), ["4", "5", "6"]);
    let end = app.data(r#"{ users(first: 5, after: "29") { id } }"#).await;
    assert_eq!(ids(&end["users"]), ["30"]);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn notes_are_paged_newest_first_and_skip_private_ones(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let page = app.data(r#"{ notes(first: 4) { id } }"#).await;
    // 294 is a multiple of 7, so it is private and absent.
    assert_eq!(ids(&page["notes"]), ["300", "299", "298", "297"]);
    let next = app.data(r#"{ notes(first: 3, after: "297") { id } }"#).await;
    assert_eq!(ids(&next["notes"]), ["296", "295", "293"]);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn notes_filter_by_author_and_tag(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let by_author = app.data(r#"{ notes(first: 3, authorId: "2") { id author { id } } }"#).await;
    // Author 2 wrote notes with i % 30 == 1: 271, 241, 211 (none a multiple of 7).
    assert_eq!(ids(&by_author["notes"]), ["271", "241", "211"]);
    let by_tag = app.data(r#"{ notes(first: 3, tag: "TAG1") { id tags { name } } }"#).await;
    // tag1 (id 1) is on notes with (id + 1) % 4 == 0: 299, 295, 291.
    assert_eq!(ids(&by_tag["notes"]), ["299", "295", "291"]);
    for note in by_tag["notes"].as_array().unwrap() {
        assert!(note["tags"].as_array().unwrap().iter().any(|t| t["name"] == "tag1"), "{note}");
    }
    let both = app.data(r#"{ notes(first: 2, tag: "tag1", authorId: "30") { id } }"#).await;
    // Author 30 wrote i % 30 == 29; of those, tag1 has (i + 1) % 4 == 0: 299, 239.
    assert_eq!(ids(&both["notes"]), ["299", "239"]);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn tags_list_and_lookup_with_their_notes(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let tags = app.data(r#"{ tags(first: 2, after: "1") { id name } }"#).await;
    assert_eq!(tags["tags"], json!([{ "id": "2", "name": "tag2" }, { "id": "3", "name": "tag3" }]));
    let tag = app.data(r#"{ tag(name: "tag4") { name noteCount notes(first: 2) { id } } }"#).await;
    // tag4 is on notes with id % 4 == 0 (75 of them), less the private
    // ones (multiples of 28: 10 of them).
    assert_eq!(tag["tag"]["noteCount"], 65);
    assert_eq!(ids(&tag["tag"]["notes"]), ["300", "296"]);
    let missing = app.data(r#"{ tag(name: "nope") { id } }"#).await;
    assert!(missing["tag"].is_null());
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn pages_of_notes_carry_the_same_tags_as_each_note_read_alone(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user 1's newest notes are one with three tags given out of
    // order, one without tags and one private; all carry a shared tag but
    // the untagged one.
    let app = TestApp::spawn(options).await;
    let create = |title: &str, tags: &str, visibility: &str| {
        format!(
            "mutation {{ createNote(input: {{ title: \"{title}\", body: \"b\", visibility: {visibility}, tags: {tags} }}) {{ id }} }}"
        )
    };
    for (title, tags, visibility) in [
        ("three", r#"["zeta", "alpha", "paged"]"#, "PUBLIC"),
        ("none", "[]", "PUBLIC"),
        ("own", r#"["paged", "mine"]"#, "PRIVATE"),
    ] {
        app.data_as(Some("test-token"), &create(title, tags, visibility), json!({})).await;
    }
    let tags_of = |notes: &serde_json::Value| -> Vec<(String, Vec<String>)> {
        let notes = notes.as_array().expect("a list of notes");
        let names = |note: &serde_json::Value| {
            note["tags"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
        };
        notes.iter().map(|note| (note["title"].as_str().unwrap().to_owned(), names(note))).collect()
    };

    // Act: the pages read their notes' tags in their own statement; the
    // root list reads them through the tags' loader.
    let by_user = app
        .data_as(Some("test-token"), r#"{ user(id: "1") { notes(first: 5) { title tags { name } } } }"#, json!({}))
        .await;
    let by_tag =
        app.data_as(Some("test-token"), r#"{ tag(name: "paged") { notes { title tags { name } } } }"#, json!({})).await;
    let alone = app
        .data_as(Some("test-token"), r#"{ notes(first: 5, authorId: "1") { title tags { name } } }"#, json!({}))
        .await;
    let anonymous = app.data(r#"{ tag(name: "paged") { notes { title tags { name } } } }"#).await;

    // Assert
    let expected = tags_of(&alone["notes"]);
    let strings = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    assert_eq!(
        expected[..3],
        [
            ("own".to_owned(), strings(&["mine", "paged"])),
            ("none".to_owned(), vec![]),
            ("three".to_owned(), strings(&["alpha", "paged", "zeta"])),
        ]
    );
    assert_eq!(tags_of(&by_user["user"]["notes"]), expected);
    assert_eq!(tags_of(&by_tag["tag"]["notes"]), [expected[0].clone(), expected[2].clone()]);
    assert_eq!(tags_of(&anonymous["tag"]["notes"]), [expected[2].clone()], "the private note is not paged over");
}

/// A token, a user id, `notes` arguments, variables and the expected ids.
type Case<'a> = (Option<&'a str>, &'a str, &'a str, serde_json::Value, &'a [&'a str]);

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_user_read_with_a_page_of_notes_has_the_page_read_apart(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: user k wrote notes k-1, k+29, …; every 7th note is private.
    // One `notes` field is read with the user in one statement; two aliased
    // ones are each read through the page loader.
    let app = TestApp::spawn(options).await;
    let cases: [Case; 5] = [
        (None, "1", "first: 10", json!({}), &["300", "270", "240", "180", "150", "120", "90", "60", "30"]),
        (Some("test-token"), "1", "first: $n", json!({ "n": 4 }), &["300", "270", "240", "210"]),
        (None, "2", r#"first: 2, after: "271""#, json!({}), &["241", "211"]),
        (None, "2", r#"after: "1""#, json!({}), &[]),
        (None, "3", "", json!({}), &["272", "242", "212", "152", "122", "92", "62", "32", "2"]),
    ];
    for (token, user, arguments, variables, expected) in cases {
        let operation = if arguments.contains("$n") { "query($n: Int)" } else { "query" };
        let arguments = if arguments.is_empty() { String::new() } else { format!("({arguments})") };
        let joined =
            format!("{operation} {{ user(id: \"{user}\") {{ name notes{arguments} {{ id tags {{ name }} }} }} }}");
        let apart = format!(
            "{operation} {{ user(id: \"{user}\") {{ name a: notes{arguments} {{ id tags {{ name }} }} b: notes{arguments} {{ id }} }} }}"
        );

        // Act
        let joined = app.data_as(token, &joined, variables.clone()).await;
        let apart = app.data_as(token, &apart, variables).await;

        // Assert
        let read = &joined["user"];
        assert_eq!(read["name"], format!("User {user}"));
        assert_eq!(ids(&read["notes"]), expected, "{arguments} of user {user}");
        assert_eq!(read["notes"], apart["user"]["a"], "{arguments} of user {user}");
        assert_eq!(ids(&apart["user"]["b"]), expected);
    }
    let missing = app.data(r#"{ user(id: "999") { name notes { id } } }"#).await;
    assert!(missing["user"].is_null(), "{missing}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn first_above_the_cap_or_negative_is_bad_user_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    for query in [
        "{ notes(first: 101) { id } }",
        "{ users(first: -1) { id } }",
        "{ tags(first: 1000) { id } }",
        r#"{ user(id: "1") { notes(first: 101) { id } } }"#,
        r#"{ searchNotes(text: "x", first: 101) { score } }"#,
    ] {
        assert_eq!(app.error_code(None, query, json!({})).await, "BAD_USER_INPUT", "{query}");
    }
    let ok = app.data("{ notes(first: 100) { id } }").await;
    assert_eq!(ok["notes"].as_array().unwrap().len(), 100);
    // An omitted variable means an omitted argument: the default applies.
    let defaulted = app.data_as(None, "query($n: Int) { users(first: $n) { id } }", json!({})).await;
    assert_eq!(defaulted["users"].as_array().unwrap().len(), 20);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn malformed_ids_are_bad_user_input_and_unknown_ids_are_null(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    assert_eq!(app.error_code(None, r#"{ note(id: "abc") { id } }"#, json!({})).await, "BAD_USER_INPUT");
    assert_eq!(app.error_code(None, r#"{ users(after: "-4") { id } }"#, json!({})).await, "BAD_USER_INPUT");
    let data = app.data(r#"{ note(id: "999999") { id } user(id: "999999") { id } }"#).await;
    assert!(data["note"].is_null() && data["user"].is_null(), "{data}");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn search_by_text_ranks_the_matching_note_first(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let rust =
        app.create_note("user-1", "Async Rust", "Futures, tokio and the borrow checker", "PUBLIC", &["rust"]).await;
    app.create_note("user-1", "Sourdough", "Flour, water, salt and a lively starter", "PUBLIC", &["cooking"]).await;
    app.create_note("user-2", "Hiking", "Boots, maps and mountain trails", "PUBLIC", &[]).await;
    let data = app.data(r#"{ searchNotes(text: "tokio futures in rust", first: 3) { score note { id } } }"#).await;
    let hits = data["searchNotes"].as_array().unwrap();
    assert_eq!(hits.len(), 3);
    assert_eq!(hits[0]["note"]["id"], rust);
    let scores: Vec<f64> = hits.iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "best first: {scores:?}");
    assert!(scores.iter().all(|s| (-1.0..=1.0).contains(s)), "{scores:?}");

    let tagged = app.data(r#"{ searchNotes(text: "tokio futures", tag: "cooking") { note { title } } }"#).await;
    assert_eq!(tagged["searchNotes"], json!([{ "note": { "title": "Sourdough" } }]));

    let similar = app.data(&format!(r#"{{ note(id: "{rust}") {{ similar(first: 5) {{ note {{ id }} }} }} }}"#)).await;
    let similar_ids: Vec<&str> =
        similar["note"]["similar"].as_array().unwrap().iter().map(|h| h["note"]["id"].as_str().unwrap()).collect();
    assert_eq!(similar_ids.len(), 2, "the other two notes");
    assert!(!similar_ids.contains(&rust.as_str()), "a note is not similar to itself");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn search_by_vector_checks_its_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let id = app.create_note("user-1", "Vectors", "Cosine similarity", "PUBLIC", &[]).await;
    let mut vector = vec![0.0_f32; 384];
    vector[0] = 1.0;
    let data = app
        .data_as(None, "query($v: [Float!]) { searchNotes(vector: $v) { note { id } } }", json!({ "v": vector }))
        .await;
    assert_eq!(ids(&data["searchNotes"].as_array().unwrap().iter().map(|h| h["note"].clone()).collect()), [id]);

    let bad = [
        ("query { searchNotes { score } }", json!({})),
        (r#"query { searchNotes(text: "a", vector: [1.0]) { score } }"#, json!({})),
        ("query($v: [Float!]) { searchNotes(vector: $v) { score } }", json!({ "v": [1.0, 2.0] })),
        ("query($v: [Float!]) { searchNotes(vector: $v) { score } }", json!({ "v": vec![0.0; 384] })),
        (r#"query { searchNotes(text: "   ") { score } }"#, json!({})),
    ];
    for (query, variables) in bad {
        assert_eq!(app.error_code(None, query, variables.clone()).await, "BAD_USER_INPUT", "{query} {variables}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn response_fields_come_in_the_order_the_query_asked_for_them(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: fields that wait on loader batches selected before fields
    // that resolve at once, at the root and inside objects and lists.
    let app = TestApp::spawn(options).await;
    let id = app.create_note("user-1", "Ordered", "body", "PUBLIC", &["order"]).await;
    let query = format!(
        r#"{{ note(id: "{id}") {{ author {{ notes {{ tags {{ name }} id }} name }} tags {{ name }} title }} users(first: 1) {{ id }} me {{ id }} }}"#
    );

    // Act: the raw body (a JSON parser may reorder keys).
    let body = app
        .client
        .post(app.url("/graphql"))
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Assert
    let expected = format!(
        r#"{{"data":{{"note":{{"author":{{"notes":[{{"tags":[{{"name":"order"}}],"id":"{id}"}}],"name":"Ada Lovelace"}},"tags":[{{"name":"order"}}],"title":"Ordered"}},"users":[{{"id":"1"}}],"me":null}}}}"#
    );
    assert_eq!(body, expected);
}
