//! TikTok Business (Marketing) API v1.3: OAuth with a JSON code exchange (no PKCE), advertisers
//! (our ad accounts) and campaigns, and the daily integrated report in 30-day chunks. TikTok's
//! "advertiser" is translated to our "ad account" here and nowhere else.

mod client;
mod config;
pub(crate) mod errors;
mod oauth;

pub use client::TiktokClient;
pub use config::{TiktokConfig, TiktokSettings};
pub use errors::classify;
pub use oauth::TiktokOAuth;
