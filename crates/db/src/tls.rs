//! TLS to Postgres as libpq users write it: `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey` in the URL (or `PGSSLMODE`, `PGSSLROOTCERT`,
//! `PGSSLCERT`, `PGSSLKEY`), which sqlx's rustls backend reads. Where sqlx
//! 0.8 reads them differently from libpq, the options are corrected here
//! before sqlx sees them, and the files they name are read once up front,
//! so that a missing or unreadable one is named rather than reported as a
//! bare "No such file or directory" from inside a handshake.
//!
//! The corrections (docs/DEPLOY.md, "TLS to Postgres", has the whole table):
//! - `sslrootcert=system` (libpq 16) trusts the platform's authorities and
//!   implies `verify-full`; sqlx would read a file named `system`.
//! - `sslmode=require` with `sslrootcert` verifies the chain, as libpq does
//!   when a root certificate is given; sqlx would verify nothing.
//! - `sslmode=verify-ca` without `sslrootcert` is refused, as libpq refuses
//!   it (its default `~/.postgresql/root.crt` is not read here): against the
//!   platform's authorities, a check that ignores the host name would pass
//!   anybody's publicly issued certificate.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Where a certificate or key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// A PEM file.
    File(PathBuf),
    /// PEM text in the environment variable itself (sqlx accepts that).
    Inline,
    /// `sslrootcert=system`: the platform's trusted authorities.
    System,
}

/// The TLS settings a URL (and the environment) ask for.
#[derive(Debug, Clone)]
struct Asked {
    /// The mode, as sqlx parsed it (`prefer` when nothing says otherwise).
    mode: PgSslMode,
    /// Whether the URL or `PGSSLMODE` named the mode.
    mode_given: bool,
    root_cert: Option<Source>,
    cert: Option<Source>,
    key: Option<Source>,
}

/// The URL's connect options, with libpq's reading of its TLS parameters
/// (see the module docs). A `Configuration` error says, in plain words,
/// which parameter or file is wrong; no error repeats the URL.
pub(crate) fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    connect_options_with(url, |name| std::env::var(name).ok())
}

