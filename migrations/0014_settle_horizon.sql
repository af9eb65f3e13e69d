-- What holds the settle horizon back, for /readyz and /metrics: every open transaction in the
-- cluster with a transaction id or a snapshot, every prepared transaction, and every replication
-- slot that pins an xmin. The sequencer only takes events whose transaction id is below the
-- oldest running one (0001, sequencer.rs), so one transaction left open anywhere in the cluster
-- freezes the log head; this names it.
--
-- SECURITY DEFINER: the application role (adledger_app, a NOLOGIN role the pool SETs) may not see
-- other sessions' state and start time; the migrating owner sees its own sessions (every adledger
-- process) and, with pg_read_all_stats or as a superuser, every session of the cluster. Without
-- that right Postgres still shows pid, database, user and transaction ids: only state and age go
-- blank. The function returns metadata only, never a query's text.
CREATE FUNCTION adledger_horizon_holders()
RETURNS TABLE (
    kind             text,
    pid              integer,
    database         text,
    username         text,
    application_name text,
    state            text,
    -- Since the transaction began (or was prepared); NULL when hidden from the owner.
    age_seconds      double precision,
    -- Transactions begun since its transaction id (or, without one, its snapshot's xmin).
    xid_age          integer,
    -- It has a transaction id: the sequencer waits for it (a snapshot alone holds only vacuum).
    holds_xid        boolean,
    -- A prepared transaction's gid or a replication slot's name.
    name             text
)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT 'transaction', a.pid, a.datname::text, a.usename::text, a.application_name, a.state,
           extract(epoch FROM clock_timestamp() - a.xact_start)::double precision,
           coalesce(age(a.backend_xid), age(a.backend_xmin)),
           a.backend_xid IS NOT NULL, NULL
    FROM pg_stat_activity a
    WHERE (a.backend_xid IS NOT NULL OR a.backend_xmin IS NOT NULL)
      AND a.pid <> pg_backend_pid()
    UNION ALL
    SELECT 'prepared_transaction', NULL, p.database::text, p.owner::text, NULL, 'prepared',
           extract(epoch FROM clock_timestamp() - p.prepared)::double precision,
           age(p.transaction), true, p.gid
    FROM pg_prepared_xacts p
    UNION ALL
    SELECT 'replication_slot', r.active_pid, r.database::text, NULL, NULL,
           CASE WHEN r.active THEN 'active' ELSE 'inactive' END, NULL,
           greatest(age(r.xmin), age(r.catalog_xmin)), false, r.slot_name::text
    FROM pg_replication_slots r
    WHERE r.xmin IS NOT NULL OR r.catalog_xmin IS NOT NULL
$$;

REVOKE ALL ON FUNCTION adledger_horizon_holders() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION adledger_horizon_holders() TO adledger_app;
