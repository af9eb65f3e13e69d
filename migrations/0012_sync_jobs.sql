-- The sync workers' queue (commands/src/syncs/worker.rs, infra/src/sync_jobs.rs): every sync run
-- started, and a discovery of ad accounts and campaigns after every connect and reconnect. The
-- database adds a job in the same transaction as the event that asks for it (a trigger on
-- `events`), so a job can neither be lost nor exist without its event. Workers lease a job while
-- they carry it out and renew the lease; a job whose lease lapsed (its worker died) is taken over.
-- The log stays the record of what happened: this table only says who works on what now.

CREATE TABLE sync_jobs (
    -- The sync id for a sync run; the id of the connect/reconnect event for a discovery.
    id             uuid        PRIMARY KEY,
    kind           text        NOT NULL CHECK (kind IN ('sync', 'discovery')),
    workspace_id   uuid        NOT NULL,
    connection_id  uuid        NOT NULL,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    -- The worker holding the lease (kept after the lease lapses, to name it on a takeover;
    -- cleared when a worker hands the job back).
    owner          text,
    lease_until    timestamptz,
    -- How many times a worker took the job.
    claims         integer     NOT NULL DEFAULT 0,
    -- A job that failed for a passing reason waits until then.
    not_before     timestamptz,
    done_at        timestamptz
);
CREATE INDEX sync_jobs_open_idx ON sync_jobs (requested_at, id) WHERE done_at IS NULL;

CREATE FUNCTION enqueue_sync_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.event_type = 'SyncStarted' THEN
        INSERT INTO sync_jobs (id, kind, workspace_id, connection_id)
        VALUES ((NEW.payload->>'sync_id')::uuid, 'sync', NEW.workspace_id,
                (NEW.payload->>'connection_id')::uuid)
        ON CONFLICT (id) DO NOTHING;
    ELSE
        INSERT INTO sync_jobs (id, kind, workspace_id, connection_id)
        VALUES (NEW.event_id, 'discovery', NEW.workspace_id,
                (NEW.payload->>'connection_id')::uuid)
        ON CONFLICT (id) DO NOTHING;
    END IF;
    -- Delivered at commit: idle workers wake at once instead of at their next poll.
    PERFORM pg_notify('adledger_sync_jobs', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER events_enqueue_sync_jobs AFTER INSERT ON events
    FOR EACH ROW
    WHEN (NEW.event_type IN ('SyncStarted', 'PlatformConnected', 'ConnectionReauthorized'))
    EXECUTE FUNCTION enqueue_sync_job();

-- Runs started before workers owned them and never ended (their process died): workers take
-- them over and finish them.
INSERT INTO sync_jobs (id, kind, workspace_id, connection_id, requested_at)
SELECT (s.payload->>'sync_id')::uuid, 'sync', s.workspace_id,
       (s.payload->>'connection_id')::uuid, s.recorded_at
FROM events s
WHERE s.event_type = 'SyncStarted'
  AND NOT EXISTS (
      SELECT 1 FROM events e
      WHERE e.stream_id = s.stream_id
        AND e.event_type IN ('SyncCompleted', 'SyncFailed')
        AND e.payload->>'sync_id' = s.payload->>'sync_id')
ON CONFLICT (id) DO NOTHING;