fn connect_options_with(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<PgConnectOptions, sqlx::Error> {
    let (base, pairs) = match url.split_once('?') {
        Some((base, query)) => (base, serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()),
        None => (url, Vec::new()),
    };
    let param = |names: &[&str]| pairs.iter().rev().find(|(name, _)| names.contains(&name.as_str())).map(|(_, v)| v);
    let root_names = ["sslrootcert", "ssl-root-cert", "ssl-ca"];
    let system = param(&root_names).is_some_and(|value| value == "system");
    // sqlx would read `system` as a file: it is taken out, and sqlx then
    // trusts the platform's authorities, which is what it means.
    let options: PgConnectOptions = if system {
        let kept: Vec<&(String, String)> =
            pairs.iter().filter(|(name, _)| !root_names.contains(&name.as_str())).collect();
        let query = serde_urlencoded::to_string(kept).map_err(|err| sqlx::Error::Configuration(err.into()))?;
        if query.is_empty() { base.parse()? } else { format!("{base}?{query}").parse()? }
    } else {
        url.parse()?
    };
    let from_env = |name: &str| {
        env(name).filter(|value| !value.is_empty()).map(|value| match value.trim_start().starts_with("-----BEGIN") {
            true => Source::Inline,
            false if value == "system" => Source::System,
            false => Source::File(PathBuf::from(value)),
        })
    };
    let from_url = |names: &[&str]| {
        param(names).map(|value| if value == "system" { Source::System } else { Source::File(PathBuf::from(value)) })
    };
    let url_root = from_url(&root_names);
    // sqlx reads the variable as a file name, and only the URL's own
    // `sslrootcert` file replaces it.
    if from_env("PGSSLROOTCERT") == Some(Source::System) && !matches!(url_root, Some(Source::File(_))) {
        return Err(sqlx::Error::Configuration(
            "PGSSLROOTCERT=system is not supported: unset it and write sslrootcert=system in the URL".into(),
        ));
    }
    let asked = Asked {
        mode: options.get_ssl_mode(),
        mode_given: param(&["sslmode", "ssl-mode"]).is_some() || env("PGSSLMODE").is_some_and(|v| !v.is_empty()),
        root_cert: url_root.or_else(|| from_env("PGSSLROOTCERT")),
        cert: param(&["sslcert", "ssl-cert"]).map(|v| Source::File(PathBuf::from(v))).or_else(|| from_env("PGSSLCERT")),
        key: param(&["sslkey", "ssl-key"]).map(|v| Source::File(PathBuf::from(v))).or_else(|| from_env("PGSSLKEY")),
    };
    let mode = settle(&asked).map_err(|cause| sqlx::Error::Configuration(cause.into()))?;
    check_files(mode, &asked).map_err(|cause| sqlx::Error::Configuration(cause.into()))?;
    Ok(options.ssl_mode(mode))
}

/// The mode libpq would use for what was asked, or why it refuses.
fn settle(asked: &Asked) -> Result<PgSslMode, String> {
    match (&asked.root_cert, asked.mode) {
        (Some(Source::System), PgSslMode::VerifyFull) => Ok(PgSslMode::VerifyFull),
        (Some(Source::System), _) if asked.mode_given => Err(format!(
            "sslrootcert=system needs sslmode=verify-full, not {}: a certificate from any of the platform's \
             authorities must at least be for the host connected to",
            mode_name(asked.mode)
        )),
        (Some(Source::System), _) => Ok(PgSslMode::VerifyFull),
        (None, PgSslMode::VerifyCa) => Err("sslmode=verify-ca needs sslrootcert, the file of the authority that \
                                            signs the server's certificate (or use sslmode=verify-full)"
            .to_owned()),
        // libpq verifies the chain of `require` when given a root certificate.
        (Some(_), PgSslMode::Require) => Ok(PgSslMode::VerifyCa),
        (_, mode) => Ok(mode),
    }
}

/// Reads every file the handshake will need, so that a missing one is
/// named now: the root certificate when the chain is verified, the client
/// certificate and key whenever TLS may be used.
fn check_files(mode: PgSslMode, asked: &Asked) -> Result<(), String> {
    if matches!(mode, PgSslMode::Disable | PgSslMode::Allow) {
        return Ok(());
    }
    if let (PgSslMode::VerifyCa | PgSslMode::VerifyFull, Some(Source::File(path))) = (mode, &asked.root_cert) {
        certificates(path, "the root certificate file", "sslrootcert")?;
    }
    match (&asked.cert, &asked.key) {
        (Some(_), None) => {
            Err("sslcert is set but sslkey is not: a client certificate needs its private key".to_owned())
        }
        (None, Some(_)) => Err("sslkey is set but sslcert is not: a client key needs its certificate".to_owned()),
        (cert, key) => {
            if let Some(Source::File(path)) = cert {
                certificates(path, "the client certificate file", "sslcert")?;
            }
            if let Some(Source::File(path)) = key {
                let pem = read(path, "the client key file", "sslkey")?;
                PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
                    format!(
                        "the client key file {} (sslkey) holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                        path.display()
                    )
                })?;
            }
            Ok(())
        }
    }
}

/// Reads `path` and checks that it holds at least one PEM certificate.
fn certificates(path: &Path, what: &str, parameter: &str) -> Result<(), String> {
    let pem = read(path, what, parameter)?;
    let certificates = CertificateDer::pem_slice_iter(&pem).collect::<Result<Vec<_>, _>>();
    match certificates {
        Ok(certificates) if !certificates.is_empty() => Ok(()),
        _ => Err(format!("{what} {} ({parameter}) holds no PEM certificate", path.display())),
    }
}

fn read(path: &Path, what: &str, parameter: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("{what} {} ({parameter}) cannot be read: {err}", path.display()))
}

