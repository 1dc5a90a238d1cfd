-- The data set `notegraph seed` loaded, if the data present came from it.
--
-- The seeder replaces all data, so it first asks whether that data is its
-- own: when users, notes or tags exist and this table is empty, they came
-- from somewhere else (the API, a restore, another tool) and the seeder
-- refuses to drop them unless given `--force`. An empty database is always
-- fine to seed.
--
-- The seeder truncates this table with the data and inserts its row in the
-- same transaction as the load, so a row is here exactly when the present
-- data was loaded by the seeder. Writes made through the API after a seed
-- are not tracked: the row stays, and a later seed replaces them too.
-- Databases seeded before this table existed have data and no row, so their
-- first reseed needs `--force` once.
create table seed_runs (
    id          bigint generated always as identity primary key,
    seeded_at   timestamptz not null default now(),
    -- What was asked for, to tell data sets apart; numeric because the
    -- seed is an unsigned 64-bit number.
    seed        numeric(20, 0) not null,
    users       bigint not null,
    notes       bigint not null,
    tags        bigint not null
);
