//! Who the server runs as. initdb and pg_ctl refuse to run as root, so
//! under root they run as an unprivileged account from /etc/passwd
//! (`postgres`, else `nobody`), which must be able to reach the data
//! directory and own the files the server writes. Not root: no account,
//! and everything runs as us.

use std::fs;
use std::os::unix::fs::{MetadataExt, chown};
use std::path::Path;

use crate::error::{EmbeddedError, Result, io_err};
use crate::files::read;

/// The unprivileged account initdb and the server run as when we are root.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ServerUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// The account to run the server as: `None` when we are not root.
pub(crate) fn server_user() -> Result<Option<ServerUser>> {
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
pub(crate) fn check_reachable(path: &Path, user: &ServerUser) -> Result<()> {
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

/// Hands `path` to the server user, when there is one.
pub(crate) fn give_to(path: &Path, user: Option<&ServerUser>) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    chown(path, Some(user.uid), Some(user.gid)).map_err(io_err("change the owner of", path))
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
