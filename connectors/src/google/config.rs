//! Google Ads settings: OAuth client, developer token, optional manager (login) customer, base
//! URLs and API version, and how many trailing days to re-read for restated conversions.

use crate::config::{self, base, or_default, ConfigError, Given};
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
    pub const DEFAULT_CONVERSION_WINDOW_DAYS: u32 = 30;
    pub const SCOPE: &'static str = "https://www.googleapis.com/auth/adwords";

    /// Google Ads' configuration from what a deployment gives: `Ok(None)` when no credential is
    /// given (Google Ads is not configured), an error naming the missing ones when only some
    /// are, or when the manager account is not a customer id.
    pub fn new(settings: GoogleSettings) -> Result<Option<Self>, ConfigError> {
        let GoogleSettings {
            client_id,
            client_secret,
            redirect_url,
            developer_token,
            login_customer_id,
            auth_url,
            oauth_url,
            api_url,
            api_version,
            conversion_window_days,
        } = settings;
        config::all_or_none(
            "Google Ads",
            &[&client_id, &client_secret, &redirect_url, &developer_token],
        )?;
        let (Some(client_id), Some(client_secret), Some(redirect_url), Some(developer_token)) = (
            client_id.value(),
            client_secret.value(),
            redirect_url.value(),
            developer_token.value(),
        ) else {
            return Ok(None);
        };
        let login_customer_id = match login_customer_id.value() {
            None => None,
            Some(raw) => {
                // Accepted as shown in the Google Ads UI (123-456-7890); sent as digits.
                let digits: String = raw.chars().filter(|c| *c != '-').collect();
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ConfigError(format!(
                        "{} must be a customer id (digits)",
                        login_customer_id.name
                    )));
                }
                Some(digits)
            }
        };
        Ok(Some(Self {
            client_id,
            client_secret,
            redirect_url,
            developer_token,
            login_customer_id,
            auth_url: or_default(auth_url, Self::DEFAULT_AUTH_URL),
            oauth_url: base(or_default(oauth_url, Self::DEFAULT_OAUTH_URL)),
            api_url: base(or_default(api_url, Self::DEFAULT_API_URL)),
            api_version: or_default(api_version, Self::DEFAULT_API_VERSION),
            conversion_window_days: conversion_window_days
                .unwrap_or(Self::DEFAULT_CONVERSION_WINDOW_DAYS),
            chunk_days: 90,
        }))
    }
}

/// What a deployment gives for Google Ads: the OAuth client and developer token (all or none),
/// an optional manager account, and endpoints and the conversion window, which default when
/// unset (or blank).
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    pub client_id: Given<String>,
    pub client_secret: Given<Secret>,
    pub redirect_url: Given<String>,
    pub developer_token: Given<Secret>,
    pub login_customer_id: Given<String>,
    pub auth_url: Option<String>,
    pub oauth_url: Option<String>,
    pub api_url: Option<String>,
    pub api_version: Option<String>,
    pub conversion_window_days: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn given(name: &str, value: Option<&str>) -> Given<String> {
        Given::new(name, value.map(String::from))
    }

    fn secret(name: &str, value: Option<&str>) -> Given<Secret> {
        Given::new(name, value.map(Secret::new))
    }

    fn settings(all: bool) -> GoogleSettings {
        let value = |v: &'static str| all.then_some(v);
        GoogleSettings {
            client_id: given("ADLEDGER_GOOGLE_CLIENT_ID", Some("id")),
            client_secret: secret("ADLEDGER_GOOGLE_CLIENT_SECRET", value("s3cr3t")),
            redirect_url: given("ADLEDGER_GOOGLE_REDIRECT_URL", value("https://app/cb")),
            developer_token: secret("ADLEDGER_GOOGLE_DEVELOPER_TOKEN", value("dev")),
            login_customer_id: given("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID", None),
            auth_url: None,
            oauth_url: None,
            api_url: None,
            api_version: None,
            conversion_window_days: None,
        }
    }

    #[test]
    fn unset_is_not_configured_partial_is_an_error_and_defaults_apply() {
        assert!(GoogleConfig::new(GoogleSettings {
            client_id: given("ADLEDGER_GOOGLE_CLIENT_ID", None),
            ..settings(false)
        })
        .unwrap()
        .is_none());
        let e = GoogleConfig::new(settings(false)).unwrap_err();
        assert!(e.0.contains("ADLEDGER_GOOGLE_DEVELOPER_TOKEN"), "{e}");
        let c = GoogleConfig::new(GoogleSettings {
            login_customer_id: given("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID", Some("123-456-7890")),
            api_url: Some("http://127.0.0.1:9/".into()),
            ..settings(true)
        })
        .unwrap()
        .unwrap();
        assert_eq!(c.login_customer_id.as_deref(), Some("1234567890"));
        assert_eq!(c.api_url, "http://127.0.0.1:9");
        assert_eq!(c.api_version, "v23");
        assert_eq!(c.conversion_window_days, 30);
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let e = GoogleConfig::new(GoogleSettings {
            login_customer_id: given("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID", Some("12a")),
            ..settings(true)
        })
        .unwrap_err();
        assert!(
            e.0.contains("ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID must be a customer id"),
            "{e}"
        );
    }
}
