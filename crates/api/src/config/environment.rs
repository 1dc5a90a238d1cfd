//! The process environment held against the variables the server reads:
//! a retired variable (one that was renamed) refuses start-up naming its
//! replacement, since a setting silently ignored is worse than none; any
//! other `NOTEGRAPH_*` variable that nothing reads (a typo, most likely)
//! is reported, so start-up can warn.

use std::collections::BTreeSet;

/// Variables that were renamed, with what replaced them and how.
const RETIRED: [(&str, &str); 2] = [
    ("NOTEGRAPH_HTTP_TIMEOUT_SECS", "NOTEGRAPH_HTTP_TIMEOUT_MS (milliseconds)"),
    ("NOTEGRAPH_DB_STATEMENT_TIMEOUT_MS", "NOTEGRAPH_DB_TIMEOUT_MS"),
];

/// `NOTEGRAPH_*` variables that the build, the tests and CI read, not the
/// server's settings.
const NOT_SETTINGS: [&str; 9] = [
    "NOTEGRAPH_FUZZ_CASES",
    "NOTEGRAPH_FUZZ_SEED",
    "NOTEGRAPH_GIT_COMMIT",
    "NOTEGRAPH_REQUIRE_CHROMIUM",
    "NOTEGRAPH_REQUIRE_KUBECTL",
    "NOTEGRAPH_REQUIRE_PGBOUNCER",
    "NOTEGRAPH_REQUIRE_PROMETHEUS",
    "NOTEGRAPH_STRESS",
    "NOTEGRAPH_TEST_K6",
];

/// Checks the names of the environment's variables against `settings`
/// (the variables the command line reads): `Err` names a retired variable
/// and its replacement; `Ok` lists the `NOTEGRAPH_*` variables nothing
/// reads.
pub fn check<'a>(settings: &BTreeSet<String>, names: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, String> {
    let mut unknown = Vec::new();
    for name in names {
        if let Some((_, replacement)) = RETIRED.iter().find(|(retired, _)| *retired == name) {
            return Err(format!("{name} is no longer read: set {replacement} instead, and unset {name}"));
        }
        if name.starts_with("NOTEGRAPH_") && !settings.contains(name) && !NOT_SETTINGS.contains(&name) {
            unknown.push(name.to_owned());
        }
    }
    unknown.sort();
    Ok(unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BTreeSet<String> {
        ["NOTEGRAPH_HTTP_TIMEOUT_MS", "NOTEGRAPH_DB_TIMEOUT_MS", "NOTEGRAPH_CACHE_ENABLED"].map(String::from).into()
    }

    #[test]
    fn a_retired_variable_names_its_replacement() {
        let err = check(&settings(), ["PATH", "NOTEGRAPH_HTTP_TIMEOUT_SECS"]).unwrap_err();

        assert_eq!(
            err,
            "NOTEGRAPH_HTTP_TIMEOUT_SECS is no longer read: set NOTEGRAPH_HTTP_TIMEOUT_MS (milliseconds) instead, \
             and unset NOTEGRAPH_HTTP_TIMEOUT_SECS"
        );
        assert!(
            check(&settings(), ["NOTEGRAPH_DB_STATEMENT_TIMEOUT_MS"]).unwrap_err().contains("NOTEGRAPH_DB_TIMEOUT_MS")
        );
    }

    #[test]
    fn only_notegraph_variables_that_nothing_reads_are_reported() {
        let names =
            ["HOME", "NOTEGRAPH_CACHE_ENABLED", "NOTEGRAPH_CACHE_ENABLE", "NOTEGRAPH_STRESS", "NOTEGRAPH_LISTN"];

        assert_eq!(
            check(&settings(), names),
            Ok(vec!["NOTEGRAPH_CACHE_ENABLE".to_owned(), "NOTEGRAPH_LISTN".to_owned()])
        );
    }

    #[test]
    fn every_retired_variable_is_truly_retired() {
        let read = crate::config::reference::variables();
        for (retired, replacement) in RETIRED {
            assert!(!read.contains(retired), "{retired} is still read");
            let replacement = replacement.split(' ').next().unwrap();
            assert!(read.contains(replacement), "{replacement} is not a setting");
        }
    }
}