/// `sslmode` as a URL spells it.
pub fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    const NO_ENV: fn(&str) -> Option<String> = |_| None;

    /// A self-signed certificate and its key, PEM: the files need to
    /// parse, not to verify.
    fn pair() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["db.example".to_owned()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn file(dir: &Path, name: &str, contents: &str) -> String {
        let path = dir.join(name);
        std::fs::File::create(&path).unwrap().write_all(contents.as_bytes()).unwrap();
        path.display().to_string()
    }

    fn options(url: &str) -> Result<PgConnectOptions, String> {
        connect_options_with(url, NO_ENV).map_err(|err| crate::explain(&err).cause)
    }

    fn refused_with(url: &str, env: impl Fn(&str) -> Option<String>) -> String {
        crate::explain(&connect_options_with(url, env).unwrap_err()).cause
    }

    fn mode(url: &str) -> PgSslMode {
        options(url).unwrap().get_ssl_mode()
    }

    #[test]
    fn the_modes_pass_through_as_written() {
        let base = "postgres://u:p@db.example:5432/app";
        assert!(matches!(mode(base), PgSslMode::Prefer));
        for (name, expected) in [
            ("disable", PgSslMode::Disable),
            ("prefer", PgSslMode::Prefer),
            ("require", PgSslMode::Require),
            ("verify-full", PgSslMode::VerifyFull),
        ] {
            let parsed = mode(&format!("{base}?sslmode={name}"));
            assert_eq!(mode_name(parsed), mode_name(expected), "{name}");
        }
    }

    #[test]
    fn require_with_a_root_certificate_verifies_the_chain_as_libpq_does() {
        let dir = tempfile::tempdir().unwrap();
        let ca = file(dir.path(), "ca.pem", &pair().0);
        let url = format!("postgres://u:p@db.example/app?sslmode=require&sslrootcert={ca}");
        assert!(matches!(mode(&url), PgSslMode::VerifyCa));
    }

    #[test]
    fn verify_ca_without_a_root_certificate_is_refused() {
        let refused = options("postgres://u:secret@db.example/app?sslmode=verify-ca").unwrap_err();
        assert!(refused.contains("sslmode=verify-ca needs sslrootcert"), "{refused}");
        assert!(!refused.contains("secret"), "{refused}");
    }

    #[test]
    fn sslrootcert_system_means_the_platform_roots_and_verify_full() {
        assert!(matches!(mode("postgres://u:p@db.example/app?sslrootcert=system"), PgSslMode::VerifyFull));
        let full = "postgres://u:p@db.example/app?sslmode=verify-full&sslrootcert=system&application_name=x";
        assert!(matches!(mode(full), PgSslMode::VerifyFull));
        let refused = options("postgres://u:p@db.example/app?sslmode=require&sslrootcert=system").unwrap_err();
        assert!(refused.contains("sslrootcert=system needs sslmode=verify-full, not require"), "{refused}");
    }

    #[test]
    fn unreadable_or_empty_files_are_named_with_their_parameter() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem").display().to_string();
        let empty = file(dir.path(), "empty.pem", "not PEM\n");
        let (cert_pem, key_pem) = pair();
        let (cert, key) = (file(dir.path(), "client.crt", &cert_pem), file(dir.path(), "client.key", &key_pem));
        let base = "postgres://u:p@db.example/app?sslmode=verify-full";

        let refused = options(&format!("{base}&sslrootcert={missing}")).unwrap_err();
        assert!(refused.starts_with(&format!("the root certificate file {missing} (sslrootcert) cannot be read")));
        let refused = options(&format!("{base}&sslrootcert={empty}")).unwrap_err();
        assert_eq!(refused, format!("the root certificate file {empty} (sslrootcert) holds no PEM certificate"));
        let refused = options(&format!("{base}&sslcert={missing}&sslkey={key}")).unwrap_err();
        assert!(refused.starts_with(&format!("the client certificate file {missing} (sslcert) cannot be read")));
        let refused = options(&format!("{base}&sslcert={cert}&sslkey={missing}")).unwrap_err();
        assert!(refused.starts_with(&format!("the client key file {missing} (sslkey) cannot be read")));
        let refused = options(&format!("{base}&sslcert={cert}&sslkey={empty}")).unwrap_err();
        assert!(refused.contains("(sslkey) holds no PEM private key"), "{refused}");
        let refused = options(&format!("{base}&sslcert={cert}")).unwrap_err();
        assert!(refused.starts_with("sslcert is set but sslkey is not"), "{refused}");
        assert!(options(&format!("{base}&sslcert={cert}&sslkey={key}")).is_ok());
        // Without TLS nothing is read.
        assert!(options(&format!("postgres://u:p@db.example/app?sslmode=disable&sslcert={missing}")).is_ok());
    }

    #[test]
    fn the_environment_counts_where_the_url_is_silent() {
        let env = |name: &str| (name == "PGSSLMODE").then(|| "require".to_owned());
        let refused = refused_with("postgres://u:p@db.example/app?sslrootcert=system", env);
        assert!(refused.contains("needs sslmode=verify-full, not"), "{refused}");
        let env = |name: &str| (name == "PGSSLROOTCERT").then(|| "system".to_owned());
        let refused = refused_with("postgres://u:p@db.example/app", env);
        assert!(refused.starts_with("PGSSLROOTCERT=system is not supported"), "{refused}");
        let env = |name: &str| (name == "PGSSLKEY").then(|| "/nonexistent/client.key".to_owned());
        let refused = refused_with("postgres://u:p@db.example/app", env);
        assert!(refused.contains("sslkey is set but sslcert is not"), "{refused}");
    }
}
