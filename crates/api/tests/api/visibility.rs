//! A private note behaves as if it did not exist for everyone but its
//! author: by id, in lists, counts, tag pages, search and `similar`.

use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, ids};

/// Everything a viewer can learn about notes, in one query.
const EVERYWHERE: &str = r#"query($id: ID!) {
  note(id: $id) { id }
  notes { id }
  user(id: "1") { noteCount notes { id } }
  tag(name: "secret") { noteCount notes { id } }
  searchNotes(text: "launch codes") { note { id } }
  other: note(id: "1") { similar { note { id } } }
}"#;

/// The ids of `private` that appear anywhere in the response.
fn sightings(data: &Value, private: &str) -> Vec<String> {
    let mut seen = Vec::new();
    if data["note"]["id"] == private {
        seen.push("note".to_owned());
    }
    for (name, list) in
        [("notes", &data["notes"]), ("user.notes", &data["user"]["notes"]), ("tag.notes", &data["tag"]["notes"])]
    {
        if ids(list).iter().any(|id| id == private) {
            seen.push(name.to_owned());
        }
    }
    for (name, hits) in [("searchNotes", &data["searchNotes"]), ("similar", &data["other"]["similar"])] {
        if hits.as_array().unwrap().iter().any(|h| h["note"]["id"] == private) {
            seen.push(name.to_owned());
        }
    }
    seen
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn private_notes_are_invisible_to_everyone_but_their_author(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    app.create_note("user-1", "Launch plan", "The launch codes are in the drawer", "PUBLIC", &["secret"]).await;
    let private = app.create_note("user-1", "Launch codes", "launch codes 0000", "PRIVATE", &["secret"]).await;
    let vars = json!({ "id": private });

    for viewer in [None, Some("user-2")] {
        let data = app.data_as(viewer, EVERYWHERE, vars.clone()).await;
        assert_eq!(sightings(&data, &private), Vec::<String>::new(), "{viewer:?} saw it: {data}");
        assert_eq!(data["user"]["noteCount"], 1, "{viewer:?}");
        assert_eq!(data["tag"]["noteCount"], 1, "{viewer:?}");
    }

    let author = app.data_as(Some("user-1"), EVERYWHERE, vars).await;
    assert_eq!(sightings(&author, &private).len(), 6, "the author sees it everywhere: {author}");
    assert_eq!(author["user"]["noteCount"], 2);
    assert_eq!(author["tag"]["noteCount"], 2);
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn email_is_shown_only_to_its_owner(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let query = r#"{ user(id: "1") { email } me { id email } }"#;
    let own = app.data_as(Some("user-1"), query, json!({})).await;
    assert_eq!(own, json!({ "user": { "email": "ada@example.com" }, "me": { "id": "1", "email": "ada@example.com" } }));
    let other = app.data_as(Some("user-2"), query, json!({})).await;
    assert_eq!(other, json!({ "user": { "email": null }, "me": { "id": "2", "email": "grace@example.com" } }));
    let anonymous = app.data(query).await;
    assert_eq!(anonymous, json!({ "user": { "email": null }, "me": null }));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_tag_only_invisible_notes_carry_does_not_exist_for_other_viewers(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: tags are created in this order, so their ids are too.
    let app = TestApp::spawn(options).await;
    app.create_note("user-1", "Open", "out in the open", "PUBLIC", &["early"]).await;
    app.create_note("user-1", "Hidden", "nobody else knows", "PRIVATE", &["early", "hush"]).await;
    app.create_note("user-1", "Later", "also open", "PUBLIC", &["late"]).await;
    let query = r#"{ tag(name: "hush") { name noteCount } tags { name } }"#;
    let page = "query($after: ID) { tags(first: 1, after: $after) { id name } }";

    for viewer in [None, Some("user-2")] {
        // Act
        let data = app.data_as(viewer, query, json!({})).await;
        let first = app.data_as(viewer, page, json!({ "after": null })).await;
        let second = app.data_as(viewer, page, json!({ "after": first["tags"][0]["id"] })).await;

        // Assert
        assert!(data["tag"].is_null(), "{viewer:?} found the tag: {data}");
        assert_eq!(data["tags"], json!([{ "name": "early" }, { "name": "late" }]), "{viewer:?}");
        assert_eq!(first["tags"][0]["name"], "early", "{viewer:?}");
        assert_eq!(second["tags"][0]["name"], "late", "{viewer:?}: paging skips the hidden tag");
    }
    let author = app.data_as(Some("user-1"), query, json!({})).await;
    assert_eq!(author["tag"], json!({ "name": "hush", "noteCount": 1 }));
    assert_eq!(author["tags"], json!([{ "name": "early" }, { "name": "hush" }, { "name": "late" }]));
}
