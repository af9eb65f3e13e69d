//! Reading a platform's settings from environment variables: a platform with none of its
//! credentials set is "not configured" (not an error); one with only some of them is refused
//! with a message naming what is missing. Values are never echoed back.

use std::collections::HashMap;

/// A platform's settings are inconsistent or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("connector configuration: {0}")]
pub struct ConfigError(pub String);

type Lookup<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// Where settings come from: the process environment, or a map in tests.
pub struct Env<'a> {
    lookup: Lookup<'a>,
}

impl<'a> Env<'a> {
    pub fn process() -> Env<'static> {
        Env {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    pub fn from_map(map: &'a HashMap<String, String>) -> Env<'a> {
        Env {
            lookup: Box::new(move |name| map.get(name).cloned()),
        }
    }

    /// A set, non-blank value.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    pub fn get_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_owned())
    }

    pub fn number(&self, name: &str, default: u32) -> Result<u32, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError(format!("{name} must be a whole number of days"))),
        }
    }

    /// The required variables' values, `None` when none is set, an error when only some are.
    pub fn required<const N: usize>(
        &self,
        names: [&str; N],
    ) -> Result<Option<[String; N]>, ConfigError> {
        let values = names.map(|n| self.get(n));
        if values.iter().all(Option::is_none) {
            return Ok(None);
        }
        let missing: Vec<&str> = names
            .iter()
            .zip(&values)
            .filter(|(_, v)| v.is_none())
            .map(|(n, _)| *n)
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError(format!(
                "partially configured: {} missing",
                missing.join(", ")
            )));
        }
        Ok(Some(values.map(Option::unwrap_or_default)))
    }
}

/// A base URL without its trailing slash, so paths can be appended with one.
pub fn base(url: String) -> String {
    url.trim_end_matches('/').to_owned()
}
