//! The auth section: the key that signs and verifies bearer JWTs and the
//! static development tokens, with the development defaults that anyone
//! who read the README could use (which `serve` refuses to expose on an
//! address other machines can reach: `Config::check_safe_to_serve`).

use clap::Args;

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
    /// HS256 key that signs and verifies bearer JWTs.
    #[arg(long, env = "NOTEGRAPH_JWT_SECRET", default_value = DEFAULT_JWT_SECRET, global = true)]
    pub jwt_secret: Secret,
    /// Development tokens, `token=user-id,…`; empty disables them.
    #[arg(long, env = "NOTEGRAPH_STATIC_TOKENS", default_value = DEFAULT_STATIC_TOKENS, global = true)]
    pub static_tokens: Secret,
}

impl AuthConfig {
    /// Whether bearer JWTs are signed with [`DEFAULT_JWT_SECRET`], which
    /// anyone can read: fine on a development machine only.
    pub fn signs_with_development_secret(&self) -> bool {
        self.jwt_secret.expose() == DEFAULT_JWT_SECRET
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
