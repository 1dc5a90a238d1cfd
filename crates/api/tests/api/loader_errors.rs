//! A failed loader batch: every resolver waiting on it gets an INTERNAL
//! error, and the failure is logged once, by the batch, not once per
//! waiting resolver (a page of 30 users would otherwise log it 30 times).

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tracing_subscriber::fmt::MakeWriter;

use crate::helpers::TestApp;

/// Log lines written while it is the thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

impl Captured {
    fn lines_with(&self, text: &str) -> usize {
        String::from_utf8_lossy(&self.0.lock().unwrap()).lines().filter(|line| line.contains(text)).count()
    }
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn a_failed_batch_fails_every_waiting_resolver_and_is_logged_once(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: the server runs on this test's thread (a current-thread
    // runtime), so a thread-local subscriber sees its logs. Breaking the
    // notes table makes the notes-by-author batch fail while the users
    // list, which does not read it, still works. (A page of notes brings
    // its tags in its own statement, so breaking the tags no longer fails
    // a batch under a working list.)
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(logs.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = TestApp::spawn(options).await;
    sqlx::query("alter table notes rename to notes_gone").execute(&app.pool).await.unwrap();

    // Act: thirty users, each waiting on the one batch of their notes.
    let (_, body) = app.post(Some("test-token"), "{ users(first: 30) { id notes(first: 2) { id } } }", json!({})).await;

    // Assert
    let errors = body["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 30, "{body}");
    assert!(errors.iter().all(|e| e["extensions"]["code"] == "INTERNAL"), "{body}");
    assert!(!body.to_string().contains("notes_gone"), "the client saw SQL: {body}");
    assert_eq!(logs.lines_with("loader batch failed"), 1);
    assert_eq!(logs.lines_with("unexpected database error"), 0);
}
