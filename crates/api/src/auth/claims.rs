//! What a token's claims must say once its signature verifies, the same
//! for every key: `exp` (required), `nbf` (when present), `iss` and `aud`
//! (required when configured), with `NOTEGRAPH_JWT_LEEWAY_SECS` of clock
//! skew; and the claim that names the user (`NOTEGRAPH_JWT_USER_CLAIM`),
//! which must hold a Notegraph user id: a positive integer, as a JSON
//! number or a string of digits. Providers' own subject ids (UUIDs,
//! `auth0|…`) are refused: Notegraph provisions no users, so the provider
//! must carry the `users.id` in the claim (a custom claim, or `sub`).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use db::UserId;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;

use super::AuthError;
use crate::config::AuthConfig;

/// The claim checks of every token.
pub(super) struct Rules {
    leeway: u64,
    issuer: Option<String>,
    audiences: Option<Vec<String>>,
    /// The claim that holds the user id.
    pub(super) user_claim: String,
}

/// The claims read when the user id is in `sub`: nothing else is kept, so
/// decoding allocates only the subject.
#[derive(Deserialize)]
struct SubjectClaims {
    /// Checked by jsonwebtoken, which reports its absence.
    #[serde(default)]
    exp: f64,
    sub: Option<Value>,
}

impl Rules {
    pub(super) fn new(config: &AuthConfig) -> Self {
        Rules {
            leeway: config.jwt_leeway_secs,
            issuer: config.jwt_issuer.clone(),
            audiences: config.audiences().map(|list| list.into_iter().map(str::to_owned).collect()),
            user_claim: config.jwt_user_claim.clone(),
        }
    }

    /// The issuer tokens must name, if checked.
    pub(super) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// The first audience tokens may name, if checked.
    pub(super) fn audience(&self) -> Option<&str> {
        self.audiences.as_ref().and_then(|list| list.first()).map(String::as_str)
    }

    /// The validation of tokens signed by a key that allows `algorithms`
    /// (all of one family, as jsonwebtoken requires): built once per key.
    pub(super) fn validation(&self, algorithms: &[Algorithm]) -> Validation {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms.to_vec();
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp"];
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &self.audiences {
            Some(audiences) => {
                validation.set_audience(audiences);
                required.push("aud");
            }
            // jsonwebtoken refuses any `aud` when none is expected.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Verifies `token` with `key` and returns its user and expiry.
    pub(super) fn verify(
        &self,
        token: &str,
        key: &DecodingKey,
        validation: &Validation,
    ) -> Result<(UserId, SystemTime), AuthError> {
        let (user, exp) = if self.user_claim == "sub" {
            let claims = jsonwebtoken::decode::<SubjectClaims>(token, key, validation).map_err(refusal)?.claims;
            (claims.sub, claims.exp)
        } else {
            let mut claims =
                jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, key, validation).map_err(refusal)?.claims;
            let exp = claims.get("exp").and_then(Value::as_f64).unwrap_or_default();
            (claims.remove(&self.user_claim), exp)
        };
        let user = match user {
            None => return Err(AuthError::refused(format!("claim `{}` is missing", self.user_claim))),
            Some(value) => user_id(&value)
                .ok_or_else(|| AuthError::refused(format!("claim `{}` is not a Notegraph user id", self.user_claim)))?,
        };
        Ok((user, UNIX_EPOCH + Duration::from_secs_f64(exp.max(0.0))))
    }
}

/// A Notegraph user id: a positive integer, as a number or as digits.
fn user_id(value: &Value) -> Option<UserId> {
    let id = match value {
        Value::Number(number) => number.as_i64(),
        Value::String(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => digits.parse().ok(),
        _ => None,
    };
    id.filter(|id| *id > 0).map(UserId)
}

/// Which check a token failed, as the client is told.
fn refusal(err: jsonwebtoken::errors::Error) -> AuthError {
    AuthError::Refused(Cow::Borrowed(match err.kind() {
        ErrorKind::ExpiredSignature => "the token has expired",
        ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
        ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not the expected one",
        ErrorKind::InvalidAudience => "the token's audience (`aud`) is not the expected one",
        ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
            "iss" => "the token's issuer (`iss`) is not the expected one",
            "aud" => "the token's audience (`aud`) is not the expected one",
            _ => "the token has no expiry (`exp`)",
        },
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "the token's algorithm does not match its key",
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::Crypto(_) => "the token's signature is invalid",
        _ => "the token is malformed",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_positive_integers_as_numbers_or_digits() {
        assert_eq!(user_id(&serde_json::json!(7)), Some(UserId(7)));
        assert_eq!(user_id(&serde_json::json!("42")), Some(UserId(42)));
        for not in [
            serde_json::json!("auth0|5f7c8ec7c33c6c004bbafe82"),
            serde_json::json!("-3"),
            serde_json::json!(""),
            serde_json::json!("99999999999999999999"),
            serde_json::json!("+3"),
            serde_json::json!(" 3"),
            serde_json::json!(0),
            serde_json::json!(1.5),
            serde_json::json!(true),
            serde_json::json!(["1"]),
        ] {
            assert_eq!(user_id(&not), None, "{not}");
        }
    }
}
