//! Connection pools. The application pool runs every session as the `adledger_app` role, which may
//! insert into the log tables but never update or delete them (privileges, not only code).

use crate::secret::{redact_url, Secret};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Executor, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The role application sessions assume; created by the first migration.
pub const APP_ROLE: &str = "adledger_app";

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid DATABASE_URL {url}: {source}")]
    BadUrl { url: String, source: sqlx::Error },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
}

/// Handles to one database: `app` for everything the service does, `url` for what needs the
/// owner's rights (migrations, test set-up).
#[derive(Clone, Debug)]
pub struct Database {
    pub app: PgPool,
    url: Secret<String>,
}

impl Database {
    pub async fn connect(url: &Secret<String>, max_connections: u32) -> Result<Self, DbError> {
        let options = connect_options(url)?;
        let app = PgPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(format!("SET ROLE {APP_ROLE}").as_str())
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(|source| DbError::Connect {
                url: redact_url(url.expose()),
                source,
            })?;
        Ok(Self {
            app,
            url: url.clone(),
        })
    }

    pub fn url(&self) -> &Secret<String> {
        &self.url
    }
}

pub fn connect_options(url: &Secret<String>) -> Result<PgConnectOptions, DbError> {
    Ok(PgConnectOptions::from_str(url.expose())
        .map_err(|source| DbError::BadUrl {
            url: redact_url(url.expose()),
            source,
        })?
        .log_statements(tracing::log::LevelFilter::Trace)
        .application_name("adledger"))
}

/// A single connection with the URL's own rights (no `SET ROLE`), for migrations and ops.
pub async fn connect_owner(url: &Secret<String>) -> Result<sqlx::PgConnection, DbError> {
    connect_options(url)?
        .connect()
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(url.expose()),
            source,
        })
}
