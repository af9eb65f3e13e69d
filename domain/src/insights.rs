//! Daily metrics of a campaign and the ratios derived from them. Money is `Decimal`, in the ad
//! account's currency; ratios are computed only where the denominator is not zero.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// One campaign's numbers for one day, as the platform reported them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyMetrics {
    pub impressions: u64,
    pub clicks: u64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
}

impl DailyMetrics {
    /// Normalises decimals (so `1.50` and `1.5` are stored alike) and refuses negative numbers.
    pub fn new(
        impressions: u64,
        clicks: u64,
        spend: Decimal,
        conversions: Decimal,
        conversion_value: Decimal,
    ) -> Result<Self, crate::DomainError> {
        for (field, value) in [
            ("spend", spend),
            ("conversions", conversions),
            ("conversion_value", conversion_value),
        ] {
            if value.is_sign_negative() && !value.is_zero() {
                return Err(crate::DomainError::invalid(field, "must not be negative"));
            }
        }
        Ok(Self {
            impressions,
            clicks,
            spend: spend.normalize(),
            conversions: conversions.normalize(),
            conversion_value: conversion_value.normalize(),
        })
    }
}

/// Sums over any set of days and campaigns that share one currency.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricTotals {
    pub impressions: i64,
    pub clicks: i64,
    pub spend: Decimal,
    pub conversions: Decimal,
    pub conversion_value: Decimal,
}

/// CTR = clicks / impressions, CPC = spend / clicks, CPM = 1000 × spend / impressions,
/// CPA = spend / conversions, ROAS = conversion value / spend. `None` where undefined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DerivedMetrics {
    pub ctr: Option<Decimal>,
    pub cpc: Option<Decimal>,
    pub cpm: Option<Decimal>,
    pub cpa: Option<Decimal>,
    pub roas: Option<Decimal>,
}

/// Decimal places kept in derived ratios: enough for a CTR of one click in a billion impressions.
pub const RATIO_DECIMALS: u32 = 6;

fn ratio(numerator: Decimal, denominator: Decimal) -> Option<Decimal> {
    if denominator.is_zero() {
        return None;
    }
    numerator.checked_div(denominator).map(|r| {
        r.round_dp_with_strategy(RATIO_DECIMALS, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    })
}

impl MetricTotals {
    pub fn derived(&self) -> DerivedMetrics {
        let impressions = Decimal::from(self.impressions);
        let clicks = Decimal::from(self.clicks);
        DerivedMetrics {
            ctr: ratio(clicks, impressions),
            cpc: ratio(self.spend, clicks),
            cpm: ratio(self.spend * Decimal::ONE_THOUSAND, impressions),
            cpa: ratio(self.spend, self.conversions),
            roas: ratio(self.conversion_value, self.spend),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn derived_metrics_follow_their_definitions() {
        let totals = MetricTotals {
            impressions: 10_000,
            clicks: 250,
            spend: dec("500.00"),
            conversions: dec("20"),
            conversion_value: dec("1500.00"),
        };
        let d = totals.derived();
        assert_eq!(d.ctr, Some(dec("0.025")));
        assert_eq!(d.cpc, Some(dec("2")));
        assert_eq!(d.cpm, Some(dec("50")));
        assert_eq!(d.cpa, Some(dec("25")));
        assert_eq!(d.roas, Some(dec("3")));
    }

    #[test]
    fn ratios_with_a_zero_denominator_are_absent() {
        let d = MetricTotals::default().derived();
        assert_eq!(
            d,
            DerivedMetrics {
                ctr: None,
                cpc: None,
                cpm: None,
                cpa: None,
                roas: None
            }
        );
    }

    #[test]
    fn ratios_round_half_away_from_zero_to_six_places() {
        let totals = MetricTotals {
            impressions: 3,
            clicks: 1,
            ..Default::default()
        };
        assert_eq!(totals.derived().ctr, Some(dec("0.333333")));
        let totals = MetricTotals {
            impressions: 3,
            clicks: 2,
            ..Default::default()
        };
        assert_eq!(totals.derived().ctr, Some(dec("0.666667")));
    }

    #[test]
    fn metrics_are_normalised_and_never_negative() {
        let m = DailyMetrics::new(1, 1, dec("1.50"), dec("0"), dec("2.000")).unwrap();
        assert_eq!(m.spend.to_string(), "1.5");
        assert_eq!(m.conversion_value.to_string(), "2");
        assert!(DailyMetrics::new(1, 1, dec("-1"), dec("0"), dec("0")).is_err());
    }
}
