//! Reads of the catalog for the REST API: workspaces and their members, connections, ad accounts,
//! campaigns and sync runs, as typed views. Listings that grow come a page at a time: each in one
//! total order, from after the key of the previous page's last item (`after`), at most `limit`
//! items. SQL is fixed text; every caller-supplied value is a bound parameter. Nothing here writes.

use crate::QueryError;
use adledger_domain::{AdAccountId, CampaignId, ConnectionId, SyncId, UserId, WorkspaceId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::PgPool;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct WorkspaceView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ConnectionView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub id: ConnectionId,
    pub platform: String,
    pub label: String,
    pub status: String,
    pub connected_at: DateTime<Utc>,
    #[sqlx(try_from = "crate::columns::NullableUuid")]
    pub last_sync_id: Option<SyncId>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// When a person must renew the platform's authorization, as the connection's events say
    /// (Meta's 60-day token cannot be refreshed; a reconnection before then keeps syncs going).
    pub authorization_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AdAccountView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub connection_id: ConnectionId,
    /// The platform's own id of the account.
    #[sqlx(rename = "external_id", try_from = "crate::columns::Text")]
    pub id: AdAccountId,
    pub name: String,
    pub currency: String,
    pub time_zone: String,
    /// The account's sync cursor: every day up to this one is stored.
    pub synced_through: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CampaignView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub id: CampaignId,
    #[sqlx(try_from = "uuid::Uuid")]
    pub connection_id: ConnectionId,
    #[sqlx(try_from = "crate::columns::Text")]
    pub ad_account_id: AdAccountId,
    pub external_id: String,
    pub name: String,
    pub status: String,
    #[sqlx(try_from = "crate::columns::NullableUuid")]
    pub last_sync_id: Option<SyncId>,
    pub last_sync_status: Option<String>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub synced_through: Option<NaiveDate>,
}

/// Campaigns of a workspace in id order, a page at a time: `after` is the last id already seen.
#[derive(Debug, Clone, Default)]
pub struct CampaignFilter {
    pub connection_id: Option<ConnectionId>,
    pub after: Option<CampaignId>,
    pub limit: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SyncRunView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub id: SyncId,
    #[sqlx(try_from = "uuid::Uuid")]
    pub connection_id: ConnectionId,
    pub status: String,
    #[sqlx(rename = "date_from")]
    pub from: NaiveDate,
    #[sqlx(rename = "date_to")]
    pub to: NaiveDate,
    /// Empty means every campaign of the connection.
    #[sqlx(try_from = "crate::columns::UuidArray")]
    pub campaign_ids: Vec<CampaignId>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub days_recorded: i64,
    pub days_restated: i64,
    pub days_unchanged: i64,
    pub error: Option<String>,
    /// The kind of the failure (`auth_expired`, `platform_down`, …) of a failed run.
    pub error_kind: Option<String>,
    pub progress_through: Option<NaiveDate>,
    /// How many times a worker claimed it (more than one: it was taken over or handed back).
    pub attempts: i32,
    /// The worker that carries it out (or did last).
    pub worker: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MembershipView {
    #[sqlx(try_from = "uuid::Uuid")]
    pub workspace_id: WorkspaceId,
    pub workspace_name: String,
    pub role: String,
    pub joined_at: DateTime<Utc>,
}

pub async fn get_workspace(
    pool: &PgPool,
    workspace: WorkspaceId,
) -> Result<Option<WorkspaceView>, QueryError> {
    Ok(
        sqlx::query_as("SELECT id, name, created_at FROM workspaces WHERE id = $1")
            .bind(workspace.as_uuid())
            .fetch_optional(pool)
            .await?,
    )
}

/// The workspaces a person belongs to, oldest membership first (then by workspace id), from
/// after `after` (a membership's `joined_at` and workspace).
pub async fn memberships_of(
    pool: &PgPool,
    user: UserId,
    after: Option<(DateTime<Utc>, WorkspaceId)>,
    limit: i64,
) -> Result<Vec<MembershipView>, QueryError> {
    Ok(sqlx::query_as(
        "SELECT m.workspace_id, w.name AS workspace_name, m.role, m.joined_at
         FROM workspace_members m JOIN workspaces w ON w.id = m.workspace_id
         WHERE m.user_id = $1
           AND ($2::timestamptz IS NULL OR (m.joined_at, m.workspace_id) > ($2, $3::uuid))
         ORDER BY m.joined_at, m.workspace_id LIMIT $4",
    )
    .bind(user.as_uuid())
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, ws)| ws.as_uuid()))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?)
}

const CONNECTION_COLUMNS: &str = "id, platform, label, status, connected_at, last_sync_id, \
     last_sync_status, last_synced_at, authorization_expires_at";

