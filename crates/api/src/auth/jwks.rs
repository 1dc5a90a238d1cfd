//! An identity provider's signing keys (its JWKS, `NOTEGRAPH_JWKS_URL`):
//! fetched, parsed into verification keys once, and held in an
//! [`ArcSwap`] that every request reads without a lock.
//!
//! When are they fetched?
//! - **In the background** ([`Jwks::spawn_refresh`]): at start-up, then every
//!   `NOTEGRAPH_JWKS_REFRESH_SECS` (sooner when the response's
//!   `Cache-Control: max-age` says so, never sooner than
//!   `NOTEGRAPH_JWKS_MIN_REFRESH_SECS`), so that keys the issuer removed
//!   stop working. A fetch that fails keeps the keys already held and is
//!   retried after 1, 2, 4 … seconds, up to the minimum interval apart.
//! - **For a token naming a key (`kid`) the set lacks** (a key the issuer
//!   has just rotated in): at most once per `NOTEGRAPH_JWKS_MIN_REFRESH_SECS`
//!   whatever the tokens say, so made-up `kid`s cannot make the server
//!   hammer the issuer. Every fetch happens under one async mutex, so
//!   requests that arrive while one is on its way wait for it and share
//!   it instead of starting their own.
//!
//! Which keys are used? Signing keys (`use` absent or `sig`) of type RSA
//! (RS256/384/512, PS256/384/512), EC P-256 (ES256), EC P-384 (ES384) and
//! OKP Ed25519 (EdDSA); a key's `alg`, when given, is the only algorithm
//! it verifies. Symmetric keys (`kty: oct`) are never trusted from a key
//! set, and keys of other types are skipped (and logged).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::AuthError;
use super::claims::Rules;

/// How long one fetch of the key set may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest key set accepted: a few keys are a few kilobytes.
const MAX_BYTES: usize = 1 << 20;
/// The first retry after a failed fetch; doubled each time, up to the
/// minimum refresh interval.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// One verification key of the set.
pub(super) struct Key {
    decoding: DecodingKey,
    /// The algorithms it verifies (its JWK's `alg`, else its type's).
    algorithms: Vec<Algorithm>,
    /// The claim checks, with `algorithms`.
    validation: Validation,
}

impl Key {
    /// Verifies a token whose header says `alg` with this key.
    pub(super) fn verify(&self, rules: &Rules, token: &str, alg: Algorithm) -> super::Verified {
        if !self.algorithms.contains(&alg) {
            return Err(AuthError::refused(format!("the token's algorithm {alg:?} does not match its signing key")));
        }
        rules.verify(token, &self.decoding, &self.validation)
    }
}

