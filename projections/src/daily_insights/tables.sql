-- daily_insights and its history (every value a campaign-day had: see migration 0020) in a new
-- version's schema (the search path names it); the secondary indexes (indexes.sql) come after
-- the bulk load.
CREATE TABLE daily_insights (
    campaign_id uuid NOT NULL,
    date date NOT NULL,
    workspace_id uuid NOT NULL,
    connection_id uuid NOT NULL,
    platform text NOT NULL,
    ad_account_id text NOT NULL,
    currency char(3) NOT NULL,
    impressions bigint NOT NULL,
    clicks bigint NOT NULL,
    spend numeric NOT NULL,
    conversions numeric NOT NULL,
    conversion_value numeric NOT NULL,
    revision integer NOT NULL,
    last_position bigint NOT NULL,
    PRIMARY KEY (campaign_id, date)
);
CREATE TABLE daily_insights_history (
    campaign_id uuid NOT NULL,
    date date NOT NULL,
    revision integer NOT NULL,
    workspace_id uuid NOT NULL,
    connection_id uuid NOT NULL,
    platform text NOT NULL,
    ad_account_id text NOT NULL,
    currency char(3) NOT NULL,
    impressions bigint NOT NULL,
    clicks bigint NOT NULL,
    spend numeric NOT NULL,
    conversions numeric NOT NULL,
    conversion_value numeric NOT NULL,
    sync_id uuid NOT NULL,
    recorded_at timestamptz NOT NULL,
    position bigint NOT NULL,
    superseded_at timestamptz,
    superseded_position bigint,
    PRIMARY KEY (campaign_id, date, revision)
);
