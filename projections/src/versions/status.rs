//! The versions of each read model as operators see them (`projections status`,
//! `GET /v1/projections`, `/metrics`): the live version and the code version that built it, the
//! code's own version (newer: a rebuild is due), the retired versions kept for a rollback, and a
//! build's position, rate and ETA.

use super::{State, Version};
use crate::ProjectionError;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionsStatus {
    /// The version readers see (`None` before a new read model's first start).
    pub live: Option<i32>,
    /// The code version that built the live version.
    pub live_code_version: Option<i32>,
    /// This binary's code version of the read model.
    pub code_version: i32,
    /// Kept for `projections rollback` until dropped, oldest first.
    pub retired: Vec<i32>,
    pub building: Option<BuildStatus>,
}

impl VersionsStatus {
    /// The live version was built by older code: `serve --rebuild-outdated` rebuilds it.
    pub fn outdated(&self) -> bool {
        self.live_code_version
            .is_some_and(|live| live < self.code_version)
    }
}

/// A version being built beside the live one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildStatus {
    pub version: i32,
    pub code_version: i32,
    /// The last log position applied to it.
    pub position: i64,
    /// Events between it and the log's head.
    pub lag_events: i64,
    /// Throughput of its last page.
    pub events_per_sec: f64,
    /// At that rate, seconds until it reaches the head (`None` before its first page).
    pub eta_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// Every read model's versions, by name; the log's head gives a build's lag.
pub(crate) async fn by_name(
    pool: &PgPool,
    code_versions: &[(&str, i32)],
    head: i64,
) -> Result<HashMap<String, VersionsStatus>, ProjectionError> {
    let rows = super::list(pool).await?;
    Ok(code_versions
        .iter()
        .map(|&(name, code_version)| {
            let mine: Vec<&Version> = rows.iter().filter(|v| v.name == name).collect();
            let live = mine.iter().find(|v| v.state == State::Live);
            let building = mine.iter().find(|v| v.state == State::Building).map(|v| {
                let lag_events = (head - v.position).max(0);
                BuildStatus {
                    version: v.version,
                    code_version: v.code_version,
                    position: v.position,
                    lag_events,
                    events_per_sec: v.events_per_sec,
                    eta_seconds: (v.events_per_sec > 0.0)
                        .then(|| lag_events as f64 / v.events_per_sec),
                    last_error: v.last_error.clone(),
                    updated_at: v.updated_at,
                }
            });
            let status = VersionsStatus {
                live: live.map(|v| v.version),
                live_code_version: live.map(|v| v.code_version),
                code_version,
                retired: mine
                    .iter()
                    .filter(|v| v.state == State::Retired)
                    .map(|v| v.version)
                    .collect(),
                building,
            };
            (name.to_owned(), status)
        })
        .collect())
}
