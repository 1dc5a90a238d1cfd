//! `similar` and IVFFlat beside HNSW.

use std::time::{Duration, Instant};

use db::PgPool;
use db::search::SimilarTo;
use futures::stream::{self, StreamExt as _};

use crate::{Args, Found, K, Query, TAG_1, found, pools, row, rows};

/// `Note.similar` (first 10) for the notes the near queries were drawn from.
pub(crate) async fn similar(args: &Args, exact: &PgPool, queries: &[Query]) -> anyhow::Result<()> {
    let keys: Vec<SimilarTo> =
        queries.iter().filter_map(|q| q.near).map(|note| SimilarTo { note, viewer: None, first: K }).collect();
    if keys.is_empty() {
        return Ok(());
    }
    let run = |pool: PgPool, parallel: usize| {
        let keys = keys.clone();
        async move {
            let results: Vec<Result<(Found, Duration), db::Error>> = stream::iter(keys)
                .map(|key| {
                    let pool = pool.clone();
                    async move {
                        let started = Instant::now();
                        let hits = db::search::similar_to(&pool, &[key]).await?;
                        Ok((hits.into_iter().map(|(_, h)| (h.note.id, h.score)).collect(), started.elapsed()))
                    }
                })
                .buffered(parallel)
                .collect()
                .await;
            let results = results.into_iter().collect::<Result<Vec<_>, _>>()?;
            anyhow::Ok(results.into_iter().unzip::<_, _, Vec<_>, Vec<_>>())
        }
    };
    let truth = run(exact.clone(), 2).await?.0;
    for &ef in &args.ef {
        let (one, _) = pools(args, ef, 0, 1).await?;
        let (found, latencies) = run(one, 1).await?;
        row("similar", "near", &ef.to_string(), "hnsw", &truth, &found, latencies, None);
    }
    Ok(())
}

/// IVFFlat beside HNSW: build times and sizes, then recall and latency
/// per `ivfflat.probes`, all inside a transaction that is rolled back.
pub(crate) async fn ivfflat(
    args: &Args,
    base: &db::Settings,
    pool: &PgPool,
    queries: &[Query],
    truth: [&Vec<Found>; 2],
) -> anyhow::Result<()> {
    let hnsw_bytes = db::bench::index_bytes(pool, "notes_embedding_hnsw_idx").await?;
    let mut session = db::bench::ivfflat_session(&base.connect_options()?, args.ivfflat_lists).await?;
    println!(
        "\nHNSW index: {:.1} MB (build time: see the seeder's `vector index built` log line). \
         IVFFlat, {} lists: built in {:.1} s, {:.1} MB.\n",
        hnsw_bytes as f64 / 1e6,
        args.ivfflat_lists,
        session.build.as_secs_f64(),
        session.bytes as f64 / 1e6
    );
    println!("| search | queries | probes | path | recall@10 | with ties | p50 ms | p99 ms | short | searches/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &probes in &args.probes {
        db::bench::set_probes(&mut session.conn, probes).await?;
        for (label, tag, truth) in [("all notes", None, truth[0]), ("tag ~1%", Some(TAG_1.name), truth[1])] {
            let mut hits_per_query = Vec::with_capacity(queries.len());
            let mut latencies = Vec::with_capacity(queries.len());
            for q in queries {
                let started = Instant::now();
                let hits = db::search::by_embedding(&mut session.conn, &q.vector, None, K, tag).await?;
                latencies.push(started.elapsed());
                hits_per_query.push(found(&hits));
            }
            rows(label, &probes.to_string(), "ivfflat", queries, truth, &hits_per_query, &latencies, None);
        }
    }
    Ok(())
}
