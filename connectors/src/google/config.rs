//! Google Ads settings: OAuth client, developer token, optional manager (login) customer, base
//! URLs and API version, and how many trailing days to re-read for restated conversions.

use crate::env::{base, ConfigError, Env};
use crate::Secret;

#[derive(Debug, Clone)]
pub struct GoogleConfig {
    pub client_id: String,
    pub client_secret: Secret,
    pub redirect_url: String,
    pub developer_token: Secret,
    /// The manager account to act through (digits only), sent as `login-customer-id` for the
    /// directly accessible customers. Clients found under an accessible manager are read with
    /// that manager instead, whatever this says.
    pub login_customer_id: Option<String>,
    /// The consent page.
    pub auth_url: String,
    /// Base of `/token` and `/revoke`.
    pub oauth_url: String,
    /// Base of the Google Ads REST API (without the version).
    pub api_url: String,
    /// e.g. `v23`.
    pub api_version: String,
    /// Conversions are restated for this many days: syncs re-read them.
    pub conversion_window_days: u32,
    /// Days per searchStream query; bounds the size of one answer.
    pub chunk_days: u32,
}

impl GoogleConfig {
    pub const DEFAULT_AUTH_URL: &'static str = "https://accounts.google.com/o/oauth2/v2/auth";
    pub const DEFAULT_OAUTH_URL: &'static str = "https://oauth2.googleapis.com";
    pub const DEFAULT_API_URL: &'static str = "https://googleads.googleapis.com";
    pub const DEFAULT_API_VERSION: &'static str = "v23";
    pub const SCOPE: &'static str = "https://www.googleapis.com/auth/adwords";

    /// From `ADLEDGER_GOOGLE_*`; `Ok(None)` when no credential is set.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_vars(&Env::process())
    }

    pub fn from_vars(env: &Env<'_>) -> Result<Option<Self>, ConfigError> {
        let Some([client_id, client_secret, redirect_url, developer_token]) = env
            .required([
                "ADLEDGER_GOOGLE_CLIENT_ID",
                "ADLEDGER_GOOGLE_CLIENT_SECRET",
                "ADLEDGER_GOOGLE_REDIRECT_URL",
                "ADLEDGER_GOOGLE_DEVELOPER_TOKEN",
            ])
            .map_err(|e| ConfigError(format!("Google Ads: {}", e.0)))?
        else {
            return Ok(None);
        };
        let login_customer_id = match env.get("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID") {
            None => None,
            Some(raw) => {
                // Accepted as shown in the Google Ads UI (123-456-7890); sent as digits.
                let digits: String = raw.chars().filter(|c| *c != '-').collect();
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ConfigError(
                        "ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID must be a customer id (digits)".into(),
                    ));
                }
                Some(digits)
            }
        };
        Ok(Some(Self {
            client_id,
            client_secret: Secret::new(client_secret),
            redirect_url,
            developer_token: Secret::new(developer_token),
            login_customer_id,
            auth_url: env.get_or("ADLEDGER_GOOGLE_AUTH_URL", Self::DEFAULT_AUTH_URL),
            oauth_url: base(env.get_or("ADLEDGER_GOOGLE_OAUTH_URL", Self::DEFAULT_OAUTH_URL)),
            api_url: base(env.get_or("ADLEDGER_GOOGLE_API_URL", Self::DEFAULT_API_URL)),
            api_version: env.get_or("ADLEDGER_GOOGLE_API_VERSION", Self::DEFAULT_API_VERSION),
            conversion_window_days: env.number("ADLEDGER_GOOGLE_CONVERSION_WINDOW_DAYS", 30)?,
            chunk_days: 90,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        assert!(GoogleConfig::from_vars(&Env::from_map(&vars(&[])))
            .unwrap()
            .is_none());
        let partial = vars(&[("ADLEDGER_GOOGLE_CLIENT_ID", "id")]);
        let e = GoogleConfig::from_vars(&Env::from_map(&partial)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_GOOGLE_DEVELOPER_TOKEN"), "{e}");
        let full = vars(&[
            ("ADLEDGER_GOOGLE_CLIENT_ID", "id"),
            ("ADLEDGER_GOOGLE_CLIENT_SECRET", "s3cr3t"),
            ("ADLEDGER_GOOGLE_REDIRECT_URL", "https://app/cb"),
            ("ADLEDGER_GOOGLE_DEVELOPER_TOKEN", "dev"),
            ("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID", "123-456-7890"),
            ("ADLEDGER_GOOGLE_API_URL", "http://127.0.0.1:9/"),
        ]);
        let c = GoogleConfig::from_vars(&Env::from_map(&full))
            .unwrap()
            .unwrap();
        assert_eq!(c.login_customer_id.as_deref(), Some("1234567890"));
        assert_eq!(c.api_url, "http://127.0.0.1:9");
        assert_eq!(c.api_version, "v23");
        assert_eq!(c.conversion_window_days, 30);
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}
