//! The `notegraph` binary: parse the command line, run the command.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::cli::run(api::Cli::parse()).await
}
