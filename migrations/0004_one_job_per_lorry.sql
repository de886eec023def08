-- Pretended time is kept in the webapp's memory now (StateDb::set_pretend_time):
-- a STATEDB once run with --debug-allow-pretend-time must not keep a frozen clock.
DROP TABLE pretend_time;

-- One lorry never has two running jobs. A STATEDB written before this
-- migration may hold a pair (a lorry removed from CONFGIT and re-added while
-- its job ran was handed out again): the older job is ended as a ghost, with
-- a line in its output saying why, and its minion is told to kill it.
INSERT INTO job_output (job_id, seq, text)
SELECT job_id,
       (SELECT COALESCE(MAX(seq), 0) + 1 FROM job_output o WHERE o.job_id = jobs.job_id),
       char(10) || 'lorry-controller: ended on upgrade: a newer job of the same lorry runs' || char(10)
FROM jobs
WHERE ended IS NULL
  AND EXISTS (SELECT 1 FROM jobs newer
              WHERE newer.path = jobs.path AND newer.ended IS NULL AND newer.job_id > jobs.job_id);
UPDATE jobs SET ended = updated, exit = '127', kill = 1
WHERE ended IS NULL
  AND EXISTS (SELECT 1 FROM jobs newer
              WHERE newer.path = jobs.path AND newer.ended IS NULL AND newer.job_id > jobs.job_id);
-- A lorry re-added while its job ran had lost it: it gets it back.
UPDATE lorries
SET running_job = (SELECT job_id FROM jobs WHERE jobs.path = lorries.path AND ended IS NULL)
WHERE running_job IS NULL
  AND EXISTS (SELECT 1 FROM jobs WHERE jobs.path = lorries.path AND ended IS NULL);
CREATE UNIQUE INDEX jobs_one_running_per_path ON jobs (path) WHERE ended IS NULL;
