-- Webhook delivery. The event log is the outbox: a hook's row says how far
-- it has delivered, so an event not yet delivered survives any restart or
-- crash and is sent (at least once, in id order) when the webapp runs again.
--   name: the hook's name (its URL with credentials hidden, unless named);
--   delivered: the id of the last event delivered (a new hook starts at the
--     newest event: it is not sent the past);
--   failures: failed attempts in a row (0 after a delivery);
--   last_error: why the last attempt failed (no secret: credentials hidden);
--   last_attempt, last_success: Unix seconds.
CREATE TABLE webhooks (
    name         TEXT PRIMARY KEY,
    delivered    INTEGER NOT NULL,
    failures     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_attempt INTEGER,
    last_success INTEGER
);
