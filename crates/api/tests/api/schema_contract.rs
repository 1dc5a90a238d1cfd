//! The served schema is compatible with the public contract in
//! `spec/schema.graphql`: graphql-core finds no breaking change and no
//! changed default (checked by `tests/schema-compat/check.py`).

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
    assert_eq!(vendored, shared, "spec/schema.graphql is out of date with shared/spec");
}
