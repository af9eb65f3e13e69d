//! The read side as an operator sees it, computed in this one place for `/metrics`, `/readyz`,
//! `GET /v1/projections` and `adledger projections status`: the events still waiting for a log
//! position and what holds them back, each projection's progress per source (Postgres-log
//! checkpoints, Kafka partition offsets), its lag in events and seconds, throughput and last
//! error, and the relay's lag; and from these, why the deployment is not ready to serve. Also the
//! checksum that proves two builds of a read model from one log identical. Everything here only
//! reads.

use crate::versions::status::VersionsStatus;
use crate::{all, by_name, ProjectionError};
use adledger_infra::event_store::{SettleHorizon, Unsequenced};
use adledger_infra::kafka::relay::{self, RelayStatus};
use adledger_infra::kafka::KafkaConfig;
use adledger_infra::EventStore;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// What the deployment runs, as far as its status goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deployment<'a> {
    /// The relay publishes the log to this topic: its lag counts.
    pub relay_topic: Option<&'a str>,
    /// Projection workers read this topic; without it they read the Postgres log.
    pub projections_from_kafka: Option<&'a KafkaConfig>,
}

/// Where a projection's events come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProjectionSource {
    PostgresLog,
    Kafka { topic: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    pub source: ProjectionSource,
    /// From the Postgres log: the checkpoint. From Kafka: the furthest log position any partition
    /// has applied (partitions split the log by workspace, so no one position covers them all).
    pub position: i64,
    pub head: i64,
    /// From the Postgres log: events after the checkpoint. From Kafka: messages between each
    /// partition's stored offset and its end, for the partitions whose end the broker told.
    pub lag_events: i64,
    /// Age of the oldest event not applied yet (seconds since it was recorded): the event after
    /// the checkpoint, or after the least advanced partition that is behind (an upper bound for
    /// Kafka, whose partitions split the log). 0 when caught up. Unlike a count, this stays small
    /// while a projection keeps pace with a large burst, and grows while it is stuck.
    pub lag_seconds: f64,
    pub events_applied: i64,
    /// Throughput of the last batch applied (from Kafka: the partitions' last batches, summed).
    pub events_per_sec: f64,
    /// From Kafka: the first partition's error, prefixed with the partition.
    pub last_error: Option<String>,
    /// `None` for a projection that has never run.
    pub updated_at: Option<DateTime<Utc>>,
    /// From Kafka: each partition's progress, in partition order; empty otherwise.
    pub partitions: Vec<PartitionProgress>,
    /// The read model's versions: live, retired, and a build's progress.
    pub versions: Option<VersionsStatus>,
}

/// One Kafka partition's progress for one projection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PartitionProgress {
    pub partition: i32,
    pub next_offset: i64,
    pub last_position: i64,
    pub events_applied: i64,
    pub events_per_sec: f64,
    /// The worker holding the partition's lease.
    pub owner: Option<String>,
    /// The partition's high watermark; `None` when the broker did not answer or, for a topic
    /// other than the deployment's, was not asked.
    pub end_offset: Option<i64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

