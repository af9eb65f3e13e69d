//! Graph API requests and their answers: ad accounts and campaigns by cursor paging (`after`),
//! and daily campaign insights per account. Short ranges are read directly, long ones through an
//! async report job; when Meta asks for less data the range is halved and each half read again.

use super::errors::{asks_for_less_data, classify_reply};
use super::MetaConfig;
use crate::auth::TokenSource;
use crate::wire::{halves, redact, Http, Num};
use crate::{CampaignDay, Connector, ConnectorError, Discovery};
use adledger_domain::connection::{AdAccount, DiscoveredCampaign};
use adledger_domain::{AdAccountId, Currency, DailyMetrics, DateRange};
use chrono::NaiveDate;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub struct MetaClient {
    config: MetaConfig,
    tokens: Arc<dyn TokenSource>,
    http: Http,
}

/// The action type counted as a conversion (and whose value is the conversion value). Meta
/// lists the same purchases under several types (`omni_purchase`,
/// `offsite_conversion.fb_pixel_purchase`); only this one is counted, so none is counted twice.
pub const CONVERSION_ACTION: &str = "purchase";

const ACCOUNT_FIELDS: &str = "id,account_id,name,currency,timezone_name";
const CAMPAIGN_FIELDS: &str = "id,name,status,objective,updated_time";
const INSIGHT_FIELDS: &str = "account_currency,campaign_id,campaign_name,date_start,date_stop,impressions,clicks,spend,actions,action_values";
const ATTRIBUTION_WINDOWS: &str = r#"["7d_click","1d_view"]"#;
/// A guard against a platform that keeps announcing more pages.
const MAX_PAGES: u32 = 100_000;

/// Why a read stopped: Meta wants a smaller request, or any other failure.
enum Failure {
    LessData,
    Other(ConnectorError),
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Self {
        Failure::Other(e)
    }
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    cursors: Option<Cursors>,
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct Cursors {
    #[serde(default)]
    after: Option<String>,
}

#[derive(Deserialize)]
struct Account {
    account_id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    timezone_name: Option<String>,
}

#[derive(Deserialize)]
struct Campaign {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct Insight {
    campaign_id: String,
    date_start: NaiveDate,
    #[serde(default)]
    impressions: Num,
    #[serde(default)]
    clicks: Num,
    #[serde(default)]
    spend: Num,
    #[serde(default)]
    actions: Vec<Action>,
    #[serde(default)]
    action_values: Vec<Action>,
}

#[derive(Deserialize)]
struct Action {
    action_type: String,
    #[serde(default)]
    value: Num,
}

#[derive(Deserialize)]
struct ReportRun {
    report_run_id: String,
}

#[derive(Deserialize)]
struct JobStatus {
    #[serde(default)]
    async_status: String,
    #[serde(default)]
    async_percent_completion: u32,
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, ConnectorError>> + Send + 'a>>;

impl MetaClient {
    pub fn new(config: MetaConfig, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            config,
            tokens,
            http: Http::new(),
        }
    }

    /// One call (GET, or POST with a form), its answer read as `T`.
    async fn call<T: DeserializeOwned>(
        &self,
        post: bool,
        path: &str,
        params: &[(&str, String)],
        what: &str,
    ) -> Result<T, Failure> {
        let token = self.tokens.access_token().await?;
        let client = self.http.client()?;
        let request = if post {
            client.post(self.config.graph(path)).form(params)
        } else {
            client.get(self.config.graph(path)).query(params)
        };
        let secrets = [token.expose()];
        let reply = self
            .http
            .send(request.bearer_auth(token.expose()))
            .await
            .map_err(|e| redact(e, &secrets))?;
        if reply.is_success() {
            return Ok(reply.json(what).map_err(|e| redact(e, &secrets))?);
        }
        if asks_for_less_data(&reply.body) {
            return Err(Failure::LessData);
        }
        Err(Failure::Other(redact(classify_reply(&reply), &secrets)))
    }

