//! Who is asking: turns `Authorization: Bearer …` into a [`Viewer`].
//!
//! A token is, in this order:
//! - a static development token (`NOTEGRAPH_STATIC_TOKENS`; the
//!   development default maps `test-token` to user 1);
//! - a JWT signed by an identity provider (RS256/384/512, PS256/384/512,
//!   ES256, ES384, EdDSA), verified with the key its `kid` names in the
//!   provider's JWKS ([`jwks`]);
//! - an HS256 JWT signed with `NOTEGRAPH_JWT_SECRET` (`notegraph token`
//!   prints one), accepted unless a JWKS is configured without a secret of
//!   one's own.
//!
//! The algorithm comes from the token's header but is only ever one its
//! key allows: `alg: none`, HS256 where no secret is accepted (a public key
//! used as an HMAC secret), and an algorithm its JWK does not name are
//! refused before any signature is checked. The claims are checked by
//! [`claims`]. A header that is present but does not verify is an error
//! that names the failed check ([`AuthError`]), never a silent anonymous
//! viewer, and never echoes the token.

mod claims;
mod jwks;

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode};
use db::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

use crate::config::AuthConfig;
use crate::error::ApiError;
use claims::Rules;
use jwks::Jwks;

/// The viewer of a request: `user` is `None` when anonymous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewer {
    /// The authenticated user, if any.
    pub user: Option<UserId>,
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// 401 `UNAUTHENTICATED`: the token failed a check, which the message
    /// names.
    Refused(Cow<'static, str>),
    /// 503 `SERVICE_UNAVAILABLE`: the token names a key this server could
    /// not fetch (the JWKS is unreachable); it may be good, so retry later.
    KeysUnavailable,
}

impl AuthError {
    fn refused(message: impl Into<Cow<'static, str>>) -> Self {
        AuthError::Refused(message.into())
    }

    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Refused(_) => StatusCode::UNAUTHORIZED,
            AuthError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error's `extensions.code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Refused(_) => "UNAUTHENTICATED",
            AuthError::KeysUnavailable => "SERVICE_UNAVAILABLE",
        }
    }

    /// What the client is told.
    pub fn message(&self) -> &str {
        match self {
            AuthError::Refused(message) => message,
            AuthError::KeysUnavailable => "signing keys unavailable: the token cannot be verified now; retry later",
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Refused(message) => ApiError::Unauthenticated(message),
            AuthError::KeysUnavailable => ApiError::ServiceUnavailable,
        }
    }
}

impl From<AuthError> for async_graphql::Error {
    fn from(err: AuthError) -> Self {
        let code = err.code();
        async_graphql::ErrorExtensions::extend_with(async_graphql::Error::new(err.message()), |_, ext| {
            ext.set("code", code)
        })
    }
}

/// A verified token's user and expiry.
type Verified = Result<(UserId, SystemTime), AuthError>;

/// The viewer of a request and when their token expires (`None`:
/// anonymous, or a static token, which never does).
pub type Credentials = (Viewer, Option<SystemTime>);

/// The shared secret's keys, when HS256 is accepted.
struct Secret {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

struct Inner {
    static_tokens: HashMap<String, UserId>,
    secret: Option<Secret>,
    jwks: Option<Arc<Jwks>>,
    rules: Arc<Rules>,
}

/// Verifies bearer tokens and issues development ones; cheap to clone.
#[derive(Clone)]
pub struct Authenticator(Arc<Inner>);

impl Authenticator {
    /// Builds the verifier from config; malformed static tokens are a
    /// start-up error. With a JWKS, keys are fetched only when a token
    /// needs them: [`Authenticator::start`] also keeps them fresh.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let rules = Arc::new(Rules::new(config));
        let secret = config.accepts_hs256().then(|| {
            let secret = config.jwt_secret.expose().as_bytes();
            Secret {
                decoding: DecodingKey::from_secret(secret),
                encoding: EncodingKey::from_secret(secret),
                validation: rules.validation(&[Algorithm::HS256]),
            }
        });
        let jwks = match &config.jwks_url {
            Some(url) => {
                let (min, every) = (config.jwks_min_refresh_secs, config.jwks_refresh_secs);
                let jwks = Jwks::new(url.clone(), Duration::from_secs(min), Duration::from_secs(every), rules.clone());
                Some(Arc::new(jwks.map_err(|err| anyhow::anyhow!("the JWKS client: {err}"))?))
            }
            None => None,
        };
        let static_tokens = parse_static_tokens(config.static_tokens.expose())?;
        Ok(Authenticator(Arc::new(Inner { static_tokens, secret, jwks, rules })))
    }

