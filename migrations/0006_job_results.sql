-- What a job did, as lorry's result file told it (lc_api::JobResult, JSON,
-- versioned), sent by the minion with the job's end. At most one per job;
-- removed with its job.
CREATE TABLE job_results (
    job_id INTEGER PRIMARY KEY REFERENCES jobs (job_id) ON DELETE CASCADE,
    result TEXT NOT NULL
);
