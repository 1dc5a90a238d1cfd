-- The data set's tables and their indexes read into shared buffers
-- (pg_prewarm; the embedded cluster's 1 GB holds them), so that a run
-- measures the server and not the disk behind a just-started cluster:
-- cold, a create's walk through the HNSW index and a page's joins read
-- their pages from disk one by one. Used by the load-test runner
-- (stack.Postgres.prewarm) and bench/writes-vs-postgres.sh. Prints the
-- blocks read.
create extension if not exists pg_prewarm;
select coalesce(sum(pg_prewarm(c.oid)), 0)
from pg_class c
join pg_namespace s on s.oid = c.relnamespace
where s.nspname = 'public'
  and (c.relname in ('notes', 'users', 'tags', 'note_tags')
       or c.oid in (select indexrelid from pg_index
                    where indrelid in ('notes'::regclass, 'users'::regclass, 'tags'::regclass, 'note_tags'::regclass)));
