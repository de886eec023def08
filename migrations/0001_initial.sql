-- STATEDB schema, version 1. Times are Unix seconds (UTC).

-- Whether give-me-job hands out jobs. Exactly one row.
CREATE TABLE running_queue (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    running INTEGER NOT NULL
);
INSERT INTO running_queue (id, running) VALUES (1, 1);

-- Upper limit of concurrently running jobs. No row: no limit.
CREATE TABLE max_jobs (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    max_jobs INTEGER NOT NULL
);

-- The time tests pretend it is. No row: the real clock.
CREATE TABLE pretend_time (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    now INTEGER NOT NULL
);

-- Upstream Hosts whose repositories are listed and mirrored.
CREATE TABLE hosts (
    host           TEXT PRIMARY KEY,
    type           TEXT NOT NULL,
    protocol       TEXT NOT NULL,
    lorry_interval INTEGER NOT NULL,
    lorry_timeout  INTEGER NOT NULL,
    ls_interval    INTEGER NOT NULL,
    ls_last_run    INTEGER NOT NULL DEFAULT 0,
    ls_last_error  TEXT,
    prefixmap      TEXT NOT NULL DEFAULT '{}',   -- JSON object
    ignore         TEXT NOT NULL DEFAULT '[]',   -- JSON list of globs
    type_params    TEXT NOT NULL DEFAULT '{}'    -- JSON object: auth, tokens; never shown
);

-- The run queue: one row per lorry.
--   move_kind: -1 moved to the top, 1 moved to the bottom, 0 not moved.
--   move_seq orders moves of the same kind; a move lasts until the next run starts.
CREATE TABLE lorries (
    path           TEXT PRIMARY KEY,
    text           TEXT NOT NULL,
    from_host      TEXT NOT NULL DEFAULT '',
    from_path      TEXT NOT NULL DEFAULT '',
    interval       INTEGER NOT NULL,
    lorry_timeout  INTEGER NOT NULL,
    last_run       INTEGER NOT NULL DEFAULT 0,
    last_run_exit  TEXT,
    last_run_error TEXT,
    disk_usage     INTEGER,
    running_job    INTEGER,
    move_kind      INTEGER NOT NULL DEFAULT 0 CHECK (move_kind IN (-1, 0, 1)),
    move_seq       INTEGER NOT NULL DEFAULT 0,
    due            INTEGER GENERATED ALWAYS AS (last_run + interval) VIRTUAL
);
-- give-me-job looks for the first idle lorry of each kind: these make it O(log n).
CREATE INDEX lorries_idle_by_due ON lorries (move_kind, due, path) WHERE running_job IS NULL;
CREATE INDEX lorries_idle_by_move ON lorries (move_kind, move_seq) WHERE running_job IS NULL;
CREATE INDEX lorries_by_host ON lorries (from_host, path);

-- Jobs, running and finished. AUTOINCREMENT: ids start at 1 and are never reused.
CREATE TABLE jobs (
    job_id     INTEGER PRIMARY KEY AUTOINCREMENT,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    path       TEXT NOT NULL,
    started    INTEGER NOT NULL,
    ended      INTEGER,
    updated    INTEGER NOT NULL,
    timeout    INTEGER NOT NULL,
    kill       INTEGER NOT NULL DEFAULT 0,
    exit       TEXT,
    disk_usage INTEGER
);
CREATE INDEX jobs_running ON jobs (job_id) WHERE ended IS NULL;
CREATE INDEX jobs_by_path ON jobs (path, job_id);

-- Output of jobs, one row per job-update that carried any, so appending is O(chunk).
CREATE TABLE job_output (
    job_id INTEGER NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    seq    INTEGER NOT NULL,
    text   TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;

-- Problems found in CONFGIT by the last read-configuration.
CREATE TABLE config_problems (
    seq     INTEGER PRIMARY KEY,
    file    TEXT NOT NULL,
    item    TEXT,
    problem TEXT NOT NULL
);
