//! The cluster on disk and the settings we own: initdb once (into a staging
//! directory renamed into place), the generated password, the settings file
//! rewritten on every start (`postgresql.conf` includes it), and a loopback
//! port that stays the same across runs while it is free.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::account::{ServerUser, give_to};
use crate::command::{run, server_command};
use crate::error::{Result, io_err};
use crate::files::{read, remove_dir_if_exists};

/// The cluster's directory, relative to `<data dir>/postgres`.
pub(crate) const DATA: &str = "data";
/// The file in the cluster holding the settings we own; rewritten on every start.
pub(crate) const SETTINGS: &str = "notegraph.conf";

/// Runs initdb if there is no cluster yet, again into a staging directory; returns the password.
pub(crate) fn init_cluster(root: &Path, user: Option<&ServerUser>) -> Result<String> {
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

/// The contents of [`SETTINGS`] for a server on `port` with its socket in `socket`.
pub(crate) fn settings_text(port: u16, socket: &Path) -> String {
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
pub(crate) fn choose_port(path: &Path) -> Result<u16> {
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;
    use crate::files::scratch;

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
    fn quotes_the_socket_directory() {
        let text = settings_text(5432, Path::new("/tmp/it's"));
        assert!(text.contains("unix_socket_directories = '/tmp/it''s'"));
        assert!(text.contains("port = 5432"));
    }
}
