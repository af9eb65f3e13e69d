-- The event log of record. Insert-only: a trigger and the application role's privileges both
-- forbid UPDATE, DELETE and TRUNCATE (DESIGN.md, "The event log", properties 1-7).

-- The role the application runs as (the pool does `SET ROLE adledger_app` on every connection).
-- It may read and insert into the log tables, never change or remove a row.
DO $$
BEGIN
    CREATE ROLE adledger_app NOLOGIN;
EXCEPTION
    WHEN duplicate_object THEN NULL;
    WHEN unique_violation THEN NULL; -- two databases migrating at once on one cluster
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT adledger_app TO %I', current_user);
EXCEPTION
    WHEN duplicate_object OR invalid_grant_operation THEN NULL;
END
$$;

GRANT USAGE ON SCHEMA public TO adledger_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO adledger_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO adledger_app;

CREATE FUNCTION reject_log_mutation() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'table % is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege', HINT = 'events are immutable; append a new event instead';
END
$$;

-- Every event as its writer committed it. `id` is insertion order and has holes (burnt sequence
-- numbers); `tx_id` lets the sequencer take only rows whose transactions can no longer commit late.
CREATE TABLE events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tx_id           xid8        NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid        NOT NULL,
    stream_id       text        NOT NULL,
    stream_type     text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version > 0),
    workspace_id    uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL,
    occurred_at     timestamptz NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);
CREATE INDEX events_settle_order_idx ON events (tx_id, id);

-- The global order: a dense, gapless position for every settled event, and the hash chain
-- hash = sha256(prev_hash || canonical event bytes). Written only by the sequencer.
CREATE TABLE event_log (
    position      bigint      PRIMARY KEY CHECK (position > 0),
    event_row_id  bigint      NOT NULL,
    workspace_id  uuid        NOT NULL,
    hash          bytea       NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT event_log_event_row_id_key UNIQUE (event_row_id)
);
CREATE INDEX event_log_workspace_position_idx ON event_log (workspace_id, position);

-- Idempotent command retries: the first outcome under a key is kept and returned again.
CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   text        NOT NULL,
    outcome       jsonb       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key)
);

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER event_log_append_only BEFORE UPDATE OR DELETE ON event_log
    FOR EACH ROW EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON event_log
    FOR EACH STATEMENT EXECUTE FUNCTION reject_log_mutation();
CREATE TRIGGER idempotency_keys_append_only BEFORE UPDATE OR DELETE ON idempotency_keys
    FOR EACH ROW EXECUTE FUNCTION reject_log_mutation();

REVOKE UPDATE, DELETE, TRUNCATE ON events, event_log, idempotency_keys FROM adledger_app;
GRANT SELECT, INSERT ON events, event_log, idempotency_keys TO adledger_app;
