//! Property-based tests of the HTTP entry: random requests, and random
//! GraphQL documents generated from the server's own schema (then mutated),
//! sent to the real server over `POST /graphql`, `GET /graphql` and
//! `/graphql/stream`. For every answer: no 5xx, no panic, an answer within
//! [`ANSWER_WITHIN`], a JSON body with `data` and/or `errors`, every error
//! with an `extensions.code` from the closed set and never `INTERNAL`, no
//! message that leaks SQL, file paths or stack traces; and after the run the
//! server still answers a known-good query.
//!
//! The suite runs a short, fixed-seed version; `just fuzz` runs the same
//! tests for longer with `NOTEGRAPH_FUZZ_CASES` (cases per property) and
//! `NOTEGRAPH_FUZZ_SEED` (a number, or `random`). A failure is shrunk by
//! proptest and reported with its minimal input and the seed that found it.
//! The regression tests at the end hold what these runs found.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// The longest any request may take to answer: far above the milliseconds
/// they take, short of a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// How long a stream may stay quiet before the test stops reading it: a
/// valid subscription waits for events that never come, and is not a hang.
/// What arrives by then is checked; a later event would go unchecked, never
/// failed.
const STREAM_IDLE: Duration = Duration::from_millis(500);

/// Cases per property in the suite (`NOTEGRAPH_FUZZ_CASES` overrides).
const SUITE_CASES: u32 = 200;

/// The suite's fixed seed (`NOTEGRAPH_FUZZ_SEED` overrides).
const SUITE_SEED: u64 = 0x6e67_f022;

/// The closed set of `extensions.code` (spec/schema.graphql).
const CODES: [&str; 9] = [
    "BAD_USER_INPUT",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_FOUND",
    "TIMEOUT",
    "QUERY_TOO_COMPLEX",
    "RATE_LIMITED",
    "SERVICE_UNAVAILABLE",
    "INTERNAL",
];

/// Fragments of text that only a leak puts in an error message: SQL and
/// Postgres wording, source paths, panics and backtraces, connection URLs.
const LEAKS: [&str; 16] = [
    "select ",
    "relation \"",
    "syntax error at or near",
    "column \"",
    "violates ",
    "duplicate key",
    "error returned from database",
    "sqlx",
    "pg_",
    "postgres://",
    "/src/",
    ".rs:",
    "panicked",
    "stack backtrace",
    "rust_begin_unwind",
    "connection refused",
];

/// Panics anywhere in this process (the server runs in it), recorded by
/// the hook [`record_panics`] installs; each test is a process of its own.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Installs a panic hook that records every panic's message and location,
/// then prints it as usual: a panic in a server task (which tokio catches
/// and turns into a dropped connection) fails the case that caused it.
fn record_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let print = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(info.to_string());
            print(info);
        }));
    });
}

/// The panics recorded since the last call.
fn take_panics() -> Vec<String> {
    std::mem::take(&mut *PANICS.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
}

/// Cases per property: `NOTEGRAPH_FUZZ_CASES`, else the suite's few.
fn cases() -> u32 {
    match std::env::var("NOTEGRAPH_FUZZ_CASES") {
        Ok(value) => value.parse().unwrap_or_else(|_| panic!("NOTEGRAPH_FUZZ_CASES={value:?}: give a number")),
        Err(_) => SUITE_CASES,
    }
}

/// The seed: `NOTEGRAPH_FUZZ_SEED` (a number, or `random` for a fresh one,
/// printed so that a failure can be run again), else the suite's.
fn seed() -> u64 {
    match std::env::var("NOTEGRAPH_FUZZ_SEED").as_deref() {
        Ok("random") => rand::random(),
        Ok(value) => {
            value.parse().unwrap_or_else(|_| panic!("NOTEGRAPH_FUZZ_SEED={value:?}: give a number or `random`"))
        }
        Err(_) => SUITE_SEED,
    }
}

/// A deterministic runner for `cases` cases from `seed`, shrinking at most
/// a few hundred steps (each one a request), persisting nothing.
fn runner(seed: u64, cases: u32) -> TestRunner {
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 400,
        rng_algorithm: RngAlgorithm::ChaCha,
        ..Config::default()
    };
    let mut bytes = [0; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

// ---------------------------------------------------------------------------
// Requests and the properties of their answers.

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    PostGraphql,
    GetGraphql,
    PostStream,
    GetStream,
}

impl Target {
    fn path(self) -> &'static str {
        match self {
            Target::PostGraphql | Target::GetGraphql => "/graphql",
            Target::PostStream | Target::GetStream => "/graphql/stream",
        }
    }

    fn is_post(self) -> bool {
        matches!(self, Target::PostGraphql | Target::PostStream)
    }
}

/// One request, as bytes where it matters.
#[derive(Clone)]
struct Exchange {
    target: Target,
    headers: Vec<(String, Vec<u8>)>,
    /// The raw query string (after `?`).
    query: Option<String>,
    body: Vec<u8>,
    /// Whether the request may open a stream that stays open (a valid
    /// subscription): reading it stops after [`STREAM_IDLE`] of quiet.
    open_ended: bool,
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, String)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value).into_owned()))
            .collect();
        f.debug_struct("Exchange")
            .field("target", &self.target)
            .field("headers", &headers)
            .field("query", &self.query)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Exchange {
    /// Everything the client sent, as text: an error message may echo it
    /// (an unknown field's name), which is not a leak.
    fn sent_text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.body).to_lowercase();
        if let Some(query) = &self.query {
            text.push_str(&query.to_lowercase());
            let decoded: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
            for (key, value) in decoded {
                text.push_str(&key.to_lowercase());
                text.push_str(&value.to_lowercase());
            }
        }
        text
    }
}

/// What came back.
struct Answer {
    status: u16,
    content_type: String,
    body: Vec<u8>,
    /// Whether the whole body was read (a stream may be cut off on purpose).
    complete: bool,
}

/// The sending side: the server's address and a client, on a runtime of
/// the test's own (the proptest runner calls a plain closure).
struct Sender {
    base: String,
    client: reqwest::Client,
    runtime: tokio::runtime::Runtime,
    /// How many answers of each kind (status and first code) came back:
    /// printed after a run, to show what the cases reached.
    outcomes: RefCell<BTreeMap<String, u32>>,
    /// A client that keeps no connection, for a request sent again after
    /// its kept-alive connection was found closed.
    fresh: reqwest::Client,
    /// The last request sent and its status, and the requests sent before
    /// a kept-alive connection was found closed (printed after a run).
    last: RefCell<String>,
    closed_after: RefCell<Vec<String>>,
}

impl Sender {
    fn new(app: &TestApp) -> Sender {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        // No total timeout here: `send` bounds each request itself, so that
        // an open subscription can be read for a while and then dropped.
        let (client, fresh) = runtime.block_on(async {
            let fresh = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
            (reqwest::Client::builder().build().expect("client"), fresh)
        });
        Sender {
            base: format!("http://{}", app.addr),
            client,
            runtime,
            outcomes: RefCell::default(),
            fresh,
            last: RefCell::default(),
            closed_after: RefCell::default(),
        }
    }

