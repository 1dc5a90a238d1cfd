//! Searches per second through the GraphQL API of a running server.

use std::time::{Duration, Instant};

use crate::{Args, Query, noisy};

/// Searches per second through the GraphQL API: `clients` clients, each
/// sending one `searchNotes(vector:)` after the other, every vector a near
/// query with fresh noise so that no response comes from the cache: the
/// noise is seeded by the run's start time, since a second run with the
/// first one's vectors would be answered from the server's cache. Responses
/// the server still marks `x-cache: hit` are counted and reported.
pub(crate) async fn run(url: &str, queries: &[Query], args: &Args) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(args.clients).build()?;
    let endpoint = format!("{}/graphql", url.trim_end_matches('/'));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let run_seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64;
    let workers = (0..args.clients).map(|worker| {
        let (client, endpoint) = (client.clone(), endpoint.clone());
        async move {
            let mut latencies = Vec::new();
            let mut errors = 0_u64;
            let mut hits = 0_u64;
            let mut n = worker as u64;
            while Instant::now() < deadline {
                let base = &queries[n as usize % queries.len()].vector;
                let vector = noisy(base, run_seed.wrapping_add(n), args.noise);
                let body = serde_json::json!({
                    "query": "query($v: [Float!]) { searchNotes(vector: $v, first: 10) { score note { id } } }",
                    "variables": { "v": vector.as_slice() },
                });
                let sent = Instant::now();
                let response = client.post(&endpoint).json(&body).send().await;
                let ok = match response {
                    Ok(r) => {
                        hits += u64::from(r.headers().get("x-cache").is_some_and(|h| h == "hit"));
                        r.json::<serde_json::Value>().await.is_ok_and(|v| v.get("errors").is_none())
                    }
                    Err(_) => false,
                };
                latencies.push(sent.elapsed());
                errors += u64::from(!ok);
                n += args.clients as u64;
            }
            (latencies, errors, hits)
        }
    });
    let results = futures::future::join_all(workers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let errors: u64 = results.iter().map(|(_, e, _)| e).sum();
    let hits: u64 = results.iter().map(|(_, _, h)| h).sum();
    let mut latencies: Vec<Duration> = results.into_iter().flat_map(|(l, _, _)| l).collect();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "API {endpoint}: {} clients, {:.0} searches/s over {elapsed:.1} s, p50 {:.2} ms, p99 {:.2} ms, {errors} errors, {hits} cache hits",
        args.clients,
        latencies.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
