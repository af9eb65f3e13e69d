//! An inclusive range of calendar days, valid by construction (`from <= to`, bounded length).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The longest range one request may cover; longer ones are refused rather than silently cut.
pub const MAX_DAYS: i64 = 3 * 366;

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
