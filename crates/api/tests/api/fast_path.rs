//! The fast path (`graphql/fast_path.rs`: the root `notes` list, `users`,
//! `note(id:)` and `user(id:)` with its notes) answers the same bytes as
//! the general path. Two servers on one database, one with
//! `--graphql-fast-path false`, get the same random documents: those root
//! fields with random arguments (literals and variables, some missing,
//! null or refused; ids of public, private, absent and invalid rows),
//! aliases that repeat and merge, named and
//! inline fragments, `__typename`, `@skip`/`@include` from literals and
//! variables, viewers (anonymous, an author with private notes, another),
//! and now and then what only the general path answers (another root
//! field, `similar`, `noteCount`, an unknown field, a second operation).
//! Every answer's status, content type, cache control and body must be
//! identical; the
//! fast path's counter must show that a good share of the documents took
//! it, so the comparison cannot pass by never using it.
//!
//! `NOTEGRAPH_FUZZ_SEED` (a number) and `NOTEGRAPH_FUZZ_CASES` replay or
//! lengthen a run, as for the fuzz tests; a failure prints its seed.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Documents compared in the suite.
const CASES: usize = 2_000;
/// The suite's fixed seed.
const SEED: u64 = 0x0fa5_7a7b;

/// One random document and its variables.
struct Document {
    query: String,
    variables: Map<String, Value>,
    operation_name: Option<String>,
}

/// Builds random documents over the schema.
struct Generator {
    rng: StdRng,
    /// Variable definitions so far (`$v0: Int`).
    definitions: Vec<String>,
    variables: Map<String, Value>,
    /// Fragment definitions so far.
    fragments: Vec<String>,
    /// The field at each response key of each type so far.
    fields: HashMap<(String, String), String>,
}