/// The keys of one fetch.
#[derive(Default)]
struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`: usable only as a set's only key.
    kidless: Vec<Key>,
}

impl KeySet {
    /// The key `kid` names; without one, the set's only key, if it has
    /// exactly one (several could not be told apart).
    fn find(&self, kid: Option<&str>) -> Option<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.len() == 1 => self.by_kid.values().next().or(self.kidless.first()),
            None => None,
        }
    }

    fn len(&self) -> usize {
        self.by_kid.len() + self.kidless.len()
    }
}

/// When to fetch, and how the last fetch went; behind the fetch mutex.
struct Schedule {
    /// When the background task fetches next.
    due: Instant,
    /// The last fetch caused by an unknown `kid`.
    last_for_kid: Option<Instant>,
    /// Failed fetches in a row (0: the last one worked).
    failures: u32,
    /// Whether a fetch has ever worked.
    loaded: bool,
}

/// The key set of `NOTEGRAPH_JWKS_URL`: see the module.
pub(super) struct Jwks {
    url: Url,
    client: reqwest::Client,
    keys: ArcSwap<KeySet>,
    schedule: Mutex<Schedule>,
    min_refresh: Duration,
    refresh: Duration,
    rules: Arc<Rules>,
}

/// What a fetch brought.
struct Fetched {
    keys: KeySet,
    count: usize,
    max_age: Option<Duration>,
}

impl Jwks {
    /// The key set at `url`, empty until the first fetch.
    pub(super) fn new(url: Url, min_refresh: Duration, refresh: Duration, rules: Arc<Rules>) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .user_agent(concat!("notegraph/", env!("CARGO_PKG_VERSION")))
            // A redirect may not leave TLS.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                if attempt.previous().len() >= 5 {
                    attempt.error("more than 5 redirects")
                } else if attempt.url().scheme() == "https" {
                    attempt.follow()
                } else {
                    attempt.error("redirected away from https")
                }
            }))
            .build()?;
        let schedule = Schedule { due: Instant::now(), last_for_kid: None, failures: 0, loaded: false };
        Ok(Jwks {
            url,
            client,
            keys: ArcSwap::default(),
            schedule: Mutex::new(schedule),
            min_refresh,
            refresh: refresh.max(min_refresh),
            rules,
        })
    }

    /// Verifies with the key `kid` names (the set's only key when it names
    /// none): read without a lock when the key is held; otherwise after the
    /// one fetch an unknown `kid` may cause.
    pub(super) async fn verify(&self, token: &str, alg: Algorithm, kid: Option<&str>) -> super::Verified {
        if let Some(key) = self.keys.load().find(kid) {
            return key.verify(&self.rules, token, alg);
        }
        let loaded = {
            let mut schedule = self.schedule.lock().await;
            // A fetch that finished while this request waited may have brought it.
            let allowed = schedule.last_for_kid.is_none_or(|last| last.elapsed() >= self.min_refresh);
            // A token without `kid` causes only the first fetch.
            let wanted = kid.is_some() || !schedule.loaded;
            if wanted && allowed && self.keys.load().find(kid).is_none() {
                schedule.last_for_kid = Some(Instant::now());
                self.fetch_into(&mut schedule, "a token names a key the set lacks").await;
            }
            schedule.loaded && schedule.failures == 0
        };
        match self.keys.load().find(kid) {
            Some(key) => key.verify(&self.rules, token, alg),
            None if !loaded => Err(AuthError::KeysUnavailable),
            None if kid.is_none() => Err(AuthError::refused("the token names no signing key (`kid`)")),
            None => Err(AuthError::refused("the token's signing key (`kid`) is unknown")),
        }
    }

    /// Fetches now, then on schedule, until every [`Jwks`] handle is gone.
    pub(super) fn spawn_refresh(jwks: &Arc<Jwks>) {
        let jwks: Weak<Jwks> = Arc::downgrade(jwks);
        tokio::spawn(async move {
            loop {
                let due = match jwks.upgrade() {
                    Some(jwks) => jwks.schedule.lock().await.due,
                    None => return,
                };
                tokio::time::sleep_until(due).await;
                let Some(jwks) = jwks.upgrade() else { return };
                let mut schedule = jwks.schedule.lock().await;
                // An unknown `kid` may have caused a fetch meanwhile.
                if schedule.due <= Instant::now() {
                    jwks.fetch_into(&mut schedule, "scheduled").await;
                }
            }
        });
    }

    /// Fetches the set, swaps it in when it parses, and schedules the next
    /// fetch; a failure keeps the keys held and is logged.
    async fn fetch_into(&self, schedule: &mut Schedule, cause: &'static str) {
        match self.fetch().await {
            Ok(fetched) => {
                let max_age = fetched.max_age.unwrap_or(self.refresh);
                schedule.due = Instant::now() + max_age.clamp(self.min_refresh, self.refresh);
                schedule.failures = 0;
                schedule.loaded = true;
                self.keys.store(Arc::new(fetched.keys));
                tracing::info!(url = %self.url, keys = fetched.count, cause, "fetched the JWKS");
            }
            Err(err) => {
                schedule.failures += 1;
                let retry = FIRST_RETRY.saturating_mul(1 << schedule.failures.min(16)) / 2;
                schedule.due = Instant::now() + retry.min(self.min_refresh);
                let held = if schedule.loaded { "keeping the keys fetched before" } else { "no keys yet" };
                tracing::warn!(url = %self.url, error = %err, cause, retry_secs = retry.min(self.min_refresh).as_secs(),
                    "could not fetch the JWKS: {held}; tokens naming a key not held are answered SERVICE_UNAVAILABLE");
            }
        }
    }

    async fn fetch(&self) -> Result<Fetched, String> {
        let mut response = self.client.get(self.url.clone()).send().await.map_err(|err| describe(&err))?;
        if !response.status().is_success() {
            return Err(format!("the server answered {}", response.status()));
        }
        let max_age = max_age(response.headers().get(reqwest::header::CACHE_CONTROL));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|err| describe(&err))? {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("the key set is larger than {MAX_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(&body).map_err(|err| {
            format!("not a JWKS ({err}): NOTEGRAPH_JWKS_URL names the `jwks_uri`, not the issuer's discovery document")
        })?;
        let mut keys = KeySet::default();
        for value in document.keys {
            let kid = value.get("kid").and_then(|kid| kid.as_str()).map(str::to_owned);
            let parsed = serde_json::from_value::<Jwk>(value).map_err(|_| "not a key this server reads");
            match parsed.and_then(|jwk| key(&jwk, &self.rules)) {
                Ok(key) => match kid {
                    Some(kid) if keys.by_kid.contains_key(&kid) => {
                        tracing::warn!(url = %self.url, kid, "the JWKS holds two keys with one `kid`: the first is used");
                    }
                    Some(kid) => {
                        keys.by_kid.insert(kid, key);
                    }
                    None => keys.kidless.push(key),
                },
                Err(reason) => tracing::info!(url = %self.url, kid, reason, "skipped a key of the JWKS"),
            }
        }
        let count = keys.len();
        Ok(Fetched { keys, count, max_age })
    }
}

/// A verification key for `jwk`, or why it is skipped.
fn key(jwk: &Jwk, rules: &Rules) -> Result<Key, &'static str> {
    if jwk.common.public_key_use.as_ref().is_some_and(|usage| *usage != PublicKeyUse::Signature) {
        return Err("not a signing key (`use`)");
    }
    let allowed: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => &[Algorithm::ES256],
            EllipticCurve::P384 => &[Algorithm::ES384],
            _ => return Err("an elliptic curve this server does not verify"),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA],
            _ => return Err("an OKP curve this server does not verify"),
        },
        AlgorithmParameters::OctetKey(_) => return Err("a symmetric key (`kty: oct`) is never trusted from a JWKS"),
    };
    let algorithms = match &jwk.common.key_algorithm {
        None => allowed.to_vec(),
        Some(alg) => match algorithm(alg).filter(|alg| allowed.contains(alg)) {
            Some(alg) => vec![alg],
            None => return Err("its `alg` does not fit its type"),
        },
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "malformed key material")?;
    let validation = rules.validation(&algorithms);
    Ok(Key { decoding, algorithms, validation })
}

/// The signature algorithm a JWK's `alg` names, if it names one.
fn algorithm(alg: &KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// `max-age` of a `Cache-Control` header (`no-store`/`no-cache`: zero).
pub(super) fn max_age(header: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let value = header?.to_str().ok()?;
    value.split(',').map(str::trim).find_map(|directive| {
        if directive.eq_ignore_ascii_case("no-store") || directive.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        let (name, seconds) = directive.split_once('=')?;
        name.trim().eq_ignore_ascii_case("max-age").then(|| seconds.trim().parse().ok().map(Duration::from_secs))?
    })
}

/// A fetch error with its causes (reqwest's own message names only the
/// outermost, "error sending request").
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
