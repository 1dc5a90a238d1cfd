//! Who is asking: turns `Authorization: Bearer …` into a [`Viewer`].
//!
//! Static development tokens are looked up first (the development default
//! maps `test-token` to user 1), then the token is verified as an HS256 JWT
//! whose `sub` is the user id and whose `exp` must be in the future. A
//! header that is present but does not verify is an error, never a silent
//! anonymous viewer.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use db::UserId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::AuthConfig;
use crate::error::ApiError;

/// The viewer of a request: `user` is `None` when anonymous.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Viewer {
    /// The authenticated user, if any.
    pub user: Option<UserId>,
}

/// JWT claims we issue and accept.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The user id, as a decimal string (RFC 7519 makes `sub` a string).
    sub: String,
    /// Expiry, seconds since the epoch.
    exp: u64,
}

/// Verifies bearer tokens and issues development ones.
#[derive(Clone)]
pub struct Authenticator {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
    static_tokens: HashMap<String, UserId>,
}

impl Authenticator {
    /// Builds the verifier from config; malformed static tokens are a
    /// start-up error.
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let secret = config.jwt_secret.expose().as_bytes();
        // Only HS256: `alg: none` and algorithm-confusion tokens fail here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            decoding: DecodingKey::from_secret(secret),
            encoding: EncodingKey::from_secret(secret),
            validation,
            static_tokens: parse_static_tokens(config.static_tokens.expose())?,
        })
    }

    /// The viewer named by an `Authorization` header (anonymous without one).
    pub fn viewer(&self, header: Option<&HeaderValue>) -> Result<Viewer, ApiError> {
        self.credentials(header).map(|(viewer, _)| viewer)
    }

    /// The viewer and when their token expires (`None`: anonymous, or a
    /// static token, which never does). Long-lived transports end a
    /// subscription there.
    pub fn credentials(&self, header: Option<&HeaderValue>) -> Result<(Viewer, Option<SystemTime>), ApiError> {
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
            .ok_or_else(|| unauthenticated("expected `Authorization: Bearer <token>`"))?;
        if let Some(user) = self.static_tokens.get(token) {
            return Ok((Viewer { user: Some(*user) }, None));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|err| {
            use jsonwebtoken::errors::ErrorKind;
            match err.kind() {
                ErrorKind::ExpiredSignature => unauthenticated("the token has expired"),
                _ => unauthenticated("the token is invalid"),
            }
        })?;
        let user = data
            .claims
            .sub
            .parse::<i64>()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| unauthenticated("the token's subject is not a user id"))?;
        let expires = UNIX_EPOCH + Duration::from_secs(data.claims.exp);
        Ok((Viewer { user: Some(UserId(user)) }, Some(expires)))
    }

    /// Signs a token for `user` that expires after `ttl`.
    pub fn issue(&self, user: UserId, ttl: Duration) -> anyhow::Result<String> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?;
        let claims = Claims { sub: user.to_string(), exp: (now + ttl).as_secs() };
        Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?)
    }
}

fn unauthenticated(message: &'static str) -> ApiError {
    ApiError::Unauthenticated(message.into())
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
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn authenticator() -> Authenticator {
        Authenticator::new(&Cli::parse_from(["notegraph"]).config.auth).unwrap()
    }

    fn bearer(token: &str) -> HeaderValue {
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap()
    }

    #[test]
    fn static_development_token_maps_to_user_one() {
        let viewer = authenticator().viewer(Some(&bearer("test-token"))).unwrap();
        assert_eq!(viewer.user, Some(UserId(1)));
    }

    #[test]
    fn issued_token_round_trips() {
        let auth = authenticator();
        let token = auth.issue(UserId(7), Duration::from_secs(60)).unwrap();
        assert_eq!(auth.viewer(Some(&bearer(&token))).unwrap().user, Some(UserId(7)));
    }

    #[test]
    fn other_schemes_and_garbage_are_rejected() {
        let auth = authenticator();
        assert!(auth.viewer(Some(&HeaderValue::from_static("Basic dXNlcjpwdw=="))).is_err());
        assert!(auth.viewer(Some(&bearer("not-a-jwt"))).is_err());
        assert!(auth.viewer(None).unwrap().user.is_none());
    }

    #[test]
    fn malformed_static_tokens_fail_start_up() {
        assert!(parse_static_tokens("a=1,b").is_err());
        assert!(parse_static_tokens("a=x").is_err());
        assert_eq!(parse_static_tokens("").unwrap().len(), 0);
    }
}
