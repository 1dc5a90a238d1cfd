//! Signing keys as an identity provider holds them, for the token tests
//! (these and the unit tests of `src/auth`, which include this file): each
//! signs JWTs and describes itself as a JWK for a JWKS document.
//!
//! EC P-256 and Ed25519 keys are made afresh by rcgen (ring). ring cannot
//! generate RSA keys, so the RSA key is a fixture made once with
//! `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`
//! (`fixtures/jwks-rsa-test-key.pem`): a key for these tests only, which
//! signs nothing else.

#![allow(dead_code)]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The RSA test key, PKCS#8 PEM.
pub(crate) const RSA_PEM: &str = include_str!("fixtures/jwks-rsa-test-key.pem");

/// A private key and its public JWK.
pub(crate) struct SigningKey {
    /// The `kid` its tokens and its JWK carry.
    pub(crate) kid: String,
    /// The algorithm it signs with.
    pub(crate) alg: Algorithm,
    encoding: EncodingKey,
    /// The public key as a JWK (with `kid`, `use` and `alg`).
    pub(crate) jwk: Value,
}

impl SigningKey {
    /// The RSA fixture key, signing RS256.
    pub(crate) fn rsa(kid: &str) -> Self {
        let pair = rcgen::KeyPair::from_pem(RSA_PEM).expect("the RSA fixture");
        let (n, e) = rsa_public_key(pair.public_key_raw());
        let jwk = json!({ "kty": "RSA", "n": b64(n), "e": b64(e), "kid": kid, "use": "sig", "alg": "RS256" });
        let encoding = EncodingKey::from_rsa_pem(RSA_PEM.as_bytes()).expect("the RSA fixture");
        SigningKey { kid: kid.to_owned(), alg: Algorithm::RS256, encoding, jwk }
    }

    /// A new EC P-256 key, signing ES256.
    pub(crate) fn ec(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        // The uncompressed point: 0x04, then x and y.
        let point = pair.public_key_raw();
        let (x, y) = point[1..].split_at(32);
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": kid, "use": "sig",
                          "alg": "ES256" });
        let encoding = EncodingKey::from_ec_der(&pair.serialize_der());
        SigningKey { kid: kid.to_owned(), alg: Algorithm::ES256, encoding, jwk }
    }

    /// A new Ed25519 key, signing EdDSA.
    pub(crate) fn ed(kid: &str) -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        let jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key_raw()), "kid": kid, "use": "sig",
                          "alg": "EdDSA" });
        let encoding = EncodingKey::from_ed_der(&pair.serialize_der());
        SigningKey { kid: kid.to_owned(), alg: Algorithm::EdDSA, encoding, jwk }
    }

    /// A token with `claims`, signed by this key, naming it by `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> String {
        self.sign_as(Some(&self.kid), claims)
    }

    /// A token with `claims`, signed by this key, naming `kid` (or none).
    pub(crate) fn sign_as(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }

    /// The public key's bytes as an HMAC secret would take them: its JWK's
    /// `n` (RSA) or `x` (EC, OKP), as text — what an algorithm-confusion
    /// attacker signs HS256 with.
    pub(crate) fn public_bytes(&self) -> Vec<u8> {
        self.jwk.get("n").or(self.jwk.get("x")).and_then(Value::as_str).unwrap().as_bytes().to_vec()
    }
}

/// A JWKS document holding `keys`.
pub(crate) fn jwks(keys: &[&SigningKey]) -> Value {
    json!({ "keys": keys.iter().map(|key| key.jwk.clone()).collect::<Vec<_>>() })
}

/// Seconds since the epoch, `offset` from now.
pub(crate) fn at(offset: i64) -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    now as i64 + offset
}

/// An HS256 token with `claims` signed with `secret`, naming `kid`.
pub(crate) fn hs256(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// A token whose header says `alg: none`, with `claims` and no signature.
pub(crate) fn unsigned(kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
    format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `n` and `e` of a DER `RSAPublicKey` (`SEQUENCE { INTEGER n, INTEGER e }`),
/// without the sign byte DER puts before a high bit.
fn rsa_public_key(der: &[u8]) -> (&[u8], &[u8]) {
    /// One DER element at `at`: (content, where the next one starts).
    fn element(der: &[u8], at: usize) -> (&[u8], usize) {
        let (length, header) = match der[at + 1] {
            short if short < 0x80 => (usize::from(short), 2),
            long => {
                let bytes = usize::from(long & 0x7f);
                let length = der[at + 2..at + 2 + bytes].iter().fold(0, |n, b| (n << 8) | usize::from(*b));
                (length, 2 + bytes)
            }
        };
        let start = at + header;
        (&der[start..start + length], start + length)
    }
    let (sequence, _) = element(der, 0);
    let (n, next) = element(sequence, 0);
    let (e, _) = element(sequence, next);
    (n.strip_prefix(&[0]).unwrap_or(n), e.strip_prefix(&[0]).unwrap_or(e))
}
