-- The ledger by ref: the refs a lorry held at a time are found with one
-- seek per ref name (its newest row that had started by then), not by
-- reading every row that started before it (db/provenance.rs `ledger_refs`).
CREATE INDEX ref_ledger_by_ref ON ref_ledger (path, ref, first_seen);
