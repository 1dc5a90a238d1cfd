//! For the tests of the configuration: one section (or all of [`Config`])
//! read from a command line, so that each section is tested on its own.
//!
//! [`Config`]: super::Config

use clap::{Args, Parser};

/// A command line that holds only the section `S`.
#[derive(Parser)]
struct Only<S: Args> {
    #[command(flatten)]
    section: S,
}

/// Section `S` of the command line `notegraph <args>`, or why clap refuses it.
pub(super) fn try_parse<S: Args>(args: &[&str]) -> Result<S, clap::Error> {
    let args = std::iter::once("notegraph").chain(args.iter().copied());
    Only::<S>::try_parse_from(args).map(|only| only.section)
}

/// Section `S` of the command line `notegraph <args>`, which clap accepts.
pub(super) fn parse<S: Args>(args: &[&str]) -> S {
    try_parse(args).unwrap_or_else(|err| panic!("{args:?}: {err}"))
}
