-- Versioned read models (docs/architecture.md, "Rebuilds"). Each built version of a read model
-- lives in its own schema, rm_<name>_<version>; readers read through views in `public` named as
-- the tables always were, pointing at the live version, so queries are unchanged. A rebuild builds
-- a new version beside the live one and switches the views in one transaction.
--
-- The application role creates and drops versions at run time, so it owns the versions' schemas,
-- their tables and the views (never the log: events, event_log and idempotency_keys stay owned by
-- the migrating role, with only SELECT, INSERT granted).

CREATE TABLE read_model_versions (
    name            text        NOT NULL,
    version         integer     NOT NULL CHECK (version > 0),
    -- The projection code's version (`ReadModel::version`) that built it.
    code_version    integer     NOT NULL CHECK (code_version > 0),
    state           text        NOT NULL CHECK (state IN ('building', 'live', 'retired')),
    -- Progress of a version readers do not see (building or retired). The live version's progress
    -- is its `projection_checkpoints` row, as before (read-your-writes and status read it there).
    position        bigint      NOT NULL DEFAULT 0 CHECK (position >= 0),
    events_applied  bigint      NOT NULL DEFAULT 0,
    events_per_sec  double precision NOT NULL DEFAULT 0,
    -- The secondary indexes exist (a build creates them after its bulk load).
    indexed         boolean     NOT NULL DEFAULT false,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- When readers last moved onto it, and off it (a rollback returns to the latest retired).
    switched_at     timestamptz,
    retired_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT read_model_versions_pkey PRIMARY KEY (name, version)
);
-- One live version and at most one build per read model.
CREATE UNIQUE INDEX read_model_versions_live_idx ON read_model_versions (name) WHERE state = 'live';
CREATE UNIQUE INDEX read_model_versions_building_idx ON read_model_versions (name)
    WHERE state = 'building';

-- The application creates a version's schema through this function alone (it may not create
-- schemas itself): only names of the form rm_<name>_<version>, owned by adledger_app. A function
-- and its grant travel with a dump, where a database-level grant would not.
CREATE FUNCTION adledger_create_read_model_schema(schema_name text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
BEGIN
    IF schema_name !~ '^rm_[a-z][a-z0-9_]*_[0-9]+$' THEN
        RAISE EXCEPTION 'not a read model version schema: %', schema_name;
    END IF;
    EXECUTE format('CREATE SCHEMA %I AUTHORIZATION adledger_app', schema_name);
END
$$;
REVOKE ALL ON FUNCTION adledger_create_read_model_schema(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adledger_create_read_model_schema(text) TO adledger_app;
-- Views of tables a new version adds are created at its switch.
GRANT CREATE ON SCHEMA public TO adledger_app;

-- Today's tables become version 1 of their read model, rows and indexes included (SET SCHEMA
-- moves a table with its indexes and constraints; none of them has a sequence or a foreign key).
DO $$
DECLARE
    model record;
    t text;
BEGIN
    FOR model IN SELECT * FROM (VALUES
        ('catalog', ARRAY['workspaces', 'connections', 'ad_accounts', 'campaigns', 'sync_runs',
                          'workspace_members']),
        ('daily_insights', ARRAY['daily_insights', 'daily_insights_history']),
        ('audit', ARRAY['audit_log'])) AS m(name, tables)
    LOOP
        EXECUTE format('CREATE SCHEMA %I AUTHORIZATION adledger_app', 'rm_' || model.name || '_1');
        FOREACH t IN ARRAY model.tables LOOP
            EXECUTE format('ALTER TABLE public.%I SET SCHEMA %I', t, 'rm_' || model.name || '_1');
            EXECUTE format('ALTER TABLE %I.%I OWNER TO adledger_app', 'rm_' || model.name || '_1', t);
            EXECUTE format('CREATE VIEW public.%I AS SELECT * FROM %I.%I',
                           t, 'rm_' || model.name || '_1', t);
            EXECUTE format('ALTER VIEW public.%I OWNER TO adledger_app', t);
        END LOOP;
        INSERT INTO read_model_versions (name, version, code_version, state, indexed, switched_at)
        VALUES (model.name, 1, 1, 'live', true, now());
    END LOOP;
END
$$;
