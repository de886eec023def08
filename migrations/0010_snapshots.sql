-- Snapshots: a named moment of the ref ledger, for the lorries under a
-- prefix whose ledger was whole then. What a snapshot holds is read from
-- the ledger (db/snapshots.rs), so taking one writes one row however many
-- lorries there are; the ledger rows it needs are kept while it is.
CREATE TABLE snapshots (
    name TEXT PRIMARY KEY,
    taken INTEGER NOT NULL,
    prefix TEXT NOT NULL,
    -- Lorries in it (whole at `taken`), counted when it was taken.
    lorries INTEGER NOT NULL
);

-- Pins asked of a lorry's next job: a tip a snapshot names that left its
-- ref without being preserved downstream. state: 'pending' (to be asked),
-- 'pushed' (kept downstream as refs/lorry/snapshots/<snapshot>/<ref>),
-- 'reachable' (a kept ref reaches it: nothing pushed), 'lost' (the mirror
-- had it no more), 'unpin' (its snapshot was deleted: the pin ref is to be
-- removed). No foreign key: an 'unpin' row outlives its snapshot.
CREATE TABLE snapshot_pins (
    snapshot TEXT NOT NULL,
    path TEXT NOT NULL,
    ref TEXT NOT NULL,
    oid TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (snapshot, path, ref)
) WITHOUT ROWID;
CREATE INDEX snapshot_pins_todo ON snapshot_pins (path) WHERE state IN ('pending', 'unpin');
