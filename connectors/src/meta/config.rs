//! Meta settings: app id and secret, redirect URL, Graph API version and base URLs, the scopes
//! asked for, the re-read window, and how insights are fetched (sync range limit, async polling).

use crate::config::{self, base, or_default, ConfigError, Given};
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

    /// Meta's configuration from what a deployment gives: `Ok(None)` when no credential is
    /// given (Meta is not configured), an error naming the missing ones when only some are.
    pub fn new(settings: MetaSettings) -> Result<Option<Self>, ConfigError> {
        let MetaSettings {
            client_id,
            client_secret,
            redirect_url,
            api_version,
            auth_url,
            graph_url,
        } = settings;
        config::all_or_none("Meta", &[&client_id, &client_secret, &redirect_url])?;
        let (Some(client_id), Some(client_secret), Some(redirect_url)) = (
            client_id.value(),
            client_secret.value(),
            redirect_url.value(),
        ) else {
            return Ok(None);
        };
        Ok(Some(Self {
            client_id,
            client_secret,
            redirect_url,
            api_version: or_default(api_version, Self::DEFAULT_API_VERSION),
            auth_url: base(or_default(auth_url, Self::DEFAULT_AUTH_URL)),
            graph_url: base(or_default(graph_url, Self::DEFAULT_GRAPH_URL)),
            scopes: vec!["ads_read".into(), "business_management".into()],
            reread_window_days: 28,
            sync_max_days: 90,
            page_limit: 100,
            poll_interval: Duration::from_secs(2),
            max_polls: 900,
        }))
    }

    /// The Graph API URL of `path` (`{graph_url}/{version}/{path}`), for OAuth and data alike.
    pub(crate) fn graph(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.graph_url, self.api_version)
    }
}

/// What a deployment gives for Meta: the app's credentials (all or none), and endpoints that
/// default to the real ones when unset or blank.
#[derive(Debug, Clone)]
pub struct MetaSettings {
    pub client_id: Given<String>,
    pub client_secret: Given<Secret>,
    pub redirect_url: Given<String>,
    pub api_version: Option<String>,
    pub auth_url: Option<String>,
    pub graph_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(id: Option<&str>, secret: Option<&str>, url: Option<&str>) -> MetaSettings {
        MetaSettings {
            client_id: Given::new("ADLEDGER_META_CLIENT_ID", id.map(String::from)),
            client_secret: Given::new("ADLEDGER_META_CLIENT_SECRET", secret.map(Secret::new)),
            redirect_url: Given::new("ADLEDGER_META_REDIRECT_URL", url.map(String::from)),
            api_version: None,
            auth_url: None,
            graph_url: None,
        }
    }

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        assert!(MetaConfig::new(settings(None, None, None))
            .unwrap()
            .is_none());
        let e = MetaConfig::new(settings(Some("123"), None, None)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_META_CLIENT_SECRET"), "{e}");
        let c = MetaConfig::new(MetaSettings {
            api_version: Some("v24.0".into()),
            graph_url: Some(" ".into()),
            ..settings(Some("123"), Some("s"), Some("https://a/cb"))
        })
        .unwrap()
        .unwrap();
        assert_eq!(c.api_version, "v24.0");
        assert_eq!(
            c.graph_url,
            MetaConfig::DEFAULT_GRAPH_URL,
            "blank is the default"
        );
        assert_eq!(c.reread_window_days, 28);
    }
}
