-- Which embedder made each note's vector, as `model/dimension` (the
-- `Embedder::identity` of the embed crate). `notegraph reembed` re-embeds
-- only the notes whose value differs from the configured embedder's, so an
-- interrupted run resumes by itself and a finished one has nothing to do.
--
-- Nullable and without a default: Postgres only records the column in the
-- catalogue, it rewrites no row, so this is instant on a table of any size.
-- NULL (every note written before this column) means "made by an unknown
-- model": `notegraph reembed` redoes those notes.
alter table notes add column embedded_with text;
