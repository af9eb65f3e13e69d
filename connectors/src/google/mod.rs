//! Google Ads API (REST): OAuth with refresh tokens and PKCE, customers (ad accounts) and
//! campaigns by GAQL, daily campaign metrics by `googleAds:searchStream`. Google's "customer" is
//! translated to our "ad account" here and nowhere else.

mod client;
mod config;
pub(crate) mod errors;
mod oauth;

pub use client::GoogleClient;
pub use config::{GoogleConfig, GoogleSettings};
pub use errors::classify;
pub use oauth::GoogleOAuth;
