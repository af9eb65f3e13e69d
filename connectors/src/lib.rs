//! Ad-platform clients behind one interface: discovery of ad accounts and campaigns, and daily
//! insights. Each platform's own words are translated into domain types here, once; nothing in
//! this crate touches the event store or decides business rules.
//!
//! TLS: reqwest uses rustls (pure Rust, no system OpenSSL), so base URLs may be `https://` (the
//! platforms) or `http://` (the fakes in tests).

pub mod auth;
pub mod config;
#[cfg(feature = "fakes")]
pub mod fakes;
pub mod google;
pub mod meta;
pub mod resilience;
pub mod sandbox;
mod secret;
pub mod tiktok;
mod wire;

pub use auth::{OAuthFlow, TokenSet, TokenSource};
pub use secret::Secret;

use adledger_domain::connection::{AdAccount, DiscoveredCampaign};
use adledger_domain::event::ConnectionSettings;
use adledger_domain::{DailyMetrics, DateRange, FailureKind, Platform};
use chrono::NaiveDate;
use std::sync::Arc;
use std::time::Duration;

/// What a platform lists for one login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    pub ad_accounts: Vec<AdAccount>,
    pub campaigns: Vec<DiscoveredCampaign>,
}

/// Why a platform call failed, classified so that retry policy and sync reasons need no
/// knowledge of any one platform's error shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Rate limited; try again later (after `retry_after` when the platform says).
    #[error("throttled by the platform{}", retry_hint(.retry_after))]
    Throttled { retry_after: Option<Duration> },
    /// The credential was revoked or expired: the user must reconnect.
    #[error("the platform authorization expired or was revoked")]
    AuthExpired,
    /// A failure that may pass on retry (timeouts, 5xx, dropped connections).
    #[error("transient platform error: {0}")]
    Transient(String),
    /// The request or the answer makes no sense (unknown campaign, malformed response).
    #[error("invalid request or response: {0}")]
    Invalid(String),
}

fn retry_hint(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (retry after {}s)", d.as_secs()),
        None => String::new(),
    }
}

impl ConnectorError {
    /// The kind of sync failure this is, once retries are spent: what the sync's `SyncFailed`
    /// event records, and what decides whether the connection needs a person.
    pub fn kind(&self) -> FailureKind {
        match self {
            ConnectorError::Throttled { .. } => FailureKind::Throttled,
            ConnectorError::AuthExpired => FailureKind::AuthExpired,
            ConnectorError::Transient(_) => FailureKind::PlatformDown,
            ConnectorError::Invalid(_) => FailureKind::Invalid,
        }
    }

    /// Whether the same call may succeed later without the user doing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ConnectorError::Throttled { .. } | ConnectorError::Transient(_)
        )
    }
}

/// One campaign's numbers for one day, as an account-level report lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignDay {
    pub campaign_external_id: String,
    /// The day in the ad account's time zone.
    pub date: NaiveDate,
    pub metrics: DailyMetrics,
}

/// One ad platform, as seen through one connection.
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// Every ad account and campaign the connection can reach.
    async fn discover(&self) -> Result<Discovery, ConnectorError>;

    /// Daily numbers for every campaign of `account` over `range`, following every page and
    /// splitting the range into chunks the platform accepts. Real platforms report a whole
    /// account per request, so this is one call per account, not per campaign. Days (or
    /// campaigns) the platform has no numbers for may be missing; rows outside `range` may
    /// appear and are the caller's to drop.
    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError>;
}

/// The sandbox connector for a sandbox connection's settings (`None` for platforms reached
/// through OAuth: see [`Platforms::connector`]). `completed_syncs` is how many syncs of
/// the connection finished before; the sandbox restates numbers from it like a real platform.
pub fn sandbox_for(
    settings: &ConnectionSettings,
    completed_syncs: u32,
) -> Option<Box<dyn Connector>> {
    match settings {
        ConnectionSettings::Sandbox {
            seed,
            ad_accounts,
            campaigns,
        } => Some(Box::new(sandbox::Sandbox::new(
            *seed,
            *ad_accounts,
            *campaigns,
            completed_syncs,
        ))),
        ConnectionSettings::Meta {}
        | ConnectionSettings::Google {}
        | ConnectionSettings::Tiktok {} => None,
    }
}

/// The real platforms' settings; `None` for a platform without credentials. The binary builds it
/// from its flags and environment (`adledger serve --help` lists them).
#[derive(Debug, Clone, Default)]
pub struct Platforms {
    pub meta: Option<meta::MetaConfig>,
    pub google: Option<google::GoogleConfig>,
    pub tiktok: Option<tiktok::TiktokConfig>,
}

