-- The audit read model: who did what, when and from where, per workspace. One row per event that
-- records an action (not per reported insights day: a sync's days are audited through the sync's
-- own events). Filled by the `audit` projection from the events' metadata.
CREATE TABLE audit_log (
    position      bigint      PRIMARY KEY,
    workspace_id  uuid        NOT NULL,
    action        text        NOT NULL,
    stream_id     text        NOT NULL,
    actor_kind    text        NOT NULL,
    actor         text,
    ip            text,
    user_agent    text,
    request_id    uuid        NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL
);
CREATE INDEX audit_log_workspace_idx ON audit_log (workspace_id, position);
CREATE INDEX audit_log_workspace_action_idx ON audit_log (workspace_id, action, position);
