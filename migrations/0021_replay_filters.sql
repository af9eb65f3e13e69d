-- Replay filters for auditors (events API, `adledger replay`): a workspace's events by type, by
-- actor and by recorded time, each through an index rather than a walk over the whole history.
-- Stream type is left to a filter: a handful of values, each a large share of the log.

-- Who acted, as one comparable text: `user:<id>`, `api_key:<id>`, `system:<component>` or
-- `anonymous` (the actor as EventMetadata stores it). Immutable: it reads its argument only.
CREATE FUNCTION event_actor(metadata jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE metadata #>> '{actor,kind}'
        WHEN 'user' THEN 'user:' || (metadata #>> '{actor,user_id}')
        WHEN 'api_key' THEN 'api_key:' || (metadata #>> '{actor,api_key_id}')
        WHEN 'system' THEN 'system:' || (metadata #>> '{actor,name}')
        ELSE metadata #>> '{actor,kind}'
    END
$$;

CREATE INDEX events_workspace_type_idx ON events (workspace_id, event_type);
CREATE INDEX events_workspace_actor_idx ON events (workspace_id, event_actor(metadata));
CREATE INDEX events_workspace_recorded_idx ON events (workspace_id, recorded_at);
