//! Google Ads requests and their answers: accessible customers, one GAQL query per customer for
//! its currency and time zone and one for its campaigns, and daily campaign metrics by
//! searchStream in chunks of days. Money comes as `costMicros`; missing metrics mean zero.

use super::errors::{classify, classify_error};
use super::GoogleConfig;
use crate::auth::TokenSource;
use crate::wire::{chunks, redact, Http, Num, Reply};
use crate::{CampaignDay, Connector, ConnectorError, Discovery, Secret};
use adledger_domain::connection::{AdAccount, DiscoveredCampaign};
use adledger_domain::{AdAccountId, Currency, DailyMetrics, DateRange};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Deserialize;
use std::sync::Arc;

pub struct GoogleClient {
    config: GoogleConfig,
    tokens: Arc<dyn TokenSource>,
    http: Http,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accessible {
    #[serde(default)]
    resource_names: Vec<String>,
}

/// One element of searchStream's array: a batch of rows, or the error that ended the stream.
#[derive(Deserialize)]
struct Batch {
    #[serde(default)]
    results: Vec<Row>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Row {
    #[serde(default)]
    customer: Option<CustomerFields>,
    #[serde(default)]
    campaign: Option<CampaignFields>,
    #[serde(default)]
    metrics: Option<MetricFields>,
    #[serde(default)]
    segments: Option<Segments>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CustomerFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    descriptive_name: Option<String>,
    #[serde(default)]
    currency_code: Option<String>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    manager: Option<bool>,
}

#[derive(Deserialize, Default)]
struct CampaignFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

/// Every field is optional: Google leaves zero values out.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct MetricFields {
    #[serde(default)]
    impressions: Num,
    #[serde(default)]
    clicks: Num,
    #[serde(default)]
    cost_micros: Num,
    #[serde(default)]
    conversions: Num,
    #[serde(default)]
    conversions_value: Num,
}

#[derive(Deserialize)]
struct Segments {
    date: NaiveDate,
}

const CUSTOMER_QUERY: &str = "SELECT customer.id, customer.descriptive_name, customer.currency_code, customer.time_zone, customer.manager FROM customer";
const CAMPAIGN_QUERY: &str = "SELECT campaign.id, campaign.name, campaign.status FROM campaign";

fn metrics_query(range: DateRange) -> String {
    format!(
        "SELECT customer.id, customer.currency_code, campaign.id, campaign.name, segments.date, \
         metrics.impressions, metrics.clicks, metrics.cost_micros, metrics.conversions, \
         metrics.conversions_value FROM campaign WHERE segments.date BETWEEN '{}' AND '{}'",
        range.from(),
        range.to()
    )
}

impl GoogleClient {
    pub fn new(config: GoogleConfig, tokens: Arc<dyn TokenSource>) -> Self {
        Self {
            config,
            tokens,
            http: Http::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.config.api_url, self.config.api_version)
    }

    async fn send_once(
        &self,
        path: &str,
        query: Option<&str>,
        token: &Secret,
    ) -> Result<Reply, ConnectorError> {
        let client = self.http.client()?;
        let mut request = match query {
            None => client.get(self.url(path)),
            Some(q) => client
                .post(self.url(path))
                .json(&serde_json::json!({ "query": q })),
        };
        request = request
            .bearer_auth(token.expose())
            .header("developer-token", self.config.developer_token.expose());
        if let Some(login) = &self.config.login_customer_id {
            request = request.header("login-customer-id", login);
        }
        self.http.send(request).await
    }

    /// One call; on 401 the token source refreshes once and the call is repeated.
    async fn call(&self, path: &str, query: Option<&str>) -> Result<Reply, ConnectorError> {
        let token = self.tokens.access_token().await?;
        let secrets = |t: &Secret| {
            [
                t.expose().to_owned(),
                self.config.developer_token.expose().to_owned(),
            ]
        };
        let scrub = |e: ConnectorError, t: &Secret| {
            let s = secrets(t);
            redact(e, &[s[0].as_str(), s[1].as_str()])
        };
        let reply = self
            .send_once(path, query, &token)
            .await
            .map_err(|e| scrub(e, &token))?;
        if reply.is_success() {
            return Ok(reply);
        }
        match classify(reply.status, &reply.body) {
            ConnectorError::AuthExpired => {
                let fresh = self.tokens.refreshed(&token).await?;
                let reply = self
                    .send_once(path, query, &fresh)
                    .await
                    .map_err(|e| scrub(e, &fresh))?;
                if reply.is_success() {
                    Ok(reply)
                } else {
                    Err(scrub(classify(reply.status, &reply.body), &fresh))
                }
            }
            other => Err(scrub(other, &token)),
        }
    }

    async fn search_stream(&self, customer: &str, query: &str) -> Result<Vec<Row>, ConnectorError> {
        let reply = self
            .call(
                &format!("customers/{customer}/googleAds:searchStream"),
                Some(query),
            )
            .await?;
        let batches: Vec<Batch> = reply.json("Google Ads searchStream answer")?;
        let mut rows = Vec::new();
        for batch in batches {
            if let Some(error) = batch.error {
                // The stream broke off after sending some batches.
                return Err(classify_error(reply.status, Some(&error)));
            }
            rows.extend(batch.results);
        }
        Ok(rows)
    }

