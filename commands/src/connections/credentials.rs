//! A connection's OAuth tokens at rest: one token set per connection, sealed as a whole under
//! the master keys by `infra::credentials`, outside the log (tokens must be forgettable).

use super::{credential_err, ConnectorSetup};
use crate::CommandError;
use adledger_connectors::{Secret, TokenSet};
use adledger_domain::{ConnectionId, Platform, WorkspaceId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The stored form of a token set.
#[derive(Serialize, Deserialize)]
struct StoredTokens {
    access_token: String,
    refresh_token: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
    advertiser_ids: Vec<String>,
}

impl From<&TokenSet> for StoredTokens {
    fn from(t: &TokenSet) -> Self {
        Self {
            access_token: t.access_token.expose().to_owned(),
            refresh_token: t.refresh_token.as_ref().map(|r| r.expose().to_owned()),
            expires_at: t.expires_at,
            scopes: t.scopes.clone(),
            advertiser_ids: t.advertiser_ids.clone(),
        }
    }
}

impl From<StoredTokens> for TokenSet {
    fn from(t: StoredTokens) -> Self {
        TokenSet {
            access_token: Secret::new(t.access_token),
            refresh_token: t.refresh_token.map(Secret::new),
            expires_at: t.expires_at,
            scopes: t.scopes,
            advertiser_ids: t.advertiser_ids,
        }
    }
}

pub(crate) async fn save(
    setup: &ConnectorSetup,
    connection: ConnectionId,
    workspace: WorkspaceId,
    platform: Platform,
    tokens: &TokenSet,
) -> Result<(), CommandError> {
    let text = serde_json::to_string(&StoredTokens::from(tokens))
        .map_err(|e| CommandError::Crypto(e.to_string()))?;
    setup
        .credentials
        .save(connection, workspace, platform, &text, tokens.expires_at)
        .await
        .map_err(credential_err)
}

pub(crate) async fn load(
    setup: &ConnectorSetup,
    connection: ConnectionId,
) -> Result<Option<TokenSet>, CommandError> {
    let Some(text) = setup
        .credentials
        .load(connection)
        .await
        .map_err(credential_err)?
    else {
        return Ok(None);
    };
    let stored: StoredTokens = serde_json::from_str(&text)
        .map_err(|e| CommandError::Crypto(format!("stored tokens are unreadable: {e}")))?;
    Ok(Some(stored.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_tokens_round_trip() {
        let mut tokens = TokenSet::bearer("access");
        tokens.refresh_token = Some(Secret::new("refresh"));
        tokens.advertiser_ids = vec!["7001".into()];
        let text = serde_json::to_string(&StoredTokens::from(&tokens)).unwrap();
        let back: TokenSet = serde_json::from_str::<StoredTokens>(&text).unwrap().into();
        assert_eq!(back, tokens);
    }
}
