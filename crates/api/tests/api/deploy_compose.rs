//! The Docker artifacts, validated offline (no Docker engine runs here):
//! docker-compose.yml against the Compose specification's JSON schema
//! (check-jsonschema's vendored copy), every path and service it names
//! (tests/deploy/check.py), and every `notegraph` command that it and
//! deploy/Dockerfile run, parsed by the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `python3 -m <module>` with `args` (scripts/test.sh puts the modules on PYTHONPATH).
pub(crate) fn python(args: &[&str]) -> Output {
    Command::new("python3").args(args).current_dir(root()).output().expect("run python3")
}

/// stdout and stderr, for an assertion message.
pub(crate) fn report(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// check-jsonschema's verdict on a Compose file.
fn compose_schema(file: &Path) -> Output {
    python(&["-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", file.to_str().unwrap()])
}

#[test]
fn the_compose_file_is_valid_against_the_compose_spec_schema() {
    let output = compose_schema(&root().join("docker-compose.yml"));
    assert!(output.status.success(), "(check-jsonschema is installed by scripts/test.sh)\n{}", report(&output));

    // The schema catches a broken file: a condition Compose does not know.
    let broken = tempfile::NamedTempFile::with_suffix(".yml").unwrap();
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    let text = text.replace("condition: service_completed_successfully", "condition: service_done");
    std::fs::write(broken.path(), text).unwrap();
    let output = compose_schema(broken.path());
    assert!(!output.status.success() && report(&output).contains("service_done"), "{}", report(&output));
}

/// `notegraph <args> --help` parses with the built binary: the subcommand
/// and every flag before `--help` exist.
fn assert_parses(args: &[String]) {
    let output = Command::new(env!("CARGO_BIN_EXE_notegraph")).args(args).arg("--help").output().unwrap();
    assert!(output.status.success(), "`notegraph {}` does not parse:\n{}", args.join(" "), report(&output));
}

#[test]
fn the_compose_file_names_only_real_files_services_and_commands() {
    // Act
    let output = python(&["tests/deploy/check.py", "compose", "docker-compose.yml"]);

    // Assert: the paths and services, then the commands it runs.
    assert!(output.status.success(), "{}", report(&output));
    let commands: std::collections::BTreeMap<String, Vec<String>> = serde_json::from_slice(&output.stdout).unwrap();
    assert!(commands.len() >= 3, "{commands:?}");
    for (service, args) in &commands {
        assert!(!args.is_empty(), "{service} runs no command");
        assert_parses(args);
    }
    // The parse check can fail: an unknown flag does not parse.
    let unknown = Command::new(env!("CARGO_BIN_EXE_notegraph")).args(["seed", "--if-emptyy", "--help"]).output();
    assert!(!unknown.unwrap().status.success());
}

/// The JSON array after `keyword` on the Dockerfile line starting with
/// `instruction` (continuation lines joined).
fn exec_form(dockerfile: &str, instruction: &str, keyword: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined.lines().find(|l| l.starts_with(instruction)).unwrap_or_else(|| panic!("no {instruction}"));
    let array = line.split_once(keyword).unwrap_or_else(|| panic!("{instruction} has no {keyword}")).1.trim();
    serde_json::from_str(array).unwrap_or_else(|e| panic!("{instruction} is not in exec form ({e}): {array}"))
}

#[test]
fn the_dockerfile_runs_the_binary_it_copies_with_real_subcommands() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    let copied = dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY --from=builder"))
        .map(|l| l.split_whitespace().last().unwrap().to_owned())
        .collect::<Vec<_>>();
    let healthcheck = exec_form(&dockerfile, "HEALTHCHECK", "CMD");
    let entrypoint = exec_form(&dockerfile, "ENTRYPOINT", "ENTRYPOINT");
    let command = exec_form(&dockerfile, "CMD", "CMD");

    assert_eq!(copied, [entrypoint[0].clone()], "the image's one binary is its entrypoint");
    assert_eq!(healthcheck[0], entrypoint[0]);
    assert_eq!(healthcheck[1], "healthcheck");
    assert_parses(&healthcheck[1..]);
    assert_parses(&command);
    assert!(dockerfile.contains("FROM gcr.io/distroless/cc-debian12:nonroot"), "runtime image");
    assert!(dockerfile.contains("USER nonroot"), "non-root user");
    let exposed = dockerfile.lines().find_map(|l| l.strip_prefix("EXPOSE ")).unwrap();
    assert!(dockerfile.contains(&format!("NOTEGRAPH_LISTEN=0.0.0.0:{exposed}")), "listens on the exposed port");
}

#[test]
fn the_docker_build_context_keeps_everything_the_release_build_reads() {
    // What `cargo build --release -p api` reads: the workspace manifests,
    // every member, the migrations sqlx embeds and GraphiQL's assets.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let members = manifest.split_once("members = [").unwrap().1.split_once(']').unwrap().0;
    let mut needed: Vec<String> = members.split(',').map(|m| m.trim().trim_matches('"').to_owned()).collect();
    needed.extend(["Cargo.toml", "Cargo.lock", "migrations", "crates/api/assets"].map(str::to_owned));
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> =
        ignore.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!')).collect();

    for path in &needed {
        assert!(root().join(path).exists(), "{path}");
        for pattern in &patterns {
            // A pattern ignores `path` when it names it or one of its parents
            // (`**/x` anywhere, `x` from the root).
            let ignored = match pattern.strip_prefix("**/") {
                Some(name) => path.split('/').any(|part| part == name),
                None => path == pattern || path.starts_with(&format!("{pattern}/")),
            };
            assert!(!ignored, ".dockerignore's `{pattern}` leaves {path} out of the build context");
        }
    }
    for kept_out in ["target", ".notegraph", ".git"] {
        assert!(patterns.contains(&kept_out), ".dockerignore does not leave out {kept_out}");
    }
}
