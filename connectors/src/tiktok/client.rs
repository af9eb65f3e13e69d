//! TikTok requests and their answers: authorized advertisers, their currency and time zone
//! (100 per call), campaigns page by page, and the daily integrated report in chunks of at most
//! 30 days, page by page. `"-"` means no data and counts as zero.

use super::errors::data;
use super::TiktokConfig;
use crate::auth::TokenSource;
use crate::wire::{chunks, redacted, Http, Num};
use crate::{CampaignDay, Connector, ConnectorError, Discovery, Secret};
use adledger_domain::connection::{AdAccount, DiscoveredCampaign};
use adledger_domain::{AdAccountId, Currency, DailyMetrics, DateRange};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;

pub struct TiktokClient {
    config: TiktokConfig,
    tokens: Arc<dyn TokenSource>,
    http: Http,
}

/// The most advertiser ids `advertiser/info/` takes at once.
const INFO_BATCH: usize = 100;
/// A guard against a platform that keeps announcing more pages.
const MAX_PAGES: u32 = 10_000;

#[derive(Deserialize)]
struct List<T> {
    #[serde(default = "Vec::new")]
    list: Vec<T>,
    #[serde(default)]
    page_info: Option<PageInfo>,
}

#[derive(Deserialize)]
struct PageInfo {
    #[serde(default)]
    total_page: u32,
}

#[derive(Deserialize)]
struct Advertiser {
    advertiser_id: Value,
}

#[derive(Deserialize)]
struct AdvertiserInfo {
    advertiser_id: Value,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
}

#[derive(Deserialize)]
struct Campaign {
    campaign_id: Value,
    #[serde(default)]
    campaign_name: Option<String>,
    #[serde(default)]
    operation_status: Option<String>,
}

#[derive(Deserialize)]
struct ReportRow {
    dimensions: Dimensions,
    metrics: ReportMetrics,
}

#[derive(Deserialize)]
struct Dimensions {
    campaign_id: Value,
    stat_time_day: String,
}

#[derive(Deserialize)]
struct ReportMetrics {
    #[serde(default)]
    spend: Num,
    #[serde(default)]
    impressions: Num,
    #[serde(default)]
    clicks: Num,
    #[serde(default)]
    conversion: Num,
}

/// Ids come as strings or numbers depending on the endpoint.
fn id(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}

const METRICS: &str = r#"["spend","impressions","clicks","conversion","campaign_name"]"#;
const DIMENSIONS: &str = r#"["campaign_id","stat_time_day"]"#;

impl TiktokClient {
    pub fn new(config: TiktokConfig, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            config,
            tokens,
            http: Http::new(),
        }
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<T, ConnectorError> {
        let token: Secret = self.tokens.access_token().await?;
        let secrets = [token.expose(), self.config.secret.expose()];
        redacted(&secrets, async {
            let request = self
                .http
                .client()?
                .get(format!("{}/{path}", self.config.api_url))
                .query(query)
                .header("Access-Token", token.expose());
            let reply = self.http.send(request).await?;
            data(&reply, what)
        })
        .await
    }

    /// Every page of a paged list.
    async fn pages<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        what: &str,
    ) -> Result<Vec<T>, ConnectorError> {
        let mut all = Vec::new();
        let page_size = self.config.page_size.to_string();
        for page in 1..=MAX_PAGES {
            let page_text = page.to_string();
            let mut q = query.to_vec();
            q.push(("page", &page_text));
            q.push(("page_size", &page_size));
            let answer: List<T> = self.get(path, &q, what).await?;
            all.extend(answer.list);
            let total = answer.page_info.map_or(1, |p| p.total_page);
            if page >= total {
                return Ok(all);
            }
        }
        Err(ConnectorError::Invalid(format!(
            "{what}: more than {MAX_PAGES} pages"
        )))
    }

    async fn advertisers(&self) -> Result<Vec<String>, ConnectorError> {
        let answer: List<Advertiser> = self
            .get(
                "oauth2/advertiser/get/",
                &[
                    ("app_id", self.config.app_id.as_str()),
                    ("secret", self.config.secret.expose()),
                ],
                "TikTok advertisers",
            )
            .await?;
        Ok(answer.list.iter().map(|a| id(&a.advertiser_id)).collect())
    }
}

