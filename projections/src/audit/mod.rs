//! The `audit` read model: one row per action in a workspace, with who did it (the actor), from
//! where (IP, user agent), under which request, and when. Reported insights days are left out:
//! they are a sync's data, and the sync itself is audited through its own events. This module
//! builds it; [`queries`] pages through it. Personal fields stay sealed here: callers open them.

mod queries;

pub use queries::*;

use crate::{Projection, ProjectionError, ReadModel, Table, Target};
use adledger_domain::{Actor, DomainEvent, EventMetadata};
use adledger_infra::LogEntry;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct Audit;

const MODEL: ReadModel = ReadModel {
    name: "audit",
    tables: &[Table {
        name: "audit_log",
        key: "t.position",
    }],
    reads_context: true,
    version: 1,
    ddl: include_str!("tables.sql"),
    indexes: include_str!("indexes.sql"),
};

#[derive(Default)]
struct Rows {
    position: Vec<i64>,
    workspace: Vec<Uuid>,
    action: Vec<String>,
    stream: Vec<String>,
    actor_kind: Vec<&'static str>,
    actor: Vec<Option<String>>,
    ip: Vec<Option<String>>,
    user_agent: Vec<Option<String>>,
    request: Vec<Uuid>,
    occurred_at: Vec<DateTime<Utc>>,
    recorded_at: Vec<DateTime<Utc>>,
}

fn audited(event: &DomainEvent) -> bool {
    !matches!(
        event,
        DomainEvent::DailyInsightsRecorded(_) | DomainEvent::DailyInsightsRestated(_)
    )
}

#[async_trait]
impl Projection for Audit {
    fn model(&self) -> &'static ReadModel {
        &MODEL
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        events: &[(LogEntry, DomainEvent)],
        _target: Target,
    ) -> Result<(), ProjectionError> {
        let mut rows = Rows::default();
        let mut erased = Vec::new();
        for (entry, event) in events.iter().filter(|(_, e)| audited(e)) {
            let invalid = |reason: String| ProjectionError::Invalid {
                position: entry.position,
                reason,
            };
            let context = entry
                .context
                .as_ref()
                .ok_or_else(|| invalid("the event was read without its context".into()))?;
            let metadata: EventMetadata = serde_json::from_str(&context.metadata)
                .map_err(|e| invalid(format!("metadata does not parse: {e}")))?;
            if let DomainEvent::UserErased(e) = event {
                // The person and the API keys they made: both kinds of actor had their sources
                // sealed under a key this erasure destroyed.
                erased.push(e.user_id.as_uuid().to_string());
                erased.extend(e.also_erased.iter().map(|s| s.as_uuid().to_string()));
            }
            let (kind, actor) = match metadata.actor {
                Actor::System { name } => ("system", Some(name)),
                Actor::Anonymous => ("anonymous", None),
                Actor::User { user_id } => ("user", Some(user_id.to_string())),
                Actor::ApiKey { api_key_id } => ("api_key", Some(api_key_id.to_string())),
            };
            rows.position.push(entry.position);
            rows.workspace.push(entry.workspace_id.as_uuid());
            rows.action.push(event.event_type().to_owned());
            rows.stream.push(context.stream_id.clone());
            rows.actor_kind.push(kind);
            rows.actor.push(actor);
            rows.ip.push(metadata.source.ip);
            rows.user_agent.push(metadata.source.user_agent);
            rows.request.push(metadata.correlation_id);
            rows.occurred_at.push(entry.occurred_at);
            rows.recorded_at.push(context.recorded_at);
        }
        if !rows.position.is_empty() {
            insert(conn, &rows).await?;
        }
        if !erased.is_empty() {
            // An erased person's sources go from the read model, not only their key.
            sqlx::query(
                "UPDATE audit_log SET ip = NULL, user_agent = NULL
                 WHERE actor_kind IN ('user', 'api_key') AND actor = ANY($1)",
            )
            .bind(&erased)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

async fn insert(conn: &mut PgConnection, rows: &Rows) -> Result<(), ProjectionError> {
    sqlx::query(
        // A person or key erased already (its key gone) leaves no source behind, whatever order the
        // events arrive in: Kafka-mode partitions may deliver the erasure before older actions.
        "INSERT INTO audit_log (position, workspace_id, action, stream_id, actor_kind, actor,
                 ip, user_agent, request_id, occurred_at, recorded_at)
             SELECT r.position, r.workspace_id, r.action, r.stream_id, r.actor_kind, r.actor,
                    CASE WHEN erased.subject_id IS NULL THEN r.ip END,
                    CASE WHEN erased.subject_id IS NULL THEN r.user_agent END,
                    r.request_id, r.occurred_at, r.recorded_at
             FROM UNNEST($1::int8[], $2::uuid[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::text[], $9::uuid[], $10::timestamptz[],
                 $11::timestamptz[])
                 AS r(position, workspace_id, action, stream_id, actor_kind, actor, ip,
                      user_agent, request_id, occurred_at, recorded_at)
             LEFT JOIN subject_keys erased
                 ON r.actor_kind IN ('user', 'api_key') AND erased.subject_id::text = r.actor
                AND erased.erased_at IS NOT NULL
             ON CONFLICT (position) DO NOTHING",
    )
    .bind(&rows.position)
    .bind(&rows.workspace)
    .bind(&rows.action)
    .bind(&rows.stream)
    .bind(&rows.actor_kind)
    .bind(&rows.actor)
    .bind(&rows.ip)
    .bind(&rows.user_agent)
    .bind(&rows.request)
    .bind(&rows.occurred_at)
    .bind(&rows.recorded_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