    /// Sends `exchange` and reads its answer, within [`ANSWER_WITHIN`].
    /// A request whose kept-alive connection turns out closed before any
    /// answer (which a client cannot tell from a server that closed it at
    /// the same moment) is sent again on a new connection, and noted with
    /// the request before it.
    fn send(&self, exchange: &Exchange) -> Result<Answer, String> {
        let answer = match self.send_with(&self.client, exchange) {
            Err(err) if err.contains("IncompleteMessage") => {
                self.closed_after.borrow_mut().push(self.last.borrow().clone());
                self.send_with(&self.fresh, exchange).map_err(|again| format!("{err}; on a new connection: {again}"))
            }
            other => other,
        };
        let status = answer.as_ref().map_or_else(|err| err.clone(), |answer| answer.status.to_string());
        *self.last.borrow_mut() = format!("{exchange:?} answered {status}");
        answer
    }

    fn send_with(&self, client: &reqwest::Client, exchange: &Exchange) -> Result<Answer, String> {
        self.runtime.block_on(async {
            let mut url = format!("{}{}", self.base, exchange.target.path());
            if let Some(query) = &exchange.query {
                url.push('?');
                url.push_str(query);
            }
            let mut headers = HeaderMap::new();
            for (name, value) in &exchange.headers {
                // Bytes no HTTP/1.1 client can send are left out.
                if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
                {
                    headers.append(name, value);
                }
            }
            let request = if exchange.target.is_post() {
                client.post(&url).body(exchange.body.clone())
            } else {
                client.get(&url)
            };
            let started = Instant::now();
            let response = tokio::time::timeout(ANSWER_WITHIN, request.headers(headers).send())
                .await
                .map_err(|_| format!("no answer within {ANSWER_WITHIN:?}"))?
                .map_err(|err| format!("the request failed (connection closed?): {err:?}"))?;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .unwrap_or_default();
            let streaming = content_type.starts_with("text/event-stream");
            let mut response = response;
            let mut body = Vec::new();
            let mut complete = true;
            loop {
                let left = ANSWER_WITHIN.saturating_sub(started.elapsed());
                let wait = if streaming && exchange.open_ended { left.min(STREAM_IDLE) } else { left };
                match tokio::time::timeout(wait, response.chunk()).await {
                    Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                    Ok(Ok(None)) => break,
                    Ok(Err(err)) => return Err(format!("the body broke off: {err:?}")),
                    Err(_) if streaming && exchange.open_ended => {
                        complete = false;
                        break;
                    }
                    Err(_) => return Err(format!("the body was not read whole within {ANSWER_WITHIN:?}")),
                }
            }
            Ok(Answer { status, content_type, body, complete })
        })
    }

    /// Sends `exchange` and checks every property of its answer and of the
    /// server afterwards.
    fn check(&self, exchange: &Exchange) -> Result<(), TestCaseError> {
        take_panics();
        let answer = self.send(exchange);
        let panics = take_panics();
        if !panics.is_empty() {
            return Err(TestCaseError::fail(format!("the server panicked: {panics:?}")));
        }
        let answer = answer.map_err(TestCaseError::fail)?;
        *self.outcomes.borrow_mut().entry(outcome(&answer)).or_default() += 1;
        check_answer(&answer, &exchange.sent_text()).map_err(|reason| {
            TestCaseError::fail(format!(
                "{reason}\nstatus {}, content-type {:?}, body {}",
                answer.status,
                answer.content_type,
                String::from_utf8_lossy(&answer.body)
            ))
        })
    }
}

/// An answer's kind: its status, content type and first error code.
fn outcome(answer: &Answer) -> String {
    let kind = answer.content_type.split(';').next().unwrap_or_default();
    let code = if kind == "text/event-stream" {
        let text = String::from_utf8_lossy(&answer.body);
        let first = text.lines().find_map(|line| line.strip_prefix("data: ")).unwrap_or_default().to_owned();
        let body: Value = serde_json::from_str(&first).unwrap_or_default();
        body["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or(if body["data"].is_null() { "-" } else { "data" })
            .to_owned()
    } else {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        body["errors"][0]["extensions"]["code"].as_str().unwrap_or("data").to_owned()
    };
    format!("{} {kind} {code}", answer.status)
}

/// The properties of one answer; `sent` is what the client sent, lowercased.
fn check_answer(answer: &Answer, sent: &str) -> Result<(), String> {
    if answer.status >= 500 {
        return Err(format!("a {} answer", answer.status));
    }
    if answer.content_type.starts_with("text/event-stream") {
        return check_events(answer, sent);
    }
    let body: Value = serde_json::from_slice(&answer.body).map_err(|err| format!("the body is not JSON: {err}"))?;
    check_graphql_body(&body, sent)
}

/// A stream's events: every `next` carries a GraphQL response that passes
/// [`check_graphql_body`], and a stream read whole ends with `complete`.
fn check_events(answer: &Answer, sent: &str) -> Result<(), String> {
    let text = std::str::from_utf8(&answer.body).map_err(|_| "the stream is not UTF-8".to_owned())?;
    let mut last = None;
    for message in text.split("\n\n").filter(|message| !message.is_empty()) {
        if message.starts_with(':') {
            continue; // a heartbeat
        }
        let mut event = None;
        let mut data = None;
        for line in message.lines() {
            if let Some(name) = line.strip_prefix("event: ") {
                event = Some(name);
            } else if let Some(value) = line.strip_prefix("data: ").or_else(|| line.strip_prefix("data:")) {
                data = Some(value);
            } else {
                return Err(format!("a line that is not an event field: {line:?}"));
            }
        }
        match (event, data) {
            (Some("next"), Some(data)) => {
                let body: Value =
                    serde_json::from_str(data).map_err(|err| format!("a `next` event that is not JSON: {err}"))?;
                check_graphql_body(&body, sent)?;
            }
            (Some("complete"), _) => {}
            other => return Err(format!("an unknown event: {other:?}")),
        }
        last = event;
    }
    if answer.complete && last != Some("complete") {
        return Err("a stream that ended without `complete`".to_owned());
    }
    Ok(())
}

/// A GraphQL response: an object with `data` and/or `errors`, each error
/// with a message that leaks nothing and a code from the closed set, not
/// `INTERNAL`.
fn check_graphql_body(body: &Value, sent: &str) -> Result<(), String> {
    let Some(object) = body.as_object() else { return Err("the body is not a JSON object".to_owned()) };
    if !object.contains_key("data") && !object.contains_key("errors") {
        return Err("neither `data` nor `errors`".to_owned());
    }
    let Some(errors) = object.get("errors") else { return Ok(()) };
    let errors = errors.as_array().ok_or("`errors` is not a list")?;
    if errors.is_empty() {
        return Err("an empty `errors` list".to_owned());
    }
    for error in errors {
        let message = error["message"].as_str().ok_or("an error without a message")?;
        let code = error["extensions"]["code"].as_str().ok_or("an error without `extensions.code`")?;
        if !CODES.contains(&code) {
            return Err(format!("the code {code:?} is not in the closed set"));
        }
        if code == "INTERNAL" {
            return Err("an INTERNAL error".to_owned());
        }
        let lower = message.to_lowercase();
        if let Some(leak) = LEAKS.iter().find(|leak| lower.contains(*leak) && !sent.contains(*leak)) {
            return Err(format!("the message leaks {leak:?}: {message:?}"));
        }
    }
    Ok(())
}

/// The server still answers a known-good query, and nothing panicked.
fn still_serves(sender: &Sender) {
    let exchange = Exchange {
        target: Target::PostGraphql,
        headers: vec![("content-type".to_owned(), b"application/json".to_vec())],
        query: None,
        body: json!({ "query": "{ users(first: 2) { id name } }" }).to_string().into_bytes(),
        open_ended: false,
    };
    let answer = sender.send(&exchange).expect("a known-good query answered");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["users"][0]["id"], "1", "{body}");
    assert_eq!(take_panics(), Vec::<String>::new());
}

