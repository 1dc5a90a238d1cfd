//! The command line: the `notegraph` commands and their own arguments, over
//! the settings every command shares ([`Config`]). What each command does
//! is [`crate::commands`].

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// See [`HealthcheckArgs::timeout_ms`]: above the 2 s in which `/readyz`
/// always answers (so a slow database shows as its 503, not as a timeout
/// here), and inside a container healthcheck's usual 5 s timeout.
pub const DEFAULT_HEALTHCHECK_TIMEOUT_MS: u64 = 3_000;

/// What `notegraph --version` prints after the name: the release and the
/// git commit the binary was built from (see `build.rs`).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("NOTEGRAPH_GIT_COMMIT"), ")");

/// `notegraph`: a GraphQL API over notes, users and tags, with search by
/// meaning.
#[derive(Debug, Parser)]
#[command(name = "notegraph", version = VERSION, about = "A GraphQL API over notes, users and tags, with search by meaning.", long_about = None)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every command.
    #[command(flatten)]
    pub config: Config,
}

/// The commands the binary runs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default), applying pending migrations first.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Replace all data with a generated data set; data it did not create
    /// only with `--force`.
    Seed(SeedArgs),
    /// Print the GraphQL schema (SDL) to stdout; needs no database.
    PrintSchema,
    /// Print the configuration reference, docs/CONFIGURATION.md, from these
    /// definitions (`just config-docs` writes the file).
    #[command(hide = true)]
    PrintConfiguration,
    /// Print a signed development JWT for a user.
    Token(TokenArgs),
    /// Re-embed every note with the configured embedder (after a provider
    /// or model change), in batches, printing progress; a run stopped
    /// anywhere continues where it left off when run again.
    Reembed(ReembedArgs),
    /// Start the embedded Postgres, print `DATABASE_URL=…` and keep it
    /// running until interrupted (the test suite uses this).
    EmbeddedPostgres,
    /// Exit 0 when the local server's `/readyz` answers 200, 1 otherwise:
    /// the container healthcheck of an image that has no curl.
    Healthcheck(HealthcheckArgs),
}

/// Arguments of `notegraph healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to check; default `http://127.0.0.1:<port of NOTEGRAPH_LISTEN>/readyz`
    /// (the listen address itself when it is a specific one).
    #[arg(long)]
    pub url: Option<String>,
    /// How long to wait for the answer, connecting included, in ms.
    #[arg(long, default_value_t = DEFAULT_HEALTHCHECK_TIMEOUT_MS)]
    pub timeout_ms: u64,
}

/// Size and randomness of `notegraph seed`.
#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Number of users.
    #[arg(long, default_value_t = 10_000)]
    pub users: u32,
    /// Number of notes.
    #[arg(long, default_value_t = 100_000)]
    pub notes: u32,
    /// Number of tags.
    #[arg(long, default_value_t = 200)]
    pub tags: u32,
    /// Random seed: the same seed gives the same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Replace the data even if `notegraph seed` did not load it (there are
    /// users, notes or tags and no recorded seed run); without it the
    /// command refuses and changes nothing. Writes made after a seed are not
    /// tracked: they are replaced either way.
    #[arg(long)]
    pub force: bool,
    /// Seed only a database without users (a fresh one) and otherwise
    /// change nothing: a seeding step that may run on every start.
    #[arg(long, conflicts_with = "force")]
    pub if_empty: bool,
}

/// Arguments of `notegraph reembed`.
#[derive(Debug, Args)]
pub struct ReembedArgs {
    /// Notes per batch (one embedding call and one update each).
    #[arg(long, default_value_t = 256)]
    pub batch: i64,
    /// Stop after this many batches; the next run continues where it
    /// stopped (every run skips the notes already embedded by the configured
    /// embedder).
    #[arg(long)]
    pub max_batches: Option<u64>,
}

/// Arguments of `notegraph token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The user id the token authenticates as (claim `sub`, and `NOTEGRAPH_JWT_USER_CLAIM`); the token also
    /// carries `NOTEGRAPH_JWT_ISSUER` and the first of `NOTEGRAPH_JWT_AUDIENCE` when they are set.
    pub user_id: i64,
    /// Lifetime in seconds (claim `exp`).
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
}

/// Parses the command line and the environment, as [`Parser::parse`]
/// does, except that a value that came from a variable and does not parse
/// is reported by the variable's name: clap names the flag, which the
/// operator who set `NOTEGRAPH_CACHE_ENABLED=maybe` never wrote.
pub fn parse() -> Cli {
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match from_variable(&err, &std::env::args().collect::<Vec<_>>()) {
            Some(message) => {
                eprintln!("error: {message}");
                std::process::exit(2)
            }
            None => err.exit(),
        },
    }
}

