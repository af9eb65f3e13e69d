//! Personal data as it sits in events: sealed under the data subject's own key by the command
//! side (see `infra::crypto`), so that destroying the key erases it while the log stays intact.
//! The domain carries sealed values around and compares nothing inside them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A piece of personal data (an email, a name, an IP address, a password hash), sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(pub String);

impl Sealed {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sealed(…)")
    }
}