/// Runs `cases` cases of `strategy` against the server, each through
/// [`Sender::check`]; fails with the minimal failing input and the seed.
fn run_property<S>(app: &TestApp, name: &str, strategy: S, make: impl Fn(S::Value) -> Exchange)
where
    S: Strategy,
    S::Value: fmt::Debug,
{
    record_panics();
    let (seed, cases) = (seed(), cases());
    println!("{name}: {cases} cases from seed {seed}");
    let sender = Sender::new(app);
    let started = Instant::now();
    let result = runner(seed, cases).run(&strategy, |value| sender.check(&make(value)));
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, value)) => {
            let minimal = format!("{value:#?}");
            panic!("{name} (seed {seed}): {reason}\nminimal input: {minimal}\nas sent: {:#?}", make(value))
        }
        Err(TestError::Abort(reason)) => panic!("{name} (seed {seed}) aborted: {reason}"),
    }
    println!("{name}: {cases} cases passed in {:.1?}; answers (status, type, first code):", started.elapsed());
    for (outcome, count) in sender.outcomes.borrow().iter() {
        println!("  {count:6}  {outcome}");
    }
    let closed_after = sender.closed_after.borrow();
    println!("{name}: {} kept-alive connections found closed, sent again on a new one", closed_after.len());
    for before in closed_after.iter().take(5) {
        println!("  after: {before}");
    }
    still_serves(&sender);
}

// ---------------------------------------------------------------------------
// Random requests: bodies, headers and query strings.

/// Strings that have broken parsers before: control characters, NUL,
/// combining marks, right-to-left overrides, non-characters, emoji, SQL,
/// format strings, paths.
const ODD_STRINGS: [&str; 18] = [
    "",
    "note",
    "\u{0}",
    "a\u{0}b",
    "\u{1F600}",
    "e\u{301}\u{301}\u{301}",
    "\u{202E}evil",
    "\u{FEFF}",
    "\u{FFFF}\u{FFFE}",
    "\u{10FFFF}",
    "select * from notes; --",
    "' or 1=1 --",
    "%s%s%n",
    "../../etc/passwd",
    "\r\n\t",
    "\\",
    "\"",
    "tag1",
];

/// JSON texts that serde's `Value` cannot hold: lone surrogates, escaped
/// NUL, numbers past every width, precision, exponent.
const ODD_JSON_SCALARS: [&str; 14] = [
    r#""\ud800""#,
    r#""\udc00\ud800""#,
    r#""a\ud83dz""#,
    r#""\u0000""#,
    "1e400",
    "-1e400",
    "1e-400",
    "123456789012345678901234567890",
    "-9223372036854775809",
    "18446744073709551616",
    "2147483648",
    "0.1e1",
    "-0",
    "1.7976931348623157e308",
];

fn odd_string() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&ODD_STRINGS[..]).prop_map(str::to_owned),
        any::<String>(),
        (1usize..20_000).prop_map(|n| "x".repeat(n)),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        odd_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    select(&["query", "variables", "operationName", "extensions", "persistedQuery", "sha256Hash"][..])
                        .prop_map(str::to_owned),
                    any::<String>(),
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Bytes that are not UTF-8 or not allowed in JSON text: NUL, a byte
/// UTF-8 never uses, an overlong NUL, an encoded surrogate, a BOM.
const ODD_BYTES: [&[u8]; 5] = [b"\0", b"\xff", b"\xc0\x80", b"\xed\xa0\x80", b"\xef\xbb\xbf"];

/// A small valid document to build bodies around.
const DOCUMENTS: [&str; 8] = [
    "{ users { id } }",
    "query($n: Int) { notes(first: $n) { id title } }",
    "query Q($id: ID!) { note(id: $id) { id author { name } } }",
    "mutation { createNote(input: {title: \"t\", body: \"b\"}) { id } }",
    "mutation($id: ID!) { deleteNote(id: $id) }",
    "subscription { noteEvents(limit: 1) { kind } }",
    "{ searchNotes(text: \"x\") { score } }",
    "{ __schema { types { name } } }",
];

