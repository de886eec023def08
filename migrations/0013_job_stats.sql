-- Jobs ended per hour, for the pages' charts: one row per hour and Upstream
-- Host, written in the transaction that ends a job (job-update with an exit,
-- the ghost reaper). Kept for 35 days by the housekeeping task, so the
-- charts never read the jobs table, whose rows go with --job-max-age.
--   hour: Unix time of the hour's start (UTC); host: the lorry's Upstream
--   Host when the job ended, '' for a lorry of its own (or one removed).
CREATE TABLE job_stats_hourly (
    hour      INTEGER NOT NULL,
    host      TEXT NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0 CHECK (succeeded >= 0),
    failed    INTEGER NOT NULL DEFAULT 0 CHECK (failed >= 0),
    PRIMARY KEY (hour, host)
) WITHOUT ROWID;

-- The jobs still remembered, so the charts have a past from the first start.
INSERT INTO job_stats_hourly (hour, host, succeeded, failed)
SELECT jobs.ended - jobs.ended % 3600, COALESCE(lorries.from_host, ''),
       SUM(jobs.exit = '0'), SUM(jobs.exit != '0')
FROM jobs LEFT JOIN lorries ON lorries.path = jobs.path
WHERE jobs.ended IS NOT NULL AND jobs.exit IS NOT NULL
GROUP BY 1, 2;
