//! The `notegraph` binary: parse the command line, run the command.

/// mimalloc instead of glibc's malloc: a request allocates many small,
/// short-lived objects across two worker threads, where glibc's malloc and
/// free measured about a tenth of the server's CPU (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    api::commands::run(api::cli::parse()).await
}
