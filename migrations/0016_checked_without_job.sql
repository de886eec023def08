-- Checked without a job, as operators see it (the status and lorry pages,
-- /1.0/lorry and /1.0/status), kept on the lorry's row so the run queue
-- is read without a join:
--   checked_without_job: when it was last checked without a job (it was
--     lorry_fingerprints.skipped, which is no longer written);
--   checked_how: what said it was unchanged, 'manifest' or 'activity';
--   last_job: when its latest job started (last_run also moves on a check).
ALTER TABLE lorries ADD COLUMN checked_without_job INTEGER;
ALTER TABLE lorries ADD COLUMN checked_how TEXT
    CHECK (checked_how IN ('manifest', 'activity'));
ALTER TABLE lorries ADD COLUMN last_job INTEGER;

UPDATE lorries SET last_job = (SELECT MAX(started) FROM jobs WHERE jobs.path = lorries.path);

-- A check made before this migration did not record how; a lorry whose
-- host gives fingerprints was checked by its manifest.
UPDATE lorries SET checked_without_job = f.skipped,
    checked_how = CASE WHEN f.upstream IS NOT NULL THEN 'manifest' ELSE 'activity' END,
    last_job = COALESCE(lorries.last_job, f.full_check)
FROM lorry_fingerprints f
WHERE f.path = lorries.path AND f.skipped IS NOT NULL;
