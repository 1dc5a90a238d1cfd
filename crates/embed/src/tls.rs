//! The trust store of the HTTP provider's connections, and what a failed
//! certificate check is called.
//!
//! The platform's certificate authorities are always trusted. The standard
//! `SSL_CERT_FILE` (a PEM bundle) and `SSL_CERT_DIR` (`:`-separated
//! directories of PEM files) *add* authorities to them, for a provider
//! behind a private CA. (rustls-native-certs, which reqwest would use,
//! reads those variables *instead of* the platform's store: a deployment
//! that adds its CA would lose every public one.) A file or directory that
//! those variables name but that holds no certificate is a start-up error,
//! not a provider that fails on every call.

use std::path::{Path, PathBuf};

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// Where Linux distributions keep their bundle of trusted authorities, as
/// OpenSSL and Go probe them, in that order; the first that exists is read.
/// Only consulted when `SSL_CERT_FILE` or `SSL_CERT_DIR` is set (otherwise
/// rustls-native-certs finds the platform's store itself), since then that
/// crate would read only the variables.
const PLATFORM_BUNDLES: [&str; 6] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Why the trust store could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// `SSL_CERT_FILE` or `SSL_CERT_DIR` names something unreadable or
    /// without a certificate.
    #[error("{variable}={path}: {reason}")]
    Extra {
        /// The variable.
        variable: &'static str,
        /// What it names.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No authority at all: nothing could verify a provider.
    #[error("no trusted certificate authority found (the platform's store is empty; set SSL_CERT_FILE)")]
    Empty,
}

/// The authorities the provider's certificate may chain to, read from the
/// environment (`SSL_CERT_FILE`, `SSL_CERT_DIR`) and the platform.
pub(crate) fn roots() -> Result<RootCertStore, TrustError> {
    let file = std::env::var_os("SSL_CERT_FILE").filter(|v| !v.is_empty()).map(PathBuf::from);
    let dirs: Vec<PathBuf> = std::env::var_os("SSL_CERT_DIR")
        .map(|dirs| std::env::split_paths(&dirs).filter(|dir| !dir.as_os_str().is_empty()).collect())
        .unwrap_or_default();
    roots_from(file.as_deref(), &dirs)
}

/// [`roots`] with the variables' values given: the platform's store plus
/// every certificate in `file` and in the files of `dirs`.
pub(crate) fn roots_from(file: Option<&Path>, dirs: &[PathBuf]) -> Result<RootCertStore, TrustError> {
    let mut store = RootCertStore::empty();
    // The platform's store may hold certificates that webpki cannot parse
    // (old roots without extensions): skipped, as every TLS client does.
    let platform = if file.is_none() && dirs.is_empty() {
        rustls_native_certs::load_native_certs().certs
    } else {
        PLATFORM_BUNDLES
            .iter()
            .map(Path::new)
            .find(|path| path.is_file())
            .map(|bundle| rustls_native_certs::load_certs_from_paths(Some(bundle), None).certs)
            .unwrap_or_default()
    };
    store.add_parsable_certificates(platform);
    if let Some(file) = file {
        let certs = read_bundle(file).map_err(|reason| extra("SSL_CERT_FILE", file, reason))?;
        add_all(&mut store, certs).map_err(|reason| extra("SSL_CERT_FILE", file, reason))?;
    }
    for dir in dirs {
        let loaded = rustls_native_certs::load_certs_from_paths(None, Some(dir));
        if let Some(error) = loaded.errors.first() {
            return Err(extra("SSL_CERT_DIR", dir, error.to_string()));
        }
        if loaded.certs.is_empty() {
            return Err(extra("SSL_CERT_DIR", dir, "no PEM certificate in its files".to_owned()));
        }
        store.add_parsable_certificates(loaded.certs);
    }
    if store.is_empty() {
        return Err(TrustError::Empty);
    }
    Ok(store)
}

fn extra(variable: &'static str, path: &Path, reason: String) -> TrustError {
    TrustError::Extra { variable, path: path.display().to_string(), reason }
}

/// Every certificate in a PEM file; none at all is an error (a file of
/// another format, or the wrong file).
fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|err| err.to_string())?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("not a PEM bundle ({err})"))?;
    match certs.is_empty() {
        true => Err("no PEM certificate in it".to_owned()),
        false => Ok(certs),
    }
}

