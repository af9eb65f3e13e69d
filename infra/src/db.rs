//! Connection pools. The application pool runs every session as the `adledger_app` role, which may
//! insert into the log tables but never update or delete them (privileges, not only code). Waits
//! for the database are short and bounded, so that an outage answers "unavailable" in seconds
//! instead of holding every request.

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
    #[error("cannot connect to {url}: no answer within {timeout:?}")]
    ConnectTimeout { url: String, timeout: Duration },
}

/// How a pool waits for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_connections: u32,
    /// A query that gets no connection within this (none free, or the server does not accept
    /// one: down, restarting, refusing) fails as transient (`PoolTimedOut`), which the API
    /// answers with 503 and `Retry-After`. Opening a pool connection counts against it too.
    pub acquire_timeout: Duration,
    /// Opening a connection outside the pool (migrations at start-up, ops commands) gives up
    /// after this.
    pub connect_timeout: Duration,
}

impl PoolConfig {
    pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

    /// `max_connections` with the default timeouts.
    pub fn with_max(max_connections: u32) -> Self {
        Self {
            max_connections,
            acquire_timeout: Self::DEFAULT_ACQUIRE_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

/// Handles to one database: `app` for everything the service does, `url` for what needs the
/// owner's rights (migrations, test set-up).
#[derive(Clone, Debug)]
pub struct Database {
    pub app: PgPool,
    url: Secret<String>,
}

impl Database {
    /// A pool of at most `max_connections`, with the default timeouts.
    pub async fn connect(url: &Secret<String>, max_connections: u32) -> Result<Self, DbError> {
        Self::connect_with(url, PoolConfig::with_max(max_connections)).await
    }

    pub async fn connect_with(url: &Secret<String>, config: PoolConfig) -> Result<Self, DbError> {
        let options = connect_options(url)?;
        let app = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
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

/// A single connection with the URL's own rights (no `SET ROLE`), for migrations and ops, given
/// up after the default connect timeout.
pub async fn connect_owner(url: &Secret<String>) -> Result<sqlx::PgConnection, DbError> {
    connect_owner_within(url, PoolConfig::DEFAULT_CONNECT_TIMEOUT).await
}

/// [`connect_owner`], given up after `timeout` (a server that accepts TCP but never answers
/// would otherwise hold the caller forever).
pub async fn connect_owner_within(
    url: &Secret<String>,
    timeout: Duration,
) -> Result<sqlx::PgConnection, DbError> {
    let options = connect_options(url)?;
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(connected) => connected.map_err(|source| DbError::Connect {
            url: redact_url(url.expose()),
            source,
        }),
        Err(_) => Err(DbError::ConnectTimeout {
            url: redact_url(url.expose()),
            timeout,
        }),
    }
}

/// Creates a database named `name` on the server of `server_url` and returns its URL (for test
/// and benchmark scratch databases). `name` must be a plain identifier.
pub async fn create_database(
    server_url: &Secret<String>,
    name: &str,
) -> Result<Secret<String>, DbError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let mut admin = connect_owner(server_url).await?;
    let created = if valid {
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .map(|_| ())
    } else {
        Err(sqlx::Error::Protocol(format!(
            "invalid database name {name:?}"
        )))
    };
    created.map_err(|source| DbError::Connect {
        url: redact_url(server_url.expose()),
        source,
    })?;
    Ok(Secret::new(with_database(server_url.expose(), name)))
}

/// Drops a database created by [`create_database`], closing its sessions.
pub async fn drop_database(server_url: &Secret<String>, name: &str) -> Result<(), DbError> {
    let mut admin = connect_owner(server_url).await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
        .await
        .map_err(|source| DbError::Connect {
            url: redact_url(server_url.expose()),
            source,
        })?;
    Ok(())
}

/// `url` with its database name replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}
