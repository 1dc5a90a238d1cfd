//! The root `notes` list brings its authors and tags in its own statement
//! (look-ahead on the selection). Its response bytes must be what the
//! field-by-field path gave: each selection's body is compared byte for
//! byte with one built here from an independent SQL reading of the same
//! rows (its own joins and visibility rule), in the selection's key order.
//! Viewers (anonymous, an author with private notes), filters (none, by
//! author, by tag) and selections (only tags, only author, both, aliases,
//! the viewer-dependent `email`, a note without tags, a title to escape)
//! vary.

use serde_json::json;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// A note as the oracle reads it.
struct Row {
    id: i64,
    title: String,
    body: String,
    author_id: i64,
    author_name: String,
    author_email: String,
    tags: Vec<String>,
}

/// One field of a selection: its GraphQL text and how it renders a row.
#[derive(Clone, Copy)]
enum Field {
    Id,
    Title,
    /// `title` under an alias.
    Heading,
    Body,
    AuthorName,
    /// `author { id name email }`: the email only for its own user.
    AuthorFull,
    Tags,
    /// `tags { name }` under an alias, beside `tags`.
    Labels,
}

impl Field {
    fn graphql(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Title => "title",
            Field::Heading => "heading: title",
            Field::Body => "body",
            Field::AuthorName => "author { name }",
            Field::AuthorFull => "author { id name email }",
            Field::Tags => "tags { name }",
            Field::Labels => "labels: tags { name }",
        }
    }

    fn json(self, row: &Row, viewer: Option<i64>) -> String {
        let text = |s: &str| serde_json::to_string(s).unwrap();
        let tags = || {
            let names: Vec<String> = row.tags.iter().map(|name| format!("{{\"name\":{}}}", text(name))).collect();
            format!("[{}]", names.join(","))
        };
        match self {
            Field::Id => format!("\"id\":\"{}\"", row.id),
            Field::Title => format!("\"title\":{}", text(&row.title)),
            Field::Heading => format!("\"heading\":{}", text(&row.title)),
            Field::Body => format!("\"body\":{}", text(&row.body)),
            Field::AuthorName => format!("\"author\":{{\"name\":{}}}", text(&row.author_name)),
            Field::AuthorFull => {
                let email = if viewer == Some(row.author_id) { text(&row.author_email) } else { "null".to_owned() };
                format!(
                    "\"author\":{{\"id\":\"{}\",\"name\":{},\"email\":{email}}}",
                    row.author_id,
                    text(&row.author_name)
                )
            }
            Field::Tags => format!("\"tags\":{}", tags()),
            Field::Labels => format!("\"labels\":{}", tags()),
        }
    }
}

/// The oracle's columns: a note's id, title and body, its author's id,
/// name and email, its tag names.
type Columns = (i64, String, String, i64, String, String, Vec<String>);

/// The page the list must answer, read with statements of the test's own.
async fn oracle(pool: &PgPool, viewer: Option<i64>, author: Option<i64>, tag: Option<&str>, first: i64) -> Vec<Row> {
    let rows: Vec<Columns> = sqlx::query_as(
        "select n.id, n.title, n.body, u.id, u.name, u.email, \
             coalesce((select array_agg(t.name order by t.name) from note_tags x join tags t on t.id = x.tag_id \
                       where x.note_id = n.id), '{}') \
         from notes n join users u on u.id = n.author_id \
         where (n.visibility = 'public' or n.author_id is not distinct from $1) \
           and ($2::bigint is null or n.author_id = $2) \
           and ($3::text is null or exists (select 1 from note_tags x join tags t on t.id = x.tag_id \
                                            where x.note_id = n.id and t.name = $3)) \
         order by n.id desc limit $4",
    )
    .bind(viewer)
    .bind(author)
    .bind(tag)
    .bind(first)
    .fetch_all(pool)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(id, title, body, author_id, author_name, author_email, tags)| Row {
            id,
            title,
            body,
            author_id,
            author_name,
            author_email,
            tags,
        })
        .collect()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_list_with_its_relations_answers_the_same_bytes(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: a cache-less server (every request executes), and two notes
    // of user 1 besides the data set's: a private one without tags whose
    // title needs escaping, and a public one.
    let app = TestApp::spawn_with_args(options, &["--cache-enabled", "false"]).await;
    app.create_note("user-1", "A \"quoted\" title, \u{e9}t\u{e9} \\ and a tab\t", "body", "PRIVATE", &[]).await;
    app.create_note("user-1", "Public", "with tags", "PUBLIC", &["tag3", "zeta", "alpha"]).await;
    use Field::*;
    let selections: &[&[Field]] = &[
        &[Id, Title, AuthorName, Tags],
        &[Tags, Id],
        &[Title, AuthorName],
        &[AuthorFull, Heading, Body, Labels, Tags],
        &[Id],
        &[Tags, AuthorFull, Id, Labels],
    ];
    let viewers: [(Option<&str>, Option<i64>); 2] = [(None, None), (Some("user-1"), Some(1))];
    let filters: [(&str, Option<i64>, Option<&str>); 3] =
        [("", None, None), (", authorId: \"1\"", Some(1), None), (", tag: \"tag3\"", None, Some("tag3"))];

    let mut compared = 0;
    for (token, viewer) in viewers {
        for (arguments, author, tag) in filters {
            let rows = oracle(&app.pool, viewer, author, tag, 50).await;
            assert!(!rows.is_empty());
            for selection in selections {
                let fields: Vec<&str> = selection.iter().map(|f| f.graphql()).collect();
                let query = format!("{{ notes(first: 50{arguments}) {{ {} }} }}", fields.join(" "));

                // Act
                let mut request = app.client.post(app.url("/graphql")).json(&json!({ "query": query }));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let body = request.send().await.unwrap().text().await.unwrap();

                // Assert: the exact bytes.
                let notes: Vec<String> = rows
                    .iter()
                    .map(|row| {
                        let fields: Vec<String> = selection.iter().map(|f| f.json(row, viewer)).collect();
                        format!("{{{}}}", fields.join(","))
                    })
                    .collect();
                let expected = format!("{{\"data\":{{\"notes\":[{}]}}}}", notes.join(","));
                assert_eq!(body, expected, "{query} as {token:?}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 36);
    // The viewer's private note without tags was in what was compared,
    // and only in the viewer's lists.
    let untagged = |rows: &[Row]| rows.iter().any(|row| row.tags.is_empty() && row.title.starts_with("A \""));
    assert!(untagged(&oracle(&app.pool, Some(1), None, None, 50).await));
    assert!(untagged(&oracle(&app.pool, Some(1), Some(1), None, 50).await));
    assert!(!untagged(&oracle(&app.pool, None, None, None, 50).await));
}
