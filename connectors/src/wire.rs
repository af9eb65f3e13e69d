//! What every platform client shares on the wire: sending a request and reading the answer
//! (transport failures become `Transient`, never with a URL that may carry a secret), exact
//! numbers from JSON that sends them as strings or numbers, and cutting date ranges into chunks.

use crate::ConnectorError;
use adledger_domain::DateRange;
use chrono::Duration;
use reqwest::header::HeaderMap;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::str::FromStr;

/// An HTTP client that never panics on construction.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: Result<reqwest::Client, String>,
}

/// A platform's answer, read in full.
#[derive(Debug)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

/// The most one HTTP request to a platform may take, answer included.
pub(crate) const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Http {
    pub fn new() -> Self {
        // Building only fails when a TLS backend cannot start; the error is kept for each call.
        // A single request that hangs is cut here; the whole call (many pages, a report job)
        // has the longer limit of `resilience::RetryPolicy::call_timeout`.
        let client = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| e.without_url().to_string());
        Self { client }
    }

    pub fn client(&self) -> Result<&reqwest::Client, ConnectorError> {
        self.client
            .as_ref()
            .map_err(|e| ConnectorError::Transient(format!("no HTTP client: {e}")))
    }

    /// Sends and reads the whole answer. Connection failures and timeouts are transient.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, ConnectorError> {
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(transport)?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}

fn transport(e: reqwest::Error) -> ConnectorError {
    // `without_url`: Meta's OAuth URLs carry the client secret and codes in the query.
    let e = e.without_url();
    if e.is_builder() {
        ConnectorError::Invalid(format!("could not build the request: {e}"))
    } else {
        ConnectorError::Transient(format!("no answer: {e}"))
    }
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as `T`, or `Invalid` naming what was being read (never the body itself).
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T, ConnectorError> {
        serde_json::from_str(&self.body).map_err(|e| {
            ConnectorError::Invalid(format!(
                "unreadable {what} (HTTP {}): {}",
                self.status,
                short(&e.to_string())
            ))
        })
    }
}

/// At most a line of text, for error messages built from platform answers.
pub(crate) fn short(text: &str) -> String {
    const MAX: usize = 200;
    let line = text.lines().next().unwrap_or("");
    if line.chars().count() <= MAX {
        line.to_owned()
    } else {
        format!("{}…", line.chars().take(MAX).collect::<String>())
    }
}

/// The error with every occurrence of the given secrets replaced by `***`.
pub(crate) fn redact(error: ConnectorError, secrets: &[&str]) -> ConnectorError {
    let scrub = |mut text: String| {
        for s in secrets.iter().filter(|s| s.len() >= 4) {
            text = text.replace(*s, "***");
        }
        text
    };
    match error {
        ConnectorError::Transient(m) => ConnectorError::Transient(scrub(m)),
        ConnectorError::Invalid(m) => ConnectorError::Invalid(scrub(m)),
        other => other,
    }
}

/// What `call` gives, with every one of `secrets` scrubbed from its error: whichever step of a
/// call that carried secrets failed, its error never repeats them.
pub(crate) async fn redacted<T>(
    secrets: &[&str],
    call: impl std::future::Future<Output = Result<T, ConnectorError>>,
) -> Result<T, ConnectorError> {
    call.await.map_err(|e| redact(e, secrets))
}

/// A number as platforms send it: a JSON number, a numeric string, or a placeholder for "no
/// data" (`"-"`, `""`, `null`), which counts as zero. Read from the number's own text, so
/// `150.25` is exactly 150.25 (no trip through `f64`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Num(pub Decimal);

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Box::<serde_json::value::RawValue>::deserialize(d)?;
        parse_num(raw.get())
            .map(Num)
            .map_err(serde::de::Error::custom)
    }
}

