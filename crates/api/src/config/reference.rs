//! The configuration reference, docs/CONFIGURATION.md, written from the
//! clap definitions of [`Config`]: one table per section (its `--help`
//! heading) giving each setting's variable, flag, default and meaning, so
//! that the reference cannot drift from the code. `notegraph
//! print-configuration` prints it and `just config-docs` writes the file;
//! a test fails while the file differs.

use std::fmt::Write as _;

use clap::{ArgAction, Args as _};

use super::Config;

/// Where the reference lives, from the repository's root.
pub const PATH: &str = "docs/CONFIGURATION.md";

/// What comes before the tables.
const PREAMBLE: &str = "\
# Configuration

<!-- Generated from the clap definitions in crates/api/src/config/ by `just config-docs`
     (`notegraph print-configuration > docs/CONFIGURATION.md`); edit those, not this file. -->

Every setting is an environment variable and the matching flag, which every
command accepts and which wins over the variable; `notegraph --help` lists
them too. At start-up the server prints the whole configuration as
`VARIABLE = value` lines, secrets masked. The sections are those of
`notegraph --help`, one file each under `crates/api/src/config/`.

Booleans read `true`/`false`, `1`/`0`, `yes`/`no` and `on`/`off`. A value
that does not parse stops start-up with the variable's name.
A `NOTEGRAPH_*` variable that is not listed here (a typo, most likely) is
warned of at start-up and ignored. A retired one stops start-up with the
name of its replacement: `NOTEGRAPH_HTTP_TIMEOUT_SECS` became
`NOTEGRAPH_HTTP_TIMEOUT_MS`, `NOTEGRAPH_DB_STATEMENT_TIMEOUT_MS` became
`NOTEGRAPH_DB_TIMEOUT_MS`.
";

/// Variables that are read by a library rather than by clap.
const READ_ELSEWHERE: &str = "\
## Read by libraries

| variable | default | meaning |
|---|---|---|
| `TOKIO_WORKER_THREADS` | one per core | The async runtime's worker threads, read by tokio itself. On a 2-core machine shared with Postgres, 1 cost 16–19% less server CPU per request at 1000 requests/s, and caps the server at one core (docs/PERFORMANCE.md) |
";

/// The reference as markdown, exactly as docs/CONFIGURATION.md holds it.
pub fn markdown() -> String {
    let mut out = String::from(PREAMBLE);
    let mut heading = None;
    for arg in &settings() {
        if arg.get_help_heading() != heading {
            heading = arg.get_help_heading();
            let title = heading.unwrap_or("Options");
            let _ = write!(out, "\n## {title}\n\n| variable | flag | default | meaning |\n|---|---|---|---|\n");
        }
        let variable = arg.get_env().map_or("".to_owned(), |env| format!("`{}`", env.to_string_lossy()));
        let _ = writeln!(out, "| {variable} | {} | {} | {} |", flag(arg), default(arg), cell(&meaning(arg)));
    }
    out.push('\n');
    out.push_str(READ_ELSEWHERE);
    out
}

/// The variables the settings are read from.
pub fn variables() -> std::collections::BTreeSet<String> {
    settings().iter().filter_map(|arg| arg.get_env()).map(|env| env.to_string_lossy().into_owned()).collect()
}

/// Every setting's clap definition, completed as clap completes them
/// before parsing (a flag's default of `false`), in `--help` order.
fn settings() -> Vec<clap::Arg> {
    let mut command = Config::augment_args(clap::Command::new("notegraph"));
    command.build();
    let own = |arg: &&clap::Arg| !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version);
    command.get_arguments().filter(own).cloned().collect()
}

/// `--name`, with its value's placeholder when it takes one.
fn flag(arg: &clap::Arg) -> String {
    let long = arg.get_long().unwrap_or_default();
    match (arg.get_action().takes_values(), arg.get_value_names()) {
        (true, Some([name, ..])) => format!("`--{long} <{name}>`"),
        (true, _) => format!("`--{long} <{}>`", arg.get_id().as_str().to_uppercase()),
        (false, _) => format!("`--{long}`"),
    }
}

/// The default as clap applies it: `unset` when there is none, `empty` for
/// the empty string.
fn default(arg: &clap::Arg) -> String {
    let values: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
    match values.as_slice() {
        [] => "unset".to_owned(),
        [value] if value.is_empty() => "empty".to_owned(),
        values => format!("`{}`", values.join(",")),
    }
}

/// The help text (the long one when there is one), then the values an
/// enumeration takes, each with its own help.
fn meaning(arg: &clap::Arg) -> String {
    let help = arg.get_long_help().or(arg.get_help()).map(ToString::to_string).unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|value| !value.is_hide_set())
        .filter_map(|value| Some(format!("`{}`: {}", value.get_name(), value.get_help()?)))
        .collect();
    match values.is_empty() {
        true => help,
        false => format!("{help}. One of {}", values.join("; ")),
    }
}

/// Text fit for one table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_belongs_to_a_section() {
        for arg in settings() {
            let (id, heading) = (arg.get_id(), arg.get_help_heading());
            assert!(heading.is_some_and(|h| h != "Options"), "--{id} has no help heading: give it its section's");
            assert!(arg.get_env().is_some(), "--{id} has no environment variable");
            assert!(arg.get_help().is_some(), "--{id} has no help text");
        }
        let reference = markdown();
        for section in ["HTTP", "Database", "Auth", "GraphQL", "Response cache", "Telemetry", "Deployment"] {
            assert!(reference.contains(&format!("\n## {section}\n")), "no {section} section");
        }
        assert!(reference.contains("| `NOTEGRAPH_LISTEN` | `--listen <LISTEN>` | `127.0.0.1:8080` |"), "{reference}");
        assert!(reference.contains("| `NOTEGRAPH_DEV` | `--dev` | `false` |"), "{reference}");
        assert!(reference.contains("| `NOTEGRAPH_EMBED_URL` | `--embed-url <EMBED_URL>` | unset |"), "{reference}");
    }

    #[test]
    fn the_configuration_reference_is_up_to_date() {
        let path = format!("{}/../../{PATH}", env!("CARGO_MANIFEST_DIR"));
        let written = std::fs::read_to_string(&path).unwrap_or_default();
        let generated = markdown();
        let first_difference = written.lines().zip(generated.lines()).position(|(a, b)| a != b);
        assert!(
            written == generated,
            "{PATH} differs from the clap definitions (first at line {}): run `just config-docs` \
             (`cargo run -- print-configuration > {PATH}`) and commit the result",
            first_difference.unwrap_or(written.lines().count().min(generated.lines().count())) + 1,
        );
    }
}
