//! The server's own HTTPS (optional: `NOTEGRAPH_TLS_CERT_FILE` and
//! `NOTEGRAPH_TLS_KEY_FILE`): rustls with ring, TLS 1.2 and 1.3, HTTP/2 and
//! HTTP/1.1 offered by ALPN.
//!
//! The certificate is chosen per handshake by [`Certificates`], which holds
//! the current pair behind a lock read once per handshake, so a renewed
//! pair is served to the next connection while open ones (an SSE stream, a
//! WebSocket) keep theirs. The pair is read again on SIGHUP and whenever
//! either file's modification time or size changes (checked every
//! `NOTEGRAPH_TLS_RELOAD_INTERVAL_SECS`); a pair that does not load (half
//! written, a key of another certificate) is logged and the one in use
//! kept.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The certificate and key files, as configured.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The certificate presented to each new connection; swapped on reload.
#[derive(Debug)]
struct Certificates {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The server's TLS: what accepts connections, and what reloads the pair.
#[derive(Clone)]
pub struct ServerTls {
    acceptor: TlsAcceptor,
    certificates: Arc<Certificates>,
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
}

impl ServerTls {
    /// Loads the pair (a one-line error naming the files and their
    /// variables when it does not load) and builds the TLS settings.
    pub fn new(files: TlsFiles) -> Result<Self, String> {
        // The process's provider: ring, the only one rustls is built with
        // in this workspace (no C toolchain for aws-lc).
        let builder = rustls::ServerConfig::builder();
        let provider = builder.crypto_provider().clone();
        let certified = load(&files, &provider)?;
        let certificates = Arc::new(Certificates { current: RwLock::new(Arc::new(certified)) });
        let mut config = builder.with_no_client_auth().with_cert_resolver(certificates.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(ServerTls { acceptor: TlsAcceptor::from(Arc::new(config)), certificates, files, provider })
    }

    /// What performs each connection's handshake.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Reads the pair again and serves it to new connections; on failure
    /// keeps the one in use. `why` says what asked (for the log).
    pub fn reload(&self, why: &str) -> bool {
        match load(&self.files, &self.provider) {
            Ok(certified) => {
                *self.certificates.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
                tracing::info!(trigger = why, cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(err) => {
                tracing::warn!(
                    trigger = why,
                    error.message = %err,
                    "the renewed TLS certificate did not load; still serving the previous one"
                );
                false
            }
        }
    }

    /// Reloads on SIGHUP and, every `interval` (never when zero), when
    /// either file changed, until `stop` changes or is dropped. The SIGHUP
    /// handler is in place when this returns, so a SIGHUP sent once the
    /// server is up never ends the process.
    pub fn watch(&self, interval: Duration, mut stop: watch::Receiver<bool>) -> impl Future<Output = ()> + use<> {
        let tls = self.clone();
        let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
        if let Err(err) = &hangup {
            tracing::warn!(error.message = %err, "no SIGHUP handler: the TLS certificate reloads on file changes only");
        }
        let mut hangup = hangup.ok();
        async move {
            let mut seen = stamp(&tls.files);
            let mut ticks = (!interval.is_zero()).then(|| {
                let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            });
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    Some(()) = hangup_received(&mut hangup) => {
                        seen = stamp(&tls.files);
                        tls.reload("SIGHUP");
                    }
                    _ = tick(&mut ticks) => {
                        let now = stamp(&tls.files);
                        // Only a change is worth a read, and a pair that
                        // failed is not retried until it changes again.
                        if now != seen {
                            seen = now;
                            tls.reload("files changed");
                        }
                    }
                }
            }
        }
    }
}

/// Completes on the next SIGHUP; never without a handler.
async fn hangup_received(hangup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

/// Completes on the next tick; never without polling.
async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What tells a renewed file: modification time and size of both.
type Stamp = [Option<(SystemTime, u64)>; 2];

fn stamp(files: &TlsFiles) -> Stamp {
    let of =
        |path: &Path| std::fs::metadata(path).ok().map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    [of(&files.cert), of(&files.key)]
}

/// Reads and checks the pair: certificates and a key in PEM, the key the
/// first certificate's.
fn load(files: &TlsFiles, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
    let (cert_path, key_path) = (files.cert.display(), files.key.display());
    let cert_pem = std::fs::read(&files.cert)
        .map_err(|err| format!("cannot read {cert_path} (NOTEGRAPH_TLS_CERT_FILE): {err}"))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("{cert_path} (NOTEGRAPH_TLS_CERT_FILE) is not PEM: {err}"))?;
    if chain.is_empty() {
        return Err(format!("no PEM certificate in {cert_path} (NOTEGRAPH_TLS_CERT_FILE)"));
    }
    let key_pem =
        std::fs::read(&files.key).map_err(|err| format!("cannot read {key_path} (NOTEGRAPH_TLS_KEY_FILE): {err}"))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| format!("no PEM private key in {key_path} (NOTEGRAPH_TLS_KEY_FILE)"))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|err| format!("the private key in {key_path} (NOTEGRAPH_TLS_KEY_FILE) is not usable: {err}"))?;
    let certified = CertifiedKey::new(chain, key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(format!(
            "the certificate in {cert_path} (NOTEGRAPH_TLS_CERT_FILE) does not match the private key in {key_path} \
             (NOTEGRAPH_TLS_KEY_FILE)"
        )),
        Err(err) => Err(format!("the certificate in {cert_path} (NOTEGRAPH_TLS_CERT_FILE) is not usable: {err}")),
    }
}
