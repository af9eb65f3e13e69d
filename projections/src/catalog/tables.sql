-- The catalog's tables in a new version's schema (the search path names it). Keys only: the
-- secondary indexes (indexes.sql) come after the bulk load. Column order matters: a checksum
-- compares row texts, so it must stay as in the live version unless the code version changes.
CREATE TABLE workspaces (
    id uuid PRIMARY KEY,
    name text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE connections (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    platform text NOT NULL,
    label text NOT NULL,
    status text NOT NULL,
    connected_at timestamptz NOT NULL,
    last_sync_id uuid,
    last_sync_status text,
    last_synced_at timestamptz,
    authorization_expires_at timestamptz
);
CREATE TABLE ad_accounts (
    connection_id uuid NOT NULL,
    external_id text NOT NULL,
    workspace_id uuid NOT NULL,
    name text NOT NULL,
    currency text NOT NULL,
    time_zone text NOT NULL,
    discovered_at timestamptz NOT NULL,
    synced_through date,
    PRIMARY KEY (connection_id, external_id)
);
CREATE TABLE campaigns (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    connection_id uuid NOT NULL,
    ad_account_id text NOT NULL,
    external_id text NOT NULL,
    name text NOT NULL,
    status text NOT NULL,
    discovered_at timestamptz NOT NULL,
    last_sync_id uuid,
    last_sync_status text,
    last_synced_at timestamptz,
    synced_through date
);
CREATE TABLE sync_runs (
    id uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    connection_id uuid NOT NULL,
    status text NOT NULL,
    date_from date NOT NULL,
    date_to date NOT NULL,
    campaign_ids uuid[] NOT NULL,
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    days_recorded bigint NOT NULL DEFAULT 0,
    days_restated bigint NOT NULL DEFAULT 0,
    days_unchanged bigint NOT NULL DEFAULT 0,
    error text,
    progress_through date,
    attempts integer NOT NULL DEFAULT 0,
    worker text,
    error_kind text
);
CREATE TABLE workspace_members (
    workspace_id uuid NOT NULL,
    user_id uuid NOT NULL,
    role text NOT NULL,
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);