    /// Like [`Authenticator::new`], and fetches the JWKS (if any) now and
    /// then on schedule, in the background, for as long as a clone lives.
    /// Warns of a JWKS without issuer or audience checks.
    pub fn start(config: &AuthConfig) -> anyhow::Result<Self> {
        let auth = Self::new(config)?;
        if let Some(jwks) = &auth.0.jwks {
            Jwks::spawn_refresh(jwks);
            if config.jwt_issuer.is_none() {
                tracing::warn!(
                    "NOTEGRAPH_JWT_ISSUER is unset: a token from any issuer that shares the JWKS's keys is accepted"
                );
            }
            if config.jwt_audience.is_none() {
                tracing::warn!(
                    "NOTEGRAPH_JWT_AUDIENCE is unset: a token the issuer made for any application is accepted"
                );
            }
        }
        Ok(auth)
    }

    /// The viewer named by an `Authorization` header (anonymous without one).
    pub async fn viewer(&self, header: Option<&HeaderValue>) -> Result<Viewer, AuthError> {
        self.credentials(header).await.map(|(viewer, _)| viewer)
    }

    /// The viewer and when their token expires. Long-lived transports end
    /// a subscription there.
    pub async fn credentials(&self, header: Option<&HeaderValue>) -> Result<Credentials, AuthError> {
        let Some(header) = header else {
            return Ok((Viewer { user: None }, None));
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .ok_or_else(|| AuthError::refused("expected `Authorization: Bearer <token>`"))?;
        if let Some(user) = self.0.static_tokens.get(token) {
            return Ok((Viewer { user: Some(*user) }, None));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| unreadable_header(token))?;
        let (user, expires) = match (header.alg, &self.0.secret, &self.0.jwks) {
            (Algorithm::HS256, Some(secret), _) => self.0.rules.verify(token, &secret.decoding, &secret.validation)?,
            (Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512, _, _) | (_, _, None) => {
                return Err(AuthError::refused(format!("the token's algorithm {:?} is not allowed", header.alg)));
            }
            (alg, _, Some(jwks)) => jwks.verify(token, alg, header.kid.as_deref()).await?,
        };
        Ok((Viewer { user: Some(user) }, Some(expires)))
    }

    /// Signs an HS256 token for `user` that expires after `ttl`, with the
    /// configured issuer and (first) audience: what `notegraph token`
    /// prints.
    pub fn issue(&self, user: UserId, ttl: Duration) -> anyhow::Result<String> {
        let Some(secret) = &self.0.secret else {
            anyhow::bail!(
                "HS256 tokens are not accepted while NOTEGRAPH_JWKS_URL is set and NOTEGRAPH_JWT_SECRET is the \
                 development default: set NOTEGRAPH_JWT_SECRET to a secret of your own to sign tokens"
            );
        };
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), user.to_string().into());
        claims.insert(self.0.rules.user_claim.clone(), user.to_string().into());
        claims.insert("exp".into(), (now + ttl).as_secs().into());
        if let Some(issuer) = self.0.rules.issuer() {
            claims.insert("iss".into(), issuer.into());
        }
        if let Some(audience) = self.0.rules.audience() {
            claims.insert("aud".into(), audience.into());
        }
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &secret.encoding)?)
    }
}

/// Why a token's header does not parse: `alg: none` and algorithms
/// jsonwebtoken does not know are named as such, anything else is
/// malformed. Never echoes what the header says.
fn unreadable_header(token: &str) -> AuthError {
    use base64::Engine as _;
    let alg = token
        .split('.')
        .next()
        .and_then(|header| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header.trim_end_matches('=')).ok())
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(&json).ok())
        .and_then(|header| header.get("alg")?.as_str().map(str::to_owned));
    match alg {
        Some(alg) if alg.eq_ignore_ascii_case("none") => {
            AuthError::refused("the token's algorithm none is not allowed")
        }
        Some(_) => AuthError::refused("the token's algorithm is not allowed"),
        None => AuthError::refused("the token is malformed"),
    }
}

/// Parses `token=user-id,…`.
fn parse_static_tokens(spec: &str) -> anyhow::Result<HashMap<String, UserId>> {
    spec.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (token, user) =
                entry.split_once('=').ok_or_else(|| anyhow::anyhow!("static token entry without `=user-id`"))?;
            let user: i64 = user.trim().parse().map_err(|_| anyhow::anyhow!("static token user id is not a number"))?;
            Ok((token.trim().to_owned(), UserId(user)))
        })
        .collect()
}

#[cfg(test)]
mod tests;
