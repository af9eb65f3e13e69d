//! TikTok settings: app id and secret, redirect URL, base URLs (the API URL includes the
//! version, e.g. `…/open_api/v1.3`), attribution window and report chunking.

use crate::config::{self, base, or_default, ConfigError, Given};
use crate::Secret;

#[derive(Debug, Clone)]
pub struct TiktokConfig {
    pub app_id: String,
    pub secret: Secret,
    pub redirect_url: String,
    /// The advertiser authorization page.
    pub auth_url: String,
    /// Base of every API path, version included.
    pub api_url: String,
    /// Conversions are attributed for this many days after the click: syncs re-read them.
    pub attribution_window_days: u32,
    /// Days per report request (TikTok allows at most 30 for daily data).
    pub chunk_days: u32,
    /// Rows per page asked for (TikTok allows at most 1000).
    pub page_size: u32,
}

impl TiktokConfig {
    pub const DEFAULT_AUTH_URL: &'static str = "https://business-api.tiktok.com/portal/auth";
    pub const DEFAULT_API_URL: &'static str = "https://business-api.tiktok.com/open_api/v1.3";
    pub const DEFAULT_ATTRIBUTION_WINDOW_DAYS: u32 = 7;

    /// TikTok's configuration from what a deployment gives: `Ok(None)` when no credential is
    /// given (TikTok is not configured), an error naming the missing ones when only some are.
    pub fn new(settings: TiktokSettings) -> Result<Option<Self>, ConfigError> {
        let TiktokSettings {
            app_id,
            secret,
            redirect_url,
            auth_url,
            api_url,
            attribution_window_days,
        } = settings;
        config::all_or_none("TikTok", &[&app_id, &secret, &redirect_url])?;
        let (Some(app_id), Some(secret), Some(redirect_url)) =
            (app_id.value(), secret.value(), redirect_url.value())
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            app_id,
            secret,
            redirect_url,
            auth_url: or_default(auth_url, Self::DEFAULT_AUTH_URL),
            api_url: base(or_default(api_url, Self::DEFAULT_API_URL)),
            attribution_window_days: attribution_window_days
                .unwrap_or(Self::DEFAULT_ATTRIBUTION_WINDOW_DAYS),
            chunk_days: 30,
            page_size: 1000,
        }))
    }
}

/// What a deployment gives for TikTok: the app's credentials (all or none), and endpoints and
/// the attribution window, which default when unset (or blank).
#[derive(Debug, Clone)]
pub struct TiktokSettings {
    pub app_id: Given<String>,
    pub secret: Given<Secret>,
    pub redirect_url: Given<String>,
    pub auth_url: Option<String>,
    pub api_url: Option<String>,
    pub attribution_window_days: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(app_id: Option<&str>, secret: Option<&str>, url: Option<&str>) -> TiktokSettings {
        TiktokSettings {
            app_id: Given::new("ADLEDGER_TIKTOK_APP_ID", app_id.map(String::from)),
            secret: Given::new("ADLEDGER_TIKTOK_SECRET", secret.map(Secret::new)),
            redirect_url: Given::new("ADLEDGER_TIKTOK_REDIRECT_URL", url.map(String::from)),
            auth_url: None,
            api_url: None,
            attribution_window_days: None,
        }
    }

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        assert!(TiktokConfig::new(settings(None, None, None))
            .unwrap()
            .is_none());
        let e = TiktokConfig::new(settings(None, Some("s"), None)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_TIKTOK_APP_ID"), "{e}");
        let c = TiktokConfig::new(settings(Some("app"), Some("s"), Some("https://a/cb")))
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url, TiktokConfig::DEFAULT_API_URL);
        assert_eq!(c.attribution_window_days, 7);
    }
}