/// Adds certificates someone chose to trust: one that does not parse is an
/// error, not skipped as the platform's are.
fn add_all(store: &mut RootCertStore, certs: Vec<CertificateDer<'static>>) -> Result<(), String> {
    for cert in certs {
        store.add(cert).map_err(|err| format!("a certificate in it is not usable as an authority ({err})"))?;
    }
    Ok(())
}

/// The TLS settings of the provider's client: [`roots`], TLS 1.2 and 1.3
/// through rustls and ring, HTTP/1.1 (the client speaks nothing else).
pub(crate) fn client_config() -> Result<rustls::ClientConfig, TrustError> {
    let roots = roots()?;
    // The process's provider: ring, the only one rustls is built with in
    // this workspace (no C toolchain for aws-lc).
    Ok(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth())
}

/// When the provider's certificate did not verify: why, in words, found
/// anywhere in the error's chain of causes (reqwest wraps hyper's error,
/// which wraps the `io::Error` that carries rustls's).
pub(crate) fn certificate_failure(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(reason) = error.downcast_ref::<rustls::Error>().and_then(describe) {
            return Some(reason);
        }
        // `io::Error::source` skips the error it wraps (which may be
        // another `io::Error`, as hyper-rustls wraps tokio-rustls's): look
        // inside.
        if let Some(inner) = error.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && let Some(reason) = certificate_failure(inner)
        {
            return Some(reason);
        }
        next = error.source();
    }
    None
}

/// A certificate error in words; `None` for TLS failures of another kind.
fn describe(error: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as E;
    let rustls::Error::InvalidCertificate(error) = error else { return None };
    Some(match error {
        E::UnknownIssuer => "signed by an unknown authority".to_owned(),
        E::Expired | E::ExpiredContext { .. } => "it has expired".to_owned(),
        E::NotValidYet | E::NotValidYetContext { .. } => "it is not valid yet".to_owned(),
        E::NotValidForName | E::NotValidForNameContext { .. } => "it is not valid for the host name".to_owned(),
        E::Revoked => "it was revoked".to_owned(),
        E::BadSignature => "its signature is not valid".to_owned(),
        E::BadEncoding => "it is not a well-formed certificate".to_owned(),
        other => format!("{other:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_are_found_inside_io_errors() {
        let rustls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls);
        assert_eq!(certificate_failure(&io).as_deref(), Some("signed by an unknown authority"));
        let wrapped = std::io::Error::other(io);
        assert_eq!(certificate_failure(&wrapped).as_deref(), Some("signed by an unknown authority"));
        let other = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(certificate_failure(&other), None);
    }

    #[test]
    fn ssl_cert_file_adds_to_the_platforms_roots() {
        // One authority of the platform's bundle, as a private CA's file
        // would hold one; skipped on a machine without a bundle.
        let Some(bundle) = PLATFORM_BUNDLES.iter().map(Path::new).find(|path| path.is_file()) else { return };
        let mut platform = RootCertStore::empty();
        platform.add_parsable_certificates(rustls_native_certs::load_certs_from_paths(Some(bundle), None).certs);
        let platform = platform.len();
        let Some(one) = std::fs::read_to_string(bundle).ok().and_then(|pem| {
            let end = pem.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
            Some(pem[pem.find("-----BEGIN CERTIFICATE-----")?..end].to_owned())
        }) else {
            return;
        };
        let dir = std::env::temp_dir().join(format!("embed-tls-add-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let file = dir.join("one.pem");
        std::fs::write(&file, format!("{one}\n")).unwrap_or_default();

        let with_file = roots_from(Some(&file), &[]).map(|store| store.len()).unwrap_or_default();

        assert!(platform > 1, "the platform's store was read");
        assert_eq!(with_file, platform + 1, "the file's authority is added to the platform's, which stay");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_named_file_without_certificates_is_refused() {
        let dir = std::env::temp_dir().join(format!("embed-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap_or_default();
        let error = roots_from(Some(&empty), &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.starts_with("SSL_CERT_FILE=") && error.contains("no PEM certificate"), "{error}");
        let missing = roots_from(Some(&dir.join("missing.pem")), &[]).err().map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("SSL_CERT_FILE=")));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
