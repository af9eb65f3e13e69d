-- A sync run's progress, readable while it runs: the furthest day through which one of its ad
-- accounts has every day stored (the run reads each account in 30-day chunks, oldest first).
ALTER TABLE sync_runs ADD COLUMN progress_through date;
