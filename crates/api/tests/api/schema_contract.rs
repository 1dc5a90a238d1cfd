//! The served schema is compatible with the public contract in
//! `spec/schema.graphql`: graphql-core finds no breaking change and no
//! changed default (checked by `tests/schema-compat/check.py`), and the
//! vendored spec is the shared one plus the `@defer` and `@stream`
//! definitions, nothing else.

use std::path::Path;

#[test]
fn printed_schema_is_compatible_with_the_spec() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sdl = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(sdl.path(), api::graphql::sdl()).unwrap();
    let output = std::process::Command::new("python3")
        .arg(root.join("tests/schema-compat/check.py"))
        .arg(root.join("spec/schema.graphql"))
        .arg(sdl.path())
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "schema check failed (graphql-core is installed by scripts/test.sh):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_vendored_spec_matches_the_shared_one_when_present() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let shared = root.join("../shared/spec/schema.graphql");
    // CI runs beside shared/; a bare clone elsewhere has only the vendored copy.
    let Ok(shared) = std::fs::read_to_string(&shared) else {
        eprintln!("skipped: {} is not present", shared.display());
        return;
    };
    let vendored = std::fs::read_to_string(root.join("spec/schema.graphql")).unwrap();
    // The vendored copy differs by the two directive definitions of
    // incremental delivery (issue 29) alone, appended at its end.
    let Some(rest) = vendored.strip_suffix(INCREMENTAL_DIRECTIVES) else {
        panic!("spec/schema.graphql must end with the @defer and @stream definitions:\n{INCREMENTAL_DIRECTIVES}");
    };
    assert_eq!(rest, shared, "spec/schema.graphql is out of date with shared/spec");
}

/// What the vendored spec adds to the shared one, exactly.
const INCREMENTAL_DIRECTIVES: &str = "
# Incremental delivery (issue 29, docs/INCREMENTAL.md): the fragment or the
# list's items after `initialCount` arrive in later parts of the response.
directive @defer(if: Boolean! = true, label: String) on FRAGMENT_SPREAD | INLINE_FRAGMENT

directive @stream(if: Boolean! = true, label: String, initialCount: Int = 0) on FIELD
";

#[test]
fn the_served_schema_declares_defer_and_stream_as_the_spec_does() {
    let sdl = api::graphql::sdl();
    for line in INCREMENTAL_DIRECTIVES.lines().filter(|line| line.starts_with("directive")) {
        assert!(sdl.lines().any(|served| served == line), "the served schema lacks `{line}`");
    }
}
