-- Upstream Hosts that publish a grokmirror manifest: what it says of each
-- repository, and what that said when the lorry's last job started and
-- succeeded. A due lorry whose manifest fingerprint equals the one of its
-- last successful job is checked without a job (db/fingerprints.rs).
CREATE TABLE lorry_fingerprints (
    path       TEXT PRIMARY KEY REFERENCES lorries (path) ON DELETE CASCADE ON UPDATE CASCADE,
    upstream   TEXT,     -- the fingerprint in the host's manifest as last read; NULL: none
    job        TEXT,     -- `upstream` when the lorry's latest job started
    success    TEXT,     -- `job` of the latest job, if that job succeeded; NULL otherwise
    full_check INTEGER,  -- start of the latest successful job
    skipped    INTEGER   -- when it was last checked without a job
) WITHOUT ROWID;

-- --full-check-every: a lorry is given a job at least this often whatever
-- the manifest says. Written when the webapp starts. No row: 24 hours.
CREATE TABLE full_check_every (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    seconds INTEGER NOT NULL CHECK (seconds >= 0)
);
