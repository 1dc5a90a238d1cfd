//! Writes: who may create, update and delete, and what each returns.

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::{TestApp, wait_for_activity};

const UPDATE: &str = "mutation($id: ID!, $input: UpdateNoteInput!) { updateNote(id: $id, input: $input) { id title body visibility tags { name } updatedAt } }";
const DELETE: &str = "mutation($id: ID!) { deleteNote(id: $id) }";

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn create_note_stores_it_with_normalised_tags(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let data = app
        .data_as(
            Some("user-2"),
            "mutation { createNote(input: { title: \" Cobol \", body: \"Compilers\", tags: [\"History\", \"history\", \"lang\"] }) { id title visibility author { id } tags { name } } }",
            json!({}),
        )
        .await;
    let note = &data["createNote"];
    assert_eq!(note["title"], "Cobol");
    assert_eq!(note["visibility"], "PUBLIC");
    assert_eq!(note["author"]["id"], "2");
    assert_eq!(note["tags"], json!([{ "name": "history" }, { "name": "lang" }]));
    let read =
        app.data(&format!(r#"{{ note(id: "{}") {{ title }} tags {{ name }} }}"#, note["id"].as_str().unwrap())).await;
    assert_eq!(read["note"]["title"], "Cobol");
    assert_eq!(read["tags"], json!([{ "name": "history" }, { "name": "lang" }]));
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn writes_need_a_signed_in_viewer(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let create = "mutation { createNote(input: { title: \"t\", body: \"b\" }) { id } }";
    assert_eq!(app.error_code(None, create, json!({})).await, "UNAUTHENTICATED");
    assert_eq!(app.error_code(None, DELETE, json!({ "id": "1" })).await, "UNAUTHENTICATED");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn invalid_note_input_is_bad_user_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let create = "mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }";
    for input in [
        json!({ "title": "   ", "body": "b" }),
        json!({ "title": "x".repeat(201), "body": "b" }),
        json!({ "title": "t", "body": "b", "tags": ["two words"] }),
        json!({ "title": "t", "body": "b", "visibility": "SECRET" }),
        json!({ "body": "b" }),
    ] {
        assert_eq!(
            app.error_code(Some("user-1"), create, json!({ "input": input })).await,
            "BAD_USER_INPUT",
            "{input}"
        );
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn the_author_updates_and_the_note_is_re_embedded(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let id = app.create_note("user-1", "Bread", "Flour and water", "PUBLIC", &["cooking"]).await;
    app.create_note("user-1", "Boats", "Sails and keels", "PUBLIC", &[]).await;
    let data = app
        .data_as(
            Some("user-1"),
            UPDATE,
            json!({ "id": id, "input": { "title": "Telescopes", "body": "Mirrors, lenses and galaxies", "visibility": "PRIVATE", "tags": ["astronomy"] } }),
        )
        .await;
    let note = &data["updateNote"];
    assert_eq!(note["title"], "Telescopes");
    assert_eq!(note["visibility"], "PRIVATE");
    assert_eq!(note["tags"], json!([{ "name": "astronomy" }]));

    let found = app
        .data_as(Some("user-1"), r#"{ searchNotes(text: "galaxies and lenses", first: 1) { note { id } } }"#, json!({}))
        .await;
    assert_eq!(found["searchNotes"][0]["note"]["id"], id, "search sees the new text");
    let partial = app.data_as(Some("user-1"), UPDATE, json!({ "id": id, "input": { "body": "Only the body" } })).await;
    assert_eq!(partial["updateNote"]["title"], "Telescopes", "omitted fields are kept");
    assert_eq!(partial["updateNote"]["tags"], json!([{ "name": "astronomy" }]));
    assert!(partial["updateNote"]["updatedAt"].as_str() > note["updatedAt"].as_str());
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn only_the_author_may_change_a_note(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let public = app.create_note("user-1", "Public", "p", "PUBLIC", &[]).await;
    let private = app.create_note("user-1", "Private", "p", "PRIVATE", &[]).await;
    let input = json!({ "title": "Mine now" });

    assert_eq!(app.error_code(Some("user-2"), UPDATE, json!({ "id": public, "input": input })).await, "FORBIDDEN");
    assert_eq!(app.error_code(Some("user-2"), DELETE, json!({ "id": public })).await, "FORBIDDEN");
    // Someone else's private note does not exist for them.
    assert_eq!(app.error_code(Some("user-2"), UPDATE, json!({ "id": private, "input": input })).await, "NOT_FOUND");
    assert_eq!(app.error_code(Some("user-2"), DELETE, json!({ "id": private })).await, "NOT_FOUND");
    assert_eq!(app.error_code(Some("user-2"), DELETE, json!({ "id": "424242" })).await, "NOT_FOUND");

    let unchanged = app.data(&format!(r#"{{ note(id: "{public}") {{ title }} }}"#)).await;
    assert_eq!(unchanged["note"]["title"], "Public");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn delete_returns_the_id_and_the_note_is_gone(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let id = app.create_note("user-3", "Ephemeral", "soon gone", "PUBLIC", &["tmp"]).await;
    let data = app.data_as(Some("user-3"), DELETE, json!({ "id": id })).await;
    assert_eq!(data["deleteNote"], id);
    let after = app.data(&format!(r#"{{ note(id: "{id}") {{ id }} tag(name: "tmp") {{ noteCount }} }}"#)).await;
    assert!(after["note"].is_null());
    assert!(after["tag"].is_null(), "a tag no note carries is gone as well: {after}");
    assert_eq!(app.error_code(Some("user-3"), DELETE, json!({ "id": id })).await, "NOT_FOUND");
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn writers_naming_a_tag_another_transaction_is_creating_share_its_row(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Creates and updates read the tags their snapshot has, without
    // writing their rows, and upsert the others; a tag another transaction
    // inserts meanwhile is one the snapshot lacks and the upsert then
    // meets. Both writers must wait for that transaction, then link the
    // tag it committed: one row, no error.
    let app = TestApp::spawn(options).await;
    let create = "mutation($input: CreateNoteInput!) { createNote(input: $input) { id tags { name } } }";
    let calm = json!({ "title": "Tides", "body": "Moon", "tags": ["calm"] });
    let existing = app.data_as(Some("user-1"), create, json!({ "input": calm })).await;
    let existing = existing["createNote"]["id"].as_str().unwrap().to_owned();

    let version = "select xmin::text from tags where name = 'calm'";
    let calm_before: String = sqlx::query_scalar(version).fetch_one(&app.pool).await.unwrap();

    let mut other = app.pool.begin().await.unwrap();
    let racing: i64 = sqlx::query_scalar("insert into tags (name) values ('racing') returning id")
        .fetch_one(&mut *other)
        .await
        .unwrap();
    let input = json!({ "title": "Regatta", "body": "Boats", "tags": ["calm", "racing"] });
    let created = app.post(Some("user-1"), create, json!({ "input": input }));
    let updated = app.post(Some("user-1"), UPDATE, json!({ "id": existing, "input": { "tags": ["racing"] } }));
    let commit = async {
        wait_for_activity(&app.pool, "wait_event_type = 'Lock'", 2, "the two writers waiting for the tag").await;
        other.commit().await.unwrap();
    };
    let ((created_status, created), (updated_status, updated), ()) = tokio::join!(created, updated, commit);
    assert_eq!(created_status, reqwest::StatusCode::OK, "{created}");
    assert!(created.get("errors").is_none(), "{created}");
    assert_eq!(created["data"]["createNote"]["tags"], json!([{ "name": "calm" }, { "name": "racing" }]));
    assert_eq!(updated_status, reqwest::StatusCode::OK, "{updated}");
    assert!(updated.get("errors").is_none(), "{updated}");
    assert_eq!(updated["data"]["updateNote"]["tags"], json!([{ "name": "racing" }]));

    let rows: Vec<i64> =
        sqlx::query_scalar("select id from tags where name = 'racing'").fetch_all(&app.pool).await.unwrap();
    assert_eq!(rows, vec![racing], "one row, the one the other transaction committed");
    let linked: i64 = sqlx::query_scalar("select count(*) from note_tags where tag_id = $1")
        .bind(racing)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(linked, 2, "the created note and the updated one");
    let calm_after: String = sqlx::query_scalar(version).fetch_one(&app.pool).await.unwrap();
    assert_eq!(calm_after, calm_before, "a tag that existed is linked, not written");
}
