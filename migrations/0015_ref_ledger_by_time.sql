-- The ledger by time: a snapshot diff reads only the rows that appeared
-- or ended between its two snapshots (db/snapshots.rs), not both whole
-- manifests.
CREATE INDEX ref_ledger_by_first_seen ON ref_ledger (first_seen);
CREATE INDEX ref_ledger_by_ended ON ref_ledger (ended) WHERE ended IS NOT NULL;
