-- The sync scheduler: each ad account's sync cursor (the last day up to which every day is
-- stored), projected from AccountSynced events. NULL until a sync completes a first chunk.
ALTER TABLE ad_accounts ADD COLUMN synced_through date;

-- The scheduler lists every connection stream from its first event each round.
CREATE INDEX events_stream_starts_idx ON events (stream_type, id) WHERE stream_version = 1;