/// A request body: random bytes, JSON of any shape, request-shaped JSON
/// with odd values, almost-JSON, deep nesting, and the JSON scalars serde
/// cannot build (written as text).
fn body() -> impl Strategy<Value = Vec<u8>> {
    let document = select(&DOCUMENTS[..]).prop_map(str::to_owned);
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        json_value().prop_map(|value| value.to_string().into_bytes()),
        // Request-shaped, with any value in each place.
        (
            prop_oneof![document.clone().prop_map(Value::String), json_value()],
            prop::option::of(json_value()),
            prop::option::of(json_value()),
            prop::option::of(json_value())
        )
            .prop_map(|(query, variables, name, extensions)| {
                let mut body = json!({ "query": query });
                if let Some(variables) = variables {
                    body["variables"] = variables;
                }
                if let Some(name) = name {
                    body["operationName"] = name;
                }
                if let Some(extensions) = extensions {
                    body["extensions"] = extensions;
                }
                body.to_string().into_bytes()
            }),
        // Almost JSON: a valid request cut, with a byte changed or dropped.
        (document.clone(), any::<prop::sample::Index>(), any::<u8>(), 0..3u8).prop_map(|(query, at, byte, how)| {
            let mut body = json!({ "query": query, "variables": { "n": 1, "id": "1" } }).to_string().into_bytes();
            let at = at.index(body.len());
            match how {
                0 => body.truncate(at),
                1 => body[at] = byte,
                _ => {
                    body.remove(at);
                }
            }
            body
        }),
        // Deep nesting: of JSON, of a document's selections, of variables.
        (1usize..5_000, 0..3u8).prop_map(|(depth, how)| match how {
            0 => format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes(),
            1 => json!({ "query": format!("{{ users {}{} }}", "{ notes ".repeat(depth), "}".repeat(depth)) })
                .to_string()
                .into_bytes(),
            _ => format!(
                r#"{{"query": "query($n: Int) {{ users(first: $n) {{ id }} }}", "variables": {{"n": {}1{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            )
            .into_bytes(),
        }),
        // Scalars serde's `Value` cannot hold, in each place of a request.
        (select(&ODD_JSON_SCALARS[..]), document, 0..4u8).prop_map(|(scalar, document, place)| {
            let document = Value::String(document).to_string();
            match place {
                0 => format!(r#"{{"query": {scalar}}}"#),
                1 => format!(r#"{{"query": {document}, "variables": {{"n": {scalar}, "id": {scalar}}}}}"#),
                2 => format!(r#"{{"query": {document}, "operationName": {scalar}}}"#),
                _ => format!(r#"{{"query": "{{ note(id: {scalar}) {{ id }} }}"}}"#),
            }
            .into_bytes()
        }),
        // Raw NUL, invalid and overlong UTF-8, a BOM, inside a request.
        (select(&ODD_BYTES[..]), 0..3u8).prop_map(|(bytes, place)| {
            let mut body = Vec::new();
            match place {
                0 => body.extend_from_slice(bytes),
                1 => body.extend_from_slice(b"{\"query\": \"{ users { id } }\", \"x\": \""),
                _ => body.extend_from_slice(b"{\"query\": \"{ users(first: 1) { name "),
            }
            if place != 0 {
                body.extend_from_slice(bytes);
                body.extend_from_slice(if place == 1 { b"\"}" } else { b" } }\"}" });
            } else {
                body.extend_from_slice(b"{\"query\": \"{ users { id } }\"}");
            }
            body
        }),
    ]
}

/// Header values: the meaningful ones, junk bytes (visible ASCII and
/// obs-text), junk tokens, and long values within the header limits.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    const KNOWN: [&str; 24] = [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=utf-16",
        "application/json;;;",
        "application/graphql-response+json",
        "application/graphql",
        "text/event-stream",
        "text/html",
        "*/*",
        "application/json;q=0",
        "multipart/form-data; boundary=x",
        "application/x-www-form-urlencoded",
        "Bearer user-1",
        "Bearer user-2",
        "Bearer test-token",
        "bearer user-1",
        "Bearer ",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "no-cache",
        "notegraph-write=x.1; notegraph-write=..",
        "gzip",
    ];
    prop_oneof![
        select(&KNOWN[..]).prop_map(|value| value.as_bytes().to_vec()),
        prop::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..80),
        "[A-Za-z0-9._~+/=-]{0,200}".prop_map(|token| format!("Bearer {token}").into_bytes()),
        (1usize..7_000).prop_map(|n| format!("Bearer {}", "a".repeat(n)).into_bytes()),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    const NAMES: [&str; 12] = [
        "content-type",
        "accept",
        "authorization",
        "cache-control",
        "cookie",
        "content-encoding",
        "x-graphql-event-stream-token",
        "traceparent",
        "x-request-id",
        "origin",
        "if-none-match",
        "x-apollo-operation-name",
    ];
    prop::collection::vec((select(&NAMES[..]).prop_map(str::to_owned), header_value()), 0..4)
}

/// A query string: parameters of the GraphQL GET with any values,
/// percent-encoded or not, and broken escapes.
fn query_string() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        select(&["query", "variables", "operationName", "extensions", "token", "operationId"][..])
            .prop_map(str::to_owned),
        "[a-z%]{0,6}",
    ];
    let value = prop_oneof![
        select(&DOCUMENTS[..]).prop_map(str::to_owned),
        json_value().prop_map(|value| value.to_string()),
        select(&ODD_JSON_SCALARS[..]).prop_map(str::to_owned),
        odd_string(),
    ];
    prop_oneof![
        prop::collection::vec((key, value), 0..4)
            .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap_or_default()),
        "[a-zA-Z0-9%=&+;{}()\\[\\]:,\"$!.-]{0,80}",
        select(&["%", "%G1", "%00", "%FF%FE", "query=%ED%A0%80", "query", "=", "&&&", "query=&query=1"][..])
            .prop_map(str::to_owned),
    ]
}

