CREATE INDEX IF NOT EXISTS daily_insights_workspace_date_idx ON daily_insights (workspace_id, date);
