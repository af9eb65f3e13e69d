//! Connecting ad platforms through OAuth: which platforms this server can connect, starting an
//! authorization, and the callback the platform redirects to. Disconnecting is a connection's
//! route (`crate::connections`).

use crate::access::{InWorkspace, ManageConnections};
use crate::caller::{Caller, Request};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiQuery, InPath};
use crate::responses::{Forbidden, NotFound, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_domain::{Actor, ConnectionId, Platform};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_platforms))
        .routes(routes!(authorize))
        .routes(routes!(callback))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformInfo {
    #[schema(schema_with = crate::schemas::platform)]
    pub platform: String,
    /// Whether this server has the platform's credentials (the sandbox needs none).
    pub configured: bool,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct Authorize {
    /// Reconnect this existing connection (after `needs_reauth`) instead of creating one.
    pub connection_id: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationStarted {
    /// Send the person here; the platform redirects back to the callback.
    pub authorization_url: String,
    /// The authorization must be completed before this time.
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackParams {
    /// The `state` adledger sent to the platform (single use).
    #[param(required = true)]
    state: Option<String>,
    /// The authorization code (Meta, Google).
    code: Option<String>,
    /// The authorization code as TikTok names it.
    auth_code: Option<String>,
    /// Set by the platform when the person declined.
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Connected {
    pub workspace_id: Uuid,
    pub connection_id: Uuid,
    pub platform: String,
}

/// The platforms this server can connect.
#[utoipa::path(get, path = "/v1/platforms", tag = "connections",
    responses((status = 200, body = Vec<PlatformInfo>), Unauthenticated, RateLimited))]
async fn list_platforms(State(state): State<AppState>, _caller: Caller) -> Json<Vec<PlatformInfo>> {
    Json(
        state
            .commands
            .platforms()
            .into_iter()
            .map(|(p, configured)| PlatformInfo {
                platform: p.as_str().into(),
                configured,
            })
            .collect(),
    )
}

/// Start connecting an ad platform: answers the platform's consent URL, with a single-use,
/// expiring `state` bound to this workspace and you (and PKCE where the platform supports it).
/// A connection made through OAuth belongs to the person who granted access: API keys get 403.
#[utoipa::path(post, path = "/v1/workspaces/{workspace_id}/connections/{platform}/authorize", tag = "connections",
    params(("workspace_id" = Uuid, Path), ("platform" = String, Path, description = "meta, google or tiktok")),
    request_body(content = Authorize, description = "Optional: the connection to reconnect"),
    responses((status = 200, body = AuthorizationStarted),
              (status = 422, description = "Not configured on this server", body = Problem, content_type = "application/problem+json"),
              Unauthenticated, Forbidden, NotFound, RateLimited))]
async fn authorize(
    State(state): State<AppState>,
    ws: InWorkspace<ManageConnections>,
    InPath(platform): InPath<Platform>,
    body: axum::body::Bytes,
) -> Result<Json<AuthorizationStarted>, ApiError> {
    let user = ws.member()?;
    // The body is optional: empty means a new connection.
    let body: Authorize = if body.iter().all(u8::is_ascii_whitespace) {
        Authorize::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid("body", e.to_string()))?
    };
    let started = state
        .commands
        .begin_authorization(ws.id, user, platform, body.connection_id.map(ConnectionId))
        .await?;
    Ok(Json(AuthorizationStarted {
        authorization_url: started.url,
        expires_at: started.expires_at,
    }))
}

/// Where the platform sends the person back. The `state` is the credential: it names the
/// workspace and the person who started the authorization, and works once.
#[utoipa::path(get, path = "/v1/oauth/{platform}/callback", tag = "connections",
    security(()),
    params(("platform" = String, Path, description = "meta, google or tiktok"), CallbackParams),
    responses((status = 201, body = Connected),
              (status = 404, description = "Unknown, used or expired state", body = Problem, content_type = "application/problem+json"),
              (status = 422, description = "Declined, or no code", body = Problem, content_type = "application/problem+json"),
              (status = 502, description = "The platform refused the code", body = Problem, content_type = "application/problem+json"),
              RateLimited))]
async fn callback(
    State(state): State<AppState>,
    Request(request): Request,
    InPath(platform): InPath<Platform>,
    ApiQuery(params): ApiQuery<CallbackParams>,
) -> Result<(StatusCode, Json<Connected>), ApiError> {
    let state_text = params
        .state
        .ok_or_else(|| ApiError::invalid("state", "is missing"))?;
    // Spent first, so that a declined or failed authorization cannot be retried with it.
    let authorization = state.commands.take_authorization(&state_text).await?;
    if authorization.platform != platform {
        return Err(ApiError::NotFound("authorization".into()));
    }
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or_default();
        return Err(ApiError::invalid(
            "error",
            format!("the platform reported {error:?}: {detail}"),
        ));
    }
    let code = params
        .code
        .or(params.auth_code)
        .ok_or_else(|| ApiError::invalid("code", "is missing"))?;
    // The person who started the authorization acts, though the platform's redirect carries no
    // credential of theirs: the single-use state stands for them.
    let ctx = request.context_of(Actor::User {
        user_id: authorization.user_id,
    });
    let ctx = state.identity.seal_source(ctx).await?;
    let connection = state
        .commands
        .complete_authorization(&ctx, &authorization, &code)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Connected {
            workspace_id: authorization.workspace_id.as_uuid(),
            connection_id: connection.as_uuid(),
            platform: platform.as_str().into(),
        }),
    ))
}