/// A random request to any of the three entries.
fn exchange() -> impl Strategy<Value = Exchange> {
    (
        select(&[Target::PostGraphql, Target::GetGraphql, Target::PostStream, Target::GetStream][..]),
        headers(),
        prop::option::of(query_string()),
        body(),
        prop::bool::weighted(0.8),
    )
        .prop_map(|(target, mut headers, query, body, typical)| {
            // Most requests carry the headers a client sends, so that the
            // random parts reach past the first checks.
            if typical {
                let has = |headers: &[(String, Vec<u8>)], name: &str| headers.iter().any(|(n, _)| n == name);
                if target.is_post() && !has(&headers, "content-type") {
                    headers.push(("content-type".to_owned(), b"application/json".to_vec()));
                }
                if matches!(target, Target::PostStream | Target::GetStream) && !has(&headers, "accept") {
                    headers.push(("accept".to_owned(), b"text/event-stream".to_vec()));
                }
            }
            Exchange { target, headers, query, body, open_ended: true }
        })
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn random_requests_never_break_the_server(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_multi_threaded(options, &[]).await;

    tokio::task::spawn_blocking(move || run_property(&app, "random requests", exchange(), |exchange| exchange))
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------
// Documents generated from the schema, valid and mutated.

/// A type reference from introspection.
#[derive(Clone, Debug)]
enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    fn from_introspection(value: &Value) -> TypeRef {
        match value["kind"].as_str() {
            Some("NON_NULL") => TypeRef::NonNull(Box::new(TypeRef::from_introspection(&value["ofType"]))),
            Some("LIST") => TypeRef::List(Box::new(TypeRef::from_introspection(&value["ofType"]))),
            _ => TypeRef::Named(value["name"].as_str().expect("a named type").to_owned()),
        }
    }

    /// The named type under the wrappers.
    fn name(&self) -> &str {
        match self {
            TypeRef::Named(name) => name,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.name(),
        }
    }

    /// The type as a variable declares it.
    fn text(&self) -> String {
        match self {
            TypeRef::Named(name) => name.clone(),
            TypeRef::List(inner) => format!("[{}]", inner.text()),
            TypeRef::NonNull(inner) => format!("{}!", inner.text()),
        }
    }
}

/// An argument or input field.
#[derive(Debug)]
struct InputValue {
    name: String,
    ty: TypeRef,
    has_default: bool,
}

impl InputValue {
    fn from_introspection(value: &Value) -> InputValue {
        InputValue {
            name: value["name"].as_str().unwrap().to_owned(),
            ty: TypeRef::from_introspection(&value["type"]),
            has_default: !value["defaultValue"].is_null(),
        }
    }

    fn required(&self) -> bool {
        matches!(self.ty, TypeRef::NonNull(_)) && !self.has_default
    }
}

#[derive(Debug)]
struct Field {
    name: String,
    args: Vec<InputValue>,
    ty: TypeRef,
}

/// One type of the schema, as much of it as documents need.
#[derive(Debug, Default)]
struct TypeDef {
    kind: String,
    fields: Vec<Field>,
    input_fields: Vec<InputValue>,
    enum_values: Vec<String>,
}

/// The server's schema, read once by introspection.
#[derive(Debug)]
struct Schema {
    types: HashMap<String, TypeDef>,
    query: String,
    mutation: String,
    subscription: String,
}

impl Schema {
    /// Reads the schema from the running server.
    async fn introspect(app: &TestApp) -> Schema {
        let type_ref = "kind name ofType { kind name ofType { kind name ofType { kind name } } }";
        let input = format!("name defaultValue type {{ {type_ref} }}");
        let query = format!(
            "{{ __schema {{ queryType {{ name }} mutationType {{ name }} subscriptionType {{ name }} \
             types {{ kind name fields {{ name args {{ {input} }} type {{ {type_ref} }} }} \
             inputFields {{ {input} }} enumValues {{ name }} }} }} }}"
        );
        let data = app.data(&query).await;
        let schema = &data["__schema"];
        let mut types = HashMap::new();
        for ty in schema["types"].as_array().unwrap() {
            let list = |key: &str| ty[key].as_array().cloned().unwrap_or_default();
            let def = TypeDef {
                kind: ty["kind"].as_str().unwrap().to_owned(),
                fields: list("fields")
                    .iter()
                    .map(|field| Field {
                        name: field["name"].as_str().unwrap().to_owned(),
                        args: field["args"].as_array().unwrap().iter().map(InputValue::from_introspection).collect(),
                        ty: TypeRef::from_introspection(&field["type"]),
                    })
                    .collect(),
                input_fields: list("inputFields").iter().map(InputValue::from_introspection).collect(),
                enum_values: list("enumValues")
                    .iter()
                    .map(|value| value["name"].as_str().unwrap().to_owned())
                    .collect(),
            };
            types.insert(ty["name"].as_str().unwrap().to_owned(), def);
        }
        let root = |key: &str| schema[key]["name"].as_str().unwrap().to_owned();
        let schema = Schema {
            types,
            query: root("queryType"),
            mutation: root("mutationType"),
            subscription: root("subscriptionType"),
        };
        assert!(schema.types[&schema.query].fields.iter().any(|field| field.name == "notes"), "{schema:?}");
        schema
    }
}

/// Choices drawn by proptest: the document builder reads them like dice,
/// and proptest shrinks them toward zeros (and fewer), which the builder
/// reads as the simplest option, so that a failing document shrinks to a
/// small one. Past the end, every roll is zero.
struct Dice<'a> {
    rolls: &'a [u16],
    at: usize,
}

impl Dice<'_> {
    /// A number in `0..n`.
    fn roll(&mut self, n: usize) -> usize {
        let roll = self.rolls.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        usize::from(roll) % n.max(1)
    }

    /// True one time in `n` (never when the rolls shrink to zero).
    fn one_in(&mut self, n: usize) -> bool {
        self.roll(n) == n - 1
    }

    fn pick<'v, T>(&mut self, values: &'v [T]) -> &'v T {
        &values[self.roll(values.len())]
    }
}

/// A value both as a GraphQL literal and as JSON text (written by hand, so
/// that it can hold what serde's `Value` cannot: lone surrogates, numbers
/// past every width).
#[derive(Clone, Debug)]
enum Literal {
    Null,
    /// A number as written, valid or not for its type.
    Number(String),
    /// A string already escaped (JSON escapes are GraphQL escapes too).
    Escaped(String),
    Bool(bool),
    Enum(String),
    List(Vec<Literal>),
    Object(Vec<(String, Literal)>),
}

impl Literal {
    fn string(text: &str) -> Literal {
        Literal::Escaped(Value::String(text.to_owned()).to_string())
    }

