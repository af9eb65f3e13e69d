//! The ad platforms adledger can connect to.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Built-in deterministic generator of accounts, campaigns and daily metrics (demos, tests).
    Sandbox,
    /// Meta (Facebook / Instagram) Marketing API.
    Meta,
    /// Google Ads API.
    Google,
    /// TikTok Business (Marketing) API.
    Tiktok,
}

impl Platform {
    pub const ALL: [Platform; 4] = [
        Platform::Sandbox,
        Platform::Meta,
        Platform::Google,
        Platform::Tiktok,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Sandbox => "sandbox",
            Platform::Meta => "meta",
            Platform::Google => "google",
            Platform::Tiktok => "tiktok",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for p in Platform::ALL {
            assert_eq!(Platform::parse(p.as_str()), Some(p));
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.as_str())
            );
        }
        assert_eq!(Platform::parse("facebook"), None);
    }
}
