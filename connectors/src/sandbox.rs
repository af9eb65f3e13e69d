//! The built-in sandbox platform: ad accounts, campaigns and daily numbers generated from the
//! connection's seed alone, so demos and tests are reproducible. It never does I/O, a clock or an
//! unseeded random generator: the same inputs give the same numbers, in whatever order asked.
//!
//! Rules:
//! - Ad accounts `sandbox-1..=N`; currencies cycle USD, EUR, BRL with a matching time zone.
//! - Campaigns `cmp-1..=M`, dealt round-robin over the ad accounts (none when there are no
//!   accounts); name and status (ACTIVE or PAUSED) follow from the seed.
//! - Daily numbers depend on (seed, campaign, date) only, plus one restatement rule that mimics
//!   late attribution: for about 1 in 8 (campaign, date) pairs, drawn from the seed, conversions and
//!   conversion value are higher once `completed_syncs >= 1` than while it is 0, and stay the
//!   same after that. So a connection's second sync restates those days and a third appends
//!   nothing new.

use crate::{CampaignDay, Connector, ConnectorError, Discovery};
use adledger_domain::connection::{AdAccount, DiscoveredCampaign};
use adledger_domain::{AdAccountId, Currency, DailyMetrics, DateRange};
use chrono::{Datelike, NaiveDate};
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;

const CURRENCIES: [(&str, &str); 3] = [
    ("USD", "America/New_York"),
    ("EUR", "Europe/Berlin"),
    ("BRL", "America/Sao_Paulo"),
];
const BRANDS: [&str; 8] = [
    "Northwind",
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Hooli",
];
const THEMES: [&str; 8] = [
    "Spring Sale",
    "Summer Launch",
    "Back to School",
    "Black Friday",
    "Holiday Gifts",
    "Brand Awareness",
    "App Installs",
    "Retargeting",
];
const AUDIENCES: [&str; 6] = [
    "Prospecting",
    "Lookalike 1%",
    "Cart Abandoners",
    "Broad",
    "Interests",
    "Past Buyers",
];

/// What a generator is for, so that each kind of number draws on a stream of its own.
mod salt {
    pub const ACCOUNT: u64 = 1;
    pub const CAMPAIGN: u64 = 2;
    pub const DAY: u64 = 3;
    pub const RESTATE: u64 = 4;
    pub const SCALE: u64 = 5;
}

