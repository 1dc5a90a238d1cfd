//! `just bench-vector`: recall@10 of the search statements against exact
//! search (the same statement with index scans disabled), their latency
//! and throughput at the database, for several `hnsw.ef_search` values,
//! with and without tag filters, for `similar`, and for IVFFlat beside
//! HNSW. With `--api URL` it instead measures searches per second through
//! the GraphQL API of a running server. Results go to stdout as Markdown
//! tables (docs/PERFORMANCE.md, "Vector search").

use std::collections::HashSet;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use db::bench::SyntheticTag;
use db::search::Hit;
use db::{NoteId, PgPool};
use embed::HashEmbedder;
use futures::stream::{self, StreamExt as _};
use pgvector::Vector;
use xxhash_rust::xxh3::xxh3_64_with_seed;

mod api;
mod indexes;

/// Hits compared per query: recall@10.
const K: i64 = 10;
/// How much farther than the exact 10th hit a hit may be and still count
/// in the tie-aware recall: ann-benchmarks' default for its k-nn recall.
/// Short free-text queries hash to a few buckets, so many notes share a
/// score and exact search's own pick among them is arbitrary.
const TIE: f64 = 1e-3;

/// One query's hits as (id, cosine similarity), best first.
pub(crate) type Found = Vec<(NoteId, f64)>;
/// About 1% and about 10% of the notes, spread by id so that the tag has
/// nothing to do with the embeddings.
const TAG_1: SyntheticTag = SyntheticTag { name: "bench-1pct", modulus: 100, remainder: 7 };
const TAG_3: SyntheticTag = SyntheticTag { name: "bench-3pct", modulus: 33, remainder: 5 };
const TAG_10: SyntheticTag = SyntheticTag { name: "bench-10pct", modulus: 10, remainder: 3 };

/// The benchmark's knobs; defaults are those of docs/PERFORMANCE.md.
#[derive(Parser)]
pub(crate) struct Args {
    /// The database holding the default data set (`notegraph seed`).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Queries drawn near real notes (an embedding plus noise).
    #[arg(long, default_value_t = 1000)]
    near: i64,
    /// Free-text queries through the default embedder.
    #[arg(long, default_value_t = 200)]
    text: i64,
    /// Free-text queries from this file, one a line (blank lines and lines
    /// starting with `#` skipped), instead of words of note titles: the
    /// sentences a person types (`bench/text-queries.txt`).
    #[arg(long)]
    text_file: Option<std::path::PathBuf>,
    /// Embed the free-text queries with the local model (all-MiniLM-L6-v2)
    /// from this directory instead of the built-in embedder: for a
    /// database whose notes the model embedded (`notegraph reembed` with
    /// `NOTEGRAPH_EMBEDDER=minilm`).
    #[cfg(feature = "minilm")]
    #[arg(long)]
    minilm_dir: Option<std::path::PathBuf>,
    /// Largest noise added to each component of a near query (components
    /// of a 384-dimension unit vector are about 0.05).
    #[arg(long, default_value_t = 0.02)]
    noise: f32,
    /// Only the searches over all notes, the defaults' row and `similar`:
    /// the tag filters' exact scans are most of a full run.
    #[arg(long)]
    no_tags: bool,
    /// `hnsw.ef_search` values to measure.
    #[arg(long, value_delimiter = ',', default_value = "20,40,80,160")]
    ef: Vec<u32>,
    /// Connections for the throughput run at the database.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// IVFFlat lists (0 skips IVFFlat).
    #[arg(long, default_value_t = 100)]
    ivfflat_lists: u32,
    /// `ivfflat.probes` values to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,5,10,20,40")]
    probes: Vec<u32>,
    /// Measure searches/s through this running API instead (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    api: Option<String>,
    /// Concurrent clients of the API run.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Length of the API run, in seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
}

