CREATE INDEX IF NOT EXISTS daily_insights_workspace_date_idx ON daily_insights (workspace_id, date);
CREATE INDEX IF NOT EXISTS daily_insights_history_workspace_date_idx
    ON daily_insights_history (workspace_id, date, recorded_at);
