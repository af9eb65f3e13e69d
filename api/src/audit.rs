//! `GET /v1/workspaces/{id}/audit`: who did what, when and from where, newest first; and
//! `GET /v1/workspaces/{id}/audit/package`: the workspace's events with inclusion proofs in a
//! signed checkpoint, for an auditor to check offline (`adledger audit verify`).

use crate::access::{InWorkspace, ReadHistory};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::paging::{NextLink, PageSize};
use crate::responses::{Forbidden, Invalid, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::Day;
use adledger_projections::audit::{self as audit_log, AuditFilter};
use axum::extract::{OriginalUri, State};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_audit))
        .routes(routes!(audit_package))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Only this actor: a user or API key id, a system name (e.g. `demo`), or a kind (`user`,
    /// `api_key`, `system`, `anonymous`).
    actor: Option<String>,
    /// Only this action (an event type, e.g. `SyncStarted`).
    action: Option<String>,
    /// Only entries at or after this time (RFC 3339, in 2000 to 2099).
    from: Option<DateTime<Utc>>,
    /// Only entries before this time (RFC 3339, in 2000 to 2099).
    to: Option<DateTime<Utc>>,
    /// Cursor: the `next_before` of the previous page.
    before: Option<i64>,
    /// Page size (default 100).
    #[param(schema_with = crate::schemas::page_size)]
    limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Log position of the event that records the action.
    pub position: i64,
    pub action: String,
    pub stream_id: String,
    /// `user`, `api_key`, `system` or `anonymous`.
    pub actor_kind: String,
    /// The user or API key id, or the system component's name.
    pub actor: Option<String>,
    /// `[erased]` once the person who acted was erased.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The request (x-request-id) that caused it.
    pub request_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

impl From<audit_log::AuditEntry> for AuditEntry {
    fn from(e: audit_log::AuditEntry) -> Self {
        Self {
            position: e.position,
            action: e.action,
            stream_id: e.stream_id.to_string(),
            actor_kind: e.actor_kind,
            actor: e.actor,
            ip: e.ip,
            user_agent: e.user_agent,
            request_id: e.request_id,
            occurred_at: e.occurred_at,
            recorded_at: e.recorded_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `before` to get the next (older) page; absent on the last page.
    pub next_before: Option<i64>,
}

/// Who did what in a workspace, when and from where, newest first, filterable and paginated.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/audit", tag = "audit",
    params(("workspace_id" = Uuid, Path), AuditParams),
    responses((status = 200, body = AuditPage, headers(("link" = String, description = "`<…>; rel=\"next\"`: the next page, when there is one"))),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn list_audit(
    State(state): State<AppState>,
    ws: InWorkspace<ReadHistory>,
    OriginalUri(uri): OriginalUri,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<(NextLink, Json<AuditPage>), ApiError> {
    let size = PageSize::parse(params.limit)?;
    // Times are only filters here, yet held to the dates accepted everywhere else.
    for (field, at) in [("from", params.from), ("to", params.to)] {
        if let Some(at) = at {
            Day::new(at.date_naive()).map_err(|e| ApiError::invalid(field, e.to_string()))?;
        }
    }
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from >= to {
            return Err(ApiError::invalid("from", "must be before `to`"));
        }
    }
    let filter = AuditFilter {
        actor: params.actor,
        action: params.action,
        from: params.from,
        to: params.to,
        before: params.before,
        limit: size.fetch(),
    };
    let rows = audit_log::list_audit(state.reads.pool(), ws.id, &filter).await?;
    let (mut items, next_before) = size.cut(rows, |e: &AuditEntry| e.position);
    // Sources were sealed under the actor's key: opened for the reader, `[erased]` once erased.
    let fields = items
        .iter_mut()
        .flat_map(|e| [&mut e.ip, &mut e.user_agent]);
    crate::personal::reveal_fields(state.identity.sealer(), fields).await?;
    let next = next_before.map(|position| position.to_string());
    Ok((
        NextLink::new(&uri, "before", next.as_deref()),
        Json(AuditPage { items, next_before }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PackageParams {
    /// Only events recorded at or after this time (RFC 3339, in 2000 to 2099).
    from: Option<DateTime<Utc>>,
    /// Only events recorded before this time (RFC 3339, in 2000 to 2099).
    to: Option<DateTime<Utc>>,
}

/// The workspace's audit package (the whole history when no range is given), streamed as
/// NDJSON: a header line with the signed checkpoint, then each event with every field its chain
/// hash covers, its previous hash and its inclusion proof in that checkpoint. Check it offline
/// with `adledger audit verify FILE --key KEYFILE` and the keys of
/// `/.well-known/adledger/checkpoint-keys`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace_id}/audit/package", tag = "audit",
    params(("workspace_id" = Uuid, Path), PackageParams),
    responses((status = 200, description = "A header line, then one event a line", content_type = "application/x-ndjson", body = String),
              Unauthenticated, Forbidden, NotFound, Invalid, RateLimited))]
async fn audit_package(
    State(state): State<AppState>,
    ws: InWorkspace<ReadHistory>,
    ApiQuery(params): ApiQuery<PackageParams>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    use futures_util::TryStreamExt;
    for (field, at) in [("from", params.from), ("to", params.to)] {
        if let Some(at) = at {
            Day::new(at.date_naive()).map_err(|e| ApiError::invalid(field, e.to_string()))?;
        }
    }
    if let (Some(from), Some(to)) = (params.from, params.to) {
        if from >= to {
            return Err(ApiError::invalid("from", "must be before `to`"));
        }
    }
    let checkpoint = state
        .store
        .package_checkpoint(state.checkpoints.as_deref())
        .await?
        .ok_or_else(|| {
            ApiError::NotFound("a checkpoint (this deployment has issued none)".into())
        })?;
    let range = adledger_infra::event_store::PackageRange {
        workspace: ws.id,
        from: params.from,
        to: params.to,
    };
    let lines = state
        .reads
        .package(range, checkpoint)
        .map_ok(bytes::Bytes::from)
        .map_err(|e| {
            tracing::error!(error = %e, "audit package failed mid-way");
            std::io::Error::other("reading the package failed")
        });
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}
