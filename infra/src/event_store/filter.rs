//! Replay filters for auditors: besides positions, workspace and stream ([`LogFilter`]), a time
//! range of recording, event types, the actor and the stream type, all combined (AND). Each
//! filter is a bound parameter in a statement assembled from fixed fragments; the workspace's
//! indexes on type, actor (`event_actor(metadata)`, migration 0021) and recorded time serve them.

use super::read::{EventRow, EVENT_COLUMNS};
use super::{EventStore, LogFilter, RecordedEvent, StoreError};
use adledger_domain::StreamType;
use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};
use uuid::Uuid;

/// Who acted, as `event_actor(metadata)` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActorFilter {
    /// `user:<id>`, `api_key:<id>`, `system:<component>` or `anonymous`, exactly.
    Exact(String),
    /// `system`: any of adledger's own components.
    AnySystem,
}

impl ActorFilter {
    /// `user:<uuid>`, `api_key:<uuid>`, `system`, `system:<component>` or `anonymous`.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        const FORMS: &str =
            "must be user:<id>, api_key:<id>, system, system:<component> or anonymous";
        match raw.split_once(':') {
            None if raw == "system" => Ok(ActorFilter::AnySystem),
            None if raw == "anonymous" => Ok(ActorFilter::Exact(raw.to_owned())),
            Some((kind @ ("user" | "api_key"), id)) => {
                // Stored ids are lowercase and hyphenated; compare in that form.
                let id = Uuid::parse_str(id).map_err(|_| FORMS)?;
                Ok(ActorFilter::Exact(format!("{kind}:{id}")))
            }
            Some(("system", name))
                if (1..=100).contains(&name.len())
                    && name.bytes().all(|b| (b'!'..=b'~').contains(&b)) =>
            {
                Ok(ActorFilter::Exact(raw.to_owned()))
            }
            _ => Err(FORMS),
        }
    }

    /// The filter as [`Self::parse`] reads it back.
    pub fn as_str(&self) -> &str {
        match self {
            ActorFilter::Exact(actor) => actor,
            ActorFilter::AnySystem => "system",
        }
    }
}

/// Filters on the events themselves; empty (the default) keeps every event.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Recorded at or after this time.
    pub recorded_from: Option<DateTime<Utc>>,
    /// Recorded at or before this time.
    pub recorded_to: Option<DateTime<Utc>>,
    /// Any of these event types; empty: every type.
    pub event_types: Vec<String>,
    pub actor: Option<ActorFilter>,
    pub stream_type: Option<StreamType>,
}

impl EventFilter {
    pub fn is_empty(&self) -> bool {
        self.recorded_from.is_none()
            && self.recorded_to.is_none()
            && self.event_types.is_empty()
            && self.actor.is_none()
            && self.stream_type.is_none()
    }
}

impl EventStore {
    /// Sequenced events in log order that pass both filters: up to `log.limit` of them after
    /// `log.after`.
    pub async fn read_log_filtered(
        &self,
        log: &LogFilter,
        events: &EventFilter,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if events.is_empty() {
            return self.read_log(log).await;
        }
        let mut q = QueryBuilder::<Postgres>::new(format!(
            "SELECT {EVENT_COLUMNS} FROM event_log l JOIN events e ON e.id = l.event_row_id \
             WHERE l.position > "
        ));
        q.push_bind(log.after)
            .push(" AND l.position <= ")
            .push_bind(log.up_to.unwrap_or(i64::MAX));
        if let Some(workspace) = log.workspace_id {
            // On both tables, so either side's workspace index can lead.
            q.push(" AND l.workspace_id = ")
                .push_bind(workspace.as_uuid())
                .push(" AND e.workspace_id = ")
                .push_bind(workspace.as_uuid());
        }
        if let Some(stream) = &log.stream_id {
            q.push(" AND e.stream_id = ")
                .push_bind(stream.as_str().to_owned());
        }
        if let Some(from) = events.recorded_from {
            q.push(" AND e.recorded_at >= ").push_bind(from);
        }
        if let Some(to) = events.recorded_to {
            q.push(" AND e.recorded_at <= ").push_bind(to);
        }
        if !events.event_types.is_empty() {
            q.push(" AND e.event_type = ANY (")
                .push_bind(events.event_types.clone())
                .push(")");
        }
        match &events.actor {
            None => {}
            Some(ActorFilter::Exact(actor)) => {
                q.push(" AND event_actor(e.metadata) = ")
                    .push_bind(actor.clone());
            }
            Some(ActorFilter::AnySystem) => {
                q.push(" AND event_actor(e.metadata) LIKE 'system:%'");
            }
        }
        if let Some(kind) = events.stream_type {
            q.push(" AND e.stream_type = ").push_bind(kind.as_str());
        }
        q.push(" ORDER BY l.position LIMIT ")
            .push_bind(log.limit.max(0));
        let rows: Vec<EventRow> = q.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(RecordedEvent::try_from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actors_parse_in_their_stored_form() {
        let id = "0190F3C2-1111-7000-8000-000000000001";
        assert_eq!(
            ActorFilter::parse(&format!("user:{id}")),
            Ok(ActorFilter::Exact(format!("user:{}", id.to_lowercase())))
        );
        assert_eq!(ActorFilter::parse("system"), Ok(ActorFilter::AnySystem));
        assert_eq!(
            ActorFilter::parse("system:scheduler"),
            Ok(ActorFilter::Exact("system:scheduler".into()))
        );
        assert!(ActorFilter::parse("anonymous").is_ok());
        for bad in [
            "",
            "user",
            "user:nope",
            "api_key:",
            "system:",
            "root",
            "system: x",
        ] {
            assert!(ActorFilter::parse(bad).is_err(), "{bad}");
        }
    }
}