impl PartitionProgress {
    /// Messages not applied yet, when the partition's end is known.
    pub fn lag_events(&self) -> Option<i64> {
        self.end_offset.map(|end| (end - self.next_offset).max(0))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeploymentStatus {
    /// The highest sequenced position of the log.
    pub head: i64,
    /// Committed events the sequencer has not given a position yet.
    pub unsequenced: Unsequenced,
    /// What holds the settle horizon back, cluster-wide.
    pub horizon: SettleHorizon,
    /// Where this deployment's projection workers read: the projections fed from there are the
    /// ones its readiness counts.
    pub workers_read: ProjectionSource,
    /// Every projection as fed from the Postgres log (in worker start order), then each
    /// projection with Kafka progress, per topic.
    pub projections: Vec<ProjectionStatus>,
    /// The relay's progress, when the deployment has a relay topic (all still to publish when no
    /// relay has run yet).
    pub relay: Option<RelayStatus>,
}

impl DeploymentStatus {
    /// The projections this deployment's workers feed.
    pub fn served(&self) -> impl Iterator<Item = &ProjectionStatus> {
        self.projections
            .iter()
            .filter(|p| p.source == self.workers_read)
    }

    /// Why the deployment is not ready to serve, in words an operator acts on; empty when
    /// ready. Bounds are times, not counts: a large burst that the sequencer and projections keep
    /// pace with never trips them, a stalled log or a stuck projection does within the bound.
    /// The relay counts only when this deployment's projections read its topic: otherwise
    /// nothing served depends on it (and a Kafka outage must not take the API out of rotation).
    pub fn not_ready(&self, bounds: &ReadinessBounds) -> Vec<String> {
        let mut reasons = Vec::new();
        let max_unsequenced = bounds.max_unsequenced_age.as_secs_f64();
        if let Some(age) = self
            .unsequenced
            .oldest_age_seconds
            .filter(|age| *age > max_unsequenced)
        {
            let count = match self.unsequenced.at_least {
                true => format!("at least {}", self.unsequenced.count),
                false => self.unsequenced.count.to_string(),
            };
            let cause = match (&self.horizon.holder, self.unsequenced.held_by_horizon) {
                (Some(holder), true) => format!(
                    "they wait for {} to end (commit it, roll it back or \
                     pg_terminate_backend its pid)",
                    holder.describe()
                ),
                (None, true) => "they wait for a transaction still open in the cluster".into(),
                (_, false) => "nothing holds them back: is a sequencer (serve or worker) \
                               running, and does its log show errors?"
                    .into(),
            };
            reasons.push(format!(
                "the log is stalled: {count} events wait to be sequenced, the oldest for \
                 {age:.0} s (bound {max_unsequenced:.0} s); {cause}"
            ));
        }
        let max_lag = bounds.max_lag.as_secs_f64();
        reasons.extend(
            self.served()
                .filter(|p| p.lag_events > 0 && p.lag_seconds > max_lag)
                .map(|p| {
                    format!(
                        "{} is {} events behind, the oldest recorded {:.0} s ago (bound {max_lag:.0} s)",
                        p.name, p.lag_events, p.lag_seconds
                    )
                }),
        );
        let relay_feeds_served = matches!(self.workers_read, ProjectionSource::Kafka { .. });
        if let Some(relay) = self
            .relay
            .as_ref()
            .filter(|r| relay_feeds_served && r.lag_events > 0 && r.lag_seconds > max_lag)
        {
            reasons.push(format!(
                "the relay to {} is {} events behind, the oldest recorded {:.0} s ago \
                 (bound {max_lag:.0} s)",
                relay.topic, relay.lag_events, relay.lag_seconds
            ));
        }
        reasons
    }
}

/// How stale the log and the read side may get before the deployment is not ready to serve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadinessBounds {
    /// The oldest event without a log position may wait this long (a stalled sequencer, or a
    /// transaction left open anywhere in the cluster, freezes the log head).
    pub max_unsequenced_age: Duration,
    /// The oldest event a served projection (or, for Kafka-fed projections, the relay) has not
    /// applied yet may be this old.
    pub max_lag: Duration,
}

impl Default for ReadinessBounds {
    fn default() -> Self {
        Self {
            max_unsequenced_age: Duration::from_secs(60),
            max_lag: Duration::from_secs(60),
        }
    }
}

#[derive(sqlx::FromRow)]
struct Checkpoint {
    name: String,
    position: i64,
    events_applied: i64,
    events_per_sec: f64,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct StoredOffset {
    projection: String,
    topic: String,
    partition: i32,
    next_offset: i64,
    last_position: i64,
    events_applied: i64,
    events_per_sec: f64,
    owner: Option<String>,
    last_error: Option<String>,
    updated_at: DateTime<Utc>,
}

/// The status of every projection, from both sources, and of the relay.
pub async fn deployment_status(
    store: &EventStore,
    deployment: Deployment<'_>,
) -> Result<DeploymentStatus, ProjectionError> {
    let pool = store.pool();
    let head = store.head_position().await?;
    let unsequenced = store.unsequenced().await?;
    let horizon = store.settle_horizon().await?;
    let names: Vec<&str> = all().iter().map(|p| p.name()).collect();
    let checkpoints: Vec<Checkpoint> = sqlx::query_as(
        "SELECT name, position, events_applied, events_per_sec, last_error, updated_at
         FROM projection_checkpoints WHERE name = ANY($1)",
    )
    .bind(&names)
    .fetch_all(pool)
    .await?;
    let mut checkpoints: HashMap<String, Checkpoint> = checkpoints
        .into_iter()
        .map(|c| (c.name.clone(), c))
        .collect();
    let offsets: Vec<StoredOffset> = sqlx::query_as(
        "SELECT projection, topic, partition, next_offset, last_position, events_applied,
                events_per_sec, owner, last_error, updated_at
         FROM projection_offsets ORDER BY projection, topic, partition",
    )
    .fetch_all(pool)
    .await?;
    let workers_topic = deployment.projections_from_kafka.map(|c| c.topic.as_str());
    let ends = match deployment.projections_from_kafka {
        Some(config) => {
            let partitions: BTreeSet<i32> = offsets
                .iter()
                .filter(|o| o.topic == config.topic)
                .map(|o| o.partition)
                .collect();
            crate::kafka::partition_ends(config, partitions).await
        }
        None => HashMap::new(),
    };

    let mut projections: Vec<ProjectionStatus> = names
        .iter()
        .map(|&name| from_log(name, checkpoints.remove(name), head))
        .collect();
    let mut by_topic: BTreeMap<(String, String), Vec<PartitionProgress>> = BTreeMap::new();
    for o in offsets {
        let end_offset = if Some(o.topic.as_str()) == workers_topic {
            ends.get(&o.partition).copied()
        } else {
            None
        };
        by_topic
            .entry((o.projection, o.topic))
            .or_default()
            .push(PartitionProgress {
                partition: o.partition,
                next_offset: o.next_offset,
                last_position: o.last_position,
                events_applied: o.events_applied,
                events_per_sec: o.events_per_sec,
                owner: o.owner,
                end_offset,
                last_error: o.last_error,
                updated_at: o.updated_at,
            });
    }
    projections.extend(
        by_topic
            .into_iter()
            .map(|((name, topic), partitions)| from_kafka(name, topic, partitions, head)),
    );
    fill_lag_seconds(pool, &mut projections).await?;
    let code_versions: Vec<(&str, i32)> = all()
        .iter()
        .map(|p| (p.name(), p.model().version))
        .collect();
    let versions = crate::versions::status::by_name(pool, &code_versions, head).await?;
    for p in &mut projections {
        p.versions = versions.get(&p.name).cloned();
    }

    let relay = match deployment.relay_topic {
        None => None,
        Some(topic) => match relay::status(pool, topic).await? {
            Some(status) => Some(status),
            // No relay has published yet: everything is still to send, since the first event.
            None => Some(RelayStatus {
                topic: topic.to_owned(),
                position: 0,
                head,
                lag_events: head,
                lag_seconds: ages(pool, &[1]).await?.get(&1).copied().unwrap_or(0.0),
                events_published: 0,
                updated_at: None,
            }),
        },
    };
    Ok(DeploymentStatus {
        head,
        unsequenced,
        horizon,
        workers_read: match workers_topic {
            Some(topic) => ProjectionSource::Kafka {
                topic: topic.to_owned(),
            },
            None => ProjectionSource::PostgresLog,
        },
        projections,
        relay,
    })
}

/// A projection fed from the Postgres log; lag counts from the first event of the log before it
/// has applied one.
fn from_log(name: &str, checkpoint: Option<Checkpoint>, head: i64) -> ProjectionStatus {
    let position = checkpoint.as_ref().map_or(0, |c| c.position);
    ProjectionStatus {
        name: name.to_owned(),
        source: ProjectionSource::PostgresLog,
        position,
        head,
        lag_events: (head - position).max(0),
        lag_seconds: 0.0,
        events_applied: checkpoint.as_ref().map_or(0, |c| c.events_applied),
        events_per_sec: checkpoint.as_ref().map_or(0.0, |c| c.events_per_sec),
        last_error: checkpoint.as_ref().and_then(|c| c.last_error.clone()),
        updated_at: checkpoint.map(|c| c.updated_at),
        partitions: Vec::new(),
        versions: None,
    }
}

fn from_kafka(
    name: String,
    topic: String,
    partitions: Vec<PartitionProgress>,
    head: i64,
) -> ProjectionStatus {
    ProjectionStatus {
        name,
        source: ProjectionSource::Kafka { topic },
        position: partitions
            .iter()
            .map(|p| p.last_position)
            .max()
            .unwrap_or(0),
        head,
        lag_events: partitions.iter().filter_map(|p| p.lag_events()).sum(),
        lag_seconds: 0.0,
        events_applied: partitions.iter().map(|p| p.events_applied).sum(),
        events_per_sec: partitions.iter().map(|p| p.events_per_sec).sum(),
        last_error: partitions.iter().find_map(|p| {
            let error = p.last_error.as_ref()?;
            Some(format!("partition {}: {error}", p.partition))
        }),
        updated_at: partitions.iter().map(|p| p.updated_at).max(),
        partitions,
        versions: None,
    }
}

/// The position of the oldest event a lagging projection has not applied: after its checkpoint,
/// or after its least advanced partition among those behind. `None` when it is caught up.
fn oldest_unapplied(status: &ProjectionStatus) -> Option<i64> {
    if status.lag_events == 0 {
        return None;
    }
    match status.source {
        ProjectionSource::PostgresLog => Some(status.position),
        ProjectionSource::Kafka { .. } => status
            .partitions
            .iter()
            .filter(|p| p.lag_events().is_some_and(|lag| lag > 0))
            .map(|p| p.last_position)
            .min(),
    }
    .map(|position| position + 1)
}

/// Fills in `lag_seconds`: the ages of the oldest unapplied events, in one query, on the
/// database's clock (the one that recorded them).
async fn fill_lag_seconds(
    pool: &PgPool,
    projections: &mut [ProjectionStatus],
) -> Result<(), ProjectionError> {
    let positions: Vec<i64> = projections.iter().filter_map(oldest_unapplied).collect();
    if positions.is_empty() {
        return Ok(());
    }
    let ages = ages(pool, &positions).await?;
    for status in projections {
        if let Some(age) = oldest_unapplied(status).and_then(|p| ages.get(&p)) {
            status.lag_seconds = age.max(0.0);
        }
    }
    Ok(())
}

/// Seconds since the events at `positions` were recorded (those that exist).
async fn ages(pool: &PgPool, positions: &[i64]) -> Result<HashMap<i64, f64>, ProjectionError> {
    let ages: Vec<(i64, f64)> = sqlx::query_as(
        "SELECT l.position, extract(epoch FROM clock_timestamp() - e.recorded_at)::float8
         FROM event_log l JOIN events e ON e.id = l.event_row_id WHERE l.position = ANY($1)",
    )
    .bind(positions)
    .fetch_all(pool)
    .await?;
    Ok(ages.into_iter().collect())
}

/// md5 over every row of the projection's tables in key order, combined over its tables.
pub async fn checksum(pool: &PgPool, name: &str) -> Result<String, ProjectionError> {
    checksum_of(pool, name, None).await
}

/// The checksum of one version of a read model, live or not (a rebuilt version checks against
/// the one it replaced).
pub async fn checksum_version(
    pool: &PgPool,
    name: &str,
    version: i32,
) -> Result<String, ProjectionError> {
    checksum_of(pool, name, Some(version)).await
}

async fn checksum_of(
    pool: &PgPool,
    name: &str,
    version: Option<i32>,
) -> Result<String, ProjectionError> {
    let projection =
        by_name(name).ok_or_else(|| ProjectionError::UnknownProjection(name.to_owned()))?;
    let schema = version.map(|v| crate::versions::schema(name, v));
    let mut parts = Vec::new();
    for table in projection.model().tables {
        let sum: Option<String> = sqlx::query_scalar(&table.checksum_sql(schema.as_deref()))
            .fetch_one(pool)
            .await?;
        parts.push(format!(
            "{}:{}",
            table.name,
            sum.as_deref().unwrap_or("empty")
        ));
    }
    let combined: String = sqlx::query_scalar("SELECT md5($1)")
        .bind(parts.join("\n"))
        .fetch_one(pool)
        .await?;
    Ok(combined)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(partition: i32, next: i64, last: i64, end: Option<i64>) -> PartitionProgress {
        PartitionProgress {
            partition,
            next_offset: next,
            last_position: last,
            events_applied: next,
            events_per_sec: 10.0,
            owner: None,
            end_offset: end,
            last_error: (partition == 2).then(|| "boom".to_owned()),
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_kafka_projection_sums_its_partitions_and_lags_at_the_least_advanced_one_behind() {
        let status = from_kafka(
            "catalog".into(),
            "t".into(),
            vec![
                partition(0, 5, 40, Some(5)),
                partition(1, 3, 12, Some(7)),
                partition(2, 1, 30, None),
            ],
            50,
        );
        assert_eq!(status.position, 40);
        assert_eq!(status.lag_events, 4, "unknown ends count as caught up");
        assert_eq!(status.events_applied, 9);
        assert_eq!(status.events_per_sec, 30.0);
        assert_eq!(status.last_error.as_deref(), Some("partition 2: boom"));
        assert_eq!(oldest_unapplied(&status), Some(13));
    }

    fn bounds(unsequenced_secs: u64, lag_secs: u64) -> ReadinessBounds {
        ReadinessBounds {
            max_unsequenced_age: Duration::from_secs(unsequenced_secs),
            max_lag: Duration::from_secs(lag_secs),
        }
    }

    fn relay(lag_events: i64, lag_seconds: f64) -> RelayStatus {
        RelayStatus {
            topic: "t".into(),
            position: 10 - lag_events,
            head: 10,
            lag_events,
            lag_seconds,
            events_published: 0,
            updated_at: None,
        }
    }

    #[test]
    fn readiness_bounds_the_age_of_what_the_workers_read_not_the_count() {
        let mut log = from_log("catalog", None, 10);
        log.lag_seconds = 30.0;
        let mut kafka = from_kafka(
            "catalog".into(),
            "t".into(),
            vec![partition(0, 1, 1, Some(9))],
            10,
        );
        kafka.lag_seconds = 90.0;
        let mut status = DeploymentStatus {
            head: 10,
            unsequenced: Unsequenced::default(),
            horizon: SettleHorizon::default(),
            workers_read: ProjectionSource::Kafka { topic: "t".into() },
            projections: vec![log, kafka],
            relay: Some(relay(4, 70.0)),
        };
        assert_eq!(
            status.not_ready(&bounds(60, 60)),
            [
                "catalog is 8 events behind, the oldest recorded 90 s ago (bound 60 s)",
                "the relay to t is 4 events behind, the oldest recorded 70 s ago (bound 60 s)"
            ]
        );
        assert!(status.not_ready(&bounds(60, 100)).is_empty());
        // Fed from the Postgres log: 10 events behind for 30 s is within the bound, and the
        // relay's lag does not touch what is served.
        status.workers_read = ProjectionSource::PostgresLog;
        assert!(status.not_ready(&bounds(60, 60)).is_empty());
        assert_eq!(
            status.not_ready(&bounds(60, 20)),
            ["catalog is 10 events behind, the oldest recorded 30 s ago (bound 20 s)"]
        );
    }

    #[test]
    fn a_stalled_log_is_not_ready_and_names_what_holds_it() {
        let holder = adledger_infra::event_store::HorizonHolder {
            kind: adledger_infra::event_store::horizon::HolderKind::Transaction,
            pid: Some(4242),
            database: Some("other".into()),
            user: Some("ops".into()),
            application_name: Some("psql".into()),
            state: Some("idle in transaction".into()),
            age_seconds: Some(312.0),
            xid_age: Some(9),
            holds_xid: true,
            name: None,
        };
        let mut status = DeploymentStatus {
            head: 10,
            unsequenced: Unsequenced {
                count: 10_000,
                at_least: true,
                oldest_age_seconds: Some(300.0),
                held_by_horizon: true,
            },
            horizon: SettleHorizon {
                holder: Some(holder),
                ..SettleHorizon::default()
            },
            workers_read: ProjectionSource::PostgresLog,
            projections: Vec::new(),
            relay: None,
        };
        let reasons = status.not_ready(&bounds(60, 60));
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with(
                "the log is stalled: at least 10000 events wait to be sequenced, the oldest \
                 for 300 s (bound 60 s); they wait for transaction pid 4242 in database \"other\""
            ),
            "{reasons:?}"
        );
        assert!(status.not_ready(&bounds(301, 60)).is_empty());
        status.unsequenced.held_by_horizon = false;
        assert!(
            status.not_ready(&bounds(60, 60))[0].contains("is a sequencer"),
            "{reasons:?}"
        );
    }
}
