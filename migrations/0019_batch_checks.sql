-- Batch checks (db/batches.rs): a lorry in a batch is held by a job row of
-- its own, as a running job holds it, whose `batch` is the id of the
-- batch's first hold (the id the minion reports under). Ordinary jobs
-- have NULL. A hold row is deleted when its batch ends.
ALTER TABLE jobs ADD COLUMN batch INTEGER;
CREATE INDEX jobs_by_batch ON jobs (batch) WHERE batch IS NOT NULL;

-- A batch check is a check without a job: checked_how may say 'listing'
-- (the CHECK of migration 16 is widened by replacing the column).
ALTER TABLE lorries ADD COLUMN checked_how_new TEXT
    CHECK (checked_how_new IN ('manifest', 'activity', 'listing'));
UPDATE lorries SET checked_how_new = checked_how WHERE checked_how IS NOT NULL;
ALTER TABLE lorries DROP COLUMN checked_how;
ALTER TABLE lorries RENAME COLUMN checked_how_new TO checked_how;