/// The message for `err` naming the variable its value came from, or
/// `None` when the value was on the command line (`arguments`) or the
/// error is about something else. The value itself is not repeated: it
/// may be a secret.
fn from_variable(err: &clap::Error, arguments: &[String]) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(err.kind(), ErrorKind::InvalidValue | ErrorKind::ValueValidation) {
        return None;
    }
    let Some(ContextValue::String(flag)) = err.get(ContextKind::InvalidArg) else { return None };
    let long = flag.strip_prefix("--")?.split([' ', '=']).next()?;
    let command = <Cli as clap::CommandFactory>::command();
    let variable = command.get_arguments().find(|arg| arg.get_long() == Some(long))?.get_env()?.to_string_lossy();
    let written = |argument: &String| argument == &format!("--{long}") || argument.starts_with(&format!("--{long}="));
    if arguments.iter().any(written) {
        return None;
    }
    let why = match err.get(ContextKind::ValidValue) {
        Some(ContextValue::Strings(valid)) => format!("expected one of {}", valid.join(", ")),
        _ => std::error::Error::source(err).map_or_else(|| "it does not parse".to_owned(), |cause| cause.to_string()),
    };
    Some(format!("{variable} is not valid ({why}); see docs/CONFIGURATION.md"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_HTTP_TIMEOUT_MS, DEFAULT_LISTEN};

    #[test]
    fn no_subcommand_means_serve_with_defaults() {
        let cli = Cli::parse_from(["notegraph"]);
        assert!(cli.command.is_none());
        assert_eq!(cli.config.server.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(cli.config.server.http_timeout_ms, DEFAULT_HTTP_TIMEOUT_MS);
        assert!(cli.config.check_timeouts().is_ok());
    }

    #[test]
    fn seed_takes_sizes() {
        let cli = Cli::parse_from(["notegraph", "seed", "--users", "5", "--notes", "50", "--seed", "7"]);
        match cli.command {
            Some(Command::Seed(args)) => {
                assert_eq!((args.users, args.notes, args.tags, args.seed, args.force), (5, 50, 200, 7, false));
            }
            other => panic!("expected seed, got {other:?}"),
        }
    }

    #[test]
    fn seed_is_forced_only_when_asked() {
        let cli = Cli::parse_from(["notegraph", "seed", "--force"]);
        match cli.command {
            Some(Command::Seed(args)) => assert!(args.force && !args.if_empty),
            other => panic!("expected seed, got {other:?}"),
        }
        assert!(Cli::try_parse_from(["notegraph", "seed", "--force", "--if-empty"]).is_err());
    }

    #[test]
    fn healthcheck_defaults_to_the_listen_port() {
        let cli = Cli::parse_from(["notegraph", "healthcheck"]);
        match cli.command {
            Some(Command::Healthcheck(args)) => {
                assert_eq!((args.url, args.timeout_ms), (None, DEFAULT_HEALTHCHECK_TIMEOUT_MS));
            }
            other => panic!("expected healthcheck, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_value_from_a_variable_is_named_by_the_variable() {
        let err = Cli::try_parse_from(["notegraph", "--max-depth", "deep"]).unwrap_err();
        let enum_err = Cli::try_parse_from(["notegraph", "--log-format", "xml"]).unwrap_err();
        let bool_err = Cli::try_parse_from(["notegraph", "--cache-enabled", "maybe"]).unwrap_err();

        let from_env = from_variable(&err, &["notegraph".to_owned()]).unwrap();
        assert!(from_env.starts_with("NOTEGRAPH_MAX_DEPTH is not valid (invalid digit"), "{from_env}");
        assert!(!from_env.contains("--max-depth") && !from_env.contains("deep"), "{from_env}");
        let written = ["notegraph".to_owned(), "--max-depth".to_owned(), "deep".to_owned()];
        assert_eq!(from_variable(&err, &written), None, "a flag on the command line keeps clap's message");
        let from_env = from_variable(&enum_err, &[]).unwrap();
        assert_eq!(
            from_env,
            "NOTEGRAPH_LOG_FORMAT is not valid (expected one of text, json); see docs/CONFIGURATION.md"
        );
        assert!(from_variable(&bool_err, &[]).unwrap().starts_with("NOTEGRAPH_CACHE_ENABLED is not valid"));
    }

    #[test]
    fn booleans_read_as_operators_write_them() {
        for (value, expected) in
            [("1", true), ("0", false), ("yes", true), ("no", false), ("true", true), ("false", false)]
        {
            let cli = Cli::try_parse_from(["notegraph", "--cache-enabled", value]).unwrap();
            assert_eq!(cli.config.cache.cache_enabled, expected, "{value}");
        }
    }
}
