-- The event log without AUTOINCREMENT, rows and ids kept (issue 17's cost:
-- AUTOINCREMENT rewrote sqlite_sequence's page in every transaction that
-- recorded an event). Ids still never go back or get reused, so a
-- consumer's `since` and a hook's cursor stay valid:
-- * a new row's id is one more than the newest row's (SQLite's rowid rule);
-- * the trigger keeps the newest row from being deleted (retention keeps
--   it), so the newest id never decreases;
-- * event_id_floor holds the highest id given before this migration (the
--   old sqlite_sequence value), which retention may have removed with the
--   rows; the first event recorded while no row is above it is moved to
--   floor + 1 (db/events.rs).
CREATE TABLE events_new (
    id   INTEGER PRIMARY KEY,
    time INTEGER NOT NULL,
    type TEXT NOT NULL,
    path TEXT,
    host TEXT,
    body TEXT NOT NULL
);
INSERT INTO events_new (id, time, type, path, host, body)
    SELECT id, time, type, path, host, body FROM events ORDER BY id;

CREATE TABLE event_id_floor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    floor INTEGER NOT NULL
);
INSERT INTO event_id_floor (id, floor)
    SELECT 1, COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0);

DROP TABLE events;
ALTER TABLE events_new RENAME TO events;

CREATE TRIGGER events_keep_newest BEFORE DELETE ON events
WHEN OLD.id = (SELECT MAX(id) FROM events)
BEGIN
    SELECT RAISE(ABORT, 'the newest event is never deleted: its id keeps new ids from going back');
END;
