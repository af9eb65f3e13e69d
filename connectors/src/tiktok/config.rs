//! TikTok settings: app id and secret, redirect URL, base URLs (the API URL includes the
//! version, e.g. `…/open_api/v1.3`), attribution window and report chunking.

use crate::env::{base, ConfigError, Env};
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

    /// From `ADLEDGER_TIKTOK_*`; `Ok(None)` when no credential is set.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&Env::process())
    }

    pub fn from_vars(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some([app_id, secret, redirect_url]) = env
            .required([
                "ADLEDGER_TIKTOK_APP_ID",
                "ADLEDGER_TIKTOK_SECRET",
                "ADLEDGER_TIKTOK_REDIRECT_URL",
            ])
            .map_err(|e| ConfigError(format!("TikTok: {}", e.0)))?
        else {
            return Ok(None);
        };
        Ok(Some(Self {
            app_id,
            secret: Secret::new(secret),
            redirect_url,
            auth_url: env.get_or("ADLEDGER_TIKTOK_AUTH_URL", Self::DEFAULT_AUTH_URL),
            api_url: base(env.get_or("ADLEDGER_TIKTOK_API_URL", Self::DEFAULT_API_URL)),
            attribution_window_days: env.number("ADLEDGER_TIKTOK_ATTRIBUTION_WINDOW_DAYS", 7)?,
            chunk_days: 30,
            page_size: 1000,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        let empty = HashMap::new();
        assert!(TiktokConfig::from_vars(&Env::from_map(&empty))
            .unwrap()
            .is_none());
        let mut vars: HashMap<String, String> = [("ADLEDGER_TIKTOK_SECRET", "s")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let e = TiktokConfig::from_vars(&Env::from_map(&vars)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_TIKTOK_APP_ID"), "{e}");
        vars.insert("ADLEDGER_TIKTOK_APP_ID".into(), "app".into());
        vars.insert("ADLEDGER_TIKTOK_REDIRECT_URL".into(), "https://a/cb".into());
        let c = TiktokConfig::from_vars(&Env::from_map(&vars))
            .unwrap()
            .unwrap();
        assert_eq!(c.api_url, TiktokConfig::DEFAULT_API_URL);
        assert_eq!(c.attribution_window_days, 7);
    }
}
