//! Meta (Facebook / Instagram) Marketing API over the Graph API: OAuth with a long-lived token
//! exchange (no refresh token), ad accounts and campaigns by cursor paging, and daily campaign
//! insights (synchronous for short ranges, an async report job for long ones).

mod client;
mod config;
pub(crate) mod errors;
mod oauth;

pub use client::MetaClient;
pub use config::{MetaConfig, MetaSettings};
pub use errors::classify;
pub use oauth::MetaOAuth;
