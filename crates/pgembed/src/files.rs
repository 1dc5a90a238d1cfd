//! File steps shared by the launcher's parts, each failing with the path it
//! was working on.

use std::fs;
use std::io;
use std::path::Path;

use crate::error::{Result, io_err};

/// Reads a whole text file.
pub(crate) fn read(path: impl AsRef<Path>) -> Result<String> {
    fs::read_to_string(path.as_ref()).map_err(io_err("read", path.as_ref()))
}

/// Removes a directory and its contents; a missing one is not an error.
pub(crate) fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(err)),
        _ => Ok(()),
    }
}

/// A fresh directory of the system's temporary directory, unique to this
/// test process and `name`; the test removes it when done.
#[cfg(test)]
pub(crate) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("notegraph-embedded-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}