impl Generator {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.rng.random_range(0..items.len())]
    }

    fn document(&mut self) -> Document {
        self.definitions.clear();
        self.variables.clear();
        self.fragments.clear();
        self.fields.clear();
        let selection = self.root(0);
        let named = self.chance(0.2);
        let definitions = match self.definitions.is_empty() {
            true => String::new(),
            false => format!("({})", self.definitions.join(", ")),
        };
        let mut query = match (named, definitions.is_empty()) {
            (false, true) if self.chance(0.5) => format!("{{ {selection} }}"),
            (false, _) => format!("query{definitions} {{ {selection} }}"),
            (true, _) => format!("query Listing{definitions} {{ {selection} }}"),
        };
        for fragment in &self.fragments {
            query.push(' ');
            query.push_str(fragment);
        }
        let mut operation_name = named.then(|| "Listing".to_owned());
        if named && self.chance(0.3) {
            // A second operation: the request must name the one it runs.
            query.push_str(" query Other { me { id } }");
            if self.chance(0.1) {
                operation_name = None;
            }
        }
        Document { query, variables: self.variables.clone(), operation_name }
    }

    /// A variable of `ty` for a value: sent, left out, or sent as null.
    fn variable(&mut self, ty: &str, value: Value) -> String {
        let name = format!("v{}", self.definitions.len());
        let default = if self.chance(0.1) { format!(" = {value}") } else { String::new() };
        self.definitions.push(format!("${name}: {ty}{default}"));
        let roll: f64 = self.rng.random();
        if roll < 0.8 {
            self.variables.insert(name.clone(), value);
        } else if roll < 0.9 {
            self.variables.insert(name.clone(), Value::Null);
        }
        format!("${name}")
    }

    /// A value for an argument of `ty`: a literal, or now and then a
    /// variable.
    fn argument(&mut self, ty: &str, literal: &str, value: Value) -> String {
        match self.chance(0.3) {
            true => self.variable(ty, value),
            false => literal.to_owned(),
        }
    }

    /// `@skip`/`@include` now and then.
    fn directives(&mut self) -> String {
        if !self.chance(0.15) {
            return String::new();
        }
        let name = self.pick(&["skip", "include"]);
        let condition = match self.rng.random_range(0..3) {
            0 => "true".to_owned(),
            1 => "false".to_owned(),
            _ => {
                let value = json!(self.chance(0.5));
                let ty = self.pick(&["Boolean", "Boolean!"]);
                self.variable(ty, value)
            }
        };
        format!(" @{name}(if: {condition})")
    }

    /// An alias now and then, from a small set so that keys repeat.
    fn alias(&mut self) -> Option<&'static str> {
        self.chance(0.25).then(|| self.pick(&["a", "b", "first", "id", "name"]))
    }

    /// The field at response key `key` on `ty`: `candidate` the first
    /// time, the same field (and arguments) after. Two fields at one key
    /// are refused by validation only within one fragment's type; across
    /// fragments async-graphql keeps whichever resolves first, so such a
    /// document has no one right answer to compare.
    fn settle(&mut self, ty: &str, key: &str, candidate: String) -> String {
        self.fields.entry((ty.to_owned(), key.to_owned())).or_insert(candidate).clone()
    }

    /// One field on `ty`: `candidate` (named `natural`) or the field
    /// already at its key, under its alias, with directives, and its
    /// selection drawn by `selection` for the object fields it names.
    fn field(&mut self, ty: &str, candidate: String, depth: usize) -> String {
        let alias = self.alias();
        let natural = candidate.split(['(', ' ']).next().unwrap_or_default().to_owned();
        let key = alias.unwrap_or(&natural).to_owned();
        let field = self.settle(ty, &key, candidate);
        let directives = self.directives();
        let name = field.split(['(', ' ']).next().unwrap_or_default();
        // Each object selection keeps one field no directive skips: an
        // object whose every field is skipped answers null or not as its
        // sibling fields happen to complete in the engine (async-graphql),
        // which has no one right answer to compare.
        let selection = match (ty, name) {
            ("Query", "notes") => format!(" {{ __typename {} }}", self.items("Note", depth, Generator::note)),
            ("Note", "author") => format!(" {{ __typename {} }}", self.items("User", depth, Generator::user)),
            ("Note", "tags") => format!(" {{ __typename {} }}", self.items("Tag", depth, Generator::tag)),
            ("Query", "users") => format!(" {{ __typename {} }}", self.items("User", depth, Generator::user)),
            ("Query", "note") => format!(" {{ __typename {} }}", self.items("Note", depth, Generator::note)),
            ("Query", "user") => format!(" {{ __typename {} }}", self.items("User", depth, Generator::user_root)),
            ("User", "notes") => format!(" {{ __typename {} }}", self.items("Note", depth, Generator::note)),
            _ => String::new(),
        };
        let prefix = alias.map(|alias| format!("{alias}: ")).unwrap_or_default();
        // Arguments and a fixed selection stay in `field`; directives go
        // before the selection drawn here.
        format!("{prefix}{field}{directives}{selection}")
    }

    /// Items of a selection on `on`, each drawn by `item`; some wrapped in
    /// an inline fragment or a named one.
    fn items(&mut self, on: &str, depth: usize, item: fn(&mut Generator, usize) -> String) -> String {
        let count = self.rng.random_range(1..=4);
        let mut items = Vec::new();
        for _ in 0..count {
            let roll: f64 = self.rng.random();
            let text = if depth < 3 && roll < 0.08 {
                let inner = self.items(on, depth + 1, item);
                match self.chance(0.5) {
                    true => format!("... on {on}{} {{ {inner} }}", self.directives()),
                    false => format!("...{} {{ {inner} }}", self.directives()),
                }
            } else if depth < 3 && roll < 0.14 {
                let inner = self.items(on, depth + 1, item);
                let name = format!("F{}", self.fragments.len());
                self.fragments.push(format!("fragment {name} on {on} {{ {inner} }}"));
                format!("...{name}{}", self.directives())
            } else {
                item(self, depth)
            };
            items.push(text);
        }
        items.join(" ")
    }

    fn root(&mut self, depth: usize) -> String {
        self.items("Query", depth, |g, depth| {
            let roll: f64 = g.rng.random();
            let candidate = if roll < 0.45 {
                format!("notes{}", g.notes_arguments())
            } else if roll < 0.55 {
                "__typename".to_owned()
            } else if roll < 0.68 {
                format!("users{}", g.page_arguments(&["0", "1", "2", "5"], &["3", "29", "30", "x"]))
            } else if roll < 0.81 {
                let id = g.pick(&["1", "7", "14", "210", "301", "302", "999", "x"]);
                format!("note(id: {})", g.argument("ID!", &format!("\"{id}\""), json!(id)))
            } else if roll < 0.94 {
                let id = g.pick(&["1", "2", "8", "31", "0"]);
                format!("user(id: {})", g.argument("ID!", &format!("\"{id}\""), json!(id)))
            } else {
                g.pick(&["me { id }", "tags(first: 2) { name }"]).to_owned()
            };
            g.field("Query", candidate, depth)
        })
    }

    fn notes_arguments(&mut self) -> String {
        let mut arguments = Vec::new();
        if self.chance(0.6) {
            let first = if self.chance(0.05) {
                self.pick(&["101", "-1"])
            } else {
                self.pick(&["0", "1", "3", "10", "50", "100"])
            };
            let value = self.argument("Int", first, json!(first.parse::<i64>().unwrap()));
            arguments.push(format!("first: {value}"));
        }
        if self.chance(0.3) {
            let after = if self.chance(0.05) { "abc" } else { self.pick(&["150", "299", "5", "1000"]) };
            let value = self.argument("ID", &format!("\"{after}\""), json!(after));
            arguments.push(format!("after: {value}"));
        }
        if self.chance(0.3) {
            let tag = self.pick(&["tag3", " Tag1 ", "tag9", "nope", "zeta"]);
            let value = self.argument("String", &format!("\"{tag}\""), json!(tag));
            arguments.push(format!("tag: {value}"));
        }
        if self.chance(0.3) {
            let author = if self.chance(0.05) { "x" } else { self.pick(&["1", "2", "7"]) };
            let value = self.argument("ID", &format!("\"{author}\""), json!(author));
            arguments.push(format!("authorId: {value}"));
        }
        if self.chance(0.1) {
            // Null literals are `notes`' defaults.
            arguments.push(self.pick(&["first: null", "after: null", "tag: null"]).to_owned());
        }
        if arguments.is_empty() {
            return String::new();
        }
        format!("({})", arguments.join(", "))
    }

    fn note(&mut self, depth: usize) -> String {
        let roll: f64 = self.rng.random();
        let candidate = if roll < 0.6 {
            self.pick(&["id", "title", "body", "visibility", "createdAt", "updatedAt", "__typename"])
        } else if roll < 0.78 {
            "author"
        } else if roll < 0.96 {
            "tags"
        } else {
            self.pick(&["similar(first: 1) { score }", "nope"])
        };
        self.field("Note", candidate.to_owned(), depth)
    }

    fn user(&mut self, depth: usize) -> String {
        let candidate = match self.chance(0.04) {
            true => self.pick(&["noteCount", "notes(first: 1)"]),
            false => self.pick(&["id", "name", "email", "createdAt", "__typename"]),
        };
        self.field("User", candidate.to_owned(), depth)
    }

    /// A field of the root `user(id:)`: its scalars, and now and then a
    /// page of its notes (once, or at times twice, which the general path
    /// reads apart).
    fn user_root(&mut self, depth: usize) -> String {
        let candidate = match self.chance(0.3) {
            true => format!("notes{}", self.page_arguments(&["0", "1", "3", "10"], &["150", "299", "5", "x"])),
            false => match self.chance(0.04) {
                true => "noteCount".to_owned(),
                false => self.pick(&["id", "name", "email", "createdAt", "__typename"]).to_owned(),
            },
        };
        self.field("User", candidate, depth)
    }

    /// `(first: …, after: …)` now and then, for `users` and a user's
    /// `notes`.
    fn page_arguments(&mut self, firsts: &[&str], afters: &[&str]) -> String {
        let mut arguments = Vec::new();
        if self.chance(0.5) {
            let first = if self.chance(0.05) { "101" } else { self.pick(firsts) };
            let value = self.argument("Int", first, json!(first.parse::<i64>().unwrap()));
            arguments.push(format!("first: {value}"));
        }
        if self.chance(0.3) {
            let after = self.pick(afters);
            let value = self.argument("ID", &format!("\"{after}\""), json!(after));
            arguments.push(format!("after: {value}"));
        }
        if self.chance(0.05) {
            arguments.push("first: null".to_owned());
        }
        match arguments.is_empty() {
            true => String::new(),
            false => format!("({})", arguments.join(", ")),
        }
    }

    fn tag(&mut self, depth: usize) -> String {
        let candidate = match self.chance(0.03) {
            true => "noteCount",
            false => self.pick(&["id", "name", "__typename"]),
        };
        self.field("Tag", candidate.to_owned(), depth)
    }
}

