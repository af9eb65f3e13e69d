//! The connector a run talks to, with the connection's tokens: the sandbox needs none; a real
//! platform's tokens are opened, refreshed when the platform allows (and stored again at once,
//! sealed, so that a worker dying mid-run cannot lose a rotated refresh token), and a platform
//! that refuses them moves the connection to `needs_reauth`, so syncs stop until a person
//! reconnects it.

use crate::connections::{connection_target, load_tokens, save_tokens, ConnectorSetup};
use crate::Commands;
use adledger_connectors::auth::{OnRefresh, RefreshingTokens};
use adledger_connectors::{Connector, OAuthFlow, TokenSet, TokenSource};
use adledger_domain::connection::{self, Connected};
use adledger_domain::{EventMetadata, FailureKind, SyncFailure, WorkspaceId};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// The platform connector a run works with, and the tokens to keep afterwards if refreshed.
pub(crate) struct Prepared {
    pub connector: Box<dyn Connector>,
    pub tokens: Option<(Arc<RefreshingTokens>, TokenSet)>,
}

/// Stores every refreshed token set of `conn` as it comes, the newest last: refreshes are handed
/// to one task through a watch channel, which keeps only the newest, so an older set never
/// overwrites a newer one. The task ends with the run (when its tokens are dropped).
fn keep_refreshed(
    setup: Arc<ConnectorSetup>,
    workspace: WorkspaceId,
    conn: &Connected,
) -> OnRefresh {
    let (connection, platform) = (conn.id, conn.platform());
    let (refreshed, mut newest) = tokio::sync::watch::channel(None::<TokenSet>);
    tokio::spawn(async move {
        while newest.changed().await.is_ok() {
            let tokens = newest.borrow_and_update().clone();
            if let Some(tokens) = tokens {
                if let Err(e) = save_tokens(&setup, connection, workspace, platform, &tokens).await
                {
                    tracing::error!(connection_id = %connection, error = %e, "could not store refreshed tokens; they are stored again when the run ends");
                }
            }
        }
    });
    Arc::new(move |tokens: &TokenSet| {
        refreshed.send_replace(Some(tokens.clone()));
    })
}

/// A token past its expiry with no way to refresh it (Meta's long-lived token after 60 days):
/// only a person can renew it, so the run fails without calling the platform.
fn expired_for_good(tokens: &TokenSet, now: DateTime<Utc>) -> bool {
    tokens.refresh_token.is_none() && tokens.expires_at.is_some_and(|at| at <= now)
}

impl Commands {
    /// The connector a run of `conn` (of `workspace`) works with, or why it cannot have one.
    pub(crate) async fn prepare_connector(
        &self,
        workspace: WorkspaceId,
        conn: &Connected,
    ) -> Result<Prepared, SyncFailure> {
        if let Some(factory) = &self.connector_factory {
            return Ok(Prepared {
                connector: factory(conn),
                tokens: None,
            });
        }
        if let Some(connector) =
            adledger_connectors::sandbox_for(&conn.settings, conn.completed_syncs)
        {
            return Ok(Prepared {
                connector,
                tokens: None,
            });
        }
        let platform = conn.platform();
        let not_configured = || {
            SyncFailure::new(
                FailureKind::Invalid,
                format!("{platform} is not configured on this server"),
            )
        };
        let setup = self
            .connectors
            .clone()
            .filter(|s| s.platforms.is_configured(platform))
            .ok_or_else(not_configured)?;
        let tokens = load_tokens(&setup, conn.id)
            .await
            .map_err(|e| super::failure::internal("could not load the connection's tokens", &e))?
            .ok_or_else(|| {
                SyncFailure::new(
                    FailureKind::AuthExpired,
                    "no tokens are stored for this connection",
                )
            })?;
        if expired_for_good(&tokens, self.now()) {
            return Err(SyncFailure::new(
                FailureKind::AuthExpired,
                "the access token expired and the platform cannot refresh it",
            ));
        }
        let flow: Arc<dyn OAuthFlow> = setup
            .platforms
            .oauth(platform)
            .ok_or_else(not_configured)?
            .into();
        let keeper = keep_refreshed(setup.clone(), workspace, conn);
        let refreshing = Arc::new(RefreshingTokens::new(flow, tokens.clone(), Some(keeper)));
        let connector = setup
            .platforms
            .connector(platform, refreshing.clone() as Arc<dyn TokenSource>)
            .ok_or_else(not_configured)?;
        Ok(Prepared {
            connector,
            tokens: Some((refreshing, tokens)),
        })
    }

    /// After a run (or a discovery): keep refreshed tokens; when the platform refused the
    /// credentials, mark the connection so that syncs stop until a person reconnects it.
    pub(crate) async fn after_run(
        &self,
        metadata: &EventMetadata,
        workspace: WorkspaceId,
        conn: &Connected,
        tokens: Option<(Arc<RefreshingTokens>, TokenSet)>,
        failure: Option<&SyncFailure>,
    ) {
        if let (Some((refreshing, before)), Some(setup)) = (tokens, self.connectors.as_deref()) {
            let now = refreshing.tokens().await;
            if now != before {
                if let Err(e) = save_tokens(setup, conn.id, workspace, conn.platform(), &now).await
                {
                    tracing::error!(connection_id = %conn.id, error = %e, "could not store refreshed tokens");
                }
            }
        }
        let Some(failure) = failure.filter(|f| f.kind == FailureKind::AuthExpired) else {
            return;
        };
        let command = connection::Command::MarkNeedsReauth {
            reason: failure.message.clone(),
        };
        let target = connection_target(metadata, workspace, conn.id);
        match self.decide(target, &command).await {
            Ok(_) => {
                tracing::warn!(connection_id = %conn.id, "the platform refused the connection's credentials; it needs to be reconnected")
            }
            Err(e) => {
                tracing::error!(connection_id = %conn.id, error = %e, "could not mark the connection as needing reauthorization")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use adledger_connectors::Secret;
    use chrono::Duration;

    #[test]
    fn only_an_expired_token_without_a_refresh_token_is_expired_for_good() {
        let now = Utc::now();
        let mut tokens = TokenSet::bearer("t");
        assert!(!expired_for_good(&tokens, now), "no expiry known");
        tokens.expires_at = Some(now - Duration::minutes(1));
        assert!(expired_for_good(&tokens, now));
        tokens.refresh_token = Some(Secret::new("r"));
        assert!(!expired_for_good(&tokens, now), "it can be refreshed");
        tokens.refresh_token = None;
        tokens.expires_at = Some(now + Duration::days(59));
        assert!(!expired_for_good(&tokens, now));
    }
}
