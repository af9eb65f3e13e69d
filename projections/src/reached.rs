//! Whether a read model has applied the log up to a position: what a caller's read waits on to
//! see its own write (read-your-writes).

use crate::ProjectionError;
use adledger_infra::kafka::KafkaConfig;
use sqlx::PgPool;
use std::collections::{BTreeSet, HashMap};

/// Whether read model `name` has applied every event up to `position`, fed from the Postgres log
/// or, with `from_kafka`, from that topic.
///
/// From the log, its checkpoint says so. From Kafka, partitions split the log by workspace and
/// an idle partition's last position never moves, so: the relay has published `position`, and
/// every partition has applied it or has nothing left to apply (it is at the broker's end).
pub async fn reached(
    pool: &PgPool,
    name: &str,
    from_kafka: Option<&KafkaConfig>,
    position: i64,
) -> Result<bool, ProjectionError> {
    let Some(config) = from_kafka else {
        let checkpoint: Option<i64> =
            sqlx::query_scalar("SELECT position FROM projection_checkpoints WHERE name = $1")
                .bind(name)
                .fetch_optional(pool)
                .await?;
        return Ok(checkpoint.unwrap_or(0) >= position);
    };
    let published: Option<i64> =
        sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE topic = $1")
            .bind(&config.topic)
            .fetch_optional(pool)
            .await?;
    if published.unwrap_or(0) < position {
        return Ok(false);
    }
    let applied: HashMap<i32, (i64, i64)> = sqlx::query_as::<_, (i32, i64, i64)>(
        "SELECT partition, next_offset, last_position FROM projection_offsets
         WHERE projection = $1 AND topic = $2",
    )
    .bind(name)
    .bind(&config.topic)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(partition, next, last)| (partition, (next, last)))
    .collect();
    // Every partition of the topic counts, also one no worker has taken yet (nothing applied).
    let behind: Vec<(i32, i64)> = (0..config.partitions)
        .map(|p| (p, applied.get(&p).copied().unwrap_or((0, 0))))
        .filter(|(_, (_, last))| *last < position)
        .map(|(p, (next, _))| (p, next))
        .collect();
    if behind.is_empty() {
        return Ok(true);
    }
    let partitions: BTreeSet<i32> = behind.iter().map(|(p, _)| *p).collect();
    let ends = crate::kafka::partition_ends(config, partitions).await;
    // A partition whose end the broker does not tell cannot be shown to have caught up.
    Ok(behind
        .iter()
        .all(|(partition, next)| ends.get(partition).is_some_and(|end| end <= next)))
}