/// One answer as a client sees it.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
}

async fn ask(app: &TestApp, token: Option<&str>, document: &Document) -> Answer {
    let mut payload = json!({ "query": document.query, "variables": document.variables });
    if let Some(name) = &document.operation_name {
        payload["operationName"] = json!(name);
    }
    let mut request = app.client.post(app.url("/graphql")).json(&payload);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let (content_type, cache_control) = (header("content-type"), header("cache-control"));
    Answer { status, content_type, cache_control, body: response.text().await.unwrap() }
}

/// The same answer: byte for byte; except that when both carry errors
/// (the general path answered both: the fast path answers none), the
/// errors may come in any order, as the engine reports a document's
/// errors in the order its fields complete.
fn same(fast: &Answer, general: &Answer) -> bool {
    if fast == general {
        return true;
    }
    let parse = |answer: &Answer| serde_json::from_str::<Value>(&answer.body).ok();
    let (Some(mut a), Some(mut b)) = (parse(fast), parse(general)) else { return false };
    let sorted = |body: &mut Value| {
        let Some(Value::Array(errors)) = body.get_mut("errors") else { return false };
        errors.sort_by_key(Value::to_string);
        true
    };
    let (head_a, head_b) = ((fast.status, &fast.content_type), (general.status, &general.content_type));
    sorted(&mut a) && sorted(&mut b) && head_a == head_b && a == b
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn random_selections_answer_the_same_bytes_on_both_paths(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: two cache-less servers (every request executes) on one
    // database, the fast path off in one; notes of user 1 besides the data
    // set's: a private one without tags whose title needs escaping.
    let fast = TestApp::spawn_with_args(options.clone(), &["--cache-enabled", "false"]).await;
    let general =
        TestApp::spawn_with_args(options, &["--cache-enabled", "false", "--graphql-fast-path", "false"]).await;
    fast.create_note("user-1", "A \"quoted\" title, \u{e9}t\u{e9} \\ </script> \u{1f600}\t", "b\nody", "PRIVATE", &[])
        .await;
    fast.create_note("user-1", "Public", "with tags", "PUBLIC", &["tag3", "zeta", "alpha"]).await;
    let seed = std::env::var("NOTEGRAPH_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED);
    let cases = std::env::var("NOTEGRAPH_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(CASES);
    let mut generator = Generator {
        rng: StdRng::seed_from_u64(seed),
        definitions: Vec::new(),
        variables: Map::new(),
        fragments: Vec::new(),
        fields: HashMap::new(),
    };
    let before = fast.metric("notegraph_graphql_fast_path_total").await;

    // Act and assert: each document, as each viewer, on both servers.
    let mut differing = Vec::new();
    for case in 0..cases {
        let document = generator.document();
        let token = [None, Some("user-1"), Some("user-2")][generator.rng.random_range(0..3)];
        let on_fast = ask(&fast, token, &document).await;
        let on_general = ask(&general, token, &document).await;
        if !same(&on_fast, &on_general) {
            let variables = Value::Object(document.variables.clone());
            differing.push(format!(
                "case {case}, as {token:?}: {}\nvariables {variables}, operation {:?}\nfast:    {on_fast:?}\ngeneral: {on_general:?}",
                document.query, document.operation_name
            ));
        }
    }
    let shown: Vec<&String> = differing.iter().take(5).collect();
    assert!(
        differing.is_empty(),
        "seed {seed} (NOTEGRAPH_FUZZ_SEED): {} of {cases} differ, first ones:\n{shown:#?}",
        differing.len()
    );

    // The fast path answered a good share (455 of the suite's 2,000:
    // the rest refuse an argument, leave a variable out, or ask for more
    // than row data), and only on its server.
    let taken = fast.metric("notegraph_graphql_fast_path_total").await - before;
    assert!(taken >= (cases / 5) as f64, "the fast path answered {taken} of {cases} (seed {seed})");
    assert_eq!(general.metric("notegraph_graphql_fast_path_total").await, 0.0);

    // The mix's three documents (bench/mix.js), a private note (7, user
    // 8's) among them, each take the fast path, with the same bytes.
    let mix = [
        r#"{ users(first: 20) { id name } }"#,
        r#"{ note(id: "8") { id title author { name } } }"#,
        r#"{ note(id: "7") { id title author { name } } }"#,
        r#"{ user(id: "2") { notes { id title tags { name } } } }"#,
    ];
    for token in [None, Some("user-1"), Some("user-3")] {
        let before = fast.metric("notegraph_graphql_fast_path_total").await;
        for query in mix {
            let document = Document { query: query.to_owned(), variables: Map::new(), operation_name: None };
            let (on_fast, on_general) = (ask(&fast, token, &document).await, ask(&general, token, &document).await);
            assert_eq!(on_fast, on_general, "{query} as {token:?}");
            assert!(!on_fast.body.contains("errors"), "{query} as {token:?}: {on_fast:?}");
        }
        assert_eq!(fast.metric("notegraph_graphql_fast_path_total").await - before, mix.len() as f64, "as {token:?}");
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn documents_of_a_shape_validated_once_get_their_own_answers_and_errors(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    // Arrange: a server that executes every request; a document the fast
    // path answers, once, so that its shape is known to validate.
    let app = TestApp::spawn_with_args(options, &["--cache-enabled", "false"]).await;
    let query = r#"query Page($first: Int) { note(id: "8") { id } notes(first: $first) { id } }"#;
    let document = |query: &str, first: Value, operation: &str| Document {
        query: query.to_owned(),
        variables: json!({ "first": first }).as_object().unwrap().clone(),
        operation_name: Some(operation.to_owned()),
    };
    let first = ask(&app, None, &document(query, json!(2), "Page")).await;
    assert!(!first.body.contains("errors"), "{first:?}");
    let taken = app.metric("notegraph_graphql_fast_path_total").await;

    // Act: the same shape and variables with another id (the validation
    // kept for them answers), then an operation name the document lacks
    // and an unused variable, which the engine refuses.
    let other_ids = ask(&app, None, &document(&query.replace("\"8\"", "\"2\""), json!(2), "Page")).await;
    let unknown_operation = ask(&app, None, &document(query, json!(2), "Other")).await;
    let unused = query.replace("query Page($first: Int)", "query Page($first: Int, $unused: ID)");
    let unused_variable = ask(&app, None, &document(&unused, json!(2), "Page")).await;

    // Assert: the other id is answered on the fast path with its own rows;
    // the others get the engine's errors.
    let body: Value = serde_json::from_str(&other_ids.body).unwrap();
    assert_eq!(body["data"]["note"]["id"], "2", "{body}");
    assert_eq!(body["data"]["notes"].as_array().map(Vec::len), Some(2), "{body}");
    assert_eq!(app.metric("notegraph_graphql_fast_path_total").await, taken + 1.0);
    for (refused, message) in [
        (unknown_operation, r#"Unknown operation named "Other""#),
        (unused_variable, "Variable \"$unused\" is not used"),
    ] {
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        let messages: Vec<&str> =
            body["errors"].as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
        assert!(messages.iter().any(|m| m.contains(message)), "{message}: {body}");
        assert!(body.get("data").is_none_or(Value::is_null), "{body}");
    }
}
