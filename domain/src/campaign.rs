//! The campaign aggregate: the daily numbers a platform reported for one campaign. A day seen for
//! the first time is recorded; a day whose numbers changed is restated (keeping what was reported
//! before); a day with the same numbers appends nothing.

use crate::event::{
    DailyInsightsRecorded, DailyInsightsRestated, Decided, InsightsSource, SyncCounts,
};
use crate::{Currency, DailyMetrics, DomainEvent};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDay {
    pub currency: Currency,
    pub metrics: DailyMetrics,
    pub revision: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignInsights {
    pub days: BTreeMap<NaiveDate, ReportedDay>,
}

#[derive(Debug, Clone)]
pub struct RecordDailyInsights {
    pub source: InsightsSource,
    pub currency: Currency,
    pub days: Vec<(NaiveDate, DailyMetrics)>,
    pub at: DateTime<Utc>,
}

/// Decides the events for a batch of reported days; also says what happened, day by day.
pub fn decide(
    state: &CampaignInsights,
    command: &RecordDailyInsights,
) -> (Vec<Decided>, SyncCounts) {
    let mut counts = SyncCounts::default();
    let mut events = Vec::new();
    // A platform may list the same day twice in one answer; the last report wins.
    let reported: BTreeMap<NaiveDate, &DailyMetrics> =
        command.days.iter().map(|(d, m)| (*d, m)).collect();
    for (date, metrics) in reported {
        let event = match state.days.get(&date) {
            None => {
                counts.days_recorded += 1;
                DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                    source: command.source.clone(),
                    date,
                    currency: command.currency,
                    metrics: metrics.clone(),
                    revision: 1,
                })
            }
            Some(prev) if prev.metrics == *metrics && prev.currency == command.currency => {
                counts.days_unchanged += 1;
                continue;
            }
            Some(prev) => {
                counts.days_restated += 1;
                DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                    source: command.source.clone(),
                    date,
                    currency: command.currency,
                    metrics: metrics.clone(),
                    revision: prev.revision + 1,
                    previous_currency: prev.currency,
                    previous: prev.metrics.clone(),
                })
            }
        };
        events.push(Decided {
            event,
            occurred_at: command.at,
        });
    }
    (events, counts)
}

pub fn evolve(mut state: CampaignInsights, event: &DomainEvent) -> CampaignInsights {
    let (date, currency, metrics, revision) = match event {
        DomainEvent::DailyInsightsRecorded(e) => (e.date, e.currency, &e.metrics, e.revision),
        DomainEvent::DailyInsightsRestated(e) => (e.date, e.currency, &e.metrics, e.revision),
        _ => return state,
    };
    state.days.insert(
        date,
        ReportedDay {
            currency,
            metrics: metrics.clone(),
            revision,
        },
    );
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AdAccountId, CampaignId, ConnectionId, Platform, SyncId};
    use rust_decimal::Decimal;
    use uuid::Uuid;

    fn day(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn metrics(spend: i64, conversions: i64) -> DailyMetrics {
        DailyMetrics::new(
            1000,
            10,
            Decimal::new(spend, 2),
            Decimal::from(conversions),
            Decimal::from(conversions * 30),
        )
        .unwrap()
    }

    fn record(days: Vec<(NaiveDate, DailyMetrics)>) -> RecordDailyInsights {
        RecordDailyInsights {
            source: InsightsSource {
                campaign_id: CampaignId(Uuid::from_u128(1)),
                connection_id: ConnectionId(Uuid::from_u128(2)),
                platform: Platform::Sandbox,
                ad_account_id: AdAccountId("acc".into()),
                sync_id: SyncId(Uuid::from_u128(3)),
            },
            currency: Currency::parse("USD").unwrap(),
            days,
            at: DateTime::UNIX_EPOCH,
        }
    }

    fn given(cmds: &[RecordDailyInsights]) -> CampaignInsights {
        cmds.iter().fold(CampaignInsights::default(), |state, cmd| {
            decide(&state, cmd)
                .0
                .iter()
                .fold(state, |s, d| evolve(s, &d.event))
        })
    }

    #[test]
    fn new_days_are_recorded() {
        let (events, counts) = decide(
            &CampaignInsights::default(),
            &record(vec![
                (day("2024-01-01"), metrics(100, 1)),
                (day("2024-01-02"), metrics(200, 2)),
            ]),
        );
        assert_eq!(events.len(), 2);
        assert_eq!(
            counts,
            SyncCounts {
                days_recorded: 2,
                days_restated: 0,
                days_unchanged: 0
            }
        );
        assert!(
            matches!(&events[0].event, DomainEvent::DailyInsightsRecorded(e) if e.revision == 1)
        );
    }

    #[test]
    fn unchanged_days_append_nothing() {
        let first = record(vec![(day("2024-01-01"), metrics(100, 1))]);
        let state = given(std::slice::from_ref(&first));
        let (events, counts) = decide(&state, &first);
        assert!(events.is_empty());
        assert_eq!(counts.days_unchanged, 1);
    }

    #[test]
    fn changed_days_are_restated_with_what_was_reported_before() {
        let state = given(&[record(vec![(day("2024-01-01"), metrics(100, 1))])]);
        let (events, counts) = decide(&state, &record(vec![(day("2024-01-01"), metrics(100, 3))]));
        assert_eq!(counts.days_restated, 1);
        let [Decided {
            event: DomainEvent::DailyInsightsRestated(e),
            ..
        }] = &events[..]
        else {
            panic!("expected one restatement, got {events:?}")
        };
        assert_eq!(e.revision, 2);
        assert_eq!(e.previous, metrics(100, 1));
        assert_eq!(e.metrics, metrics(100, 3));
    }

    #[test]
    fn a_day_listed_twice_in_one_report_counts_once_with_the_last_numbers() {
        let (events, counts) = decide(
            &CampaignInsights::default(),
            &record(vec![
                (day("2024-01-01"), metrics(1, 1)),
                (day("2024-01-01"), metrics(2, 2)),
            ]),
        );
        assert_eq!(counts.days_recorded, 1);
        assert!(
            matches!(&events[0].event, DomainEvent::DailyInsightsRecorded(e) if e.metrics == metrics(2, 2))
        );
    }
}
