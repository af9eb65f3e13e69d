-- The connections read model is built from events alone: when a person must renew a connection's
-- authorization comes from PlatformConnected / ConnectionReauthorized, no longer from the tokens'
-- side table (connection_credentials), so a rebuild gives it back. Connections whose events
-- predate the field show none until they are reauthorized.
ALTER TABLE connections ADD COLUMN authorization_expires_at timestamptz;

-- Kafka-mode progress keeps what Postgres-log checkpoints keep, so that one status (and one
-- runner) covers both sources: the last batch's throughput and the last error.
ALTER TABLE projection_offsets
    ADD COLUMN events_per_sec double precision NOT NULL DEFAULT 0,
    ADD COLUMN last_error text;
