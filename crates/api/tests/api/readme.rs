//! The README's "Try it" section, run as written, so the front door never
//! drifts from the code: every `curl` command in its shell blocks goes to a
//! real server (its address in place of `localhost:8080`), and every answer
//! must be data without errors, holding every field the query selects. The
//! addresses the prose sends a reader to must answer too.

use async_graphql::parser::parse_query;
use async_graphql::parser::types::{DocumentOperations, Selection, SelectionSet};
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::helpers::TestApp;

/// Read at compile time: editing the README rebuilds the test.
const README: &str = include_str!("../../../../README.md");

/// The address the README's examples use, in both spellings.
const README_ADDRESSES: [&str; 2] = ["localhost:8080", "127.0.0.1:8080"];

/// The lines of the README's "Try it" section, up to the next heading.
fn try_it_section() -> Vec<&'static str> {
    let mut lines = README.lines().skip_while(|line| *line != "## Try it");
    assert!(lines.next().is_some(), "README.md has no \"## Try it\" section");
    lines.take_while(|line| !line.starts_with("## ")).collect()
}

/// The commands in the section's ```sh blocks, continuation lines joined.
fn commands(section: &[&str]) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in section {
        match (in_block, line.trim()) {
            (false, "```sh") => in_block = true,
            (true, "```") => in_block = false,
            (true, line) if line.is_empty() && current.is_empty() => {}
            (true, line) => match line.strip_suffix('\\') {
                Some(start) => current.push_str(start),
                None => commands.push(std::mem::take(&mut current) + line),
            },
            _ => {}
        }
    }
    assert!(current.is_empty(), "a command ends in a continuation: {current}");
    commands
}

/// Splits a command into words as sh would, for the quoting the README
/// uses (single quotes, double quotes, backslashes). Anything that would
/// need a real shell (expansions, pipes, redirections) fails the test
/// rather than running differently from the README.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            '\'' => {
                let quoted: String = chars.by_ref().take_while(|&c| c != '\'').collect();
                word.get_or_insert_default().push_str(&quoted);
            }
            '"' => loop {
                match chars.next().unwrap_or_else(|| panic!("unclosed \" in {command}")) {
                    '"' => break,
                    '\\' => word.get_or_insert_default().push(chars.next().expect("escaped character")),
                    '$' | '`' => panic!("the README test runs no shell expansions: {command}"),
                    c => word.get_or_insert_default().push(c),
                }
            },
            '\\' => word.get_or_insert_default().push(chars.next().expect("escaped character")),
            '$' | '`' | '|' | ';' | '&' | '<' | '>' | '(' | ')' => {
                panic!("the README test runs single commands without a shell: {command}")
            }
            c => word.get_or_insert_default().push(c),
        }
    }
    words.extend(word);
    words
}

/// Checks that `value` holds every field `selection` selects, at every
/// level (fragments aside); lists are checked item by item.
fn assert_holds_selection(selection: &SelectionSet, value: &Value, path: &str) {
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                assert_holds_selection(selection, item, &format!("{path}[{i}]"));
            }
        }
        Value::Object(object) => {
            for item in &selection.items {
                let Selection::Field(field) = &item.node else { continue };
                let key = field.node.response_key().node.as_str();
                let path = format!("{path}.{key}");
                let found = object.get(key).unwrap_or_else(|| panic!("{path} is missing"));
                assert_holds_selection(&field.node.selection_set.node, found, &path);
            }
        }
        // A nullable field may be null; a leaf has no selection to check.
        _ => assert!(value.is_null() || selection.items.is_empty(), "{path}: {value} where an object was selected"),
    }
}

/// The GraphQL query in curl's `-d` body.
fn query_of(arguments: &[String]) -> String {
    let body = arguments.iter().skip_while(|a| *a != "-d").nth(1).expect("a -d body");
    let body: Value = serde_json::from_str(body).expect("the -d body is JSON");
    body["query"].as_str().expect("a query in the body").to_owned()
}

#[sqlx::test(migrator = "db::MIGRATOR", fixtures("dataset"))]
async fn the_readme_try_it_examples_answer_as_the_readme_says(_: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let address = app.addr.to_string();
    let section = try_it_section();
    let commands = commands(&section);
    assert!(commands.len() >= 3, "expected the README's curl examples, found {commands:#?}");

    for command in &commands {
        // Arrange: the command as written, pointed at the test server.
        let mut arguments = words(command);
        assert_eq!(arguments.remove(0), "curl", "{command}");
        for argument in &mut arguments {
            for readme_address in README_ADDRESSES {
                *argument = argument.replace(readme_address, &address);
            }
        }
        let query = query_of(&arguments);

        // Act.
        let output =
            tokio::process::Command::new("curl").args(&arguments).args(["--max-time", "30"]).output().await.unwrap();

        // Assert: data for every root field, holding every selected field.
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{command}\n{}", String::from_utf8_lossy(&output.stderr));
        let answer: Value = serde_json::from_str(&stdout).unwrap_or_else(|_| panic!("{command}\nanswered {stdout}"));
        assert!(answer.get("errors").is_none(), "{command}\nanswered {answer}");
        let document = parse_query(&query).unwrap();
        let DocumentOperations::Single(operation) = &document.operations else { panic!("one operation: {query}") };
        let selection = &operation.node.selection_set.node;
        for item in &selection.items {
            let Selection::Field(field) = &item.node else { continue };
            let root = &answer["data"][field.node.response_key().node.as_str()];
            assert!(!root.is_null() && root != &Value::Array(vec![]), "{command}\nanswered {answer}");
        }
        assert_holds_selection(selection, &answer["data"], "data");
    }

    // The addresses the prose sends a reader to (GraphiQL) answer.
    let mut in_block = false;
    let prose = section.iter().filter(|line| {
        in_block ^= line.starts_with("```");
        !in_block && !line.starts_with("```")
    });
    let links: Vec<String> = prose
        .flat_map(|line| line.split_whitespace())
        .filter(|word| README_ADDRESSES.iter().any(|a| word.starts_with(&format!("http://{a}"))))
        .map(|word| README_ADDRESSES.iter().fold(word.to_owned(), |url, a| url.replace(a, &address)))
        .collect();
    assert!(!links.is_empty(), "the section no longer sends readers to GraphiQL");
    for link in links {
        assert_eq!(app.client.get(&link).send().await.unwrap().status(), 200, "{link}");
    }
}

#[test]
fn words_split_as_sh_would() {
    let command =
        r#"curl -s localhost:8080/graphql -H 'content-type: application/json' -d '{"a":"\"x\""}' "two words""#;
    assert_eq!(
        words(command),
        [
            "curl",
            "-s",
            "localhost:8080/graphql",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"a":"\"x\""}"#,
            "two words"
        ]
    );
}
