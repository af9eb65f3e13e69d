CREATE INDEX IF NOT EXISTS audit_log_workspace_idx ON audit_log (workspace_id, position);
CREATE INDEX IF NOT EXISTS audit_log_workspace_action_idx ON audit_log (workspace_id, action, position);
