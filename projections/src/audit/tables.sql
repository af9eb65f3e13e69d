-- audit_log in a new version's schema (the search path names it); the secondary indexes
-- (indexes.sql) come after the bulk load.
CREATE TABLE audit_log (
    position bigint PRIMARY KEY,
    workspace_id uuid NOT NULL,
    action text NOT NULL,
    stream_id text NOT NULL,
    actor_kind text NOT NULL,
    actor text,
    ip text,
    user_agent text,
    request_id uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL
);
