//! The auth section: where bearer JWTs' keys come from (a shared HS256
//! secret, an identity provider's JWKS, or both), what every token's claims
//! must say (issuer, audience, the claim that holds the user id, the clock
//! skew allowed), and the static development tokens, with the development
//! defaults that anyone who read the README could use (which `serve`
//! refuses to expose on an address other machines can reach:
//! `Config::check_safe_to_serve`). docs/SECURITY.md, "Tokens", says what is
//! checked and refused.

use clap::Args;
use reqwest::Url;

use super::secret::Secret;

/// The development signing key; the server warns when it is in use.
pub const DEFAULT_JWT_SECRET: &str = "notegraph-development-secret";
/// Development tokens: the published k6 mix sends `Bearer test-token`.
pub const DEFAULT_STATIC_TOKENS: &str = "test-token=1";
/// The static token the defaults, README and k6 mix publish: anyone may
/// sign in with it.
pub const DEVELOPMENT_TOKEN: &str = "test-token";

/// Authentication settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Auth")]
pub struct AuthConfig {
    /// HS256 key that signs and verifies bearer JWTs. While `NOTEGRAPH_JWKS_URL` is set, HS256 tokens are accepted
    /// only when this is set to a secret of your own
    #[arg(long, env = "NOTEGRAPH_JWT_SECRET", default_value = DEFAULT_JWT_SECRET, global = true)]
    pub jwt_secret: Secret,
    /// Development tokens, `token=user-id,…`; empty disables them.
    #[arg(long, env = "NOTEGRAPH_STATIC_TOKENS", default_value = DEFAULT_STATIC_TOKENS, global = true)]
    pub static_tokens: Secret,
    /// The identity provider's signing keys (JWKS, as its OIDC discovery document's `jwks_uri` names it): RS256,
    /// RS384, RS512, PS256, PS384, PS512, ES256, ES384 and EdDSA tokens are verified against them. `https://`;
    /// plain `http://` only to a loopback address
    #[arg(long, env = "NOTEGRAPH_JWKS_URL", value_parser = jwks_url, global = true)]
    pub jwks_url: Option<Url>,
    /// Least time between two fetches of the JWKS caused by tokens naming a key (`kid`) it does not hold, in
    /// seconds: a flood of made-up `kid`s costs the issuer one fetch per interval
    #[arg(long, env = "NOTEGRAPH_JWKS_MIN_REFRESH_SECS", default_value_t = 30, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub jwks_min_refresh_secs: u64,
    /// How often the JWKS is fetched again so that keys the issuer removed stop working, in seconds; sooner when
    /// its `Cache-Control: max-age` says so, never sooner than `NOTEGRAPH_JWKS_MIN_REFRESH_SECS`
    #[arg(long, env = "NOTEGRAPH_JWKS_REFRESH_SECS", default_value_t = 300, global = true,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub jwks_refresh_secs: u64,
    /// The issuer every JWT must name (`iss`), exactly as the provider writes it; unset: not checked
    #[arg(long, env = "NOTEGRAPH_JWT_ISSUER", value_parser = non_empty, global = true)]
    pub jwt_issuer: Option<String>,
    /// The audience every JWT must name (`aud`), or several separated by commas, any of which will do; unset: a
    /// token for any audience is accepted
    #[arg(long, env = "NOTEGRAPH_JWT_AUDIENCE", value_parser = non_empty, global = true)]
    pub jwt_audience: Option<String>,
    /// The top-level claim that holds the Notegraph user id (`users.id`), as a number or a string of digits
    #[arg(long, env = "NOTEGRAPH_JWT_USER_CLAIM", default_value = "sub", value_parser = non_empty, global = true)]
    pub jwt_user_claim: String,
    /// Clock skew allowed when checking `exp` and `nbf`, in seconds
    #[arg(long, env = "NOTEGRAPH_JWT_LEEWAY_SECS", default_value_t = 5, global = true,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub jwt_leeway_secs: u64,
}

impl AuthConfig {
    /// Whether bearer JWTs signed with [`DEFAULT_JWT_SECRET`], which anyone
    /// can read, are accepted: fine on a development machine only. They
    /// are not while a JWKS is configured without a secret of one's own.
    pub fn signs_with_development_secret(&self) -> bool {
        self.jwt_secret.expose() == DEFAULT_JWT_SECRET && self.jwks_url.is_none()
    }

    /// Whether HS256 tokens are accepted: always without a JWKS; with one,
    /// only when `NOTEGRAPH_JWT_SECRET` is not the development default.
    pub fn accepts_hs256(&self) -> bool {
        self.jwks_url.is_none() || self.jwt_secret.expose() != DEFAULT_JWT_SECRET
    }

    /// The audiences a token may name (any one of them), if checked.
    pub fn audiences(&self) -> Option<Vec<&str>> {
        let audience = self.jwt_audience.as_deref()?;
        Some(audience.split(',').map(str::trim).filter(|a| !a.is_empty()).collect())
    }

    /// Whether the static tokens include [`DEVELOPMENT_TOKEN`], with which
    /// anyone can sign in.
    pub fn accepts_development_token(&self) -> bool {
        self.static_tokens
            .expose()
            .split(',')
            .filter_map(|entry| entry.split_once('='))
            .any(|(token, _)| token.trim() == DEVELOPMENT_TOKEN)
    }
}

/// A JWKS URL: `https://`, or `http://` to a loopback address (a local
/// provider during development), since keys fetched in the clear could be
/// replaced on the way by anyone on the network.
fn jwks_url(value: &str) -> Result<Url, String> {
    let url = Url::parse(value).map_err(|err| format!("not a URL ({err})"))?;
    match url.scheme() {
        "https" if url.host().is_some() => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => {
            Err("plain http is only allowed to a loopback address (127.0.0.1, ::1, localhost): use https://".to_owned())
        }
        _ => Err("expected an https:// URL".to_owned()),
    }
}

/// Whether `url`'s host is this machine.
fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else { return false };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn non_empty(value: &str) -> Result<String, String> {
    match value.trim() {
        "" => Err("must not be empty (unset it instead)".to_owned()),
        value => Ok(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> AuthConfig {
        crate::config::testing::parse(args)
    }

    #[test]
    fn jwks_urls_are_https_or_loopback() {
        for good in ["https://idp.example/.well-known/jwks.json", "http://127.0.0.1:8080/jwks", "http://[::1]/k"] {
            assert!(jwks_url(good).is_ok(), "{good}");
        }
        assert!(jwks_url("http://localhost:9000/certs").is_ok());
        let plain = jwks_url("http://idp.example/jwks").unwrap_err();
        assert!(plain.contains("loopback"), "{plain}");
        for bad in ["ftp://idp.example/jwks", "file:///etc/jwks.json", "idp.example/jwks", "http://10.0.0.1/jwks"] {
            assert!(jwks_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn audiences_split_on_commas() {
        let config = parse(&["--jwt-audience", "api, notegraph ,"]);
        assert_eq!(config.audiences(), Some(vec!["api", "notegraph"]));
        assert_eq!(parse(&[]).audiences(), None);
    }

    #[test]
    fn hs256_with_a_jwks_only_with_a_secret_of_ones_own() {
        let plain = parse(&[]);
        assert!(plain.accepts_hs256() && plain.signs_with_development_secret());
        let jwks = parse(&["--jwks-url", "https://idp.example/jwks"]);
        assert!(!jwks.accepts_hs256() && !jwks.signs_with_development_secret());
        let both = parse(&["--jwks-url", "https://idp.example/jwks", "--jwt-secret", "s3cret"]);
        assert!(both.accepts_hs256());
    }
}
