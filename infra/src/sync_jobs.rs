//! The sync workers' queue: sync runs and discoveries to carry out, added by the database in the
//! same transaction as the event that asks for them (migration 0012), leased by one worker at a
//! time. Leases are timed by the database's clock, so workers on several machines agree on when
//! one lapsed. This table says who works on what now; what happened is in the log.

use crate::event_store::StoreError;
use adledger_domain::{ConnectionId, WorkerId, WorkspaceId};
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use std::time::Duration;
use uuid::Uuid;

/// The channel the queue's trigger notifies when a job is added (or handed back).
const CHANNEL: &str = "adledger_sync_jobs";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Carry out a started sync run (the job's id is the sync id).
    Sync,
    /// Discover the ad accounts and campaigns of a connection just connected or reconnected.
    Discovery,
}

/// A job this worker holds the lease of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: Uuid,
    pub kind: JobKind,
    pub workspace_id: WorkspaceId,
    pub connection_id: ConnectionId,
    /// How many times a worker took the job, this time included.
    pub claims: i32,
    /// The worker that held it before, when it was taken over.
    pub previous_owner: Option<WorkerId>,
}

#[derive(sqlx::FromRow)]
struct LeaseRow {
    id: Uuid,
    kind: String,
    workspace_id: Uuid,
    connection_id: Uuid,
    claims: i32,
    previous_owner: Option<String>,
}

impl From<LeaseRow> for Lease {
    fn from(row: LeaseRow) -> Self {
        Lease {
            id: row.id,
            kind: if row.kind == "discovery" {
                JobKind::Discovery
            } else {
                JobKind::Sync
            },
            workspace_id: WorkspaceId(row.workspace_id),
            connection_id: ConnectionId(row.connection_id),
            claims: row.claims,
            previous_owner: row.previous_owner.map(WorkerId),
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The open jobs a worker may take: not done, not leased (or the lease lapsed), not waiting.
const CLAIMABLE: &str = "done_at IS NULL
    AND (lease_until IS NULL OR lease_until < now())
    AND (not_before IS NULL OR not_before <= now())";

#[derive(Clone)]
pub struct SyncJobs {
    pool: PgPool,
}

impl SyncJobs {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Leases the oldest job nobody holds, for `ttl`.
    pub async fn claim_next(
        &self,
        worker: &WorkerId,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.lease(None, worker, ttl).await
    }

    /// Leases job `id` when nobody holds it; `None` when someone does or it is done.
    pub async fn claim(
        &self,
        id: Uuid,
        worker: &WorkerId,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        self.lease(Some(id), worker, ttl).await
    }

    /// Leases `id` (or the oldest job, for `None`) if it is claimable, naming its last holder.
    async fn lease(
        &self,
        id: Option<Uuid>,
        worker: &WorkerId,
        ttl: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let sql = format!(
            "WITH next AS (
                SELECT id, owner FROM sync_jobs
                WHERE ($3::uuid IS NULL OR id = $3) AND {CLAIMABLE}
                ORDER BY requested_at, id LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE sync_jobs j
             SET owner = $1, lease_until = now() + make_interval(secs => $2::float8 / 1000),
                 claims = j.claims + 1
             FROM next WHERE j.id = next.id
             RETURNING j.id, j.kind, j.workspace_id, j.connection_id, j.claims,
                       next.owner AS previous_owner"
        );
        let row: Option<LeaseRow> = sqlx::query_as(&sql)
            .bind(&worker.0)
            .bind(millis(ttl))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(Lease::from))
    }

    /// Extends the lease by `ttl` from now. `false` when the worker no longer holds it (another
    /// worker took the job over, or it is done). A worker whose lease lapsed while nobody else
    /// took the job over keeps it.
    pub async fn renew(
        &self,
        id: Uuid,
        worker: &WorkerId,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let renewed = sqlx::query(
            "UPDATE sync_jobs SET lease_until = now() + make_interval(secs => $3::float8 / 1000)
             WHERE id = $1 AND owner = $2 AND done_at IS NULL",
        )
        .bind(id)
        .bind(&worker.0)
        .bind(millis(ttl))
        .execute(&self.pool)
        .await?;
        Ok(renewed.rows_affected() == 1)
    }

    /// Gives the job back so another worker takes it at once (or after `wait`).
    pub async fn release(
        &self,
        id: Uuid,
        worker: &WorkerId,
        wait: Option<Duration>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_jobs SET owner = NULL, lease_until = NULL,
                 not_before = CASE WHEN $3::bigint IS NULL THEN NULL
                                   ELSE now() + make_interval(secs => $3::float8 / 1000) END
             WHERE id = $1 AND owner = $2 AND done_at IS NULL",
        )
        .bind(id)
        .bind(&worker.0)
        .bind(wait.map(millis))
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The job is carried out (or there is nothing left to do for it).
    pub async fn finish(&self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE sync_jobs SET done_at = now(), owner = NULL, lease_until = NULL
             WHERE id = $1 AND done_at IS NULL",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Whether job `id` is done (`None` when there is no such job).
    pub async fn is_done(&self, id: Uuid) -> Result<Option<bool>, StoreError> {
        let done: Option<bool> =
            sqlx::query_scalar("SELECT done_at IS NOT NULL FROM sync_jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(done)
    }

    /// Open jobs, and how many of them a worker holds now (for metrics).
    pub async fn backlog(&self) -> Result<(i64, i64), StoreError> {
        let (open, leased): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE lease_until >= now())
             FROM sync_jobs WHERE done_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((open, leased))
    }

    /// Notified when a job is added or handed back (a hint: poll as well, notifications are
    /// lost while the listener reconnects).
    pub async fn listen(&self) -> Result<PgListener, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}
