//! Start-up against the environment as an operator leaves it: a renamed
//! variable stops the server with the name of its replacement, and a
//! `NOTEGRAPH_*` variable nothing reads is warned of.

use std::time::Duration;

use crate::helpers::{serve_process, serving_address};

#[tokio::test]
async fn a_retired_variable_refuses_start_up_naming_its_replacement() {
    let (mut child, mut lines) = serve_process(&[("NOTEGRAPH_HTTP_TIMEOUT_SECS", "30")]);

    let status = tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("exits").unwrap();
    let mut stderr = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        stderr.push(line);
    }

    assert!(!status.success());
    let said = stderr.join("\n");
    assert!(
        said.contains(
            "NOTEGRAPH_HTTP_TIMEOUT_SECS is no longer read: set NOTEGRAPH_HTTP_TIMEOUT_MS (milliseconds) instead"
        ),
        "{said}"
    );
    assert!(!said.contains("\"serving\""), "{said}");
}

#[tokio::test]
async fn a_variable_nothing_reads_is_warned_of_and_the_server_starts() {
    let (_child, mut lines) =
        serve_process(&[("NOTEGRAPH_CACHE_ENABLE", "false"), ("NOTEGRAPH_LISTEN", "127.0.0.1:0")]);

    let mut warned = None;
    let mut before_serving = Vec::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if event["fields"]["variable"] == "NOTEGRAPH_CACHE_ENABLE" {
                warned = Some(event);
                break;
            }
            before_serving.push(line);
        }
    })
    .await
    .expect("a warning within 60 s");

    let warned = warned.unwrap_or_else(|| panic!("no warning:\n{}", before_serving.join("\n")));
    assert_eq!(warned["level"], "WARN");
    assert!(warned["fields"]["message"].as_str().unwrap().contains("is not a setting"), "{warned}");
    assert!(before_serving.iter().all(|line| !line.contains("NOTEGRAPH_LISTEN\"")), "a real setting is not warned of");
    serving_address(&mut lines).await;
}

/// `notegraph print-schema` (which needs no database) with `env`: its exit
/// code and stderr.
fn print_schema(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_notegraph"))
        .arg("print-schema")
        .envs(env.iter().copied())
        .output()
        .expect("run notegraph");
    (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
}

#[test]
fn a_value_that_does_not_parse_names_its_variable_and_booleans_read_as_written() {
    let (code, stderr) = print_schema(&[("NOTEGRAPH_CACHE_ENABLED", "maybe")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("NOTEGRAPH_CACHE_ENABLED is not valid"), "{stderr}");
    assert!(!stderr.contains("--cache-enabled"), "{stderr}");

    let (code, stderr) = print_schema(&[("NOTEGRAPH_MAX_DEPTH", "twelve")]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("NOTEGRAPH_MAX_DEPTH is not valid (invalid digit found in string)"), "{stderr}");

    for value in ["0", "1", "yes", "no", "true", "false"] {
        let (code, stderr) = print_schema(&[("NOTEGRAPH_CACHE_ENABLED", value)]);
        assert_eq!(code, Some(0), "{value}: {stderr}");
    }
}
