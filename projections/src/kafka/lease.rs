//! Which worker reads which partition, decided in Postgres next to the offsets.
//!
//! Every worker of a projection heartbeats a `kafka_workers` row and holds its partitions by a
//! lease on their `projection_offsets` rows. Each round it renews its leases, counts the workers
//! seen within the lease time, and moves towards its fair share: it releases partitions above
//! `ceil(partitions / workers)` and claims free or expired ones below it. A dead worker's leases
//! run out and the survivors claim its partitions; a new worker gets partitions as soon as the
//! others see it and release their extras. Batches are fenced on the lease too, so a worker that
//! lost a partition cannot write to it.

use crate::ProjectionError;
use sqlx::PgPool;
use std::time::Duration;

pub(super) struct Leases<'a> {
    pub pool: &'a PgPool,
    pub projection: &'a str,
    pub topic: &'a str,
    pub worker: &'a str,
    pub ttl: Duration,
}

impl Leases<'_> {
    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX)
    }

    /// One round: heartbeat, renew, release extras, claim up to the fair share. Returns the
    /// partitions this worker holds afterwards, in order.
    pub async fn balance(&self, partitions: i32) -> Result<Vec<i32>, ProjectionError> {
        let ttl = self.ttl_ms();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO kafka_workers (projection, topic, worker) VALUES ($1, $2, $3)
             ON CONFLICT (projection, topic, worker) DO UPDATE SET seen_at = now()",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(self.worker)
        .execute(&mut *tx)
        .await?;
        // Rows of workers gone for long are only noise for operators.
        sqlx::query(
            "DELETE FROM kafka_workers WHERE projection = $1 AND topic = $2
               AND seen_at < now() - make_interval(secs => $3 * 10 / 1000.0)",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(ttl)
        .execute(&mut *tx)
        .await?;
        let workers: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM kafka_workers WHERE projection = $1 AND topic = $2
               AND seen_at > now() - make_interval(secs => $3 / 1000.0)",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(ttl)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO projection_offsets (projection, topic, partition)
             SELECT $1, $2, p FROM generate_series(0, $3 - 1) AS p
             ON CONFLICT DO NOTHING",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(partitions)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;

        let workers = workers.max(1);
        let share = (i64::from(partitions) + workers - 1) / workers;
        let held: Vec<i32> = sqlx::query_scalar(
            "UPDATE projection_offsets SET lease_until = now() + make_interval(secs => $4 / 1000.0)
             WHERE projection = $1 AND topic = $2 AND owner = $3 AND partition < $5
             RETURNING partition",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(self.worker)
        .bind(ttl)
        .bind(partitions)
        .fetch_all(self.pool)
        .await?;
        let held = held.len() as i64;
        if held > share {
            sqlx::query(
                "UPDATE projection_offsets SET owner = NULL, lease_until = NULL
                 WHERE projection = $1 AND topic = $2 AND owner = $3 AND partition IN (
                     SELECT partition FROM projection_offsets
                     WHERE projection = $1 AND topic = $2 AND owner = $3
                     ORDER BY partition DESC LIMIT $4)",
            )
            .bind(self.projection)
            .bind(self.topic)
            .bind(self.worker)
            .bind(held - share)
            .execute(self.pool)
            .await?;
        } else if held < share {
            sqlx::query(
                "UPDATE projection_offsets
                 SET owner = $3, lease_until = now() + make_interval(secs => $4 / 1000.0)
                 WHERE projection = $1 AND topic = $2 AND partition IN (
                     SELECT partition FROM projection_offsets
                     WHERE projection = $1 AND topic = $2 AND partition < $6
                       AND (owner IS NULL OR lease_until < now())
                     ORDER BY partition LIMIT $5 FOR UPDATE SKIP LOCKED)",
            )
            .bind(self.projection)
            .bind(self.topic)
            .bind(self.worker)
            .bind(ttl)
            .bind(share - held)
            .bind(partitions)
            .execute(self.pool)
            .await?;
        }
        let mine: Vec<i32> = sqlx::query_scalar(
            "SELECT partition FROM projection_offsets
             WHERE projection = $1 AND topic = $2 AND owner = $3 ORDER BY partition",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(self.worker)
        .fetch_all(self.pool)
        .await?;
        Ok(mine)
    }

    /// Gives every partition back (on shutdown), so others need not wait for the leases to end.
    pub async fn release_all(&self) -> Result<(), ProjectionError> {
        sqlx::query(
            "UPDATE projection_offsets SET owner = NULL, lease_until = NULL
             WHERE projection = $1 AND topic = $2 AND owner = $3",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(self.worker)
        .execute(self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM kafka_workers WHERE projection = $1 AND topic = $2 AND worker = $3",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(self.worker)
        .execute(self.pool)
        .await?;
        Ok(())
    }
}