impl Platforms {
    /// Whether any real platform is configured (the sandbox always is).
    pub fn any_configured(&self) -> bool {
        self.meta.is_some() || self.google.is_some() || self.tiktok.is_some()
    }

    pub fn is_configured(&self, platform: Platform) -> bool {
        match platform {
            Platform::Sandbox => true,
            Platform::Meta => self.meta.is_some(),
            Platform::Google => self.google.is_some(),
            Platform::Tiktok => self.tiktok.is_some(),
        }
    }

    /// The days a configured platform restates and every sync reads again: Meta's freeze
    /// window, Google's conversion window, TikTok's attribution window.
    pub fn reread_window_days(&self, platform: Platform) -> Option<u32> {
        match platform {
            Platform::Sandbox => None,
            Platform::Meta => self.meta.as_ref().map(|c| c.reread_window_days),
            Platform::Google => self.google.as_ref().map(|c| c.conversion_window_days),
            Platform::Tiktok => self.tiktok.as_ref().map(|c| c.attribution_window_days),
        }
    }

    /// Each real platform and whether it is configured (the sandbox always is).
    pub fn configured(&self) -> Vec<(Platform, bool)> {
        Platform::ALL
            .into_iter()
            .map(|p| (p, self.is_configured(p)))
            .collect()
    }

    /// The platform's OAuth flow, if it is a configured real platform.
    pub fn oauth(&self, platform: Platform) -> Option<Box<dyn OAuthFlow>> {
        match platform {
            Platform::Sandbox => None,
            Platform::Meta => Some(Box::new(meta::MetaOAuth::new(self.meta.clone()?))),
            Platform::Google => Some(Box::new(google::GoogleOAuth::new(self.google.clone()?))),
            Platform::Tiktok => Some(Box::new(tiktok::TiktokOAuth::new(self.tiktok.clone()?))),
        }
    }

    /// The platform's client reading with `tokens`, if it is a configured real platform. Wrap it
    /// in `resilience::Resilient` for retries and the breaker.
    pub fn connector(
        &self,
        platform: Platform,
        tokens: Arc<dyn TokenSource>,
    ) -> Option<Box<dyn Connector>> {
        match platform {
            Platform::Sandbox => None,
            Platform::Meta => Some(Box::new(meta::MetaClient::new(self.meta.clone()?, tokens))),
            Platform::Google => Some(Box::new(google::GoogleClient::new(
                self.google.clone()?,
                tokens,
            ))),
            Platform::Tiktok => Some(Box::new(tiktok::TiktokClient::new(
                self.tiktok.clone()?,
                tokens,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reread_windows_come_from_the_configured_platforms() {
        let given = |name: &str, value: &str| config::Given::new(name, Some(value.to_owned()));
        let secret = |name: &str, value: &str| config::Given::new(name, Some(Secret::new(value)));
        let google = google::GoogleConfig::new(google::GoogleSettings {
            client_id: given("id", "id"),
            client_secret: secret("secret", "secret"),
            redirect_url: given("url", "http://localhost/cb"),
            developer_token: secret("token", "dev"),
            login_customer_id: config::Given::new("login", None),
            auth_url: None,
            oauth_url: None,
            api_url: None,
            api_version: None,
            conversion_window_days: Some(14),
        })
        .unwrap();
        let platforms = Platforms {
            google,
            ..Default::default()
        };
        assert_eq!(platforms.reread_window_days(Platform::Google), Some(14));
        assert_eq!(
            platforms.reread_window_days(Platform::Tiktok),
            None,
            "not configured"
        );
        assert_eq!(platforms.reread_window_days(Platform::Sandbox), None);
    }

    #[test]
    fn errors_are_classified_and_worded_for_people() {
        let throttled = ConnectorError::Throttled {
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(throttled.kind(), FailureKind::Throttled);
        assert!(throttled.is_retryable());
        assert_eq!(
            throttled.to_string(),
            "throttled by the platform (retry after 30s)"
        );
        assert!(!ConnectorError::AuthExpired.is_retryable());
        assert_eq!(
            ConnectorError::Invalid("x".into()).kind(),
            FailureKind::Invalid
        );
        assert_eq!(
            ConnectorError::Transient("503".into()).kind(),
            FailureKind::PlatformDown
        );
    }

    #[test]
    fn unconfigured_platforms_have_no_flow_or_connector() {
        let none = Platforms::default();
        assert_eq!(
            none.configured(),
            [
                (Platform::Sandbox, true),
                (Platform::Meta, false),
                (Platform::Google, false),
                (Platform::Tiktok, false)
            ]
        );
        let tokens: Arc<dyn TokenSource> = Arc::new(auth::StaticToken(Secret::new("t")));
        for p in Platform::ALL {
            assert!(none.oauth(p).is_none());
            assert!(none.connector(p, tokens.clone()).is_none());
        }
    }
}
