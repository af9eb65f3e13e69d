//! Discovery on its own, right after a platform is connected or reconnected: a person sees the
//! connection's ad accounts and campaigns without waiting for a first sync to finish (every sync
//! run discovers again at its start).

use super::{failure, retrying};
use crate::connections::connection_target;
use crate::{CommandError, Commands};
use adledger_connectors::resilience::{Resilient, RetryPolicy};
use adledger_domain::connection::{self, Status};
use adledger_domain::{ConnectionId, EventMetadata, FailureKind, WorkspaceId};
use uuid::Uuid;

/// What became of a discovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Discovered {
    /// Recorded, or nothing to do (the connection is gone or waits for a person).
    Done,
    /// The platform failed for a passing reason: try again later.
    RetryLater,
}

impl Commands {
    /// Discovers `connection`'s ad accounts and campaigns and records what is new. `job` is the
    /// id of the connect (or reconnect) event that asked for it.
    pub(crate) async fn discover(
        &self,
        workspace: WorkspaceId,
        connection: ConnectionId,
        job: Uuid,
    ) -> Result<Discovered, CommandError> {
        let metadata = EventMetadata::system("sync-worker", Uuid::now_v7()).caused_by(job);
        let conn = match retrying("loading a connection", || {
            self.connected(workspace, connection)
        })
        .await
        {
            Ok(conn) if conn.status == Status::Active => conn,
            Ok(_) | Err(CommandError::NotFound(_)) => return Ok(Discovered::Done),
            Err(e) => return Err(e),
        };
        let prepared = match self.prepare_connector(workspace, &conn).await {
            Ok(prepared) => prepared,
            Err(failure) => {
                self.after_run(&metadata, workspace, &conn, None, Some(&failure))
                    .await;
                return Ok(match failure.kind {
                    FailureKind::Internal => Discovered::RetryLater,
                    _ => Discovered::Done,
                });
            }
        };
        let connector = Resilient::new(
            prepared.connector,
            RetryPolicy::default(),
            self.breaker(connection),
        );
        let found = adledger_connectors::Connector::discover(&connector).await;
        let (outcome, failed) = match found {
            Ok(discovery) => {
                let command = connection::Command::RecordDiscovery {
                    ad_accounts: discovery.ad_accounts,
                    campaigns: discovery.campaigns,
                };
                retrying("recording a discovery", || {
                    self.decide(
                        connection_target(&metadata, workspace, connection),
                        &command,
                    )
                })
                .await?;
                tracing::info!(workspace_id = %workspace, connection_id = %connection, "connection discovered");
                (Discovered::Done, None)
            }
            Err(e) => {
                let failure = failure::platform("discovery", &e);
                tracing::warn!(workspace_id = %workspace, connection_id = %connection, %failure, "discovery failed");
                let outcome = if e.is_retryable() {
                    Discovered::RetryLater
                } else {
                    Discovered::Done
                };
                (outcome, Some(failure))
            }
        };
        self.after_run(
            &metadata,
            workspace,
            &conn,
            prepared.tokens,
            failed.as_ref(),
        )
        .await;
        Ok(outcome)
    }
}
