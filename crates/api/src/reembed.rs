//! `notegraph reembed`: re-embeds, in id order and in batches, the notes
//! the configured embedder did not make (`notes.embedded_with` differs from
//! its identity, or is unknown), so that a run interrupted anywhere resumes
//! by itself and a finished one has nothing to do. Each batch's update
//! notifies every server to drop its cached search results.

use std::io::Write;
use std::time::Instant;

use anyhow::Context as _;
use embed::Embedder;

/// How much one run does.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Notes per batch: one embedding call and one update each.
    pub batch: i64,
    /// Stop after this many batches (a rerun continues), or run to the end.
    pub max_batches: Option<u64>,
}

/// What one run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    /// Notes another (or an unknown) model had embedded when the run began.
    pub stale: i64,
    /// Notes this run re-embedded.
    pub done: i64,
    /// Notes read but left alone because they were written meanwhile
    /// (their writer embedded them).
    pub skipped: i64,
    /// False when `max_batches` stopped the run before the end.
    pub finished: bool,
}

/// Re-embeds with `embedder` every note it did not embed, printing progress
/// to `out` after each batch.
pub async fn run(
    pool: &db::PgPool,
    embedder: &dyn Embedder,
    options: Options,
    out: &mut dyn Write,
) -> anyhow::Result<Report> {
    anyhow::ensure!(options.batch > 0, "--batch must be positive");
    let model = embedder.identity();
    let stale = db::embeddings::count_stale(pool, &model).await?;
    let mut report = Report { stale, done: 0, skipped: 0, finished: true };
    if stale == 0 {
        writeln!(out, "0 notes to re-embed: every note is embedded with {model}")?;
        return Ok(report);
    }
    writeln!(out, "{stale} notes to re-embed with {model}")?;
    let (mut after, mut batches) = (db::NoteId(0), 0_u64);
    let started = Instant::now();
    loop {
        if options.max_batches.is_some_and(|max| batches >= max) {
            report.finished = false;
            writeln!(out, "stopped after {batches} batches (--max-batches); run again to continue")?;
            break;
        }
        let notes = db::embeddings::stale_after(pool, &model, after, options.batch).await?;
        let Some(last) = notes.last().map(|n| n.id) else { break };
        let texts: Vec<String> = notes.iter().map(|n| embed::note_text(&n.title, &n.body)).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = embedder.embed(&refs).await.with_context(|| {
            format!("embedding the notes after id {after}; run `notegraph reembed` again to continue")
        })?;
        let vectors: Vec<pgvector::Vector> = vectors.into_iter().map(pgvector::Vector::from).collect();
        let stored = i64::try_from(db::embeddings::store(pool, &notes, &vectors, &model).await?)?;
        report.done += stored;
        report.skipped += i64::try_from(notes.len())? - stored;
        (after, batches) = (last, batches + 1);
        writeln!(
            out,
            "re-embedded {}/{stale} notes, up to id {after} ({:.0} notes/s)",
            report.done,
            report.done as f64 / started.elapsed().as_secs_f64()
        )?;
    }
    if report.finished {
        writeln!(
            out,
            "done: re-embedded {} notes in {:.1} s{}",
            report.done,
            started.elapsed().as_secs_f64(),
            if report.skipped > 0 {
                format!(" ({} written meanwhile, left to their writer)", report.skipped)
            } else {
                String::new()
            }
        )?;
    }
    Ok(report)
}
