//! A point in the log's past that a read looks back to: a time (events recorded by then) or a
//! log position (events up to it). One word, `as_of`, for both, in every read that takes it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOf {
    /// Events whose `recorded_at` is at or before this time.
    Time(DateTime<Utc>),
    /// Events at or before this log position (1 or more).
    Position(i64),
}

impl AsOf {
    /// Digits are a log position; anything else must be an RFC 3339 time with its offset.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
            return match raw.parse::<i64>() {
                Ok(p) if p >= 1 => Ok(AsOf::Position(p)),
                _ => Err("a log position must be between 1 and 9223372036854775807"),
            };
        }
        DateTime::parse_from_rfc3339(raw)
            .map(|t| AsOf::Time(t.with_timezone(&Utc)))
            .map_err(|_| "must be an RFC 3339 time (2026-01-31T12:00:00Z) or a log position")
    }

    /// Whether an event recorded at `recorded_at`, at `position`, is part of the state as of
    /// this point.
    pub fn includes(&self, position: i64, recorded_at: DateTime<Utc>) -> bool {
        match *self {
            AsOf::Time(t) => recorded_at <= t,
            AsOf::Position(p) => position <= p,
        }
    }

    pub fn time(&self) -> Option<DateTime<Utc>> {
        match *self {
            AsOf::Time(t) => Some(t),
            AsOf::Position(_) => None,
        }
    }

    pub fn position(&self) -> Option<i64> {
        match *self {
            AsOf::Time(_) => None,
            AsOf::Position(p) => Some(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_positions_and_times_only() {
        assert_eq!(AsOf::parse("42"), Ok(AsOf::Position(42)));
        assert!(AsOf::parse("0").is_err());
        assert!(AsOf::parse("99999999999999999999").is_err());
        let t = AsOf::parse("2026-03-01T10:00:00+02:00").unwrap();
        assert_eq!(t.time().unwrap().to_rfc3339(), "2026-03-01T08:00:00+00:00");
        for bad in ["", "-1", "2026-03-01", "yesterday", "1.5"] {
            assert!(AsOf::parse(bad).is_err(), "{bad}");
        }
    }
}
