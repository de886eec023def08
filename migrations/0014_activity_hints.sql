-- Upstream Hosts with "activity-hint" (GitLab, Gitea, GitHub): when the
-- host's listing says a repository last changed, plus the host's documented
-- granularity and a margin. A due lorry whose last successful job started
-- after that is checked without a job (db/fingerprints.rs). NULL: no hint.
ALTER TABLE lorry_fingerprints ADD COLUMN activity INTEGER;
