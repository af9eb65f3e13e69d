//! Google Ads requests and their answers: accessible customers, one GAQL query per customer for
//! its currency and time zone and one for its campaigns, and daily campaign metrics by
//! searchStream in chunks of days. Money comes as `costMicros`; missing metrics mean zero.
//!
//! Managers (MCC accounts) have no campaigns of their own: their client accounts are listed with
//! a `customer_client` query and read with `login-customer-id: <manager>`. Which manager a client
//! is reached through is remembered by the client (filled by discovery, or lazily by the first
//! read of an account it does not know).

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
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

pub struct GoogleClient {
    config: GoogleConfig,
    tokens: Arc<dyn TokenSource>,
    http: Http,
    /// How each customer is reached, once discovery (eager or lazy) ran on this instance.
    routes: tokio::sync::Mutex<Option<Arc<Routes>>>,
}

/// The customers a login reaches: directly, or only as a client of a manager.
#[derive(Debug, Default)]
struct Routes {
    direct: HashSet<String>,
    /// Client customer → the manager to send as `login-customer-id`.
    via_manager: HashMap<String, String>,
}

/// One customer found by discovery, with the `login-customer-id` to read it with.
struct Found {
    account: AdAccount,
    login: Option<String>,
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
    customer_client: Option<CustomerClientFields>,
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

/// A row of the `customer_client` resource: the manager itself (level 0) and every customer
/// below it.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CustomerClientFields {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    manager: Option<bool>,
    #[serde(default)]
    level: Num,
    #[serde(default)]
    status: Option<String>,
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
const CLIENTS_QUERY: &str = "SELECT customer_client.id, customer_client.manager, customer_client.level, customer_client.time_zone, customer_client.status FROM customer_client";

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
            routes: tokio::sync::Mutex::new(None),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}/{path}", self.config.api_url, self.config.api_version)
    }

    async fn send_once(
        &self,
        path: &str,
        query: Option<&str>,
        login: Option<&str>,
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
        if let Some(login) = login {
            request = request.header("login-customer-id", login);
        }
        self.http.send(request).await
    }

    /// One call, sent with `login-customer-id: <login>` when given; on 401 the token source
    /// refreshes once and the call is repeated.
    async fn call(
        &self,
        path: &str,
        query: Option<&str>,
        login: Option<&str>,
    ) -> Result<Reply, ConnectorError> {
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
            .send_once(path, query, login, &token)
            .await
            .map_err(|e| scrub(e, &token))?;
        if reply.is_success() {
            return Ok(reply);
        }
        match classify(reply.status, &reply.body) {
            ConnectorError::AuthExpired => {
                let fresh = self.tokens.refreshed(&token).await?;
                let reply = self
                    .send_once(path, query, login, &fresh)
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

    async fn search_stream(
        &self,
        customer: &str,
        login: Option<&str>,
        query: &str,
    ) -> Result<Vec<Row>, ConnectorError> {
        let reply = self
            .call(
                &format!("customers/{customer}/googleAds:searchStream"),
                Some(query),
                login,
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
        let reply = self
            .call(
                "customers:listAccessibleCustomers",
                None,
                self.config.login_customer_id.as_deref(),
            )
            .await?;
        let accessible: Accessible = reply.json("Google Ads accessible customers")?;
        accessible
            .resource_names
            .iter()
            .map(|name| {
                name.strip_prefix("customers/")
                    .filter(|id| is_customer_id(id))
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        ConnectorError::Invalid(format!("unexpected customer resource {name}"))
                    })
            })
            .collect()
    }

    /// The customer's details (read with `login-customer-id: <login>` when given).
    async fn details(
        &self,
        customer: &str,
        login: Option<&str>,
    ) -> Result<CustomerFields, ConnectorError> {
        let rows = self.search_stream(customer, login, CUSTOMER_QUERY).await?;
        rows.into_iter().find_map(|r| r.customer).ok_or_else(|| {
            ConnectorError::Invalid(format!("customer {customer} answered without its details"))
        })
    }

    /// The enabled, non-manager customers below `manager` (at any level under it).
    async fn clients(&self, manager: &str) -> Result<Vec<String>, ConnectorError> {
        let rows = self
            .search_stream(manager, Some(manager), CLIENTS_QUERY)
            .await?;
        let mut ids = Vec::new();
        for client in rows.into_iter().filter_map(|r| r.customer_client) {
            let level = client.level.count("customer_client.level")?;
            let enabled = client.status.as_deref() == Some("ENABLED");
            if level == 0 || !enabled || client.manager == Some(true) {
                continue;
            }
            let Some(id) = client.id.filter(|id| is_customer_id(id)) else {
                continue;
            };
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Every ad account the login reaches, with how to reach it: the accessible customers that
    /// are not managers (read directly), then the enabled clients of each accessible manager
    /// that are not directly accessible (read through that manager). A customer that answers
    /// `Invalid` (cancelled, no permission, unusable details) is skipped. Without
    /// `read_clients` only the routes are wanted: the clients' own details are not read.
    async fn find_accounts(
        &self,
        read_clients: bool,
    ) -> Result<(Vec<Found>, Routes), ConnectorError> {
        let configured = self.config.login_customer_id.clone();
        let accessible = self.customers().await?;
        let mut routes = Routes {
            direct: accessible.iter().cloned().collect(),
            via_manager: HashMap::new(),
        };
        let mut found = Vec::new();
        let mut managers = Vec::new();
        for customer in &accessible {
            let details = self.details(customer, configured.as_deref()).await;
            match details.and_then(|f| match f.manager {
                Some(true) => Ok(None),
                _ => to_account(customer, f).map(Some),
            }) {
                Ok(None) => managers.push(customer.clone()),
                Ok(Some(account)) => found.push(Found {
                    account,
                    login: configured.clone(),
                }),
                // Cancelled or inaccessible customers still show up in the accessible list.
                Err(ConnectorError::Invalid(reason)) => skip(customer, &reason),
                Err(e) => return Err(e),
            }
        }
        for manager in &managers {
            let clients = match self.clients(manager).await {
                Ok(clients) => clients,
                Err(ConnectorError::Invalid(reason)) => {
                    skip(manager, &reason);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for client in clients {
                // Direct access wins; a client under two managers goes through the first.
                if routes.direct.contains(&client) || routes.via_manager.contains_key(&client) {
                    continue;
                }
                if !read_clients {
                    routes.via_manager.insert(client, manager.clone());
                    continue;
                }
                let details = self.details(&client, Some(manager)).await;
                match details.and_then(|f| match f.manager {
                    Some(true) => Ok(None),
                    _ => to_account(&client, f).map(Some),
                }) {
                    Ok(None) => continue,
                    Ok(Some(account)) => {
                        found.push(Found {
                            account,
                            login: Some(manager.clone()),
                        });
                        routes.via_manager.insert(client, manager.clone());
                    }
                    Err(ConnectorError::Invalid(reason)) => skip(&client, &reason),
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((found, routes))
    }

    /// The `login-customer-id` for reading `customer`: its manager when it is reached only
    /// through one, else the configured login customer (if any). Runs the discovery once on a
    /// client that has not yet seen this customer.
    async fn login_for(&self, customer: &str) -> Result<Option<String>, ConnectorError> {
        let mut routes = self.routes.lock().await;
        let known = match routes.as_ref() {
            Some(r) => r.clone(),
            None => {
                let (_, fresh) = self.find_accounts(false).await?;
                let fresh = Arc::new(fresh);
                *routes = Some(fresh.clone());
                fresh
            }
        };
        Ok(match known.via_manager.get(customer) {
            Some(manager) if !known.direct.contains(customer) => Some(manager.clone()),
            _ => self.config.login_customer_id.clone(),
        })
    }
}

fn is_customer_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_digit())
}

fn skip(customer: &str, reason: &str) {
    tracing::warn!(customer = %customer, %reason, "skipping a Google Ads customer");
}

/// A non-manager customer's details as an ad account.
fn to_account(customer: &str, fields: CustomerFields) -> Result<AdAccount, ConnectorError> {
    let code = fields.currency_code.unwrap_or_default();
    let currency = Currency::parse(&code)
        .map_err(|e| ConnectorError::Invalid(format!("customer {customer}: {e}")))?;
    Ok(AdAccount {
        id: AdAccountId(fields.id.unwrap_or_else(|| customer.to_owned())),
        name: fields
            .descriptive_name
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| customer.to_owned()),
        currency,
        time_zone: fields.time_zone.unwrap_or_else(|| "UTC".into()),
    })
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
        let (found, routes) = self.find_accounts(true).await?;
        *self.routes.lock().await = Some(Arc::new(routes));
        let mut discovery = Discovery::default();
        for Found { account, login } in found {
            let customer = account.id.0.clone();
            for row in self
                .search_stream(&customer, login.as_deref(), CAMPAIGN_QUERY)
                .await?
            {
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
        let login = self.login_for(customer).await?;
        let mut days = Vec::new();
        for piece in chunks(range, i64::from(self.config.chunk_days)) {
            for row in self
                .search_stream(customer, login.as_deref(), &metrics_query(piece))
                .await?
            {
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
