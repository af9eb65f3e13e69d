//! The campaign aggregate: the daily numbers a platform reported for one campaign. A day seen for
//! the first time is recorded; a day whose numbers changed is restated (keeping what was reported
//! before); a day with the same numbers appends nothing.

use crate::aggregate::Aggregate;
use crate::event::{DailyInsightsRecorded, DailyInsightsRestated, InsightsSource, SyncCounts};
use crate::{Currency, DailyMetrics, DomainError, DomainEvent, StreamType, SyncId};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDay {
    pub currency: Currency,
    pub metrics: DailyMetrics,
    pub revision: u32,
    /// The sync run that stored these numbers.
    pub sync_id: SyncId,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignInsights {
    pub days: BTreeMap<NaiveDate, ReportedDay>,
}

/// The days a platform reported for one campaign in one read.
#[derive(Debug, Clone)]
pub struct RecordDailyInsights {
    pub source: InsightsSource,
    pub currency: Currency,
    pub days: Vec<(NaiveDate, DailyMetrics)>,
}

impl CampaignInsights {
    /// What the sync run of `command` did to the days it reported, read from the state after its
    /// decision: a day this run stored counts as recorded (first report) or restated, any other
    /// day as unchanged. Read this way, a run carried on by another worker, or a write retried
    /// after it had in fact been stored, still counts each day as what it was.
    pub fn tally(&self, command: &RecordDailyInsights) -> SyncCounts {
        let mut counts = SyncCounts::default();
        let reported: BTreeSet<NaiveDate> = command.days.iter().map(|(date, _)| *date).collect();
        for date in reported {
            match self.days.get(&date) {
                Some(day) if day.sync_id == command.source.sync_id && day.revision == 1 => {
                    counts.days_recorded += 1
                }
                Some(day) if day.sync_id == command.source.sync_id => counts.days_restated += 1,
                _ => counts.days_unchanged += 1,
            }
        }
        counts
    }
}

impl Aggregate for CampaignInsights {
    const STREAM_TYPE: StreamType = StreamType::Campaign;
    const NAME: &'static str = "campaign";
    type Command = RecordDailyInsights;

    fn decide(
        &self,
        command: &RecordDailyInsights,
        _: DateTime<Utc>,
    ) -> Result<Vec<DomainEvent>, DomainError> {
        // A platform may list the same day twice in one answer; the last report wins.
        let reported: BTreeMap<NaiveDate, &DailyMetrics> =
            command.days.iter().map(|(d, m)| (*d, m)).collect();
        let mut events = Vec::new();
        for (date, metrics) in reported {
            let event = match self.days.get(&date) {
                None => DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
                    source: command.source.clone(),
                    date,
                    currency: command.currency,
                    metrics: metrics.clone(),
                    revision: 1,
                }),
                Some(prev) if prev.metrics == *metrics && prev.currency == command.currency => {
                    continue
                }
                Some(prev) => DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                    source: command.source.clone(),
                    date,
                    currency: command.currency,
                    metrics: metrics.clone(),
                    revision: prev.revision + 1,
                    previous_currency: prev.currency,
                    previous: prev.metrics.clone(),
                }),
            };
            events.push(event);
        }
        Ok(events)
    }

    fn evolve(mut self, event: &DomainEvent, _: DateTime<Utc>) -> Self {
        let (source, date, currency, metrics, revision) = match event {
            DomainEvent::DailyInsightsRecorded(e) => {
                (&e.source, e.date, e.currency, &e.metrics, e.revision)
            }
            DomainEvent::DailyInsightsRestated(e) => {
                (&e.source, e.date, e.currency, &e.metrics, e.revision)
            }
            _ => return self,
        };
        self.days.insert(
            date,
            ReportedDay {
                currency,
                metrics: metrics.clone(),
                revision,
                sync_id: source.sync_id,
            },
        );
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing};
    use crate::{AdAccountId, CampaignId, ConnectionId, Platform};
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

    fn source(sync: u128) -> InsightsSource {
        InsightsSource {
            campaign_id: CampaignId(Uuid::from_u128(1)),
            connection_id: ConnectionId(Uuid::from_u128(2)),
            platform: Platform::Sandbox,
            ad_account_id: AdAccountId("acc".into()),
            sync_id: SyncId(Uuid::from_u128(sync)),
        }
    }

    fn usd() -> Currency {
        Currency::parse("USD").unwrap()
    }

    fn record(sync: u128, days: Vec<(&str, DailyMetrics)>) -> RecordDailyInsights {
        RecordDailyInsights {
            source: source(sync),
            currency: usd(),
            days: days.into_iter().map(|(d, m)| (day(d), m)).collect(),
        }
    }

    fn recorded(sync: u128, date: &str, m: DailyMetrics) -> DomainEvent {
        DomainEvent::DailyInsightsRecorded(DailyInsightsRecorded {
            source: source(sync),
            date: day(date),
            currency: usd(),
            metrics: m,
            revision: 1,
        })
    }

    #[test]
    fn new_days_are_recorded() {
        given_nothing::<CampaignInsights>()
            .when(record(
                3,
                vec![
                    ("2024-01-01", metrics(100, 1)),
                    ("2024-01-02", metrics(200, 2)),
                ],
            ))
            .then([
                recorded(3, "2024-01-01", metrics(100, 1)),
                recorded(3, "2024-01-02", metrics(200, 2)),
            ]);
    }

    #[test]
    fn unchanged_days_append_nothing() {
        given::<CampaignInsights>([recorded(3, "2024-01-01", metrics(100, 1))])
            .when(record(4, vec![("2024-01-01", metrics(100, 1))]))
            .then_nothing();
    }

    #[test]
    fn changed_days_are_restated_with_what_was_reported_before() {
        given::<CampaignInsights>([recorded(3, "2024-01-01", metrics(100, 1))])
            .when(record(4, vec![("2024-01-01", metrics(100, 3))]))
            .then([DomainEvent::DailyInsightsRestated(DailyInsightsRestated {
                source: source(4),
                date: day("2024-01-01"),
                currency: usd(),
                metrics: metrics(100, 3),
                revision: 2,
                previous_currency: usd(),
                previous: metrics(100, 1),
            })]);
    }

    #[test]
    fn a_day_listed_twice_in_one_report_counts_once_with_the_last_numbers() {
        given_nothing::<CampaignInsights>()
            .when(record(
                3,
                vec![("2024-01-01", metrics(1, 1)), ("2024-01-01", metrics(2, 2))],
            ))
            .then([recorded(3, "2024-01-01", metrics(2, 2))]);
    }

    #[test]
    fn a_tally_counts_each_day_as_what_its_run_did_to_it() {
        let command = record(
            4,
            vec![
                ("2024-01-01", metrics(100, 1)),
                ("2024-01-02", metrics(100, 9)),
                ("2024-01-03", metrics(100, 3)),
                ("2024-01-03", metrics(100, 3)),
            ],
        );
        let after = given::<CampaignInsights>([
            recorded(3, "2024-01-01", metrics(100, 1)),
            recorded(3, "2024-01-02", metrics(100, 2)),
        ])
        .when(command.clone())
        .state_after();
        let counts = SyncCounts {
            days_recorded: 1,
            days_restated: 1,
            days_unchanged: 1,
        };
        assert_eq!(after.tally(&command), counts);
        // The same read again by the same run (a takeover, or a retried write): nothing more
        // is appended, and the days it stored still count as stored by it.
        assert_eq!(after.decide(&command, crate::testing::EPOCH), Ok(vec![]));
        assert_eq!(after.tally(&command), counts);
    }
}
