CREATE INDEX IF NOT EXISTS connections_workspace_idx ON connections (workspace_id, id);
CREATE INDEX IF NOT EXISTS ad_accounts_workspace_idx ON ad_accounts (workspace_id);
CREATE INDEX IF NOT EXISTS campaigns_workspace_idx ON campaigns (workspace_id, id);
CREATE INDEX IF NOT EXISTS sync_runs_connection_idx ON sync_runs (connection_id, started_at DESC);
CREATE INDEX IF NOT EXISTS workspace_members_user_idx ON workspace_members (user_id);
