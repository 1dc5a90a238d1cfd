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
    /// The user id the token authenticates as (claim `sub`).
    pub user_id: i64,
    /// Lifetime in seconds (claim `exp`).
    #[arg(long, default_value_t = 3600)]
    pub ttl: u64,
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
}