    async fn customers(&self) -> Result<Vec<String>, ConnectorError> {
        let reply = self.call("customers:listAccessibleCustomers", None).await?;
        let accessible: Accessible = reply.json("Google Ads accessible customers")?;
        accessible
            .resource_names
            .iter()
            .map(|name| {
                name.strip_prefix("customers/")
                    .filter(|id| !id.is_empty() && id.chars().all(|c| c.is_ascii_digit()))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ConnectorError::Invalid(format!("unexpected customer resource {name}"))
                    })
            })
            .collect()
    }

    /// The customer as an ad account, or `None` for a manager (it has no campaigns of its own).
    async fn account(&self, customer: &str) -> Result<Option<AdAccount>, ConnectorError> {
        let rows = self.search_stream(customer, CUSTOMER_QUERY).await?;
        let Some(fields) = rows.into_iter().find_map(|r| r.customer) else {
            return Err(ConnectorError::Invalid(format!(
                "customer {customer} answered without its details"
            )));
        };
        if fields.manager == Some(true) {
            return Ok(None);
        }
        let code = fields.currency_code.unwrap_or_default();
        let currency = Currency::parse(&code)
            .map_err(|e| ConnectorError::Invalid(format!("customer {customer}: {e}")))?;
        Ok(Some(AdAccount {
            id: AdAccountId(fields.id.unwrap_or_else(|| customer.to_owned())),
            name: fields
                .descriptive_name
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| customer.to_owned()),
            currency,
            time_zone: fields.time_zone.unwrap_or_else(|| "UTC".into()),
        }))
    }
}

fn day(customer: &str, row: Row) -> Result<Option<CampaignDay>, ConnectorError> {
    let (Some(campaign), Some(segments)) = (row.campaign, row.segments) else {
        return Ok(None);
    };
    let Some(id) = campaign.id else {
        return Ok(None);
    };
    let m = row.metrics.unwrap_or_default();
    let micros = i64::try_from(m.cost_micros.count("costMicros")?)
        .map_err(|_| ConnectorError::Invalid("costMicros out of range".into()))?;
    let metrics = DailyMetrics::new(
        m.impressions.count("impressions")?,
        m.clicks.count("clicks")?,
        Decimal::new(micros, 6),
        m.conversions.0,
        m.conversions_value.0,
    )
    .map_err(|e| ConnectorError::Invalid(format!("customer {customer} campaign {id}: {e}")))?;
    Ok(Some(CampaignDay {
        campaign_external_id: id,
        date: segments.date,
        metrics,
    }))
}

#[async_trait::async_trait]
impl Connector for GoogleClient {
    async fn discover(&self) -> Result<Discovery, ConnectorError> {
        let mut discovery = Discovery::default();
        for customer in self.customers().await? {
            let account = match self.account(&customer).await {
                Ok(Some(account)) => account,
                Ok(None) => continue,
                // Cancelled or inaccessible customers still show up in the accessible list.
                Err(ConnectorError::Invalid(reason)) => {
                    tracing::warn!(customer = %customer, %reason, "skipping a Google Ads customer");
                    continue;
                }
                Err(e) => return Err(e),
            };
            for row in self.search_stream(&customer, CAMPAIGN_QUERY).await? {
                let Some(campaign) = row.campaign else {
                    continue;
                };
                let Some(id) = campaign.id else { continue };
                discovery.campaigns.push(DiscoveredCampaign {
                    ad_account_id: account.id.clone(),
                    name: campaign.name.unwrap_or_else(|| id.clone()),
                    external_id: id,
                    status: campaign.status.unwrap_or_else(|| "UNKNOWN".into()),
                });
            }
            discovery.ad_accounts.push(account);
        }
        Ok(discovery)
    }

    async fn account_insights(
        &self,
        account: &AdAccount,
        range: DateRange,
    ) -> Result<Vec<CampaignDay>, ConnectorError> {
        let customer = account.id.0.as_str();
        let mut days = Vec::new();
        for piece in chunks(range, i64::from(self.config.chunk_days)) {
            for row in self.search_stream(customer, &metrics_query(piece)).await? {
                days.extend(day(customer, row)?);
            }
        }
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_row_becomes_a_campaign_day_with_exact_money_and_zero_for_missing_fields() {
        let body = r#"[{"results":[{"customer":{"resourceName":"customers/1234567890","id":"1234567890","currencyCode":"USD"},
           "campaign":{"resourceName":"customers/1234567890/campaigns/111","id":"111","name":"Brand"},
           "metrics":{"impressions":"1000","costMicros":"12340000","conversions":3.0,"conversionsValue":150.5},
           "segments":{"date":"2024-01-01"}}],"fieldMask":"x","requestId":"r"}]"#;
        let batches: Vec<Batch> = serde_json::from_str(body).unwrap();
        let row = batches
            .into_iter()
            .next()
            .unwrap()
            .results
            .into_iter()
            .next()
            .unwrap();
        let d = day("1234567890", row).unwrap().unwrap();
        assert_eq!(d.campaign_external_id, "111");
        assert_eq!(d.date.to_string(), "2024-01-01");
        assert_eq!(d.metrics.impressions, 1000);
        assert_eq!(d.metrics.clicks, 0, "missing means zero");
        assert_eq!(d.metrics.spend, "12.34".parse::<Decimal>().unwrap());
        assert_eq!(d.metrics.conversions, Decimal::from(3));
        assert_eq!(
            d.metrics.conversion_value,
            "150.5".parse::<Decimal>().unwrap()
        );
    }

    #[test]
    fn the_metrics_query_names_the_range() {
        let d = |s: &str| s.parse().unwrap();
        let q = metrics_query(DateRange::new(d("2024-01-01"), d("2024-01-14")).unwrap());
        assert!(
            q.ends_with("FROM campaign WHERE segments.date BETWEEN '2024-01-01' AND '2024-01-14'")
        );
        assert!(q.contains("metrics.cost_micros"));
    }
}