fn day(row: ReportRow) -> Result<CampaignDay, ConnectorError> {
    let campaign = id(&row.dimensions.campaign_id);
    let date = row
        .dimensions
        .stat_time_day
        .get(..10)
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .ok_or_else(|| {
            ConnectorError::Invalid(format!(
                "TikTok report day {:?} is not a date",
                row.dimensions.stat_time_day
            ))
        })?;
    let m = row.metrics;
    // The report's documented metrics carry no conversion value: it stays zero.
    let metrics = DailyMetrics::new(
        m.impressions.count("impressions")?,
        m.clicks.count("clicks")?,
        m.spend.0,
        m.conversion.0,
        Decimal::ZERO,
    )
    .map_err(|e| ConnectorError::Invalid(format!("TikTok campaign {campaign}: {e}")))?;
    Ok(CampaignDay {
        campaign_external_id: campaign,
        date,
        metrics,
    })
}

#[async_trait::async_trait]
impl Connector for TiktokClient {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        let ids = self.advertisers().await?;
        let mut discovery = Discovery::default();
        for batch in ids.chunks(INFO_BATCH) {
            let list =
                serde_json::to_string(batch).map_err(|e| ConnectorError::Invalid(e.to_string()))?;
            let answer: List<AdvertiserInfo> = self
                .get(
                    "advertiser/info/",
                    &[("advertiser_ids", list.as_str())],
                    "TikTok advertiser info",
                )
                .await?;
            for info in answer.list {
                let advertiser = id(&info.advertiser_id);
                let currency =
                    Currency::parse(info.currency.as_deref().unwrap_or("")).map_err(|e| {
                        ConnectorError::Invalid(format!("advertiser {advertiser}: {e}"))
                    })?;
                discovery.ad_accounts.push(AdAccount {
                    id: AdAccountId(advertiser.clone()),
                    name: info.name.unwrap_or_else(|| advertiser.clone()),
                    currency,
                    time_zone: info.timezone.unwrap_or_else(|| "UTC".into()),
                });
            }
        }
        for account in &discovery.ad_accounts {
            let campaigns: Vec<Campaign> = self
                .pages(
                    "campaign/get/",
                    &[("advertiser_id", account.id.0.as_str())],
                    "TikTok campaigns",
                )
                .await?;
            for c in campaigns {
                let external_id = id(&c.campaign_id);
                discovery.campaigns.push(DiscoveredCampaign {
                    ad_account_id: account.id.clone(),
                    name: c.campaign_name.unwrap_or_else(|| external_id.clone()),
                    external_id,
                    status: c.operation_status.unwrap_or_else(|| "UNKNOWN".into()),
                });
            }
        }
        Ok(discovery)
    }

    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let mut days = Vec::new();
        for piece in chunks(range, i64::from(self.config.chunk_days.clamp(1, 30))) {
            let (from, to) = (piece.from().to_string(), piece.to().to_string());
            let rows: Vec<ReportRow> = self
                .pages(
                    "report/integrated/get/",
                    &[
                        ("advertiser_id", account.id.0.as_str()),
                        ("service_type", "AUCTION"),
                        ("report_type", "BASIC"),
                        ("data_level", "AUCTION_CAMPAIGN"),
                        ("dimensions", DIMENSIONS),
                        ("metrics", METRICS),
                        ("start_date", from.as_str()),
                        ("end_date", to.as_str()),
                    ],
                    "TikTok report",
                )
                .await?;
            for row in rows {
                days.push(day(row)?);
            }
        }
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_rows_take_strings_numbers_and_dashes() {
        let body = r#"{"dimensions":{"campaign_id":"1800","stat_time_day":"2024-01-01 00:00:00"},
            "metrics":{"campaign_name":"Traffic","spend":"20.00","impressions":4696,"clicks":"51","conversion":"-"}}"#;
        let d = day(serde_json::from_str(body).unwrap()).unwrap();
        assert_eq!(d.campaign_external_id, "1800");
        assert_eq!(d.date.to_string(), "2024-01-01");
        assert_eq!((d.metrics.impressions, d.metrics.clicks), (4696, 51));
        assert_eq!(d.metrics.spend, Decimal::from(20));
        assert_eq!(d.metrics.conversions, Decimal::ZERO);
    }
}
