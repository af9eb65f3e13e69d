//! The ad platforms adledger can connect to.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    /// Built-in deterministic generator of accounts, campaigns and daily metrics (demos, tests).
    Sandbox,
}

impl Platform {
    pub const ALL: [Platform; 1] = [Platform::Sandbox];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Sandbox => "sandbox",
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
