-- Insights as reported: every value a campaign-day has had (one row per revision), when it was
-- recorded (the event's recorded_at and log position), by which sync, and when a later revision
-- replaced it. A read "as of" a time or position keeps the rows recorded by then and not yet
-- replaced by then: one filter over an index, never a replay. Built by the daily_insights
-- projection beside daily_insights; rows are keyed by revision, so a replay inserts nothing.
CREATE TABLE daily_insights_history (
    campaign_id         uuid        NOT NULL,
    date                date        NOT NULL,
    revision            integer     NOT NULL,
    workspace_id        uuid        NOT NULL,
    connection_id       uuid        NOT NULL,
    platform            text        NOT NULL,
    ad_account_id       text        NOT NULL,
    currency            char(3)     NOT NULL,
    impressions         bigint      NOT NULL,
    clicks              bigint      NOT NULL,
    spend               numeric     NOT NULL,
    conversions         numeric     NOT NULL,
    conversion_value    numeric     NOT NULL,
    sync_id             uuid        NOT NULL,
    recorded_at         timestamptz NOT NULL,
    position            bigint      NOT NULL,
    -- The next revision's recorded_at and position; NULL while this is the current value.
    superseded_at       timestamptz,
    superseded_position bigint,
    PRIMARY KEY (campaign_id, date, revision)
);
-- The as-of read: a workspace's days in a range, then the recorded/superseded filter.
CREATE INDEX daily_insights_history_workspace_date_idx
    ON daily_insights_history (workspace_id, date, recorded_at);
