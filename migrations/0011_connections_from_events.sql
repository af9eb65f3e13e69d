-- The connections read model is built from events alone: when a person must renew a connection's
-- authorization comes from PlatformConnected / ConnectionReauthorized, no longer from the tokens'
-- side table (connection_credentials), so a rebuild gives it back. Connections whose events
-- predate the field show none until they are reauthorized.
ALTER TABLE connections ADD COLUMN authorization_expires_at timestamptz;