/// The generator of one (seed, salt, item, day): ChaCha8 keyed with those four numbers, so each
/// number depends on its own inputs only, never on what was drawn before. ChaCha's output for a
/// key is fixed by the cipher (rand_chacha checks it against the reference vectors), and rand
/// changes what `random_range` and `choose` make of it only in a new minor version (0.9 → 0.10):
/// the sandbox's numbers change only with such an upgrade, and tests compute them from here.
fn draws(seed: u64, salt: u64, item: u64, day: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    for (chunk, part) in key.chunks_exact_mut(8).zip([seed, salt, item, day]) {
        chunk.copy_from_slice(&part.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Sandbox {
    seed: u64,
    ad_accounts: u32,
    campaigns: u32,
    completed_syncs: u32,
}

impl Sandbox {
    pub fn new(seed: u64, ad_accounts: u32, campaigns: u32, completed_syncs: u32) -> Self {
        Self {
            seed,
            ad_accounts,
            campaigns,
            completed_syncs,
        }
    }

    fn account(&self, n: u32) -> Result<AdAccount, ConnectorError> {
        let (currency, time_zone) = CURRENCIES[((n - 1) % CURRENCIES.len() as u32) as usize];
        let mut rng = draws(self.seed, salt::ACCOUNT, u64::from(n), 0);
        Ok(AdAccount {
            id: AdAccountId(format!("sandbox-{n}")),
            name: format!("{} {currency} #{n}", pick(&mut rng, &BRANDS)),
            currency: Currency::parse(currency).map_err(invalid)?,
            time_zone: time_zone.to_owned(),
        })
    }

    fn campaign(&self, n: u32) -> Option<DiscoveredCampaign> {
        if self.ad_accounts == 0 {
            return None;
        }
        let account = (n - 1) % self.ad_accounts + 1;
        let mut rng = draws(self.seed, salt::CAMPAIGN, u64::from(n), 0);
        let name = format!(
            "{} – {} #{n}",
            pick(&mut rng, &THEMES),
            pick(&mut rng, &AUDIENCES)
        );
        let status = if rng.random_ratio(1, 5) {
            "PAUSED"
        } else {
            "ACTIVE"
        };
        Some(DiscoveredCampaign {
            ad_account_id: AdAccountId(format!("sandbox-{account}")),
            external_id: format!("cmp-{n}"),
            name,
            status: status.to_owned(),
        })
    }

    /// Whether late attribution changes this campaign-day's conversions after the first sync:
    /// one pair in eight.
    pub fn is_restated(&self, campaign: u32, date: NaiveDate) -> bool {
        draws(
            self.seed,
            salt::RESTATE,
            u64::from(campaign),
            day_number(date),
        )
        .random_ratio(1, 8)
    }

    /// The numbers of one campaign-day as the platform reports them at this revision.
    pub fn metrics(&self, campaign: u32, date: NaiveDate) -> Result<DailyMetrics, ConnectorError> {
        // Per-campaign scale: some campaigns are big, some small.
        let mut scale = draws(self.seed, salt::SCALE, u64::from(campaign), 0);
        let base_impressions: u64 = scale.random_range(2_000..=60_000);
        let ctr_bp: u64 = scale.random_range(40..=300); // clicks per 10 000 impressions
        let cpc_cents: u64 = scale.random_range(15..=250);
        let cvr_bp: u64 = scale.random_range(100..=1_200); // conversions per 10 000 clicks
        let order_value_cents: u64 = scale.random_range(1_500..=20_000);

        let mut day = draws(self.seed, salt::DAY, u64::from(campaign), day_number(date));
        let impressions = base_impressions * day.random_range(60..=140) / 100;
        let clicks =
            (impressions * ctr_bp * day.random_range(80..=120) / 100 / 10_000).min(impressions);
        let spend_cents = clicks * cpc_cents * day.random_range(90..=110) / 100;
        // Drawn whether used or not, so the restatement never shifts the other numbers.
        let value_pct: u64 = day.random_range(80..=120);
        let late_conversions: u64 = day.random_range(1..=3);
        let mut conversions = clicks * cvr_bp / 10_000;
        if self.completed_syncs >= 1 && self.is_restated(campaign, date) {
            conversions += late_conversions;
        }
        let value_cents = conversions * order_value_cents * value_pct / 100;

        DailyMetrics::new(
            impressions,
            clicks,
            cents(spend_cents),
            Decimal::from(conversions),
            cents(value_cents),
        )
        .map_err(invalid)
    }
}

fn invalid(e: adledger_domain::DomainError) -> ConnectorError {
    ConnectorError::Invalid(format!("sandbox generated an invalid value: {e}"))
}

fn cents(amount: u64) -> Decimal {
    Decimal::new(i64::try_from(amount).unwrap_or(i64::MAX), 2).normalize()
}

fn day_number(date: NaiveDate) -> u64 {
    u64::from(date.num_days_from_ce().unsigned_abs())
}

#[async_trait::async_trait]
impl Connector for Sandbox {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        Ok(Discovery {
            ad_accounts: (1..=self.ad_accounts)
                .map(|n| self.account(n))
                .collect::<Result<_, _>>()?,
            campaigns: (1..=self.campaigns)
                .filter_map(|n| self.campaign(n))
                .collect(),
        })
    }

    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let known = (1..=self.ad_accounts).any(|n| account.id.0 == format!("sandbox-{n}"));
        if !known {
            return Err(ConnectorError::Invalid(format!(
                "no ad account {} in the sandbox",
                account.id
            )));
        }
        let mut rows = Vec::new();
        for n in 1..=self.campaigns {
            let Some(campaign) = self.campaign(n).filter(|c| c.ad_account_id == account.id) else {
                continue;
            };
            for date in range.days() {
                rows.push(CampaignDay {
                    campaign_external_id: campaign.external_id.clone(),
                    date,
                    metrics: self.metrics(n, date)?,
                });
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn range(from: &str, to: &str) -> DateRange {
        DateRange::new(d(from), d(to)).unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The sandbox never awaits anything, so one poll finishes it.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => out,
            std::task::Poll::Pending => panic!("sandbox future was pending"),
        }
    }

    fn all_numbers(s: &Sandbox) -> Vec<DailyMetrics> {
        let discovery = block_on(s.discover()).unwrap();
        discovery
            .ad_accounts
            .iter()
            .flat_map(|a| {
                block_on(s.account_insights(a, range("2024-03-01", "2024-03-31")))
                    .unwrap()
                    .into_iter()
                    .map(|row| row.metrics)
            })
            .collect()
    }

    #[test]
    fn the_same_seed_gives_the_same_accounts_campaigns_and_numbers() {
        let a = Sandbox::new(42, 3, 7, 0);
        let b = Sandbox::new(42, 3, 7, 0);
        assert_eq!(block_on(a.discover()), block_on(b.discover()));
        assert_eq!(all_numbers(&a), all_numbers(&b));
    }

    #[test]
    fn numbers_do_not_depend_on_the_order_days_and_campaigns_are_asked_in() {
        let s = Sandbox::new(42, 2, 5, 1);
        let days: Vec<NaiveDate> = range("2024-03-01", "2024-03-10").days().collect();
        let forward: Vec<_> = (1..=5)
            .flat_map(|c| days.iter().map(move |d| (c, *d)))
            .map(|(c, d)| s.metrics(c, d).unwrap())
            .collect();
        let mut backward: Vec<_> = (1..=5)
            .rev()
            .flat_map(|c| days.iter().rev().map(move |d| (c, *d)))
            .map(|(c, d)| s.metrics(c, d).unwrap())
            .collect();
        backward.reverse();
        assert_eq!(forward, backward);
        // One day alone is the same day within a month's report.
        let account = &block_on(s.discover()).unwrap().ad_accounts[0];
        let month =
            block_on(s.account_insights(account, range("2024-03-01", "2024-03-31"))).unwrap();
        let day = block_on(s.account_insights(account, range("2024-03-07", "2024-03-07"))).unwrap();
        assert!(!day.is_empty());
        for row in day {
            assert!(month.contains(&row), "{row:?}");
        }
    }

    #[test]
    fn different_seeds_give_different_numbers() {
        assert_ne!(
            all_numbers(&Sandbox::new(1, 2, 4, 0)),
            all_numbers(&Sandbox::new(2, 2, 4, 0))
        );
    }

    #[test]
    fn accounts_and_campaigns_look_like_a_platform_listing() {
        let discovery = block_on(Sandbox::new(7, 3, 5, 0).discover()).unwrap();
        let ids: Vec<_> = discovery
            .ad_accounts
            .iter()
            .map(|a| a.id.0.as_str())
            .collect();
        assert_eq!(ids, ["sandbox-1", "sandbox-2", "sandbox-3"]);
        let currencies: Vec<_> = discovery
            .ad_accounts
            .iter()
            .map(|a| a.currency.as_str())
            .collect();
        assert_eq!(currencies, ["USD", "EUR", "BRL"]);
        assert_eq!(discovery.ad_accounts[0].time_zone, "America/New_York");
        assert_eq!(discovery.campaigns.len(), 5);
        assert_eq!(discovery.campaigns[4].external_id, "cmp-5");
        assert_eq!(discovery.campaigns[4].ad_account_id.0, "sandbox-2");
        assert!(discovery
            .campaigns
            .iter()
            .all(|c| c.status == "ACTIVE" || c.status == "PAUSED"));
        assert!(block_on(Sandbox::new(7, 0, 5, 0).discover())
            .unwrap()
            .campaigns
            .is_empty());
    }

    #[test]
    fn an_account_lists_each_of_its_campaigns_for_each_day_and_unknown_accounts_are_refused() {
        let s = Sandbox::new(7, 2, 3, 0);
        let discovery = block_on(s.discover()).unwrap();
        let first = &discovery.ad_accounts[0];
        let rows = block_on(s.account_insights(first, range("2024-02-27", "2024-03-02"))).unwrap();
        let mut campaigns: Vec<_> = rows
            .iter()
            .map(|r| r.campaign_external_id.as_str())
            .collect();
        campaigns.dedup();
        assert_eq!(
            campaigns,
            ["cmp-1", "cmp-3"],
            "round-robin over two accounts"
        );
        let dates: Vec<_> = rows[..5].iter().map(|r| r.date.to_string()).collect();
        assert_eq!(
            dates,
            [
                "2024-02-27",
                "2024-02-28",
                "2024-02-29",
                "2024-03-01",
                "2024-03-02"
            ]
        );
        assert_eq!(rows.len(), 10);
        let mut stranger = first.clone();
        stranger.id = AdAccountId("sandbox-9".into());
        assert!(matches!(
            block_on(s.account_insights(&stranger, range("2024-01-01", "2024-01-01"))),
            Err(ConnectorError::Invalid(_))
        ));
    }

    #[test]
    fn about_one_day_in_eight_is_restated_once_after_the_first_sync() {
        let first = Sandbox::new(9, 2, 10, 0);
        let second = Sandbox::new(9, 2, 10, 1);
        let later = Sandbox::new(9, 2, 10, 4);
        let mut restated = 0;
        let mut total = 0;
        for campaign in 1..=10 {
            for date in range("2024-01-01", "2024-12-31").days() {
                total += 1;
                let a = first.metrics(campaign, date).unwrap();
                let b = second.metrics(campaign, date).unwrap();
                let c = later.metrics(campaign, date).unwrap();
                assert_eq!(b, c, "stable after revision 1");
                if first.is_restated(campaign, date) {
                    restated += 1;
                    assert!(b.conversions > a.conversions);
                    assert!(b.conversion_value > a.conversion_value);
                    assert_eq!(
                        (a.impressions, a.clicks, a.spend),
                        (b.impressions, b.clicks, b.spend)
                    );
                } else {
                    assert_eq!(a, b);
                }
            }
        }
        let share = f64::from(restated) / f64::from(total);
        assert!((0.09..0.16).contains(&share), "restated share {share}");
    }

    #[test]
    fn numbers_are_plausible_and_money_has_at_most_two_decimals() {
        let s = Sandbox::new(3, 3, 6, 1);
        for m in all_numbers(&s) {
            assert!(m.clicks <= m.impressions);
            assert!(m.impressions > 0);
            for money in [m.spend, m.conversion_value] {
                assert!(money.scale() <= 2, "{money}");
                assert!(!money.is_sign_negative());
            }
            assert_eq!(m.conversions.fract(), Decimal::ZERO);
        }
    }
}
