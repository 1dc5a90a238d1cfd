//! The CORS section: which web origins' pages may call `/graphql` and
//! `/graphql/stream` from a browser (docs/SECURITY.md, "Browsers on other
//! origins"). Off by default: with no origin listed the server sends no
//! CORS headers, and browsers keep other origins' scripts from reading its
//! answers.

use clap::Args;

/// See [`CorsConfig::cors_max_age_secs`]: ten minutes, Chromium's own cap
/// on how long it keeps a preflight answer (Firefox keeps up to a day).
pub const DEFAULT_CORS_MAX_AGE_SECS: u64 = 600;

/// Cross-origin settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "CORS")]
pub struct CorsConfig {
    /// Origins whose pages may call /graphql and /graphql/stream, comma-separated
    /// (`https://app.example.com,http://localhost:3000`), or `*` for any origin
    /// (not with credentials). Unset: no CORS headers, so browsers block other origins.
    #[arg(long, env = "NOTEGRAPH_CORS_ORIGINS", value_delimiter = ',', value_parser = parse_origin, global = true)]
    pub cors_origins: Vec<CorsOrigin>,
    /// Let those pages send cookies (the read-your-writes cookie) with `credentials: "include"`.
    #[arg(long, env = "NOTEGRAPH_CORS_ALLOW_CREDENTIALS", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub cors_allow_credentials: bool,
    /// How long a browser may reuse a preflight answer, in seconds.
    #[arg(long, env = "NOTEGRAPH_CORS_MAX_AGE_SECS", default_value_t = DEFAULT_CORS_MAX_AGE_SECS, global = true)]
    pub cors_max_age_secs: u64,
}

/// One entry of `NOTEGRAPH_CORS_ORIGINS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigin {
    /// `*`: any origin.
    Any,
    /// One origin, as browsers send it in `Origin` (`https://app.example.com:8443`).
    Exact(String),
}

impl CorsConfig {
    /// Refuses what browsers would refuse or what would be unsafe: `*`
    /// beside other origins (it already means all of them), and `*` with
    /// credentials, which would let any site act with a visitor's cookies
    /// (browsers reject that answer anyway).
    pub fn check(&self) -> Result<(), String> {
        let any = self.cors_origins.contains(&CorsOrigin::Any);
        if any && self.cors_origins.len() > 1 {
            return Err("NOTEGRAPH_CORS_ORIGINS: `*` already allows every origin; list origins or `*` alone".into());
        }
        if any && self.cors_allow_credentials {
            return Err("NOTEGRAPH_CORS_ORIGINS=* cannot be combined with NOTEGRAPH_CORS_ALLOW_CREDENTIALS=true: \
                        list the origins that may send credentials"
                .into());
        }
        Ok(())
    }
}

/// Reads one origin as a browser serialises it: `scheme://host[:port]`,
/// lower case, with nothing after the host. A trailing slash or a path is
/// the most common mistake, and a browser's `Origin` would never match it,
/// so it is refused rather than silently never matching.
fn parse_origin(value: &str) -> Result<CorsOrigin, String> {
    let value = value.trim();
    if value == "*" {
        return Ok(CorsOrigin::Any);
    }
    let refuse = |why: &str| {
        Err(format!("`{value}` is not an origin ({why}): write scheme://host[:port], e.g. https://app.example.com"))
    };
    let Some((scheme, host)) = value.split_once("://") else { return refuse("no scheme") };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return refuse("the scheme must be http or https");
    }
    if host.is_empty() {
        return refuse("no host");
    }
    if let Some(extra) = host.find(['/', '?', '#', '@']) {
        let why = if host.as_bytes()[extra] == b'@' {
            "user info is not part of an origin"
        } else {
            "a path is not part of an origin"
        };
        return refuse(why);
    }
    if !host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')) {
        return refuse("the host has characters a browser would have encoded");
    }
    Ok(CorsOrigin::Exact(value.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::super::testing::parse;
    use super::*;

    #[test]
    fn off_unless_origins_are_listed() {
        let config: CorsConfig = parse(&[]);
        assert!(config.cors_origins.is_empty());
        assert!(!config.cors_allow_credentials);
        assert!(config.check().is_ok());
    }

    #[test]
    fn origins_are_read_as_browsers_send_them() {
        let config: CorsConfig = parse(&["--cors-origins", "https://App.Example.com, http://localhost:3000"]);
        let exact = |origin: &str| CorsOrigin::Exact(origin.into());
        assert_eq!(config.cors_origins, [exact("https://app.example.com"), exact("http://localhost:3000")]);
        assert_eq!(parse::<CorsConfig>(&["--cors-origins", "*"]).cors_origins, [CorsOrigin::Any]);
    }

    #[test]
    fn what_is_not_an_origin_is_refused_with_the_fix() {
        for (value, why) in [
            ("https://app.example.com/", "a path"),
            ("https://app.example.com/graphql", "a path"),
            ("app.example.com", "no scheme"),
            ("ftp://app.example.com", "http or https"),
            ("https://user@app.example.com", "user info"),
            ("https://", "no host"),
        ] {
            let error = parse_origin(value).unwrap_err();
            assert!(error.contains(why) && error.contains("scheme://host[:port]"), "{value}: {error}");
        }
    }

    #[test]
    fn any_origin_stands_alone_and_without_credentials() {
        let with_others = parse::<CorsConfig>(&["--cors-origins", "*,https://a.example"]).check().unwrap_err();
        assert!(with_others.contains("`*` alone"), "{with_others}");
        let credentials =
            parse::<CorsConfig>(&["--cors-origins", "*", "--cors-allow-credentials", "true"]).check().unwrap_err();
        assert!(credentials.contains("NOTEGRAPH_CORS_ALLOW_CREDENTIALS"), "{credentials}");
        let listed: CorsConfig = parse(&["--cors-origins", "https://a.example", "--cors-allow-credentials", "true"]);
        assert!(listed.check().is_ok());
    }
}
