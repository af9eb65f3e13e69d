//! The `catalog` read model: workspaces and their members, connections, ad accounts, campaigns
//! and sync runs. This module builds it from events alone (times are `occurred_at`, never the
//! projection's clock, and no side table is read); [`queries`] reads it for the API.

mod queries;

pub use queries::*;

use crate::{Projection, ProjectionError, ReadModel, Table, Target};
use adledger_domain::event::{SyncCounts, SyncStarted};
use adledger_domain::{DomainEvent, SyncId};
use adledger_infra::LogEntry;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgConnection;

pub struct Catalog;

const MODEL: ReadModel = ReadModel {
    name: "catalog",
    tables: &[
        Table {
            name: "workspaces",
            key: "t.id",
        },
        Table {
            name: "connections",
            key: "t.id",
        },
        Table {
            name: "ad_accounts",
            key: "t.connection_id, t.external_id",
        },
        Table {
            name: "campaigns",
            key: "t.id",
        },
        Table {
            name: "sync_runs",
            key: "t.id",
        },
        Table {
            name: "workspace_members",
            key: "t.workspace_id, t.user_id",
        },
    ],
    reads_context: false,
    version: 1,
    ddl: include_str!("tables.sql"),
    indexes: include_str!("indexes.sql"),
};

#[async_trait]
impl Projection for Catalog {
    fn model(&self) -> &'static ReadModel {
        &MODEL
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
        _target: Target,
    ) -> Result<(), ProjectionError> {
        for (recorded, event) in events {
            apply_one(conn, recorded, event).await?;
        }
        Ok(())
    }
}

