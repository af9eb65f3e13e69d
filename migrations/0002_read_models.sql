-- Read models: disposable, rebuilt from the log at any time. Rows carry only values derived from
-- events (never the wall clock of the projection), so two rebuilds give byte-identical tables.

CREATE TABLE projection_checkpoints (
    name            text        PRIMARY KEY,
    position        bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    last_error      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE workspaces (
    id          uuid        PRIMARY KEY,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE connections (
    id              uuid        PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    platform        text        NOT NULL,
    label           text        NOT NULL,
    status          text        NOT NULL,
    connected_at    timestamptz NOT NULL,
    last_sync_id    uuid,
    last_sync_status text,
    last_synced_at  timestamptz
);
CREATE INDEX connections_workspace_idx ON connections (workspace_id, id);

CREATE TABLE ad_accounts (
    connection_id   uuid        NOT NULL,
    external_id     text        NOT NULL,
    workspace_id    uuid        NOT NULL,
    name            text        NOT NULL,
    currency        text        NOT NULL,
    time_zone       text        NOT NULL,
    discovered_at   timestamptz NOT NULL,
    PRIMARY KEY (connection_id, external_id)
);
CREATE INDEX ad_accounts_workspace_idx ON ad_accounts (workspace_id);

CREATE TABLE campaigns (
    id              uuid        PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    connection_id   uuid        NOT NULL,
    ad_account_id   text        NOT NULL,
    external_id     text        NOT NULL,
    name            text        NOT NULL,
    status          text        NOT NULL,
    discovered_at   timestamptz NOT NULL,
    last_sync_id    uuid,
    last_sync_status text,
    last_synced_at  timestamptz,
    synced_through  date
);
CREATE INDEX campaigns_workspace_idx ON campaigns (workspace_id, id);

CREATE TABLE sync_runs (
    id              uuid        PRIMARY KEY,
    workspace_id    uuid        NOT NULL,
    connection_id   uuid        NOT NULL,
    status          text        NOT NULL,
    date_from       date        NOT NULL,
    date_to         date        NOT NULL,
    campaign_ids    uuid[]      NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    days_recorded   bigint      NOT NULL DEFAULT 0,
    days_restated   bigint      NOT NULL DEFAULT 0,
    days_unchanged  bigint      NOT NULL DEFAULT 0,
    error           text
);
CREATE INDEX sync_runs_connection_idx ON sync_runs (connection_id, started_at DESC);

-- One row per (campaign, day): the latest numbers the platform reported, in the account currency.
CREATE TABLE daily_insights (
    campaign_id      uuid        NOT NULL,
    date             date        NOT NULL,
    workspace_id     uuid        NOT NULL,
    connection_id    uuid        NOT NULL,
    platform         text        NOT NULL,
    ad_account_id    text        NOT NULL,
    currency         char(3)     NOT NULL,
    impressions      bigint      NOT NULL,
    clicks           bigint      NOT NULL,
    spend            numeric     NOT NULL,
    conversions      numeric     NOT NULL,
    conversion_value numeric     NOT NULL,
    revision         integer     NOT NULL,
    last_position    bigint      NOT NULL,
    PRIMARY KEY (campaign_id, date)
);
CREATE INDEX daily_insights_workspace_date_idx ON daily_insights (workspace_id, date);
