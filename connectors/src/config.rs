//! What every platform's settings share: the error for inconsistent settings, the rule that a
//! platform's credentials come all together or not at all, and base URLs without a trailing
//! slash. The binary reads the settings (flags and environment); this crate never does.

use crate::Secret;

/// A platform's settings are inconsistent or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector configuration: {0}")]
pub struct ConfigError(pub String);

/// A setting as given, under the name a person sets it by (the binary's flag and environment
/// variable), so that an error can point at it. Blank counts as not given.
#[derive(Debug, Clone)]
pub struct Given<T> {
    pub name: String,
    pub value: Option<T>,
}

impl<T> Given<T> {
    pub fn new(name: impl Into<String>, value: Option<T>) -> Self {
        Self {
            name: name.into(),
            value,
        }
    }
}

/// A text setting: trimmed, and blank is as good as unset (an empty environment variable).
pub trait Text: Sized {
    fn non_blank(&self) -> Option<Self>;
}

impl Text for String {
    fn non_blank(&self) -> Option<Self> {
        Some(self.trim().to_owned()).filter(|v| !v.is_empty())
    }
}

impl Text for Secret {
    fn non_blank(&self) -> Option<Self> {
        Some(Secret::new(self.expose().trim())).filter(|v| !v.expose().is_empty())
    }
}

impl<T: Text> Given<T> {
    pub(crate) fn value(&self) -> Option<T> {
        self.value.as_ref().and_then(Text::non_blank)
    }
}

/// Refuses a platform whose credentials are only partly given, naming the missing ones. None
/// at all is fine: the platform is then "not configured".
pub(crate) fn all_or_none(platform: &str, credentials: &[&dyn IsGiven]) -> Result<(), ConfigError> {
    let missing: Vec<&str> = credentials
        .iter()
        .filter(|c| !c.is_given())
        .map(|c| c.name())
        .collect();
    if missing.is_empty() || missing.len() == credentials.len() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{platform}: partially configured: {} missing",
        missing.join(", ")
    )))
}

/// Credentials of different types in one list for [`all_or_none`].
pub(crate) trait IsGiven {
    fn name(&self) -> &str;
    fn is_given(&self) -> bool;
}

impl<T: Text> IsGiven for Given<T> {
    fn name(&self) -> &str {
        &self.name
    }

    fn is_given(&self) -> bool {
        self.value().is_some()
    }
}

/// An optional text setting, or its default when unset or blank.
pub(crate) fn or_default(value: Option<String>, default: &str) -> String {
    value
        .as_ref()
        .and_then(Text::non_blank)
        .unwrap_or_else(|| default.to_owned())
}

/// A base URL without its trailing slash, so paths can be appended with one.
pub(crate) fn base(url: String) -> String {
    url.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_all_together_or_not_at_all_and_blank_is_unset() {
        let id = Given::new("--x-id (X_ID)", Some("  ".to_owned()));
        let secret = Given::new("--x-secret (X_SECRET)", None::<Secret>);
        assert_eq!(all_or_none("X", &[&id, &secret]), Ok(()), "none given");
        let id = Given::new("--x-id (X_ID)", Some(" 42 ".to_owned()));
        assert_eq!(id.value().as_deref(), Some("42"));
        let e = all_or_none("X", &[&id, &secret]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "connector configuration: X: partially configured: --x-secret (X_SECRET) missing"
        );
        let secret = Given::new("--x-secret (X_SECRET)", Some(Secret::new("s")));
        assert_eq!(all_or_none("X", &[&id, &secret]), Ok(()), "all given");
        assert_eq!(or_default(Some(" ".into()), "d"), "d");
        assert_eq!(or_default(None, "d"), "d");
        assert_eq!(base("http://a/b/".into()), "http://a/b");
    }
}
