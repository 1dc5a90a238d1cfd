//! Throw-away certificate authorities and HTTPS peers for the TLS tests:
//! a CA made afresh by each test (rcgen), the certificates it issues for
//! servers and clients written as PEM files, and a real HTTPS server
//! (rustls, HTTP/1.1 and HTTP/2) in front of any axum router.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A certificate authority that exists only for one test.
pub(crate) struct Authority {
    cert: Certificate,
    key: KeyPair,
}

/// A certificate and its private key, as PEM.
pub(crate) struct Issued {
    /// The certificate, PEM.
    pub(crate) cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub(crate) key_pem: String,
}

impl Authority {
    /// A new CA whose subject is `name`.
    pub(crate) fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    /// The CA's certificate, PEM: what a client trusts.
    pub(crate) fn cert_pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub(crate) fn server(&self, names: &[&str]) -> Issued {
        let mut params = CertificateParams::new(names.iter().map(|name| name.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("server"));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate whose common name is `user` (what Postgres and
    /// pgbouncer match against the user name).
    pub(crate) fn client(&self, user: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    /// Writes the CA's certificate to `dir/name` and returns its path.
    pub(crate) fn write_cert(&self, dir: &Path, name: &str) -> PathBuf {
        write(dir, name, &self.cert_pem())
    }
}

impl Issued {
    /// Writes the certificate and key to `dir/{stem}.crt` and
    /// `dir/{stem}.key` (mode 0600, as libpq demands of a key) and returns
    /// both paths.
    pub(crate) fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = write(dir, &format!("{stem}.crt"), &self.cert_pem);
        let key = write(dir, &format!("{stem}.key"), &self.key_pem);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        (cert, key)
    }

    /// A rustls server configuration that presents this certificate and
    /// offers HTTP/2 and HTTP/1.1 by ALPN.
    pub(crate) fn rustls_server(&self) -> rustls::ServerConfig {
        let certs = CertificateDer::pem_slice_iter(self.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap();
        // The process's provider: ring, the one rustls is built with here.
        let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config
    }
}

fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Serves `router` over HTTPS with `identity` on a random loopback port
/// until the test's runtime ends, and returns the address.
pub(crate) async fn serve_https(router: axum::Router, identity: &Issued) -> SocketAddr {
    let acceptor = TlsAcceptor::from(Arc::new(identity.rustls_server()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            let service = TowerToHyperService::new(router.clone());
            tokio::spawn(async move {
                // A client that refuses our certificate ends its handshake
                // here: that is what some tests are about.
                let Ok(stream) = acceptor.accept(stream).await else { return };
                let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    address
}
