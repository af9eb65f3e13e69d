//! Calendar days as clients write them ([`Day`]: strict `YYYY-MM-DD` within fixed bounds) and an
//! inclusive range of days, valid by construction (`from <= to`, bounded length). Stored events
//! are never re-checked against the input bounds: what the log holds stays readable.

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest range one request may cover; longer ones are refused rather than silently cut.
pub const MAX_DAYS: i64 = 3 * 366;

/// A calendar day that came in from outside (a query, a body): written `YYYY-MM-DD` exactly (a
/// four-digit year, zero-padded month and day, no sign) and between [`Day::MIN`] and
/// [`Day::MAX`]. `2026-1-1`, `0000-01-01`, `-0001-01-01` and `+2026-01-01` are refused; chrono
/// alone accepts some of them, and Postgres would store a year 0 as 1 BC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

/// Why a text is not a [`Day`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DayError {
    #[error("{0:?} is not a date written YYYY-MM-DD")]
    Malformed(String),
    #[error("{0} is outside the dates accepted ({min} to {max})", min = Day::MIN, max = Day::MAX)]
    OutOfBounds(NaiveDate),
}

impl Day {
    /// The first day accepted: no ad platform reports earlier data.
    pub const MIN: Day = Day(NaiveDate::from_ymd_opt(2000, 1, 1).expect("a valid date"));
    /// The last day accepted.
    pub const MAX: Day = Day(NaiveDate::from_ymd_opt(2099, 12, 31).expect("a valid date"));
    /// The shape of an accepted day as a JSON Schema pattern, for the OpenAPI document (which
    /// adds `format: date` for the days each month has).
    pub const PATTERN: &'static str = r"^20[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$";

    /// The strict reading of `raw`; nothing is trimmed or guessed.
    pub fn parse(raw: &str) -> Result<Self, DayError> {
        let malformed = || DayError::Malformed(raw.chars().take(32).collect());
        let b = raw.as_bytes();
        let shaped = b.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && b.iter()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
        if !shaped {
            return Err(malformed());
        }
        let number = |r: std::ops::Range<usize>| raw[r].parse::<u32>().map_err(|_| malformed());
        let year = i32::try_from(number(0..4)?).map_err(|_| malformed())?;
        let date =
            NaiveDate::from_ymd_opt(year, number(5..7)?, number(8..10)?).ok_or_else(malformed)?;
        Day::new(date)
    }

    /// `date`, if it lies within the bounds.
    pub fn new(date: NaiveDate) -> Result<Self, DayError> {
        if date < Day::MIN.0 || date > Day::MAX.0 {
            return Err(DayError::OutOfBounds(date));
        }
        Ok(Day(date))
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.format("%Y-%m-%d").fmt(f)
    }
}

impl std::str::FromStr for Day {
    type Err = DayError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Day::parse(s)
    }
}

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Day::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRange")]
pub struct DateRange {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(Deserialize)]
struct RawRange {
    from: NaiveDate,
    to: NaiveDate,
}

impl TryFrom<RawRange> for DateRange {
    type Error = crate::DomainError;
    fn try_from(raw: RawRange) -> Result<Self, Self::Error> {
        DateRange::new(raw.from, raw.to)
    }
}

impl DateRange {
    /// The range between two days that came in from outside.
    pub fn between(from: Day, to: Day) -> Result<Self, crate::DomainError> {
        DateRange::new(from.date(), to.date())
    }

    pub fn new(from: NaiveDate, to: NaiveDate) -> Result<Self, crate::DomainError> {
        if from > to {
            return Err(crate::DomainError::invalid(
                "to",
                format!("`from` ({from}) is after `to` ({to})"),
            ));
        }
        let days = (to - from).num_days() + 1;
        if days > MAX_DAYS {
            return Err(crate::DomainError::invalid(
                "to",
                format!("the range covers {days} days; at most {MAX_DAYS} are allowed"),
            ));
        }
        Ok(Self { from, to })
    }

    pub fn from(&self) -> NaiveDate {
        self.from
    }

    pub fn to(&self) -> NaiveDate {
        self.to
    }

    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while({
            let to = self.to;
            move |d| *d <= to
        })
    }

    pub fn len_days(&self) -> i64 {
        (self.to - self.from).num_days() + 1
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.from <= day && day <= self.to
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn days_are_read_strictly_and_within_bounds() {
        assert_eq!(Day::parse("2026-01-31").unwrap().date(), d("2026-01-31"));
        assert_eq!(Day::MIN.to_string(), "2000-01-01");
        assert_eq!(Day::MAX.to_string(), "2099-12-31");
        for malformed in [
            "2026-1-1",
            "2026-01-1",
            "+2026-01-01",
            "-0001-01-01",
            "20260101",
            " 2026-01-01",
            "2026-01-01 ",
            "2026-02-30",
            "2026-13-01",
            "2026-00-10",
            "２０２６-01-01",
            "2026/01/01",
            "",
        ] {
            assert!(
                matches!(Day::parse(malformed), Err(DayError::Malformed(_))),
                "{malformed:?}"
            );
        }
        for outside in ["0000-01-01", "1999-12-31", "2100-01-01", "9999-12-31"] {
            assert!(
                matches!(Day::parse(outside), Err(DayError::OutOfBounds(_))),
                "{outside:?}"
            );
        }
        let day: Day = serde_json::from_str("\"2024-02-29\"").unwrap();
        assert_eq!(serde_json::to_string(&day).unwrap(), "\"2024-02-29\"");
        assert!(serde_json::from_str::<Day>("\"2024-2-29\"").is_err());
    }

    #[test]
    fn refuses_reversed_and_overlong_ranges() {
        assert!(DateRange::new(d("2024-01-02"), d("2024-01-01")).is_err());
        assert!(DateRange::new(d("2020-01-01"), d("2024-01-01")).is_err());
        let r = DateRange::new(d("2024-01-30"), d("2024-02-02")).unwrap();
        assert_eq!(r.len_days(), 4);
        assert_eq!(r.days().count(), 4);
        assert!(r.contains(d("2024-02-01")));
        assert!(!r.contains(d("2024-02-03")));
    }
}
