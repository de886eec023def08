-- Upstream and Downstream Hosts.

-- What an Upstream Host's listing said of a generated lorry's repository,
-- copied to the downstream repository when it is created. No row: nothing known.
CREATE TABLE lorry_upstream_meta (
    path        TEXT PRIMARY KEY REFERENCES lorries (path) ON DELETE CASCADE ON UPDATE CASCADE,
    head        TEXT,   -- default branch name
    description TEXT
) WITHOUT ROWID;

-- The limit of concurrently running jobs of lorries from one Upstream Host
-- (--max-jobs-per-host). No row: no limit.
CREATE TABLE max_jobs_per_host (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    max_jobs INTEGER NOT NULL CHECK (max_jobs >= 0)
);
