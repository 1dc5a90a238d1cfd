//! The GraphQL section: how operations execute (loader delay, the
//! execution deadline, introspection and suggestions, the parsed-document
//! cache, trusted documents) and the limits a document must stay within
//! (depth, cost, aliases, root fields, size, tokens, directives; each
//! default says why, docs/SECURITY.md says more).

use std::path::PathBuf;

use clap::Args;

/// The GraphQL execution deadline: inside the HTTP one, so a slow
/// execution still answers with a GraphQL `TIMEOUT` error, not a 504.
pub const DEFAULT_GRAPHQL_TIMEOUT_MS: u64 = 25_000;
/// See [`GraphqlConfig::loader_delay_us`].
pub const DEFAULT_LOADER_DELAY_US: u64 = 0;
/// Deepest field nesting an operation may have; the deepest query the
/// clients need (`notes { similar { note { author { notes { tags { name } } } } } }`) is 7.
pub const DEFAULT_MAX_DEPTH: usize = 12;
/// Highest operation cost (each field 1, a list's subtree times its
/// `first`): the heaviest measured query in the README costs 14,050.
pub const DEFAULT_MAX_COMPLEXITY: u64 = 25_000;
/// Aliases in one document: enough for a dashboard, too few to fan one
/// expensive root field out hundreds of times.
pub const DEFAULT_MAX_ALIASES: usize = 30;
/// Fields at the root of the executed operation.
pub const DEFAULT_MAX_ROOT_FIELDS: usize = 20;
/// Largest document, in bytes: long documents are a parser workload, and
/// long texts belong in variables.
pub const DEFAULT_MAX_DOCUMENT_BYTES: usize = 32 * 1024;
/// Most lexical tokens in a document (the standard introspection query has
/// about 300).
pub const DEFAULT_MAX_TOKENS: usize = 4_000;
/// Most directives on one field or fragment.
pub const DEFAULT_MAX_DIRECTIVES_PER_FIELD: usize = 4;
/// See [`GraphqlConfig::parsed_documents_bytes`]: about 10,000 of the
/// published mix's documents (each counted as 64 bytes per byte of text
/// plus 1 KiB).
pub const DEFAULT_PARSED_DOCUMENTS_BYTES: u64 = 32 * 1024 * 1024;

/// GraphQL execution settings.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "GraphQL")]
pub struct GraphqlConfig {
    /// Extra wait (µs) before a loader batch is dispatched, after every
    /// request feeding it is idle: larger batches across concurrent
    /// requests, paid once per level of every query (docs/batching.md).
    #[arg(long, env = "NOTEGRAPH_LOADER_DELAY_US", default_value_t = DEFAULT_LOADER_DELAY_US, global = true)]
    pub loader_delay_us: u64,
    /// Deadline for executing one operation, in ms; past it the answer is
    /// a GraphQL error with code TIMEOUT.
    #[arg(long, env = "NOTEGRAPH_GRAPHQL_TIMEOUT_MS", default_value_t = DEFAULT_GRAPHQL_TIMEOUT_MS, global = true)]
    pub graphql_timeout_ms: u64,
    /// Answer introspection queries; default: on unless NOTEGRAPH_ENV=production.
    #[arg(long, env = "NOTEGRAPH_INTROSPECTION", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub introspection: Option<bool>,
    /// Serve GraphiQL at `/`; default: on wherever introspection is, which
    /// the IDE needs.
    #[arg(long, env = "NOTEGRAPH_GRAPHIQL", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub graphiql: Option<bool>,
    /// Suggest field names in validation errors; default: on unless
    /// NOTEGRAPH_ENV=production.
    #[arg(long, env = "NOTEGRAPH_FIELD_SUGGESTIONS", action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub field_suggestions: Option<bool>,
    /// Deepest field nesting of an operation.
    #[arg(long, env = "NOTEGRAPH_MAX_DEPTH", default_value_t = DEFAULT_MAX_DEPTH, global = true)]
    pub max_depth: usize,
    /// Highest operation cost: each field costs 1, and a list field's
    /// subtree is multiplied by its `first` (or its default).
    #[arg(long, env = "NOTEGRAPH_MAX_COMPLEXITY", default_value_t = DEFAULT_MAX_COMPLEXITY, global = true)]
    pub max_complexity: u64,
    /// Most aliases in one document.
    #[arg(long, env = "NOTEGRAPH_MAX_ALIASES", default_value_t = DEFAULT_MAX_ALIASES, global = true)]
    pub max_aliases: usize,
    /// Most fields at the root of the executed operation.
    #[arg(long, env = "NOTEGRAPH_MAX_ROOT_FIELDS", default_value_t = DEFAULT_MAX_ROOT_FIELDS, global = true)]
    pub max_root_fields: usize,
    /// Largest document, in bytes.
    #[arg(long, env = "NOTEGRAPH_MAX_DOCUMENT_BYTES", default_value_t = DEFAULT_MAX_DOCUMENT_BYTES, global = true)]
    pub max_document_bytes: usize,
    /// Most lexical tokens in a document.
    #[arg(long, env = "NOTEGRAPH_MAX_TOKENS", default_value_t = DEFAULT_MAX_TOKENS, global = true)]
    pub max_tokens: usize,
    /// Most directives on one field or fragment.
    #[arg(long, env = "NOTEGRAPH_MAX_DIRECTIVES_PER_FIELD", default_value_t = DEFAULT_MAX_DIRECTIVES_PER_FIELD, global = true)]
    pub max_directives_per_field: usize,
    /// Memory for parsed documents kept by their shape (their text with
    /// string literals' contents set aside), so that a document sent again,
    /// or with another id written inline, is not parsed again; 0 keeps none.
    #[arg(long, env = "NOTEGRAPH_PARSED_DOCUMENTS_BYTES", default_value_t = DEFAULT_PARSED_DOCUMENTS_BYTES, global = true)]
    pub parsed_documents_bytes: u64,
    /// Answer queries over plain row data (the root `notes` list with
    /// authors and tags, `users`, `note(id:)` with its author, `user(id:)`
    /// with a page of notes and their tags) straight from their statements'
    /// rows, the same bytes without resolving each field
    /// (docs/PERFORMANCE.md); off while NOTEGRAPH_METRICS_HOT_FIELDS times
    /// fields, which it resolves.
    #[arg(long, env = "NOTEGRAPH_GRAPHQL_FAST_PATH", default_value_t = true, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub graphql_fast_path: bool,
    /// A JSON file of trusted documents (hash → document, or Apollo's
    /// persisted query manifest): when set, only these execute.
    #[arg(long, env = "NOTEGRAPH_TRUSTED_DOCUMENTS", global = true)]
    pub trusted_documents: Option<PathBuf>,
}
