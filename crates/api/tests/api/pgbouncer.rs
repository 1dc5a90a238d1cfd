//! PgBouncer as the real TLS server of the TLS-to-Postgres tests: the
//! embedded Postgres is built without SSL, so Debian's `pgbouncer` stands
//! in front of it (or of a standby) and does the TLS, as a managed
//! Postgres or its pooler does. It refuses plaintext
//! (`client_tls_sslmode=require`), so whatever reaches the database
//! through it went over TLS; with a client authority it demands client
//! certificates and logs users in by them (`auth_type=cert`).
//!
//! The embedded Postgres authenticates TCP clients by password
//! (`scram-sha-256`, crates/pgembed's initdb): PgBouncer's `auth_file`
//! holds the same user and password in plain text, with which it checks
//! its clients' SCRAM and logs in to the server. It keeps the server
//! connection for the whole client session (`pool_mode=session`), so
//! `LISTEN` works through it. It does not forward the `options` startup
//! parameter (the per-session settings of `db::Settings`), so it is told
//! to ignore it; nothing these tests run needs them.
//!
//! `pgbouncer` comes from Debian's package of that name. Without it the
//! tests that need it skip, unless `NOTEGRAPH_REQUIRE_PGBOUNCER` is set (as
//! `.ci/run` does).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set by `.ci/run`: there, a missing pgbouncer fails.
const REQUIRED: &str = "NOTEGRAPH_REQUIRE_PGBOUNCER";

/// The `pgbouncer` program, or `None` after saying why `test` is skipped.
pub(crate) fn program(test: &str) -> Option<PathBuf> {
    crate::helpers::packaged_program("pgbouncer", REQUIRED, test)
}

/// The server's TLS: its certificate and key, and the authority whose
/// client certificates it demands (none: it asks for no certificate, and
/// clients log in by password).
pub(crate) struct ServerTls {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client_ca: Option<PathBuf>,
}

/// The Postgres behind: the embedded server of the suite's `DATABASE_URL`
/// (its user, password and host), on `port`.
pub(crate) struct Upstream {
    /// The name clients connect to.
    pub(crate) alias: String,
    pub(crate) port: u16,
    /// The database there.
    pub(crate) database: String,
}

/// A running PgBouncer; killed when dropped.
pub(crate) struct PgBouncer {
    child: Child,
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    user: String,
    password: String,
}

/// The suite's Postgres: user, password, host and port of `DATABASE_URL`.
pub(crate) fn suite_postgres() -> (String, String, String, u16) {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (scripts/test.sh sets it)");
    let url = reqwest::Url::parse(&url).expect("DATABASE_URL is a URL");
    let password = url.password().expect("DATABASE_URL has a password");
    (url.username().to_owned(), password.to_owned(), url.host_str().unwrap().to_owned(), url.port().unwrap_or(5432))
}

impl PgBouncer {
    /// Starts `pgbouncer` (the path [`program`] found) on a free loopback
    /// port in front of `upstreams`, with `tls`, and waits until it accepts.
    pub(crate) fn start(program: &Path, upstreams: &[Upstream], tls: &ServerTls) -> PgBouncer {
        let (user, password, host, _) = suite_postgres();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut ini = String::from("[databases]\n");
        for upstream in upstreams {
            let Upstream { alias, port, database } = upstream;
            writeln!(ini, "{alias} = host={host} port={port} dbname={database}").unwrap();
        }
        let file = |name: &str| dir.path().join(name).display().to_string();
        let auth = match tls.client_ca {
            Some(_) => "cert",
            None => "scram-sha-256",
        };
        writeln!(
            ini,
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\npidfile =\n\
             logfile = {log}\nlog_connections = 1\nauth_type = {auth}\nauth_file = {users}\npool_mode = session\n\
             max_client_conn = 200\ndefault_pool_size = 50\n\
             ignore_startup_parameters = extra_float_digits, options\nserver_tls_sslmode = disable\n\
             client_tls_sslmode = {mode}\nclient_tls_cert_file = {cert}\nclient_tls_key_file = {key}",
            log = file("pgbouncer.log"),
            users = file("users.txt"),
            mode = if tls.client_ca.is_some() { "verify-full" } else { "require" },
            cert = copy(&tls.cert, dir.path(), "server.crt"),
            key = copy(&tls.key, dir.path(), "server.key"),
        )
        .unwrap();
        if let Some(ca) = &tls.client_ca {
            writeln!(ini, "client_tls_ca_file = {}", copy(ca, dir.path(), "client-ca.crt")).unwrap();
        }
        std::fs::write(dir.path().join("pgbouncer.ini"), ini).unwrap();
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"{password}\"\n")).unwrap();
        let mut command = Command::new(program);
        // PgBouncer refuses to run as root: then it runs as the account the
        // embedded Postgres runs as, which must own what it reads.
        if let Some((name, uid, gid)) = unprivileged_account() {
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                std::os::unix::fs::chown(entry.unwrap().path(), Some(uid), Some(gid)).unwrap();
            }
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).unwrap();
            command.args(["-u", &name]);
        }
        let output = std::fs::File::create(dir.path().join("output")).unwrap();
        let child = command
            .arg(dir.path().join("pgbouncer.ini"))
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .expect("start pgbouncer");
        let mut bouncer = PgBouncer { child, dir, port, user, password };
        bouncer.wait_until_accepting();
        bouncer
    }

    fn wait_until_accepting(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("pgbouncer exited ({status}):\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "pgbouncer did not accept within 10 s:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A URL for database `alias` through this PgBouncer, on `host` (which
    /// must reach 127.0.0.1), with the suite's user and password and
    /// `query` (`sslmode=…&…`, or empty).
    pub(crate) fn url(&self, host: &str, alias: &str, query: &str) -> String {
        let query = if query.is_empty() { String::new() } else { format!("?{query}") };
        format!("postgres://{}:{}@{host}:{}/{alias}{query}", self.user, self.password, self.port)
    }

    /// What it has logged (and printed) so far.
    pub(crate) fn log(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("pgbouncer.log"), read("output"))
    }

    /// Its clients' logins so far: one line each, naming the database and
    /// the TLS version (`tls=TLSv1.3/…`, or `tls=no`).
    pub(crate) fn logins(&self) -> Vec<String> {
        self.log().lines().filter(|line| line.contains("login attempt:")).map(str::to_owned).collect()
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies `from` into `dir` (where the account PgBouncer runs as may read
/// it) and returns the new path.
fn copy(from: &Path, dir: &Path, name: &str) -> String {
    let to = dir.join(name);
    std::fs::copy(from, &to).unwrap();
    to.display().to_string()
}

/// Under root, the account to run PgBouncer as: `postgres`, else `nobody`
/// (as crates/pgembed picks for the embedded server).
fn unprivileged_account() -> Option<(String, u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status.lines().find_map(|line| line.strip_prefix("Uid:"))?.split_whitespace().nth(1)?;
    if uid != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    ["postgres", "nobody"].iter().find_map(|name| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(name))
                .then(|| Some(((*name).to_owned(), fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?)))?
        })
    })
}
