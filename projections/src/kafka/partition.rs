//! A Kafka partition as a page source. The messages a worker received, split by partition, wait
//! here to become pages; a partition's progress is its `projection_offsets` row, written in the
//! page's transaction fenced on the `next_offset` the page started from and on the worker's lease,
//! so a worker that lost the partition cannot apply it again. Postgres decides where a partition
//! starts: messages below the stored offset are skipped, a partition delivered from above it is
//! sought back, and events the relay sent twice are dropped by log position.

use super::CLIENT_TIMEOUT;
use crate::runner::{decode_after, Page, PageSource};
use crate::ProjectionError;
use adledger_infra::LogEntry;
use async_trait::async_trait;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::Offset;
use sqlx::{PgConnection, PgPool};
use std::collections::{BTreeMap, HashMap};

/// One message, decoded as soon as it arrives so nothing borrows the consumer.
pub(super) struct Received {
    pub partition: i32,
    pub offset: i64,
    pub entry: Result<LogEntry, String>,
}

/// Where a partition stands for one projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    partition: i32,
    next_offset: i64,
    /// The last log position applied from the partition: anything at or below it is a duplicate.
    last_position: i64,
}

pub(super) struct PartitionSource<'a> {
    pub projection: &'static str,
    pub topic: &'a str,
    pub consumer: &'a StreamConsumer,
    /// The lease holder every page is fenced on.
    pub owner: &'a str,
    /// Progress as this worker last wrote it; Postgres decides whenever it does not fit.
    known: HashMap<i32, Progress>,
    /// Received messages by partition, in offset order, waiting to be applied.
    pending: BTreeMap<i32, Vec<Received>>,
    /// The partition of the page being read or applied: where its error is recorded.
    current: Option<i32>,
}

impl<'a> PartitionSource<'a> {
    pub fn new(
        projection: &'static str,
        topic: &'a str,
        consumer: &'a StreamConsumer,
        owner: &'a str,
    ) -> Self {
        Self {
            projection,
            topic,
            consumer,
            owner,
            known: HashMap::new(),
            pending: BTreeMap::new(),
            current: None,
        }
    }

    /// Adds a round of messages, to be applied partition by partition.
    pub fn receive(&mut self, round: Vec<Received>) {
        for message in round {
            self.pending
                .entry(message.partition)
                .or_default()
                .push(message);
        }
        for messages in self.pending.values_mut() {
            messages.sort_by_key(|m| m.offset);
        }
    }

    /// Forgets what this worker knew of every partition (after its assignment changed).
    pub fn forget(&mut self) {
        self.known.clear();
        self.pending.clear();
    }

    /// The next offset this worker applied up to in `partition`, if it applied any.
    pub fn next_offset(&self, partition: i32) -> Option<i64> {
        self.known.get(&partition).map(|p| p.next_offset)
    }

    async fn load(
        &self,
        conn: &mut PgConnection,
        partition: i32,
    ) -> Result<Progress, ProjectionError> {
        #[derive(sqlx::FromRow)]
        struct Stored {
            next_offset: i64,
            last_position: i64,
        }
        let stored: Option<Stored> = sqlx::query_as(
            "SELECT next_offset, last_position FROM projection_offsets
             WHERE projection = $1 AND topic = $2 AND partition = $3",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(partition)
        .fetch_optional(&mut *conn)
        .await?;
        let stored = stored.unwrap_or(Stored {
            next_offset: 0,
            last_position: 0,
        });
        Ok(Progress {
            partition,
            next_offset: stored.next_offset,
            last_position: stored.last_position,
        })
    }

    /// The partition starts past what Postgres has applied (another worker's Kafka offset, or a
    /// group that outlived its read models): read again from the stored offset.
    fn seek_back(&mut self, partition: i32, stored: i64, seen: i64) -> Result<(), ProjectionError> {
        let (low, _) = self
            .consumer
            .fetch_watermarks(self.topic, partition, CLIENT_TIMEOUT)?;
        if stored < low {
            return Err(ProjectionError::TopicTruncated {
                partition,
                needed: stored,
                earliest: low,
            });
        }
        tracing::info!(
            projection = self.projection,
            partition,
            from = stored,
            seen,
            "seeking back to the offset stored in Postgres"
        );
        self.known.remove(&partition);
        self.consumer.seek(
            self.topic,
            partition,
            Offset::Offset(stored),
            CLIENT_TIMEOUT,
        )?;
        Ok(())
    }
}

#[async_trait]
impl PageSource for PartitionSource<'_> {
    type Progress = Progress;

