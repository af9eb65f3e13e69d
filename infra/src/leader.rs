//! Leader election in Postgres for work that one process at a time must do (the Kafka relay of a
//! topic, the sync scheduler). The leader holds a session advisory lock on a connection of its
//! own, so the lock goes as soon as the process or that connection dies and a standby takes over.
//! It never decides who leads by anything but the lock.

use crate::shutdown::Shutdown;
use sqlx::{Connection, PgConnection, PgPool};
use std::time::Duration;

/// How often a standby tries to take the lock.
pub const STANDBY_POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
#[error("leader election: database error: {0}")]
pub struct LeaderError(#[from] sqlx::Error);

/// The lock of one kind of leader: a class (the kind of work) and a name within it.
#[derive(Debug, Clone)]
pub struct LeaderLock {
    pub class: i32,
    pub name: String,
}

/// Holding the lock. Dropping it closes the connection in the background; [`Self::resign`]
/// releases the lock at once.
pub struct Leadership {
    conn: PgConnection,
}

impl LeaderLock {
    pub fn new(class: i32, name: impl Into<String>) -> Self {
        Self {
            class,
            name: name.into(),
        }
    }

    /// Waits until this process leads (`Some`) or shutdown fires (`None`), trying every
    /// [`STANDBY_POLL`] on one connection. `role` names the work in the logs.
    pub async fn acquire(
        &self,
        pool: &PgPool,
        role: &str,
        shutdown: &mut Shutdown,
    ) -> Result<Option<Leadership>, LeaderError> {
        // A connection of its own: the lock lives exactly as long as it does.
        let mut conn = pool.acquire().await?.detach();
        let mut announced = false;
        loop {
            if shutdown.is_triggered() {
                let _ = conn.close().await;
                return Ok(None);
            }
            let leader: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext($2))")
                .bind(self.class)
                .bind(&self.name)
                .fetch_one(&mut conn)
                .await?;
            if leader {
                tracing::info!(role, lock = %self.name, "this instance is the leader");
                return Ok(Some(Leadership { conn }));
            }
            if !announced {
                tracing::info!(role, lock = %self.name, "another instance leads; standing by");
                announced = true;
            }
            tokio::select! {
                _ = tokio::time::sleep(STANDBY_POLL) => {}
                _ = shutdown.wait() => {}
            }
        }
    }
}

impl Leadership {
    /// Fails when the lock's connection broke, and with it the leadership: stop leading then.
    pub async fn confirm(&mut self) -> Result<(), LeaderError> {
        sqlx::query("SELECT 1").execute(&mut self.conn).await?;
        Ok(())
    }

    /// Gives the lock up at once (closing its connection) for a standby to take.
    pub async fn resign(self) {
        let _ = self.conn.close().await;
    }
}