    fn graphql(&self) -> String {
        match self {
            Literal::Null => "null".to_owned(),
            Literal::Number(text) | Literal::Escaped(text) | Literal::Enum(text) => text.clone(),
            Literal::Bool(value) => value.to_string(),
            Literal::List(items) => format!("[{}]", items.iter().map(Literal::graphql).collect::<Vec<_>>().join(", ")),
            Literal::Object(fields) => format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(name, value)| format!("{name}: {}", value.graphql()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn json(&self) -> String {
        match self {
            Literal::Null => "null".to_owned(),
            Literal::Number(text) | Literal::Escaped(text) => text.clone(),
            Literal::Enum(name) => Value::String(name.clone()).to_string(),
            Literal::Bool(value) => value.to_string(),
            Literal::List(items) => format!("[{}]", items.iter().map(Literal::json).collect::<Vec<_>>().join(",")),
            Literal::Object(fields) => format!(
                "{{{}}}",
                fields
                    .iter()
                    .map(|(name, value)| format!("{}:{}", Value::String(name.clone()), value.json()))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// Integers: the usual first, then the edges of `first`, of i32, of i64
/// and past them, and numbers that are not integers.
const INTS: [&str; 16] = [
    "1",
    "5",
    "0",
    "100",
    "101",
    "-1",
    "2147483647",
    "2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999999999",
    "1e3",
    "1.5",
    "1e400",
    "-0",
];

const FLOATS: [&str; 9] =
    ["0.5", "0", "-1", "1", "1e308", "1.7976931348623157e309", "1e-400", "-1e400", "123456789012345678901234567890"];

const IDS: [&str; 12] = [
    "\"1\"",
    "\"2\"",
    "\"300\"",
    "\"0\"",
    "\"-1\"",
    "\"abc\"",
    "\"99999999999999999999\"",
    "\"9223372036854775808\"",
    "\" 1\"",
    "\"\"",
    "\"1.0\"",
    "\"\\ud800\"",
];

/// Strings with the escapes only a hand-written literal holds.
const ESCAPED_STRINGS: [&str; 5] = ["\"\\ud800\"", "\"\\udc00x\"", "\"\\u0000\"", "\"a\\ud83d\"", "\"\\uFFFF\""];

/// Builds one document, its variables and how it is sent, from dice.
struct Builder<'s, 'd> {
    schema: &'s Schema,
    dice: Dice<'d>,
    variables: Vec<(String, String, Option<Literal>)>,
    fragments: Vec<String>,
    /// Whether this document is mutated (a third of them): otherwise it is
    /// valid against the schema, its values of the right types.
    mutated: bool,
}

/// A generated request before it becomes an [`Exchange`].
#[derive(Debug)]
struct Generated {
    kind: &'static str,
    document: String,
    variables: String,
    operation_name: Option<String>,
    token: Option<&'static str>,
    target: Target,
}

impl<'s> Builder<'s, '_> {
    /// True one time in `n`, in a mutated document only.
    fn mutation(&mut self, n: usize) -> bool {
        self.mutated && self.dice.one_in(n)
    }

    /// One of `values`; in a valid document, one of its first `valid`.
    fn pick_valid<'v>(&mut self, values: &'v [&'v str], valid: usize) -> &'v str {
        let choices = if self.mutated { values.len() } else { valid };
        values[self.dice.roll(choices)]
    }

    fn build(schema: &'s Schema, rolls: &[u16]) -> Generated {
        let mut dice = Dice { rolls, at: 0 };
        let mutated = dice.one_in(3);
        let mut builder = Builder { schema, dice, variables: Vec::new(), fragments: Vec::new(), mutated };
        builder.generate()
    }

    fn generate(&mut self) -> Generated {
        let (kind, root) = match self.dice.roll(6) {
            0..=2 => ("query", self.schema.query.clone()),
            3 | 4 => ("mutation", self.schema.mutation.clone()),
            _ => ("subscription", self.schema.subscription.clone()),
        };
        let selection = self.selection_set(&root, 0);
        let name = self.dice.one_in(3).then(|| format!("Op{}", self.dice.roll(3)));
        let declarations = if self.variables.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self.variables.iter().map(|(name, ty, _)| format!("${name}: {ty}")).collect();
            format!("({})", list.join(", "))
        };
        let mut document = format!("{kind} {}{declarations} {selection}", name.clone().unwrap_or_default());
        for fragment in &self.fragments {
            document.push('\n');
            document.push_str(fragment);
        }
        if self.mutation(3) {
            document = self.mutate_text(&document);
        }
        let mut values: Vec<String> = self
            .variables
            .iter()
            .filter_map(|(name, _, value)| {
                value.as_ref().map(|value| format!("{}:{}", Value::String(name.clone()), value.json()))
            })
            .collect();
        if self.mutation(8) {
            values.push(format!("\"undeclared\":{}", self.literal_any().json()));
        }
        let variables = format!("{{{}}}", values.join(","));
        let token = *self.dice.pick(&[Some("user-1"), None, Some("user-2"), Some("test-token"), Some("junk")]);
        let mut target =
            *self.dice.pick(&[Target::PostGraphql, Target::PostGraphql, Target::GetGraphql, Target::PostStream]);
        if target == Target::GetGraphql && kind != "query" && !self.mutated {
            target = Target::PostGraphql;
        }
        // A mismatched operation name, now and then.
        let operation_name = if self.mutation(8) { Some("Missing".to_owned()) } else { name };
        Generated { kind, document, variables, operation_name, token, target }
    }

    /// `{ … }` for an object type, `depth` levels down.
    fn selection_set(&mut self, type_name: &str, depth: usize) -> String {
        let count = 1 + self.dice.roll(3);
        let mut selections = Vec::new();
        for _ in 0..count {
            selections.push(self.selection(type_name, depth));
        }
        format!("{{ {} }}", selections.join(" "))
    }

    fn selection(&mut self, type_name: &str, depth: usize) -> String {
        let fields = &self.schema.types[type_name].fields;
        if depth >= 5 || self.dice.one_in(12) {
            return "__typename".to_owned();
        }
        if self.dice.one_in(10) {
            // An inline fragment on the same type, or a named one.
            let inner = self.selection_set(type_name, depth + 1);
            if self.dice.one_in(2) {
                let name = format!("F{}", self.fragments.len());
                self.fragments.push(format!("fragment {name} on {type_name} {inner}"));
                return format!("...{name}");
            }
            return format!("... on {type_name} {inner}");
        }
        let field = &fields[self.dice.roll(fields.len())];
        let mut text = String::new();
        if self.dice.one_in(4) {
            text.push_str(&format!("a{}: ", self.dice.roll(4)));
        }
        // Mutated: a renamed field.
        if self.mutation(25) {
            text.push_str(&format!("{}x", field.name));
        } else {
            text.push_str(&field.name);
        }
        let mut args = Vec::new();
        for arg in &field.args {
            let give = if arg.required() { !self.mutation(20) } else { self.dice.one_in(2) };
            if give {
                let value = self.value_or_variable(&arg.ty);
                args.push(format!("{}: {value}", arg.name));
            }
        }
        if self.mutation(25) {
            args.push(format!("bogus: {}", self.literal_any().graphql()));
        }
        if !args.is_empty() {
            text.push_str(&format!("({})", args.join(", ")));
        }
        let named = field.ty.name();
        if self.schema.types.get(named).is_some_and(|ty| ty.kind == "OBJECT") {
            // Mutated: an object without a selection, now and then.
            if !self.mutation(30) {
                text.push(' ');
                text.push_str(&self.selection_set(named, depth + 1));
            }
        } else if self.mutation(30) {
            // Mutated: a selection on a scalar.
            text.push_str(" { id }");
        }
        text
    }

    /// A value for `ty`, as a literal or through a variable.
    fn value_or_variable(&mut self, ty: &TypeRef) -> String {
        if !self.dice.one_in(3) {
            return self.literal(ty).graphql();
        }
        let name = format!("v{}", self.variables.len());
        let declared = if self.mutation(10) {
            // Mutated: a variable declared with another type.
            self.dice.pick(&["String", "Int!", "[ID]", "Float", "Boolean", "Nope", "CreateNoteInput"]).to_string()
        } else {
            ty.text()
        };
        // Mutated: a variable with no value, now and then.
        let value = if self.mutation(12) { None } else { Some(self.literal(ty)) };
        self.variables.push((name.clone(), declared, value));
        format!("${name}")
    }

    /// A literal for `ty`: valid mostly, of the wrong type now and then.
    fn literal(&mut self, ty: &TypeRef) -> Literal {
        if self.mutation(10) {
            return self.literal_any();
        }
        match ty {
            TypeRef::NonNull(inner) => self.literal(inner),
            TypeRef::List(inner) => {
                if inner.name() == "Float" && self.dice.one_in(3) {
                    // A whole embedding, of the right length or one off.
                    let length = if self.mutated { *self.dice.pick(&[384, 383, 385, 0]) } else { 384 };
                    let item = Literal::Number(self.pick_valid(&FLOATS, 4).to_owned());
                    return Literal::List(vec![item; length]);
                }
                let length = self.dice.roll(4);
                Literal::List((0..length).map(|_| self.literal(inner)).collect())
            }
            TypeRef::Named(name) => self.named_literal(name),
        }
    }

    fn named_literal(&mut self, name: &str) -> Literal {
        match name {
            "Int" => Literal::Number(self.pick_valid(&INTS, 4).to_owned()),
            "Float" => Literal::Number(self.pick_valid(&FLOATS, 4).to_owned()),
            "ID" => Literal::Escaped(self.pick_valid(&IDS, 3).to_owned()),
            "Boolean" => Literal::Bool(self.dice.one_in(2)),
            "String" => self.string(),
            "DateTime" => {
                let text = self.pick_valid(&["2026-01-01T00:00:00Z", "yesterday", ""], 1);
                Literal::string(text)
            }
            _ => {
                let ty = &self.schema.types[name];
                match ty.kind.as_str() {
                    "ENUM" => {
                        let values = &ty.enum_values;
                        if self.mutation(10) {
                            Literal::Enum("MAYBE".to_owned())
                        } else {
                            Literal::Enum(values[self.dice.roll(values.len())].clone())
                        }
                    }
                    "INPUT_OBJECT" => {
                        let mut fields = Vec::new();
                        for field in &ty.input_fields {
                            let give = if field.required() { !self.mutation(15) } else { self.dice.one_in(2) };
                            if give {
                                fields.push((field.name.clone(), self.literal(&field.ty)));
                            }
                        }
                        if self.mutation(15) {
                            fields.push(("bogus".to_owned(), Literal::Number("1".to_owned())));
                        }
                        Literal::Object(fields)
                    }
                    // A custom scalar: any string.
                    _ => self.string(),
                }
            }
        }
    }

    fn string(&mut self) -> Literal {
        match self.dice.roll(10) {
            7 if self.mutated => Literal::Escaped(self.dice.pick(&ESCAPED_STRINGS).to_string()),
            0..=7 => {
                let text = *self.dice.pick(&ODD_STRINGS);
                Literal::string(text)
            }
            8 => Literal::string(&"x".repeat(1 + self.dice.roll(20_000))),
            _ => {
                let text: String = (0..self.dice.roll(12))
                    .map(|_| char::from_u32(self.dice.roll(0x11_0000) as u32).unwrap_or('\u{FFFD}'))
                    .collect();
                Literal::string(&text)
            }
        }
    }

    /// A literal of any type at all: the wrong type for most places.
    fn literal_any(&mut self) -> Literal {
        match self.dice.roll(7) {
            0 => Literal::Null,
            1 => Literal::Number(self.dice.pick(&INTS).to_string()),
            2 => Literal::Number(self.dice.pick(&FLOATS).to_string()),
            3 => self.string(),
            4 => Literal::Bool(true),
            5 => Literal::List(vec![Literal::Number("1".to_owned()), Literal::string("a")]),
            _ => Literal::Object(vec![("title".to_owned(), Literal::Number("1".to_owned()))]),
        }
    }

    /// The document's text with a character dropped, doubled or replaced,
    /// or cut short.
    fn mutate_text(&mut self, document: &str) -> String {
        let chars: Vec<char> = document.chars().collect();
        let at = self.dice.roll(chars.len());
        let mut chars = chars;
        match self.dice.roll(4) {
            0 => chars.truncate(at),
            1 => {
                chars.remove(at);
            }
            2 => {
                let c = chars[at];
                chars.insert(at, c);
            }
            _ => chars[at] = *self.dice.pick(&['{', '}', '(', ')', '$', '"', '!', '\0', '\u{FFFF}', '#']),
        }
        chars.into_iter().collect()
    }
}

impl Generated {
    /// The request as it goes over the wire for its target.
    fn exchange(&self) -> Exchange {
        let mut headers = Vec::new();
        if let Some(token) = self.token {
            headers.push(("authorization".to_owned(), format!("Bearer {token}").into_bytes()));
        }
        let name =
            self.operation_name.as_ref().map(|name| format!(",\"operationName\":{}", Value::String(name.clone())));
        let body = format!(
            "{{\"query\":{},\"variables\":{}{}}}",
            Value::String(self.document.clone()),
            self.variables,
            name.unwrap_or_default()
        );
        let open_ended = self.kind == "subscription";
        match self.target {
            Target::GetGraphql => {
                let mut pairs = vec![("query", self.document.clone()), ("variables", self.variables.clone())];
                if let Some(name) = &self.operation_name {
                    pairs.push(("operationName", name.clone()));
                }
                let query = serde_urlencoded::to_string(pairs).unwrap();
                Exchange { target: self.target, headers, query: Some(query), body: Vec::new(), open_ended }
            }
            Target::PostStream | Target::GetStream => {
                headers.push(("content-type".to_owned(), b"application/json".to_vec()));
                headers.push(("accept".to_owned(), b"text/event-stream".to_vec()));
                Exchange { target: self.target, headers, query: None, body: body.into_bytes(), open_ended }
            }
            Target::PostGraphql => {
                headers.push(("content-type".to_owned(), b"application/json".to_vec()));
                Exchange { target: self.target, headers, query: None, body: body.into_bytes(), open_ended }
            }
        }
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn documents_from_the_schema_never_break_the_server(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn_multi_threaded(options, &[]).await;
    let schema = Schema::introspect(&app).await;

    tokio::task::spawn_blocking(move || {
        let rolls = prop::collection::vec(any::<u16>(), 40..400);
        run_property(&app, "documents from the schema", rolls, |rolls| Builder::build(&schema, &rolls).exchange());
    })
    .await
    .unwrap();
}

// ---------------------------------------------------------------------------
// Regression tests: what the runs above found, each with its minimal input.

/// Found by `random_requests_never_break_the_server` (seed 1852305442): a
/// variable of a non-null type sent without a value reached execution,
/// where the engine's "Variable id is not defined." carried no code and
/// came back as INTERNAL.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_required_variable_without_a_value_is_bad_user_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let cases = [
        ("query Q($id: ID!) { note(id: $id) { id author { name } } }", json!({})),
        ("query Q($id: ID!) { note(id: $id) { id } }", json!({ "id": null })),
        ("mutation($input: CreateNoteInput!) { createNote(input: $input) { id } }", json!({})),
        ("query($t: String!) { notes(tag: $t) { id } }", json!({ "other": "x" })),
        // Found by the long run (seed 10264445396776692259): declared
        // nullable, used where a value is required, given none.
        ("query Op0($v0: [ID]) { user(id: $v0) { id } }", json!({})),
        ("query($id: ID) { user(id: $id) { id } }", json!({})),
    ];

    for (query, variables) in cases {
        let (status, body) = app.post(Some("user-1"), query, variables.clone()).await;

        assert_eq!(status, reqwest::StatusCode::OK, "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{query} {variables}: {body}");
        let message = body["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains('$') || message.contains("id"), "the message names the variable: {message}");
    }
}

/// A variable of a nullable type sent without a value leaves its argument
/// out, as the GraphQL spec says: the argument's default applies.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_optional_variable_without_a_value_leaves_its_argument_out(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;

    let (status, body) =
        app.post(None, "query($n: Int, $t: String) { notes(first: $n, tag: $t) { id } }", json!({})).await;

    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(body["data"]["notes"].as_array().unwrap().len(), 20, "the default `first`: {body}");
}

/// Found by `documents_from_the_schema_never_break_the_server` (seed
/// 1852305442): a NUL character (U+0000) in a note's body went to
/// Postgres, whose text cannot hold it, and came back as INTERNAL. Every
/// string argument that reaches the database is tried here.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_nul_character_in_a_string_argument_is_bad_user_input_or_harmless(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let writes = [
        ("mutation($s: String!) { createNote(input: {title: \"t\", body: $s}) { id } }", "body"),
        ("mutation($s: String!) { createNote(input: {title: $s, body: \"b\"}) { id } }", "title"),
        ("mutation($s: String!) { updateNote(id: \"1\", input: {body: $s}) { id } }", "body"),
        ("mutation($s: String!) { updateNote(id: \"1\", input: {title: $s}) { id } }", "title"),
    ];
    for (query, field) in writes {
        let (status, body) = app.post(Some("user-2"), query, json!({ "s": "a\u{0}b" })).await;

        assert_eq!(status, reqwest::StatusCode::OK, "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{query}: {body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains(field), "{query}: {body}");
    }
    // Reads by a string: nothing can match, so nothing is found.
    let reads = [
        "query($s: String!) { notes(tag: $s) { id } }",
        "query($s: String!) { tag(name: $s) { id } }",
        "query($s: String!) { searchNotes(text: $s) { score } }",
        "query($s: String!) { searchNotes(text: \"x\", tag: $s) { score } }",
    ];
    for query in reads {
        let (status, body) = app.post(Some("user-2"), query, json!({ "s": "a\u{0}b" })).await;

        assert_eq!(status, reqwest::StatusCode::OK, "{query}: {body}");
        let code = body["errors"][0]["extensions"]["code"].as_str().unwrap_or("none");
        assert!(code == "none" || code == "BAD_USER_INPUT", "{query}: {body}");
    }
}

/// Found by `random_requests_never_break_the_server` (seed
/// 13981823126804404379), whose client got "connection closed" for a
/// request on a kept-alive connection: a refusal sent before the body was
/// read must either keep the connection usable or say `connection: close`,
/// so that a client does not send its next request into a closed socket.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn a_refusal_before_the_body_is_read_leaves_the_connection_usable_or_says_close(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let small = b"{\"query\": \"{ users(first: 1) { name \xed\xa0\x80 } }\"}".to_vec();
    // The size of the deeply nested documents after which the long run
    // (seed 14742047840239235314) found its connections closed.
    let large =
        format!("{{\"query\": \"{{ users {}{} }}\"}}", "{ notes ".repeat(5_000), "}".repeat(5_000)).into_bytes();
    for body in [small, large] {
        refusals_keep_the_connection(&app, &body).await;
    }
}

/// Each refusal of `body` leaves its connection usable or says `close`.
async fn refusals_keep_the_connection(app: &TestApp, body: &[u8]) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let refusals = [
        // No content type: 415 before the body is read.
        format!("POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-length: {}\r\n\r\n", body.len()),
        // Not JSON: 415 as well.
        format!(
            "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        // No acceptable media type: 406.
        format!(
            "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\naccept: text/html\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        // The stream without `Accept: text/event-stream`: 406.
        format!(
            "POST /graphql/stream HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
        // The stream with no content type: 415.
        format!(
            "POST /graphql/stream HTTP/1.1\r\nhost: test\r\naccept: text/event-stream\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ),
    ];
    let good = "{\"query\": \"{ users(first: 1) { id } }\"}";
    let second = format!(
        "POST /graphql HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{good}",
        good.len()
    );

    for head in refusals {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // The server may answer, and close, before the body is all sent.
        let _ = stream.write_all(body).await;
        let mut first = vec![0; 4096];
        let n = tokio::time::timeout(ANSWER_WITHIN, stream.read(&mut first)).await.unwrap().unwrap();
        let first = String::from_utf8_lossy(&first[..n]).to_lowercase();
        assert!(first.starts_with("http/1.1 4"), "{first}");
        if first.contains("\r\nconnection: close\r\n") {
            continue;
        }
        // Kept alive: the next request on it is answered.
        let closed =
            format!("the connection was closed after {first:?} ({} bytes) without `connection: close`", body.len());
        stream.write_all(second.as_bytes()).await.expect(&closed);
        let mut answer = Vec::new();
        let mut buffer = vec![0; 4096];
        while !String::from_utf8_lossy(&answer).contains("\"users\"") {
            let n = tokio::time::timeout(ANSWER_WITHIN, stream.read(&mut buffer)).await.unwrap().expect(&closed);
            assert!(n > 0, "{closed}");
            answer.extend_from_slice(&buffer[..n]);
        }
    }
}

/// Found by `documents_from_the_schema_never_break_the_server` (seed
/// 5580779023034716099): an argument literal of the wrong type reached the
/// resolver when the same root field also appeared in an inline fragment.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("users"))]
async fn an_argument_of_the_wrong_type_is_bad_user_input_wherever_the_field_appears(
    _: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let documents = [
        "mutation { createNote(input: 5) { id } }",
        "mutation { ... on Mutation { a: createNote(input: {title: \"t\", body: \"b\"}) { id } } createNote(input: 5) { id } }",
        "mutation { ... on Mutation { createNote(input: {title: \"t\", body: \"b\"}) { id } } createNote(input: 5) { id } }",
        "{ ... on Query { notes { id } } notes(first: \"x\") { id } }",
    ];
    let with_variables = [
        ("mutation($i: CreateNoteInput!) { createNote(input: $i) { id } }", json!({ "i": 5 })),
        ("mutation($i: CreateNoteInput!) { createNote(input: $i) { id } }", json!({ "i": "x" })),
        ("mutation($i: UpdateNoteInput!) { updateNote(id: \"1\", input: $i) { id } }", json!({ "i": [1] })),
    ];
    let cases = documents.map(|document| (document, json!({}))).into_iter().chain(with_variables);

    for (document, variables) in cases {
        let (status, body) = app.post(Some("user-1"), document, variables).await;

        assert_eq!(status, reqwest::StatusCode::OK, "{document}: {body}");
        let codes: Vec<&str> =
            body["errors"].as_array().unwrap().iter().map(|e| e["extensions"]["code"].as_str().unwrap()).collect();
        assert!(!codes.is_empty() && codes.iter().all(|code| *code == "BAD_USER_INPUT"), "{document}: {body}");
    }
}

/// Found by `documents_from_the_schema_never_break_the_server` (seed
/// 2081761454318753945): an Int argument past i32 (`first: -2147483649`)
/// reached the resolver, whose parse error had no code: INTERNAL.
#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn an_int_argument_past_i32_is_bad_user_input(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let cases = [
        ("{ searchNotes(text: \"x\", first: -2147483649) { score } }", json!({})),
        ("{ notes(first: 2147483648) { id } }", json!({})),
        ("{ users(first: 99999999999999999999) { id } }", json!({})),
        ("query($n: Int) { tags(first: $n) { id } }", json!({ "n": 2147483648_i64 })),
        ("{ note(id: \"1\") { similar(first: -9223372036854775809) { score } } }", json!({})),
    ];

    for (query, variables) in cases {
        let (status, body) = app.post(None, query, variables).await;

        assert_eq!(status, reqwest::StatusCode::OK, "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{query}: {body}");
    }
}