    /// Every page of a list, by passing the `after` cursor (the `next` URL is not followed: it
    /// names Meta's host and carries the token in its query).
    async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        what: &str,
    ) -> Result<Vec<T>, Failure> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut p = params.to_vec();
            if let Some(cursor) = &after {
                p.push(("after", cursor.clone()));
            }
            let page: Page<T> = self.call(false, path, &p, what).await?;
            all.extend(page.data);
            after = page
                .paging
                .filter(|p| p.next.is_some())
                .and_then(|p| p.cursors)
                .and_then(|c| c.after);
            if after.is_none() {
                return Ok(all);
            }
        }
        Err(Failure::Other(ConnectorError::Invalid(format!(
            "{what}: more than {MAX_PAGES} pages"
        ))))
    }

    fn insight_params(&self, range: DateRange) -> Vec<(&'static str, String)> {
        vec![
            ("level", "campaign".into()),
            ("time_increment", "1".into()),
            (
                "time_range",
                format!(r#"{{"since":"{}","until":"{}"}}"#, range.from(), range.to()),
            ),
            ("fields", INSIGHT_FIELDS.into()),
            ("action_attribution_windows", ATTRIBUTION_WINDOWS.into()),
            ("limit", self.config.page_limit.to_string()),
        ]
    }

    /// A long range through an async report job: start, poll until done, read its pages.
    async fn report_job(&self, account: &str, range: DateRange) -> Result<Vec<Insight>, Failure> {
        let run: ReportRun = self
            .call(
                true,
                &format!("act_{account}/insights"),
                &self.insight_params(range),
                "Meta report job",
            )
            .await?;
        let id = run.report_run_id;
        for _ in 0..self.config.max_polls.max(1) {
            let status: JobStatus = self.call(false, &id, &[], "Meta report job status").await?;
            match status.async_status.as_str() {
                "Job Completed" if status.async_percent_completion >= 100 => {
                    return self
                        .pages(
                            &format!("{id}/insights"),
                            &[("limit", self.config.page_limit.to_string())],
                            "Meta report",
                        )
                        .await;
                }
                // Jobs fail mostly when they are too big: read the range in halves.
                "Job Failed" | "Job Skipped" => return Err(Failure::LessData),
                _ => tokio::time::sleep(self.config.poll_interval).await,
            }
        }
        Err(Failure::Other(ConnectorError::Transient(format!(
            "Meta report job for {}..{} did not finish",
            range.from(),
            range.to()
        ))))
    }

    /// The insights of `range`, halving it for as long as Meta asks for less data.
    fn insights<'a>(&'a self, account: &'a str, range: DateRange) -> Boxed<'a, Vec<Insight>> {
        Box::pin(async move {
            let read = if range.len_days() > i64::from(self.config.sync_max_days) {
                self.report_job(account, range).await
            } else {
                self.pages(
                    &format!("act_{account}/insights"),
                    &self.insight_params(range),
                    "Meta insights",
                )
                .await
            };
            match read {
                Ok(rows) => Ok(rows),
                Err(Failure::Other(e)) => Err(e),
                Err(Failure::LessData) => {
                    let Some((first, second)) = halves(range) else {
                        return Err(ConnectorError::Invalid(format!(
                            "Meta asks for less data even for the single day {}",
                            range.from()
                        )));
                    };
                    let mut rows = self.insights(account, first).await?;
                    rows.extend(self.insights(account, second).await?);
                    Ok(rows)
                }
            }
        })
    }
}

fn unwrap_failure<T>(r: Result<T, Failure>, what: &str) -> Result<T, ConnectorError> {
    r.map_err(|f| match f {
        Failure::Other(e) => e,
        Failure::LessData => ConnectorError::Invalid(format!("{what}: Meta asks for less data")),
    })
}

