-- Throughput of each projection's last batch (events applied / seconds the batch took), so that
-- `projections status` and GET /v1/projections can show a rate next to position and lag.
ALTER TABLE projection_checkpoints ADD COLUMN events_per_sec double precision NOT NULL DEFAULT 0;
