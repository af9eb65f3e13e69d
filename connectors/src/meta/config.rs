//! Meta settings: app id and secret, redirect URL, Graph API version and base URLs, the scopes
//! asked for, the re-read window, and how insights are fetched (sync range limit, async polling).

use crate::env::{base, ConfigError, Env};
use crate::Secret;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct MetaConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_url: String,
    /// e.g. `v23.0`.
    pub api_version: String,
    /// Base of the OAuth dialog (`{auth_url}/{version}/dialog/oauth`).
    pub auth_url: String,
    /// Base of the Graph API (`{graph_url}/{version}/…`).
    pub graph_url: String,
    pub scopes: Vec<String>,
    /// Insights freeze 28 days after the fact: syncs re-read this many days.
    pub reread_window_days: u32,
    /// Ranges longer than this go through an async report job.
    pub sync_max_days: u32,
    /// Rows asked for per page.
    pub page_limit: u32,
    /// How often an async report job is polled, and how many times at most.
    pub poll_interval: Duration,
    pub max_polls: u32,
}

impl MetaConfig {
    pub const DEFAULT_AUTH_URL: &'static str = "https://www.facebook.com";
    pub const DEFAULT_GRAPH_URL: &'static str = "https://graph.facebook.com";
    pub const DEFAULT_API_VERSION: &'static str = "v23.0";

    /// From `ADLEDGER_META_*`; `Ok(None)` when no credential is set.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&Env::process())
    }

    pub fn from_vars(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some([client_id, client_secret, redirect_url]) = env
            .required([
                "ADLEDGER_META_CLIENT_ID",
                "ADLEDGER_META_CLIENT_SECRET",
                "ADLEDGER_META_REDIRECT_URL",
            ])
            .map_err(|e| ConfigError(format!("Meta: {}", e.0)))?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            client_id,
            client_secret: Secret::new(client_secret),
            redirect_url,
            api_version: env.get_or("ADLEDGER_META_API_VERSION", Self::DEFAULT_API_VERSION),
            auth_url: base(env.get_or("ADLEDGER_META_AUTH_URL", Self::DEFAULT_AUTH_URL)),
            graph_url: base(env.get_or("ADLEDGER_META_GRAPH_URL", Self::DEFAULT_GRAPH_URL)),
            scopes: vec!["ads_read".into(), "business_management".into()],
            reread_window_days: 28,
            sync_max_days: 90,
            page_limit: 100,
            poll_interval: Duration::from_secs(2),
            max_polls: 900,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        let mut vars = HashMap::new();
        assert!(MetaConfig::from_vars(&Env::from_map(&vars))
            .unwrap()
            .is_none());
        vars.insert("ADLEDGER_META_CLIENT_ID".to_string(), "123".to_string());
        let e = MetaConfig::from_vars(&Env::from_map(&vars)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_META_CLIENT_SECRET"), "{e}");
        vars.insert("ADLEDGER_META_CLIENT_SECRET".into(), "s".into());
        vars.insert("ADLEDGER_META_REDIRECT_URL".into(), "https://a/cb".into());
        vars.insert("ADLEDGER_META_API_VERSION".into(), "v24.0".into());
        let c = MetaConfig::from_vars(&Env::from_map(&vars))
            .unwrap()
            .unwrap();
        assert_eq!(c.api_version, "v24.0");
        assert_eq!(c.graph_url, MetaConfig::DEFAULT_GRAPH_URL);
        assert_eq!(c.reread_window_days, 28);
    }
}
