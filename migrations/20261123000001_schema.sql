-- Notegraph's data: users write notes, notes carry tags, every note has an
-- embedding for search by meaning.

-- pgvector provides the `vector` type and the HNSW index.
create extension if not exists vector;

create table users (
    id          bigserial primary key,
    name        text not null,
    -- Unique so that an address names one account; emails are compared as
    -- written (the seeder and clients lower-case them).
    email       text not null unique,
    created_at  timestamptz not null default now()
);

-- An enum rather than a boolean so that a third level (for example
-- "unlisted") is a migration, not a rewrite of every query.
create type note_visibility as enum ('public', 'private');

create table notes (
    id          bigserial primary key,
    author_id   bigint not null references users (id) on delete cascade,
    title       text not null,
    body        text not null,
    visibility  note_visibility not null default 'public',
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    -- 384 dimensions: the default embedder's size and that of the common
    -- small sentence models, so a real provider can replace it unchanged.
    embedding   vector(384) not null
);

-- `User.notes` and `notes(authorId:)` walk one author's notes newest first
-- with keyset paging (`id < after`): this index serves both the filter and
-- the order, so a page is an index range scan of `first` entries.
create index notes_author_id_id_idx on notes (author_id, id desc);

-- Nearest-neighbour search by cosine distance (`<=>`). m = 16 and
-- ef_construction = 64 are pgvector's defaults and give >0.95 recall at
-- this size with `hnsw.ef_search` = 100 (set per connection by the pool);
-- larger values cost build time for little gain on 100k rows.
create index notes_embedding_hnsw_idx on notes
    using hnsw (embedding vector_cosine_ops) with (m = 16, ef_construction = 64);

create table tags (
    id    bigserial primary key,
    -- Tag names are stored trimmed and lower-cased by the writer, so the
    -- unique index is also the lookup index for `tag(name:)`.
    name  text not null unique
);

create table note_tags (
    note_id  bigint not null references notes (id) on delete cascade,
    tag_id   bigint not null references tags (id) on delete cascade,
    -- note -> tags (`Note.tags`, batched by note id).
    primary key (note_id, tag_id)
);

-- tag -> notes newest first (`Tag.notes`, `notes(tag:)`, tag-filtered
-- search): scanned backwards this index yields a tag's notes by id desc.
create index note_tags_tag_id_note_id_idx on note_tags (tag_id, note_id);
