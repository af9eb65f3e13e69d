//! Any of the three fakes behind one type, for tests and benchmarks that run the same flow
//! against each platform: its configuration, its OAuth code, its knobs and what it holds.

use super::google::{self, FakeGoogle};
use super::meta::{self, FakeMeta};
use super::tiktok::{self, FakeTiktok};
use super::{FakeApi, Knobs, RecordedRequest};
use crate::{Platforms, TokenSet};
use adledger_domain::{DailyMetrics, Platform};
use chrono::NaiveDate;

pub enum AnyFake {
    Meta(FakeMeta),
    Google(FakeGoogle),
    Tiktok(FakeTiktok),
}

impl AnyFake {
    pub fn platform(&self) -> Platform {
        match self {
            AnyFake::Meta(_) => Platform::Meta,
            AnyFake::Google(_) => Platform::Google,
            AnyFake::Tiktok(_) => Platform::Tiktok,
        }
    }

    pub fn name(&self) -> &'static str {
        self.platform().as_str()
    }

    /// A deployment's platforms with only this fake configured.
    pub fn platforms(&self) -> Platforms {
        match self {
            AnyFake::Meta(f) => Platforms {
                meta: Some(f.config()),
                ..Default::default()
            },
            AnyFake::Google(f) => Platforms {
                google: Some(f.config()),
                ..Default::default()
            },
            AnyFake::Tiktok(f) => Platforms {
                tiktok: Some(f.config()),
                ..Default::default()
            },
        }
    }

    /// The one authorization code the fake accepts.
    pub fn auth_code(&self) -> &'static str {
        match self {
            AnyFake::Meta(_) => meta::AUTH_CODE,
            AnyFake::Google(_) => google::AUTH_CODE,
            AnyFake::Tiktok(_) => tiktok::AUTH_CODE,
        }
    }

    /// The name of the code in the callback's query (TikTok: `auth_code`).
    pub fn code_param(&self) -> &'static str {
        match self {
            AnyFake::Tiktok(_) => "auth_code",
            AnyFake::Meta(_) | AnyFake::Google(_) => "code",
        }
    }

    /// A fresh, valid token set, as if the OAuth flow had run.
    pub fn issue_tokens(&self) -> TokenSet {
        match self {
            AnyFake::Meta(f) => f.issue_tokens(),
            AnyFake::Google(f) => f.issue_tokens(),
            AnyFake::Tiktok(f) => f.issue_tokens(),
        }
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        match self {
            AnyFake::Meta(f) => f.requests(),
            AnyFake::Google(f) => f.requests(),
            AnyFake::Tiktok(f) => f.requests(),
        }
    }

    /// The first ad account and its campaign ids, as the fake lists them.
    pub fn first_account(&self) -> (String, Vec<String>) {
        let first = |mut ids: Vec<String>| ids.swap_remove(0);
        match self {
            AnyFake::Meta(f) => {
                let a = first(f.account_ids());
                let c = f.campaign_ids(&a);
                (a, c)
            }
            AnyFake::Google(f) => {
                let a = first(f.customer_ids());
                let c = f.campaign_ids(&a);
                (a, c)
            }
            AnyFake::Tiktok(f) => {
                let a = first(f.advertiser_ids());
                let c = f.campaign_ids(&a);
                (a, c)
            }
        }
    }

    pub fn expected_metrics(&self, campaign: &str, date: NaiveDate) -> Option<DailyMetrics> {
        match self {
            AnyFake::Meta(f) => f.expected_metrics(campaign, date),
            AnyFake::Google(f) => f.expected_metrics(campaign, date),
            AnyFake::Tiktok(f) => f.expected_metrics(campaign, date),
        }
    }

    pub fn throttle_next(&self, n: u32) {
        self.knobs().throttle_next(n);
    }

    pub fn revoke_tokens(&self) {
        self.knobs().revoke();
    }

    pub fn regrant(&self) {
        self.knobs().regrant();
    }

    pub fn restate(&self, date: NaiveDate) {
        self.knobs().restate(date);
    }

    fn knobs(&self) -> &Knobs {
        match self {
            AnyFake::Meta(f) => f.api.knobs(),
            AnyFake::Google(f) => f.api.knobs(),
            AnyFake::Tiktok(f) => f.api.knobs(),
        }
    }
}
