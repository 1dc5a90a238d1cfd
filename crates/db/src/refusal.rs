//! Why a connection to Postgres could not be made, in an operator's words:
//! the one place where sqlx's and rustls' errors become a cause that names
//! what to check (the authority, the host name, the server's TLS, a
//! client certificate file), and where it is decided whether waiting could
//! help. Start-up prints it after the variable and the server; the logs
//! of a lost connection carry it too.

use rustls::{AlertDescription, CertificateError};

/// A failed connection, explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What went wrong, in plain words; never the URL or a password.
    pub cause: String,
    /// Waiting may help (the server is down, starting or full); a refusal
    /// that is not transient (certificates, TLS, credentials, settings)
    /// stays until the configuration changes.
    pub transient: bool,
}

impl Refusal {
    fn lasting(cause: impl Into<String>) -> Self {
        Refusal { cause: cause.into(), transient: false }
    }

    fn transient(cause: impl Into<String>) -> Self {
        Refusal { cause: cause.into(), transient: true }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.cause)
    }
}

/// Explains why connecting failed with `err`.
pub fn explain(err: &sqlx::Error) -> Refusal {
    if let Some(tls) = rustls_error(err) {
        return explain_tls(tls);
    }
    match err {
        sqlx::Error::Tls(err) if err.to_string() == "server does not support TLS" => Refusal::lasting(
            "the server does not do TLS (it declined the TLS request), and the sslmode demands it; \
             sslmode=prefer falls back to plaintext",
        ),
        sqlx::Error::Tls(err) => Refusal::lasting(format!("TLS failed: {err}")),
        sqlx::Error::Configuration(err) => Refusal::lasting(err.to_string()),
        sqlx::Error::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => {
                Refusal::transient("the connection was refused: is Postgres running and listening there?")
            }
            std::io::ErrorKind::TimedOut => Refusal::transient("the server did not answer (timed out)"),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset => {
                Refusal::transient("the server closed the connection during the handshake")
            }
            _ => Refusal::transient(io.to_string()),
        },
        sqlx::Error::Database(db) => {
            let message = db.message();
            match db.code().as_deref() {
                // too_many_connections, cannot_connect_now: busy or starting.
                Some("53300" | "57P03") => Refusal::transient(format!("the server refused: {message}")),
                // Anything else it says at start-up stays so: a password,
                // a database, a `pg_hba.conf` rule, "SSL required".
                _ => Refusal::lasting(format!("the server refused: {message}")),
            }
        }
        sqlx::Error::PoolTimedOut => Refusal::transient("no connection could be made in time"),
        sqlx::Error::Protocol(message) => {
            Refusal::lasting(format!("the server does not speak the Postgres protocol ({message})"))
        }
        other => Refusal::lasting(other.to_string()),
    }
}

/// The rustls error inside `err`: in an I/O error when the handshake (or a
/// read after it) failed, in a TLS error when the configuration did.
fn rustls_error(err: &sqlx::Error) -> Option<&rustls::Error> {
    match err {
        sqlx::Error::Io(io) => io.get_ref()?.downcast_ref(),
        sqlx::Error::Tls(tls) => tls.downcast_ref(),
        _ => None,
    }
}

fn explain_tls(err: &rustls::Error) -> Refusal {
    let cause = match err {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the server's certificate is not signed by a trusted authority \
                (certificate unknown); sslrootcert must name the authority that signs it"
                .to_owned(),
            CertificateError::NotValidForName => "the host name does not match the server's certificate".to_owned(),
            CertificateError::NotValidForNameContext { expected, presented } => format!(
                "the host name does not match the server's certificate: connected to {}, the certificate is for {}",
                expected.to_str(),
                presented.iter().map(|name| bare(name)).collect::<Vec<_>>().join(", ")
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (is this machine's clock right?)".to_owned()
            }
            CertificateError::Revoked => "the server's certificate has been revoked".to_owned(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "the server's certificate is not one for a server (its extended key usage)".to_owned()
            }
            CertificateError::BadSignature | CertificateError::BadEncoding => {
                "the server's certificate is malformed or badly signed".to_owned()
            }
            other => format!("the server's certificate was refused ({other:?})"),
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate: set sslcert and sslkey".to_owned()
            }
            AlertDescription::UnknownCA => {
                "the server refused the client certificate (sslcert): it is not signed by an authority the server \
                 trusts"
                    .to_owned()
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::AccessDenied => {
                format!("the server refused the client certificate (sslcert): {alert:?}")
            }
            AlertDescription::HandshakeFailure => {
                "the server ended the TLS handshake (handshake failure): it may require a client certificate \
                 (sslcert, sslkey), or share no cipher with this client"
                    .to_owned()
            }
            AlertDescription::ProtocolVersion => {
                "the server offers no TLS version this client accepts (TLS 1.2 or 1.3)".to_owned()
            }
            other => format!("the server ended the TLS handshake ({other:?})"),
        },
        rustls::Error::InconsistentKeys(_) => {
            "the client key (sslkey) does not belong to the client certificate (sslcert)".to_owned()
        }
        rustls::Error::NoCertificatesPresented => "the server presented no certificate".to_owned(),
        rustls::Error::PeerIncompatible(why) => format!("the server's TLS is incompatible with this client ({why:?})"),
        other => format!("TLS failed: {other}"),
    };
    Refusal::lasting(cause)
}

