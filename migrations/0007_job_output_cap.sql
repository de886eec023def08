-- Each job's stored output is capped (--job-output-max): the first half of
-- the cap is kept as the head, then a marker row, then the most recent tail.
-- The counters let job-update cap the output as chunks arrive, without
-- reading what is stored.
--   output_head:    bytes stored before the marker
--   output_tail:    bytes stored after it
--   output_marker:  seq of the marker row once the head is full (the row
--                   itself exists once something was dropped)
--   output_dropped: bytes dropped between head and tail
ALTER TABLE jobs ADD COLUMN output_head INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN output_tail INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN output_marker INTEGER;
ALTER TABLE jobs ADD COLUMN output_dropped INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET output_head = (
    SELECT COALESCE(SUM(length(CAST(text AS BLOB))), 0) FROM job_output o
    WHERE o.job_id = jobs.job_id);
-- last_run_error keeps at most the last 64 KiB of a failed job's output.
UPDATE lorries SET last_run_error = substr(last_run_error, -65536)
WHERE length(last_run_error) > 65536;
