-- The ref ledger: every ref tip a lorry's mirror has held, one row per
-- (lorry, ref, tip) from when it appeared to when it went. Fed by lorry's
-- job result at a job's end (db/provenance.rs): a row is inserted when a
-- tip appears and updated once when it goes, so an unchanged run writes
-- nothing. No foreign keys: the ledger outlives jobs and lorries.
CREATE TABLE ref_ledger (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    ref TEXT NOT NULL,
    oid TEXT NOT NULL,
    -- When the webapp learnt of it (the end of the job that reported it).
    first_seen INTEGER NOT NULL,
    first_job INTEGER,
    -- The tip it replaced (NULL: the ref was new) and how it came:
    -- 'created', 'moved', 'rewritten' (the old tip preserved), or 'seen'
    -- (in the first whole report of a lorry's refs: it was there already).
    prev_oid TEXT,
    came TEXT NOT NULL,
    prev_kept_as TEXT,
    -- NULL while the mirror holds it.
    ended INTEGER,
    end_job INTEGER,
    -- For an ended row: the last successful run that still had it.
    last_seen INTEGER,
    -- 'moved', 'rewritten', 'deleted' or 'removed' (its lorry was).
    gone TEXT,
    -- Where the tip was preserved (refs/lorry/preserved/...), if it was.
    kept_as TEXT
);
CREATE UNIQUE INDEX ref_ledger_held ON ref_ledger (path, ref) WHERE ended IS NULL;
CREATE INDEX ref_ledger_by_path ON ref_ledger (path, first_seen);

-- When a lorry's ledger is whole: from the first job result that listed
-- all its refs (`held`) until the lorry was removed (`until` NULL: still).
-- A lorry removed and added again starts a new span at its next whole list.
CREATE TABLE ref_ledger_whole (
    path TEXT NOT NULL,
    since INTEGER NOT NULL,
    until INTEGER,
    PRIMARY KEY (path, since)
) WITHOUT ROWID;
CREATE UNIQUE INDEX ref_ledger_whole_open ON ref_ledger_whole (path) WHERE until IS NULL;