    async fn next_page(
        &mut self,
        tx: &mut PgConnection,
    ) -> Result<Option<Page<Progress>>, ProjectionError> {
        while let Some((partition, messages)) = self.pending.pop_first() {
            self.current = Some(partition);
            let Some(first) = messages.first().map(|m| m.offset) else {
                continue;
            };
            let from = match self.known.get(&partition) {
                Some(p) if p.next_offset == first => *p,
                // First page of this partition, or the partition moved: Postgres decides.
                _ => self.load(tx, partition).await?,
            };
            self.known.insert(partition, from);
            let messages: Vec<Received> = messages
                .into_iter()
                .skip_while(|m| m.offset < from.next_offset)
                .collect();
            let Some(first) = messages.first().map(|m| m.offset) else {
                continue;
            };
            if first > from.next_offset {
                self.seek_back(partition, from.next_offset, first)?;
                continue;
            }
            let last_offset = messages.last().map_or(first, |m| m.offset);
            let entries = messages
                .into_iter()
                .map(|m| {
                    m.entry.map_err(|reason| ProjectionError::BadMessage {
                        partition,
                        offset: m.offset,
                        reason,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let events = decode_after(from.last_position, entries)?;
            let last_position = events
                .last()
                .map_or(from.last_position, |(entry, _)| entry.position);
            return Ok(Some(Page {
                from,
                to: Progress {
                    partition,
                    next_offset: last_offset + 1,
                    last_position,
                },
                events,
            }));
        }
        Ok(None)
    }

    async fn save(
        &mut self,
        tx: &mut PgConnection,
        page: &Page<Progress>,
        events_per_sec: f64,
    ) -> Result<bool, ProjectionError> {
        let saved = sqlx::query(
            "UPDATE projection_offsets
             SET next_offset = $4, last_position = $5, events_applied = events_applied + $6,
                 events_per_sec = $7, last_error = NULL, updated_at = now()
             WHERE projection = $1 AND topic = $2 AND partition = $3 AND next_offset = $8
               AND owner = $9",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(page.to.partition)
        .bind(page.to.next_offset)
        .bind(page.to.last_position)
        .bind(page.events.len() as i64)
        .bind(events_per_sec)
        .bind(page.from.next_offset)
        .bind(self.owner)
        .execute(&mut *tx)
        .await?;
        Ok(saved.rows_affected() == 1)
    }

    fn settled(&mut self, page: &Page<Progress>, committed: bool) {
        let partition = page.to.partition;
        if committed {
            self.known.insert(partition, page.to);
        } else {
            self.known.remove(&partition);
            tracing::info!(
                projection = self.projection,
                partition,
                offset = page.from.next_offset,
                "the partition moved to another worker; batch rolled back"
            );
        }
    }

    async fn record_error(&self, pool: &PgPool, error: &ProjectionError) {
        let Some(partition) = self.current else {
            return;
        };
        let recorded = sqlx::query(
            "UPDATE projection_offsets SET last_error = $4, updated_at = now()
             WHERE projection = $1 AND topic = $2 AND partition = $3 AND owner = $5",
        )
        .bind(self.projection)
        .bind(self.topic)
        .bind(partition)
        .bind(error.to_string())
        .bind(self.owner)
        .execute(pool)
        .await;
        if let Err(e) = recorded {
            tracing::warn!(projection = self.projection, partition, error = %e,
                "could not record the projection error");
        }
    }
}
