-- Channels: a name pointing at a snapshot (promotion changes the pointer,
-- never the snapshot), and every pointing with its time. A snapshot a
-- channel points at cannot be deleted (db/snapshots.rs).
CREATE TABLE channels (
    name TEXT PRIMARY KEY,
    snapshot TEXT NOT NULL,
    since INTEGER NOT NULL
);

CREATE TABLE channel_history (
    id INTEGER PRIMARY KEY,
    channel TEXT NOT NULL,
    snapshot TEXT NOT NULL,
    time INTEGER NOT NULL
);
CREATE INDEX channel_history_by_channel ON channel_history (channel, id);