async fn apply_one(
    conn: &mut PgConnection,
    recorded: &LogEntry,
    event: &DomainEvent,
) -> Result<(), ProjectionError> {
    let workspace = recorded.workspace_id.as_uuid();
    let at = recorded.occurred_at;
    match event {
        DomainEvent::WorkspaceCreated(e) => {
            sqlx::query(
                "INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name",
            )
            .bind(e.workspace_id.as_uuid())
            .bind(&e.name)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::MemberAdded(adledger_domain::event::MemberAdded { user_id, role, .. })
        | DomainEvent::InvitationAccepted(adledger_domain::event::InvitationAccepted {
            user_id,
            role,
            ..
        }) => {
            sqlx::query(
                "INSERT INTO workspace_members (workspace_id, user_id, role, joined_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role",
            )
            .bind(workspace)
            .bind(user_id.as_uuid())
            .bind(role.as_str())
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::ConnectionNeedsReauth(e) => {
            sqlx::query("UPDATE connections SET status = 'needs_reauth' WHERE id = $1")
                .bind(e.connection_id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        // A new authorization brings its own expiry; a disconnected one has none left.
        DomainEvent::ConnectionReauthorized(e) => {
            sqlx::query(
                "UPDATE connections SET status = 'active', authorization_expires_at = $2
                 WHERE id = $1",
            )
            .bind(e.connection_id.as_uuid())
            .bind(e.authorization_expires_at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::PlatformDisconnected(e) => {
            sqlx::query(
                "UPDATE connections SET status = 'disconnected', authorization_expires_at = NULL
                 WHERE id = $1",
            )
            .bind(e.connection_id.as_uuid())
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::MemberRoleChanged(e) => {
            sqlx::query(
                "UPDATE workspace_members SET role = $3 WHERE workspace_id = $1 AND user_id = $2",
            )
            .bind(workspace)
            .bind(e.user_id.as_uuid())
            .bind(e.role.as_str())
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::MemberRemoved(e) => {
            sqlx::query("DELETE FROM workspace_members WHERE workspace_id = $1 AND user_id = $2")
                .bind(workspace)
                .bind(e.user_id.as_uuid())
                .execute(&mut *conn)
                .await?;
        }
        DomainEvent::PlatformConnected(e) => {
            sqlx::query(
                "INSERT INTO connections (id, workspace_id, platform, label, status, connected_at,
                                          authorization_expires_at)
                 VALUES ($1, $2, $3, $4, 'active', $5, $6)
                 ON CONFLICT (id) DO UPDATE SET platform = excluded.platform,
                     label = excluded.label, status = excluded.status,
                     connected_at = excluded.connected_at,
                     authorization_expires_at = excluded.authorization_expires_at",
            )
            .bind(e.connection_id.as_uuid())
            .bind(workspace)
            .bind(e.settings.platform().as_str())
            .bind(&e.label)
            .bind(at)
            .bind(e.authorization_expires_at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::AdAccountDiscovered(e) => {
            sqlx::query(
                "INSERT INTO ad_accounts (connection_id, external_id, workspace_id, name, currency,
                                          time_zone, discovered_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (connection_id, external_id) DO UPDATE SET name = excluded.name,
                     currency = excluded.currency, time_zone = excluded.time_zone",
            )
            .bind(e.connection_id.as_uuid())
            .bind(&e.ad_account_id.0)
            .bind(workspace)
            .bind(&e.name)
            .bind(e.currency.as_str())
            .bind(&e.time_zone)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::CampaignDiscovered(e) => {
            sqlx::query(
                "INSERT INTO campaigns (id, workspace_id, connection_id, ad_account_id, external_id,
                                        name, status, discovered_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO UPDATE SET ad_account_id = excluded.ad_account_id,
                     external_id = excluded.external_id, name = excluded.name,
                     status = excluded.status",
            )
            .bind(e.campaign_id.as_uuid())
            .bind(workspace)
            .bind(e.connection_id.as_uuid())
            .bind(&e.ad_account_id.0)
            .bind(&e.external_id)
            .bind(&e.name)
            .bind(&e.status)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::CampaignChanged(e) => {
            sqlx::query("UPDATE campaigns SET name = $2, status = $3 WHERE id = $1")
                .bind(e.campaign_id.as_uuid())
                .bind(&e.name)
                .bind(&e.status)
                .execute(&mut *conn)
                .await?;
        }
        DomainEvent::SyncStarted(e) => sync_started(conn, recorded, e).await?,
        DomainEvent::SyncCompleted(e) => {
            let finish = Finish {
                sync: e.sync_id,
                status: "completed",
                counts: e.counts,
                error: None,
                at,
            };
            sync_finished(conn, recorded, &finish).await?;
        }
        DomainEvent::SyncFailed(e) => {
            let error = e.failure.to_string();
            let finish = Finish {
                sync: e.sync_id,
                status: "failed",
                counts: e.counts,
                error: Some((&error, e.failure.kind.as_str())),
                at,
            };
            sync_finished(conn, recorded, &finish).await?;
        }
        DomainEvent::SyncClaimed(e) => {
            // Claims come in attempt order; a replayed one changes nothing.
            sqlx::query(
                "UPDATE sync_runs SET attempts = $2, worker = $3 WHERE id = $1 AND attempts < $2",
            )
            .bind(e.sync_id.as_uuid())
            .bind(i32::try_from(e.attempt).unwrap_or(i32::MAX))
            .bind(&e.worker.0)
            .execute(&mut *conn)
            .await?;
        }
        DomainEvent::SyncProgressed(e) => run_progressed(conn, e.sync_id, e.through).await?,
        DomainEvent::AccountSynced(e) => {
            // The cursor only moves forward, whatever order a replay brings.
            sqlx::query(
                "UPDATE ad_accounts SET synced_through = GREATEST(synced_through, $3)
                 WHERE connection_id = $1 AND external_id = $2",
            )
            .bind(e.connection_id.as_uuid())
            .bind(&e.ad_account_id.0)
            .bind(e.through)
            .execute(&mut *conn)
            .await?;
            // Runs recorded before `SyncProgressed` existed marked their progress this way.
            run_progressed(conn, e.sync_id, e.through).await?;
        }
        // Identity, invitations and API keys have no catalog rows; insights have their own model.
        DomainEvent::DailyInsightsRecorded(_)
        | DomainEvent::DailyInsightsRestated(_)
        | DomainEvent::UserRegistered(_)
        | DomainEvent::UserLoggedIn(_)
        | DomainEvent::UserLoggedOut(_)
        | DomainEvent::PasswordChanged(_)
        | DomainEvent::TotpEnrolmentStarted(_)
        | DomainEvent::TotpEnabled(_)
        | DomainEvent::TotpDisabled(_)
        | DomainEvent::UserErased(_)
        | DomainEvent::MemberInvited(_)
        | DomainEvent::ApiKeyCreated(_)
        | DomainEvent::ApiKeyRevoked(_)
        | DomainEvent::OperatorGranted(_)
        | DomainEvent::OperatorRevoked(_)
        // The run stays with its last worker until another claims it.
        | DomainEvent::SyncHandedBack(_) => {}
    }
    Ok(())
}

/// A run has every day stored through `through` for one of its ad accounts.
async fn run_progressed(
    conn: &mut PgConnection,
    sync: SyncId,
    through: NaiveDate,
) -> Result<(), ProjectionError> {
    sqlx::query(
        "UPDATE sync_runs SET progress_through = GREATEST(progress_through, $2) WHERE id = $1",
    )
    .bind(sync.as_uuid())
    .bind(through)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn sync_started(
    conn: &mut PgConnection,
    recorded: &LogEntry,
    e: &SyncStarted,
) -> Result<(), ProjectionError> {
    let campaigns: Vec<uuid::Uuid> = e.campaign_ids.iter().map(|c| c.as_uuid()).collect();
    sqlx::query(
        "INSERT INTO sync_runs (id, workspace_id, connection_id, status, date_from, date_to,
                               campaign_ids, started_at)
         VALUES ($1, $2, $3, 'running', $4, $5, $6, $7)
         ON CONFLICT (id) DO UPDATE SET connection_id = excluded.connection_id,
             date_from = excluded.date_from, date_to = excluded.date_to,
             campaign_ids = excluded.campaign_ids, started_at = excluded.started_at",
    )
    .bind(e.sync_id.as_uuid())
    .bind(recorded.workspace_id.as_uuid())
    .bind(e.connection_id.as_uuid())
    .bind(e.from)
    .bind(e.to)
    .bind(&campaigns)
    .bind(recorded.occurred_at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE connections SET last_sync_id = $2, last_sync_status = 'running' WHERE id = $1",
    )
    .bind(e.connection_id.as_uuid())
    .bind(e.sync_id.as_uuid())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

struct Finish<'a> {
    sync: SyncId,
    status: &'static str,
    counts: SyncCounts,
    /// The failure as people read it (`kind: message`), and its kind.
    error: Option<(&'a str, &'static str)>,
    at: DateTime<Utc>,
}

fn count(recorded: &LogEntry, value: u64) -> Result<i64, ProjectionError> {
    i64::try_from(value).map_err(|_| ProjectionError::Invalid {
        position: recorded.position,
        reason: format!("count {value} is out of range"),
    })
}

async fn sync_finished(
    conn: &mut PgConnection,
    recorded: &LogEntry,
    f: &Finish<'_>,
) -> Result<(), ProjectionError> {
    // The connection and scope come from the run as it started, so a finish without a start
    // (which the connection aggregate never decides) changes nothing.
    let run: Option<uuid::Uuid> = sqlx::query_scalar(
        "UPDATE sync_runs SET status = $2, days_recorded = $3, days_restated = $4,
                days_unchanged = $5, error = $6, error_kind = $7, finished_at = $8
         WHERE id = $1 RETURNING connection_id",
    )
    .bind(f.sync.as_uuid())
    .bind(f.status)
    .bind(count(recorded, f.counts.days_recorded)?)
    .bind(count(recorded, f.counts.days_restated)?)
    .bind(count(recorded, f.counts.days_unchanged)?)
    .bind(f.error.map(|(error, _)| error))
    .bind(f.error.map(|(_, kind)| kind))
    .bind(f.at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(connection) = run else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE connections SET last_sync_id = $2, last_sync_status = $3, last_synced_at = $4
         WHERE id = $1",
    )
    .bind(connection)
    .bind(f.sync.as_uuid())
    .bind(f.status)
    .bind(f.at)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE campaigns c SET last_sync_id = s.id, last_sync_status = $2, last_synced_at = $3,
                synced_through = CASE WHEN $4 THEN s.date_to ELSE c.synced_through END
         FROM sync_runs s
         WHERE s.id = $1 AND c.connection_id = s.connection_id
           AND (cardinality(s.campaign_ids) = 0 OR c.id = ANY (s.campaign_ids))",
    )
    .bind(f.sync.as_uuid())
    .bind(f.status)
    .bind(f.at)
    .bind(f.status == "completed")
    .execute(&mut *conn)
    .await?;
    Ok(())
}
