//! A streaming standby of a running Postgres, made from the embedded
//! installation's own binaries: `pg_basebackup -R` (which writes the
//! standby's connection to the primary), then `pg_ctl start` on a port of
//! its own. The read-replica tests read through one; it needs nothing the
//! embedded default does not already install.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::account::{ServerUser, give_to, server_user};
use crate::cluster::{SETTINGS, choose_port, settings_text};
use crate::command::{log_tail, run, server_command};
use crate::error::{EmbeddedError, Result, io_err};
use crate::files::remove_dir_if_exists;
use crate::install;

/// A running standby, stopped (and its files removed) on drop.
pub struct Standby {
    root: PathBuf,
    /// The standby's directory under `root`, relative (commands run there).
    dir: String,
    user: Option<ServerUser>,
    url: String,
}

impl Standby {
    /// Copies the primary at `primary_url` (which must allow replication
    /// connections from this host, as the embedded server does) into a
    /// fresh `<data dir>/postgres/standby-<name>` and starts it as a hot
    /// standby; `database` is the database its URL names. Keep `name`
    /// short: the socket's path must fit in 107 bytes.
    pub fn start(data_dir: &Path, primary_url: &str, name: &str, database: &str) -> Result<Self> {
        let root = data_dir.join("postgres");
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        let root = fs::canonicalize(&root).map_err(io_err("resolve", &root))?;
        install::install(&root)?;
        let user = server_user()?;
        let dir = format!("standby-{name}");
        let path = root.join(&dir);
        remove_dir_if_exists(&path)?;
        // Created here and handed over: the server user may not write in `root`.
        fs::create_dir(&path).map_err(io_err("create", &path))?;
        // Postgres refuses a data directory others may read.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err("restrict", &path))?;
        give_to(&path, user.as_ref())?;
        // The standby's socket directory and log live beside its data.
        let (socket, log, port_file) =
            (root.join(format!("{dir}.socket")), root.join(format!("{dir}.log")), root.join(format!("{dir}.port")));
        remove_dir_if_exists(&socket)?;
        fs::create_dir_all(&socket).map_err(io_err("create", &socket))?;
        give_to(&socket, user.as_ref())?;
        let args = ["-D", &dir, "-d", primary_url, "-R", "-X", "stream", "-c", "fast", "--no-sync"];
        run(
            &mut server_command(&root, user.as_ref(), "pg_basebackup", &args),
            "copy the primary with pg_basebackup",
            None,
        )?;
        let port = choose_port(&port_file)?;
        let settings = path.join(SETTINGS);
        fs::write(&settings, settings_text(port, &socket)).map_err(io_err("write", &settings))?;
        give_to(&settings, user.as_ref())?;
        fs::File::create(&log).map_err(io_err("create", &log))?;
        give_to(&log, user.as_ref())?;
        let log_name = format!("{dir}.log");
        let args = ["-D", &dir, "-l", &log_name, "-w", "-t", "60", "start"];
        run(&mut server_command(&root, user.as_ref(), "pg_ctl", &args), "start the standby with pg_ctl", Some(&log))?;
        let url = standby_url(primary_url, port, database).ok_or_else(|| {
            EmbeddedError::Failed("read the primary's URL", "expected postgres://user:password@host:port/db".into())
        })?;
        Ok(Standby { root, dir, user, url })
    }

    /// The standby's connection URL (read-only).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        let args = ["-D", self.dir.as_str(), "-m", "immediate", "-w", "-t", "60", "stop"];
        let stopped =
            run(&mut server_command(&self.root, self.user.as_ref(), "pg_ctl", &args), "stop the standby", None);
        if let Err(err) = stopped {
            tracing::warn!(error = %err, log = log_tail(&self.root.join(format!("{}.log", self.dir))), "could not stop the standby");
        }
        let _ = remove_dir_if_exists(&self.root.join(&self.dir));
        let _ = remove_dir_if_exists(&self.root.join(format!("{}.socket", self.dir)));
    }
}

/// The primary's URL with the standby's port and `database`.
fn standby_url(primary_url: &str, port: u16, database: &str) -> Option<String> {
    let (authority, _) = primary_url.strip_prefix("postgres://")?.split_once('/')?;
    let (credentials, host_port) = authority.rsplit_once('@')?;
    let (host, _) = host_port.rsplit_once(':')?;
    Some(format!("postgres://{credentials}@{host}:{port}/{database}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standby_url_keeps_credentials_and_host_and_takes_its_port() {
        let url = standby_url("postgres://postgres:secret@127.0.0.1:5432/notegraph?sslmode=disable", 6000, "test_1");
        assert_eq!(url.as_deref(), Some("postgres://postgres:secret@127.0.0.1:6000/test_1"));
        assert_eq!(standby_url("mysql://x", 1, "d"), None);
    }
}
