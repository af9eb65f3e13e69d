//! Appending: one statement inserts the whole batch, guarded so it succeeds only when the stream
//! is exactly at the expected version. The unique (stream_id, stream_version) constraint turns a
//! race between two writers into a conflict for one of them.

use super::{written, AppendOutcome, AppendRequest, EventStore, Idempotency, StoreError};
use sqlx::postgres::PgDatabaseError;
use sqlx::PgConnection;

/// How a client's idempotency key is kept: `idempotency_keys` is append-only, so a key that
/// holds personal data (a client may send anything, an email too) could never be erased. Only
/// its SHA-256 is stored; migration 0026 computes the same over the rows written before.
fn stored_key(key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("adledger idempotency key\n{key}").as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

const INSERT_EVENTS: &str = "
    WITH inserted AS (
        INSERT INTO events (event_id, stream_id, stream_type, stream_version, workspace_id,
                            event_type, schema_version, payload, metadata, occurred_at)
        SELECT e.event_id, $1, $2, $3 + e.n, $4, e.event_type, e.schema_version, e.payload, $5,
               e.occurred_at
        FROM UNNEST($6::uuid[], $7::text[], $8::int4[], $9::jsonb[], $10::timestamptz[])
             WITH ORDINALITY AS e(event_id, event_type, schema_version, payload, occurred_at, n)
        WHERE $3 = 0 OR EXISTS (SELECT 1 FROM events WHERE stream_id = $1 AND stream_version = $3)
        RETURNING id)
    SELECT count(*), coalesce(max(id), 0) FROM inserted";

impl EventStore {
    /// Appends `request.events` to a stream at `request.expected_version`.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        let outcome = match &request.idempotency {
            None => {
                let mut conn = self.pool.acquire().await?;
                insert_events(&mut conn, &request).await
            }
            Some(idem) => self.append_idempotent(&request, idem).await,
        };
        match outcome {
            Ok(Inserted::Appended { outcome, last_row }) => {
                written::record(last_row);
                self.appended.notify_one();
                Ok(outcome)
            }
            Ok(Inserted::Duplicate(outcome)) => Ok(outcome),
            Err(e) => Err(e),
        }
    }

    async fn append_idempotent(
        &self,
        request: &AppendRequest,
        idem: &Idempotency,
    ) -> Result<Inserted, StoreError> {
        // No lookup first: callers that can skip work check `idempotent_outcome` themselves, and
        // the key's insert in this transaction decides every race on its own.
        let mut tx = self.pool.begin().await?;
        let appended = insert_events(&mut tx, request).await;
        let appended = match appended {
            Ok(a) => a,
            Err(e) => {
                drop(tx);
                // A concurrent retry of the same request may have won the race.
                return match self.idempotent_outcome(idem).await? {
                    Some(previous) => Ok(Inserted::Duplicate(previous)),
                    None => Err(e),
                };
            }
        };
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, outcome)
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&idem.scope)
        .bind(stored_key(&idem.key))
        .bind(&idem.fingerprint)
        .bind(&idem.outcome)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            drop(tx);
            return match self.idempotent_outcome(idem).await? {
                Some(previous) => Ok(Inserted::Duplicate(previous)),
                None => Err(StoreError::Corrupt("idempotency key vanished".into())),
            };
        }
        tx.commit().await?;
        Ok(appended)
    }

    /// The stored outcome for this key, if the same request was already carried out.
    pub async fn idempotent_outcome(
        &self,
        idem: &Idempotency,
    ) -> Result<Option<AppendOutcome>, StoreError> {
        let row: Option<(String, serde_json::Value)> = sqlx::query_as(
            "SELECT fingerprint, outcome FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(&idem.scope)
        .bind(stored_key(&idem.key))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            None => Ok(None),
            Some((fingerprint, outcome)) if fingerprint == idem.fingerprint => {
                Ok(Some(AppendOutcome::Duplicate { outcome }))
            }
            Some(_) => Err(StoreError::IdempotencyKeyReused {
                key: idem.key.clone(),
            }),
        }
    }
}

/// What one append did: stored the events (the last one in `last_row`), or found the request's
/// idempotency key already answered.
enum Inserted {
    Appended {
        outcome: AppendOutcome,
        last_row: i64,
    },
    Duplicate(AppendOutcome),
}

async fn insert_events(
    conn: &mut PgConnection,
    request: &AppendRequest,
) -> Result<Inserted, StoreError> {
    let n = request.events.len();
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    for e in &request.events {
        ids.push(e.event_id.as_uuid());
        types.push(e.event_type.as_str());
        versions.push(e.schema_version);
        payloads.push(&e.payload);
        times.push(e.occurred_at);
    }
    let result: Result<(i64, i64), _> = sqlx::query_as(INSERT_EVENTS)
        .bind(request.stream_id.as_str())
        .bind(request.stream_type)
        .bind(request.expected_version)
        .bind(request.workspace_id.as_uuid())
        .bind(&request.metadata)
        .bind(&ids)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&times)
        .fetch_one(&mut *conn)
        .await;
    let conflict = || StoreError::WrongExpectedVersion {
        stream: request.stream_id.clone(),
        expected: request.expected_version,
    };
    match result {
        Ok((count, last_row)) if count as usize == n => Ok(Inserted::Appended {
            outcome: AppendOutcome::Appended {
                last_version: request.expected_version + n as i64,
            },
            last_row,
        }),
        Ok(_) => Err(conflict()),
        Err(sqlx::Error::Database(db))
            if db
                .try_downcast_ref::<PgDatabaseError>()
                .and_then(|e| e.constraint())
                == Some("events_stream_version_key") =>
        {
            Err(conflict())
        }
        Err(e) => Err(e.into()),
    }
}
