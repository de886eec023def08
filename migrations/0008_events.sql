-- The event log: one row per state change, written in the transaction that
-- made the change. AUTOINCREMENT: ids are never reused, even after the
-- oldest rows are removed (--event-max-age), so a consumer's `since` stays valid.
--   type: an lc_api::EventType name; path: the lorry, host: the Upstream Host
--   (either may be NULL); body: a JSON object, never a secret.
CREATE TABLE events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    time INTEGER NOT NULL,
    type TEXT NOT NULL,
    path TEXT,
    host TEXT,
    body TEXT NOT NULL
);

-- 1 while a lorry is in an overdue spell whose lorry-overdue event has been
-- recorded; its next successful job sets it back to 0.
ALTER TABLE lorries ADD COLUMN overdue INTEGER NOT NULL DEFAULT 0;
