-- Lorry health, for metrics and the status page.
--   last_success: Unix time the last successful job ended; NULL when none has.
--   consecutive_failures: failed jobs since the last success.
ALTER TABLE lorries ADD COLUMN last_success INTEGER;
ALTER TABLE lorries ADD COLUMN consecutive_failures INTEGER NOT NULL DEFAULT 0;