/// A row group of the table: label, tag filter, and the tag paths to
/// measure as (`exact_tag_notes`, name).
type Scenario<'a> = (&'a str, Option<&'a str>, &'a [(u32, &'a str)]);

/// One query: a vector, and the note it was drawn near (excluded from nothing; used by `similar`).
pub(crate) struct Query {
    pub(crate) vector: Vector,
    pub(crate) near: Option<NoteId>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = settings(&args.database_url, 100, 2_000, 4);
    let pool = db::connect(&base).await.context("connecting")?;
    let queries = queries(&pool, &args).await?;
    if let Some(url) = &args.api {
        return api::run(url, &queries, &args).await;
    }
    let tag_1 = db::bench::ensure_tag(&pool, TAG_1).await?;
    let tag_3 = db::bench::ensure_tag(&pool, TAG_3).await?;
    let tag_10 = db::bench::ensure_tag(&pool, TAG_10).await?;
    println!(
        "{} queries ({} near notes, {} free text); tags: {} = {tag_1} notes, {} = {tag_3}, {} = {tag_10}\n",
        queries.len(),
        queries.iter().filter(|q| q.near.is_some()).count(),
        queries.iter().filter(|q| q.near.is_none()).count(),
        TAG_1.name,
        TAG_3.name,
        TAG_10.name
    );
    let exact_options = base.connect_options()?.options([("enable_indexscan", "off")]);
    let exact = base.pool_options().max_connections(2).connect_with(exact_options).await?;

    println!(
        "| search | queries | ef_search | path | recall@10 | with ties | p50 ms | p99 ms | short | searches/s ({} conns) |",
        args.concurrency
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    // `exact_tag_notes` 0 forces the HNSW path for tags, u32::MAX the exact path.
    let scenarios: [Scenario<'_>; 4] = [
        ("all notes", None, &[(0, "hnsw")]),
        ("tag ~1%", Some(TAG_1.name), &[(0, "hnsw"), (u32::MAX, "exact")]),
        ("tag ~3%", Some(TAG_3.name), &[(0, "hnsw"), (u32::MAX, "exact")]),
        ("tag ~10%", Some(TAG_10.name), &[(0, "hnsw"), (u32::MAX, "exact")]),
    ];
    // One untimed pass so that the first measured row does not pay for
    // reading the index and the table into memory.
    search_all(&db::connect(&settings(&args.database_url, args.ef[0], 0, 1)).await?, &queries, None, None, 1).await?;
    let mut truths = Vec::new();
    let scenarios = if args.no_tags { &scenarios[..1] } else { &scenarios[..] };
    for &(label, tag, paths) in scenarios {
        let truth = search_all(&exact, &queries, tag, None, 2).await?.0;
        for &(threshold, path) in paths {
            let efs: &[u32] = if path == "exact" { &args.ef[..1] } else { &args.ef };
            for &ef in efs {
                let pools = pools(&args, ef, threshold, args.concurrency).await?;
                let (found, latencies) = search_all(&pools.0, &queries, tag, None, 1).await?;
                let rate = throughput(&pools.1, &queries, tag, None, args.concurrency).await?;
                let ef_label = if path == "exact" { "-".to_owned() } else { ef.to_string() };
                rows(label, &ef_label, path, &queries, &truth, &found, &latencies, Some(rate));
            }
        }
        truths.push(truth);
    }
    defaults(&args, &queries, &truths[0]).await?;
    indexes::similar(&args, &exact, &queries).await?;
    if args.ivfflat_lists > 0 && !args.no_tags {
        indexes::ivfflat(&args, &base, &pool, &queries, [&truths[0], &truths[1]]).await?;
    }
    Ok(())
}

/// The server's defaults on all notes: vectors (the near queries) at
/// `NOTEGRAPH_HNSW_EF_SEARCH`, free text at `NOTEGRAPH_HNSW_EF_SEARCH_TEXT`'s
/// default for its embedder (the model's with `--minilm-dir`) set for its
/// one search as the server does, recall by kind and over all, and
/// searches/s over the whole mixed set.
async fn defaults(args: &Args, queries: &[Query], truth: &[Found]) -> anyhow::Result<()> {
    let text_ef = match args.minilm_dir {
        Some(_) => ::api::config::DEFAULT_HNSW_EF_SEARCH_TEXT_MODEL,
        None => ::api::config::DEFAULT_HNSW_EF_SEARCH_TEXT,
    };
    let vector_ef = ::api::config::DEFAULT_HNSW_EF_SEARCH;
    let (one, many) = pools(args, vector_ef, 0, args.concurrency).await?;
    let (hits_per_query, latencies) = search_all(&one, queries, None, Some(text_ef), 1).await?;
    let rate = throughput(&many, queries, None, Some(text_ef), args.concurrency).await?;
    let ef = format!("{vector_ef} / {text_ef}");
    rows("all notes, defaults", &ef, "hnsw", queries, truth, &hits_per_query, &latencies, Some(rate));
    Ok(())
}

/// Pool settings for the benchmark database.
pub(crate) fn settings(url: &str, ef: u32, exact_tag_notes: u32, connections: u32) -> db::Settings {
    db::Settings {
        url: url.to_owned(),
        max_connections: connections,
        min_connections: 0,
        max_lifetime: Duration::from_secs(1800),
        statement_cache: 100,
        acquire_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(120),
        hnsw_ef_search: ef,
        hnsw_max_scan_tuples: 20_000,
        exact_tag_notes,
        ivfflat_probes: 10,
    }
}

/// A one-connection pool for latency and a `concurrency`-connection pool
/// for throughput, both with these settings.
pub(crate) async fn pools(
    args: &Args,
    ef: u32,
    threshold: u32,
    concurrency: usize,
) -> anyhow::Result<(PgPool, PgPool)> {
    let one = db::connect(&settings(&args.database_url, ef, threshold, 1)).await?;
    let many = db::connect(&settings(&args.database_url, ef, threshold, u32::try_from(concurrency)?)).await?;
    Ok((one, many))
}

/// Near queries (a public note's embedding plus deterministic noise) and
/// free-text queries (words of note titles) through the default embedder.
async fn queries(pool: &PgPool, args: &Args) -> anyhow::Result<Vec<Query>> {
    let near = db::bench::sample_notes(pool, 80, args.near).await?;
    let mut queries: Vec<Query> = near
        .iter()
        .enumerate()
        .map(|(i, (id, vector, _))| Query { vector: noisy(vector, i as u64, args.noise), near: Some(*id) })
        .collect();
    let texts = match &args.text_file {
        Some(path) => {
            let file = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            file.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
        }
        None => title_words(pool, args.text).await?,
    };
    for vector in embed_texts(args, &texts)? {
        queries.push(Query { vector: Vector::from(vector), near: None });
    }
    Ok(queries)
}

/// `count` free-text queries made of note titles' words: the first three
/// words of one sampled title and the last of the next.
async fn title_words(pool: &PgPool, count: i64) -> anyhow::Result<Vec<String>> {
    let titles = db::bench::sample_notes(pool, 397, count + 1).await?;
    Ok(titles
        .windows(2)
        .map(|pair| {
            let words: Vec<&str> =
                pair[0].2.split_whitespace().take(3).chain(pair[1].2.split_whitespace().last()).collect();
            words.join(" ")
        })
        .collect())
}

/// The free-text queries' vectors: the built-in embedder's, or the
/// model's with `--minilm-dir`.
fn embed_texts(args: &Args, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    #[cfg(feature = "minilm")]
    if let Some(dir) = &args.minilm_dir {
        let model = embed::MiniLmEmbedder::load(dir)?;
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        return Ok(model.embed_blocking(&texts)?);
    }
    let _ = args;
    let embedder = HashEmbedder::default();
    Ok(texts.iter().map(|text| embedder.embed_one(text)).collect())
}

/// `vector` plus uniform noise in [-noise, noise] per component, from a
/// hash of (`seed`, component) so that every run asks the same queries.
pub(crate) fn noisy(vector: &Vector, seed: u64, noise: f32) -> Vector {
    let components = vector.as_slice().iter().enumerate().map(|(i, x)| {
        let bits = xxh3_64_with_seed(&(i as u64).to_le_bytes(), seed);
        let unit = (bits >> 11) as f64 / (1_u64 << 53) as f64;
        x + noise * (unit as f32 * 2.0 - 1.0)
    });
    Vector::from(components.collect::<Vec<f32>>())
}

/// Runs every query (`parallel` at a time), returning the hits per query
/// and each query's latency. With `text_ef`, free-text queries run at that
/// `ef_search`, set for their one search as the server sets it.
pub(crate) async fn search_all(
    pool: &PgPool,
    queries: &[Query],
    tag: Option<&str>,
    text_ef: Option<u32>,
    parallel: usize,
) -> anyhow::Result<(Vec<Found>, Vec<Duration>)> {
    let results: Vec<Result<(Found, Duration), db::Error>> = stream::iter(queries)
        .map(|q| async move {
            let started = Instant::now();
            let mut conn = pool.acquire().await?;
            let hits = match text_ef.filter(|_| q.near.is_none()) {
                Some(ef) => db::search::by_embedding_with_ef(&mut conn, ef, &q.vector, None, K, tag).await?,
                None => db::search::by_embedding(&mut conn, &q.vector, None, K, tag).await?,
            };
            Ok((found(&hits), started.elapsed()))
        })
        .buffered(parallel)
        .collect()
        .await;
    let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(results.into_iter().unzip())
}

/// Searches per second with `concurrency` searches in flight.
async fn throughput(
    pool: &PgPool,
    queries: &[Query],
    tag: Option<&str>,
    text_ef: Option<u32>,
    concurrency: usize,
) -> anyhow::Result<f64> {
    let started = Instant::now();
    search_all(pool, queries, tag, text_ef, concurrency).await?;
    Ok(queries.len() as f64 / started.elapsed().as_secs_f64())
}

pub(crate) fn found(hits: &[Hit]) -> Found {
    hits.iter().map(|h| (h.note.id, h.score)).collect()
}

/// Prints the rows of one measurement over `queries`: the near queries,
/// the free-text ones and all of them apart, since the two kinds differ in
/// recall (a near query sits close to a note, a text query usually not).
/// The searches/s `rate` was measured over all of them, so only that row
/// shows it.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rows(
    label: &str,
    ef: &str,
    path: &str,
    queries: &[Query],
    truth: &[Found],
    found: &[Found],
    latencies: &[Duration],
    rate: Option<f64>,
) {
    let near = queries.iter().take_while(|q| q.near.is_some()).count();
    for (kind, range) in [("near", 0..near), ("text", near..queries.len())] {
        if !range.is_empty() && range.len() < queries.len() {
            let subset = (&truth[range.clone()], &found[range.clone()]);
            row(label, kind, ef, path, subset.0, subset.1, latencies[range].to_vec(), None);
        }
    }
    row(label, "all", ef, path, truth, found, latencies.to_vec(), rate);
}

/// Prints one table row: mean recall@10 against `truth` by id and
/// tie-aware (a hit counts when it is no farther than the exact 10th plus
/// [`TIE`]), latency percentiles, how many queries got fewer hits than
/// exact search found.
#[allow(clippy::too_many_arguments)]
pub(crate) fn row(
    label: &str,
    kind: &str,
    ef: &str,
    path: &str,
    truth: &[Found],
    found: &[Found],
    mut latencies: Vec<Duration>,
    rate: Option<f64>,
) {
    let mean = |per_query: &dyn Fn(&Found, &Found) -> usize| {
        let sum: f64 = truth
            .iter()
            .zip(found)
            .map(|(t, f)| if t.is_empty() { 1.0 } else { per_query(t, f).min(t.len()) as f64 / t.len() as f64 })
            .sum();
        sum / truth.len() as f64
    };
    let recall = mean(&|t, f| {
        let f: HashSet<NoteId> = f.iter().map(|(id, _)| *id).collect();
        t.iter().filter(|(id, _)| f.contains(id)).count()
    });
    let with_ties = mean(&|t, f| {
        let last = t.last().map_or(f64::NEG_INFINITY, |(_, score)| *score);
        f.iter().filter(|(_, score)| *score >= last - TIE).count()
    });
    let short = truth.iter().zip(found).filter(|(t, f)| f.len() < t.len()).count();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    let rate = rate.map_or("-".to_owned(), |r| format!("{r:.0}"));
    println!(
        "| {label} | {kind} | {ef} | {path} | {recall:.3} | {with_ties:.3} | {:.2} | {:.2} | {short} | {rate} |",
        pct(0.5),
        pct(0.99)
    );
}