fn parse_num(raw: &str) -> Result<Decimal, String> {
    let raw = raw.trim();
    let text = if raw.starts_with('"') {
        serde_json::from_str::<String>(raw).map_err(|e| e.to_string())?
    } else {
        raw.to_owned()
    };
    let text = text.trim();
    if matches!(text, "" | "-" | "null" | "--") {
        return Ok(Decimal::ZERO);
    }
    let parsed = if text.contains(['e', 'E']) {
        Decimal::from_scientific(text)
    } else {
        Decimal::from_str(text)
    };
    parsed.map_err(|_| format!("{} is not a number", short(text)))
}

impl Num {
    /// A count (impressions, clicks): a whole, non-negative number.
    pub fn count(self, field: &str) -> Result<u64, ConnectorError> {
        let n = self.0.normalize();
        if n.fract().is_zero() && !n.is_sign_negative() {
            u64::try_from(n).map_err(|_| bad_count(field, n))
        } else if n.is_zero() {
            Ok(0)
        } else {
            Err(bad_count(field, n))
        }
    }
}

fn bad_count(field: &str, n: Decimal) -> ConnectorError {
    ConnectorError::Invalid(format!("{field} {n} is not a count"))
}

/// `range` cut into consecutive pieces of at most `max_days` days.
pub(crate) fn chunks(range: DateRange, max_days: i64) -> Vec<DateRange> {
    let max_days = max_days.max(1);
    let mut out = Vec::new();
    let mut from = range.from();
    while from <= range.to() {
        let to = (from + Duration::days(max_days - 1)).min(range.to());
        if let Ok(piece) = DateRange::new(from, to) {
            out.push(piece);
        }
        from = to + Duration::days(1);
    }
    out
}

/// The two halves of a range of two days or more.
pub(crate) fn halves(range: DateRange) -> Option<(DateRange, DateRange)> {
    let len = range.len_days();
    if len < 2 {
        return None;
    }
    let first = chunks(range, len / 2);
    let left = *first.first()?;
    let right = DateRange::new(left.to() + Duration::days(1), range.to()).ok()?;
    Some((left, right))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Row {
        #[serde(default)]
        a: Num,
        #[serde(default)]
        b: Num,
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn numbers_are_read_exactly_from_strings_numbers_and_placeholders() {
        for (json, a, b) in [
            (r#"{"a":150.5,"b":"389.50"}"#, "150.5", "389.50"),
            (r#"{"a":3.0,"b":12}"#, "3", "12"),
            (r#"{"a":"-","b":null}"#, "0", "0"),
            (r#"{"a":0.1}"#, "0.1", "0"),
            (
                r#"{"a":1.23456789012345678,"b":1e3}"#,
                "1.23456789012345678",
                "1000",
            ),
        ] {
            let row: Row = serde_json::from_str(json).unwrap();
            assert_eq!((row.a.0, row.b.0), (dec(a), dec(b)), "{json}");
        }
        assert!(serde_json::from_str::<Row>(r#"{"a":"abc"}"#).is_err());
        assert_eq!(Num(dec("42.0")).count("x"), Ok(42));
        assert!(Num(dec("4.5")).count("x").is_err());
        assert!(Num(dec("-1")).count("x").is_err());
    }

    #[test]
    fn ranges_are_cut_into_contiguous_chunks_and_halves() {
        let d = |s: &str| s.parse().unwrap();
        let r = DateRange::new(d("2024-01-01"), d("2024-03-01")).unwrap();
        let parts = chunks(r, 30);
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].to(), d("2024-01-30"));
        assert_eq!(parts[1].from(), d("2024-01-31"));
        assert_eq!(parts[2].to(), d("2024-03-01"));
        assert_eq!(parts.iter().map(DateRange::len_days).sum::<i64>(), 61);
        let (a, b) = halves(r).unwrap();
        assert_eq!((a.len_days(), b.len_days()), (30, 31));
        assert_eq!(a.to() + Duration::days(1), b.from());
        assert!(halves(DateRange::new(d("2024-01-01"), d("2024-01-01")).unwrap()).is_none());
    }

    #[test]
    fn secrets_are_scrubbed_from_messages() {
        let e = redact(
            ConnectorError::Invalid("token abcdef leaked".into()),
            &["abcdef"],
        );
        assert_eq!(e, ConnectorError::Invalid("token *** leaked".into()));
    }
}
