-- Sync runs as workers carry them out (migration 0012's queue): how many times the run was
-- claimed, by which worker last, and the kind of its failure. Projected from SyncClaimed and the
-- typed SyncFailed (catalog projection).
ALTER TABLE sync_runs ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE sync_runs ADD COLUMN worker text;
ALTER TABLE sync_runs ADD COLUMN error_kind text;