/// A workspace's connections in id order, from after `after`.
pub async fn list_connections(
    pool: &PgPool,
    workspace: WorkspaceId,
    after: Option<ConnectionId>,
    limit: i64,
) -> Result<Vec<ConnectionView>, QueryError> {
    let sql = format!(
        "SELECT {CONNECTION_COLUMNS} FROM connections
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR id > $2)
         ORDER BY id LIMIT $3"
    );
    Ok(sqlx::query_as(&sql)
        .bind(workspace.as_uuid())
        .bind(after.map(|c| c.as_uuid()))
        .bind(limit.max(0))
        .fetch_all(pool)
        .await?)
}

pub async fn get_connection(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: ConnectionId,
) -> Result<Option<ConnectionView>, QueryError> {
    one_of_workspace(
        pool,
        CONNECTION_COLUMNS,
        "connections",
        workspace,
        connection.as_uuid(),
    )
    .await
}

/// The row of `table` with this `id`, if it belongs to `workspace` (another workspace's is
/// absent, like one that does not exist). Table and columns are constants, never user input.
async fn one_of_workspace<T>(
    pool: &PgPool,
    columns: &str,
    table: &str,
    workspace: WorkspaceId,
    id: uuid::Uuid,
) -> Result<Option<T>, QueryError>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    let sql = format!("SELECT {columns} FROM {table} WHERE workspace_id = $1 AND id = $2");
    Ok(sqlx::query_as(&sql)
        .bind(workspace.as_uuid())
        .bind(id)
        .fetch_optional(pool)
        .await?)
}

/// A workspace's ad accounts (of one connection, when given) by connection and the platform's
/// id, from after `after`.
pub async fn list_ad_accounts(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: Option<ConnectionId>,
    after: Option<(ConnectionId, AdAccountId)>,
    limit: i64,
) -> Result<Vec<AdAccountView>, QueryError> {
    Ok(sqlx::query_as(
        "SELECT connection_id, external_id, name, currency, time_zone, synced_through
         FROM ad_accounts
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR connection_id = $2)
           AND ($3::uuid IS NULL OR (connection_id, external_id) > ($3, $4::text))
         ORDER BY connection_id, external_id LIMIT $5",
    )
    .bind(workspace.as_uuid())
    .bind(connection.map(|c| c.as_uuid()))
    .bind(after.as_ref().map(|(c, _)| c.as_uuid()))
    .bind(after.as_ref().map(|(_, a)| a.0.as_str()))
    .bind(limit.max(0))
    .fetch_all(pool)
    .await?)
}

pub async fn list_campaigns(
    pool: &PgPool,
    workspace: WorkspaceId,
    filter: &CampaignFilter,
) -> Result<Vec<CampaignView>, QueryError> {
    Ok(sqlx::query_as(
        "SELECT id, connection_id, ad_account_id, external_id, name, status, last_sync_id,
                last_sync_status, last_synced_at, synced_through
         FROM campaigns
         WHERE workspace_id = $1 AND ($2::uuid IS NULL OR connection_id = $2)
           AND ($3::uuid IS NULL OR id > $3)
         ORDER BY id LIMIT $4",
    )
    .bind(workspace.as_uuid())
    .bind(filter.connection_id.map(|c| c.as_uuid()))
    .bind(filter.after.map(|c| c.as_uuid()))
    .bind(filter.limit.max(0))
    .fetch_all(pool)
    .await?)
}

const SYNC_RUN_COLUMNS: &str = "id, connection_id, status, date_from, date_to, campaign_ids, \
     started_at, finished_at, days_recorded, days_restated, days_unchanged, error, error_kind, \
     progress_through, attempts, worker";

pub async fn get_sync_run(
    pool: &PgPool,
    workspace: WorkspaceId,
    sync: SyncId,
) -> Result<Option<SyncRunView>, QueryError> {
    one_of_workspace(
        pool,
        SYNC_RUN_COLUMNS,
        "sync_runs",
        workspace,
        sync.as_uuid(),
    )
    .await
}

/// Runs of one connection, newest first (then by id, descending), from after `after` (a run's
/// `started_at` and id).
pub async fn list_sync_runs(
    pool: &PgPool,
    workspace: WorkspaceId,
    connection: ConnectionId,
    after: Option<(DateTime<Utc>, SyncId)>,
    limit: i64,
) -> Result<Vec<SyncRunView>, QueryError> {
    let sql = format!(
        "SELECT {SYNC_RUN_COLUMNS} FROM sync_runs
         WHERE workspace_id = $1 AND connection_id = $2
           AND ($3::timestamptz IS NULL OR (started_at, id) < ($3, $4::uuid))
         ORDER BY started_at DESC, id DESC LIMIT $5"
    );
    Ok(sqlx::query_as(&sql)
        .bind(workspace.as_uuid())
        .bind(connection.as_uuid())
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id.as_uuid()))
        .bind(limit.max(0))
        .fetch_all(pool)
        .await?)
}