fn action_total(actions: &[Action]) -> rust_decimal::Decimal {
    actions
        .iter()
        .filter(|a| a.action_type == CONVERSION_ACTION)
        .map(|a| a.value.0)
        .sum()
}

fn day(row: Insight) -> Result<CampaignDay, ConnectorError> {
    let metrics = DailyMetrics::new(
        row.impressions.count("impressions")?,
        row.clicks.count("clicks")?,
        row.spend.0,
        action_total(&row.actions),
        action_total(&row.action_values),
    )
    .map_err(|e| ConnectorError::Invalid(format!("Meta campaign {}: {e}", row.campaign_id)))?;
    Ok(CampaignDay {
        campaign_external_id: row.campaign_id,
        date: row.date_start,
        metrics,
    })
}

#[async_trait::async_trait]
impl Connector for MetaClient {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        let limit = self.config.page_limit.to_string();
        let accounts: Vec<Account> = unwrap_failure(
            self.pages(
                "me/adaccounts",
                &[("fields", ACCOUNT_FIELDS.into()), ("limit", limit.clone())],
                "Meta ad accounts",
            )
            .await,
            "ad accounts",
        )?;
        let mut discovery = Discovery::default();
        for a in accounts {
            let currency = Currency::parse(a.currency.as_deref().unwrap_or("")).map_err(|e| {
                ConnectorError::Invalid(format!("Meta ad account {}: {e}", a.account_id))
            })?;
            let campaigns: Vec<Campaign> = unwrap_failure(
                self.pages(
                    &format!("act_{}/campaigns", a.account_id),
                    &[("fields", CAMPAIGN_FIELDS.into()), ("limit", limit.clone())],
                    "Meta campaigns",
                )
                .await,
                "campaigns",
            )?;
            let id = AdAccountId(a.account_id.clone());
            discovery
                .campaigns
                .extend(campaigns.into_iter().map(|c| DiscoveredCampaign {
                    ad_account_id: id.clone(),
                    name: c.name.unwrap_or_else(|| c.id.clone()),
                    external_id: c.id,
                    status: c.status.unwrap_or_else(|| "UNKNOWN".into()),
                }));
            discovery.ad_accounts.push(AdAccount {
                name: a.name.unwrap_or_else(|| a.account_id.clone()),
                id,
                currency,
                time_zone: a.timezone_name.unwrap_or_else(|| "UTC".into()),
            });
        }
        Ok(discovery)
    }

    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        // Accept ids given as `act_123` as well as `123`.
        let id = account.id.0.trim_start_matches("act_");
        self.insights(id, range)
            .await?
            .into_iter()
            .map(day)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purchases_are_counted_once_and_their_value_is_exact() {
        let body = r#"{"account_id":"123","account_currency":"USD","campaign_id":"2385001","campaign_name":"Spring",
          "date_start":"2024-01-01","date_stop":"2024-01-01","impressions":"10234","clicks":"321","spend":"152.37",
          "actions":[{"action_type":"link_click","value":"321"},{"action_type":"purchase","value":"4","7d_click":"4","1d_view":"0"},
                     {"action_type":"omni_purchase","value":"4"}],
          "action_values":[{"action_type":"purchase","value":"389.50"},{"action_type":"omni_purchase","value":"389.50"}]}"#;
        let d = day(serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(d.campaign_external_id, "2385001");
        assert_eq!((d.metrics.impressions, d.metrics.clicks), (10234, 321));
        assert_eq!(d.metrics.spend.to_string(), "152.37");
        assert_eq!(d.metrics.conversions.to_string(), "4");
        assert_eq!(d.metrics.conversion_value.to_string(), "389.5");
        let bare = r#"{"campaign_id":"1","date_start":"2024-01-02","impressions":"5","spend":"0"}"#;
        let d = day(serde_json::from_str(bare).unwrap()).unwrap();
        assert!(d.metrics.conversions.is_zero() && d.metrics.clicks == 0);
    }
}