/// A name as rustls presents it (`DnsName("db.internal")`,
/// `IpAddress(10.0.0.5)`), without the wrapping.
fn bare(name: &str) -> &str {
    let inner = ["DnsName(", "IpAddress("].iter().find_map(|prefix| name.strip_prefix(prefix)?.strip_suffix(')'));
    inner.map_or(name, |inner| inner.trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use std::io;

    use rustls::pki_types::ServerName;

    use super::*;

    /// As sqlx reports a handshake that rustls failed.
    fn in_handshake(err: rustls::Error) -> sqlx::Error {
        sqlx::Error::Io(io::Error::new(io::ErrorKind::InvalidData, err))
    }

    fn lasting(err: sqlx::Error) -> String {
        let refusal = explain(&err);
        assert!(!refusal.transient, "{refusal:?}");
        refusal.cause
    }

    #[test]
    fn an_unknown_authority_says_certificate_unknown_and_names_sslrootcert() {
        let cause = lasting(in_handshake(CertificateError::UnknownIssuer.into()));
        assert!(
            cause.starts_with("the server's certificate is not signed by a trusted authority (certificate unknown)")
        );
        assert!(cause.contains("sslrootcert"), "{cause}");
    }

    #[test]
    fn a_host_name_mismatch_names_both_names() {
        let mismatch = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("10.0.0.5").unwrap(),
            presented: vec!["DnsName(\"db.internal\")".to_owned(), "IpAddress(10.0.0.6)".to_owned()],
        };
        let cause = lasting(in_handshake(mismatch.into()));
        assert_eq!(
            cause,
            "the host name does not match the server's certificate: connected to 10.0.0.5, the certificate is for \
             db.internal, 10.0.0.6"
        );
        let cause = lasting(in_handshake(CertificateError::NotValidForName.into()));
        assert_eq!(cause, "the host name does not match the server's certificate");
    }

    #[test]
    fn expired_and_premature_certificates_are_told_apart() {
        assert_eq!(lasting(in_handshake(CertificateError::Expired.into())), "the server's certificate has expired");
        assert!(lasting(in_handshake(CertificateError::NotValidYet.into())).contains("clock"));
    }

    #[test]
    fn a_server_without_tls_is_named() {
        let cause = lasting(sqlx::Error::Tls("server does not support TLS".into()));
        assert!(cause.starts_with("the server does not do TLS"), "{cause}");
    }

    #[test]
    fn client_certificate_refusals_say_which_side_and_what_to_set() {
        let missing = lasting(in_handshake(rustls::Error::AlertReceived(AlertDescription::CertificateRequired)));
        assert_eq!(missing, "the server requires a client certificate: set sslcert and sslkey");
        let unknown = lasting(in_handshake(rustls::Error::AlertReceived(AlertDescription::UnknownCA)));
        assert!(unknown.starts_with("the server refused the client certificate (sslcert)"), "{unknown}");
        let mismatch = rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch);
        let keys = lasting(sqlx::Error::Tls(Box::new(mismatch)));
        assert!(keys.contains("sslkey") && keys.contains("sslcert"), "{keys}");
    }

    #[test]
    fn unreadable_files_and_bad_settings_keep_their_own_words() {
        let cause = "the client key file /k (sslkey) cannot be read: No such file or directory (os error 2)";
        assert_eq!(lasting(sqlx::Error::Configuration(cause.into())), cause);
    }

    #[test]
    fn a_server_that_is_down_or_busy_is_transient_and_credentials_are_not() {
        let refused = explain(&sqlx::Error::Io(io::ErrorKind::ConnectionRefused.into()));
        assert!(refused.transient && refused.cause.contains("connection was refused"), "{refused:?}");
        assert!(explain(&sqlx::Error::PoolTimedOut).transient);
        assert!(explain(&sqlx::Error::Io(io::ErrorKind::TimedOut.into())).transient);
        assert!(!explain(&sqlx::Error::Protocol("unexpected response from SSLRequest: 0x48".into())).transient);
    }
}
