//! Personal data on the way out: sealed values in events and audit rows are opened for the
//! reader (or shown as `[erased]` once their subject's key is gone), and `GET /v1/me/export`
//! gathers everything adledger holds about the caller.

use crate::error::ApiError;
use crate::AppState;
use adledger_domain::UserId;
use adledger_infra::crypto::{is_sealed, Sealer};
use adledger_infra::LogFilter;
use serde_json::{json, Value};

/// Replaces every sealed string inside `values` by its plaintext, or by `[erased]`.
pub async fn reveal(sealer: &Sealer, values: &mut [Value]) -> Result<(), ApiError> {
    sealer
        .reveal_json(values)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Opens optional sealed fields (audit rows' IP and user agent) in one batch: one key lookup
/// for a whole page, not one per field.
pub async fn reveal_fields<'a>(
    sealer: &Sealer,
    fields: impl IntoIterator<Item = &'a mut Option<String>>,
) -> Result<(), ApiError> {
    let mut slots: Vec<&mut String> = fields
        .into_iter()
        .filter_map(|f| f.as_mut().filter(|t| is_sealed(t)))
        .collect();
    let mut values: Vec<Value> = slots
        .iter_mut()
        .map(|t| Value::String(std::mem::take(*t)))
        .collect();
    reveal(sealer, &mut values).await?;
    for (slot, value) in slots.into_iter().zip(values) {
        if let Value::String(opened) = value {
            *slot = opened;
        }
    }
    Ok(())
}

/// Everything adledger holds about `user`: the profile, memberships, sessions, the user's own
/// events and every audit entry where they acted, with personal fields opened.
pub async fn export(state: &AppState, user: UserId) -> Result<Value, ApiError> {
    let identity = &state.identity;
    let profile = identity.profile(user).await?;
    let pool = state.reads.pool();
    let memberships =
        adledger_projections::catalog::memberships_of(pool, user, None, i64::MAX).await?;
    let sessions = identity.store().sessions_of(user).await?;
    let filter = LogFilter {
        after: 0,
        up_to: None,
        workspace_id: None,
        stream_id: Some(user.stream()),
        limit: 100_000,
    };
    let events = state.reads.read_log(&filter).await?;
    let mut events: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).map_err(|e| ApiError::Internal(e.to_string())))
        .collect::<Result<_, _>>()?;
    reveal(identity.sealer(), &mut events).await?;
    let mut audit = adledger_projections::audit::audit_of_user(pool, user).await?;
    let fields = audit
        .iter_mut()
        .flat_map(|e| [&mut e.ip, &mut e.user_agent]);
    reveal_fields(identity.sealer(), fields).await?;
    Ok(json!({
        "profile": {
            "user_id": profile.user_id,
            "email": profile.email,
            "name": profile.name,
            "totp_enabled": profile.totp_enabled,
        },
        "memberships": memberships.iter().map(|m| json!({
            "workspace_id": m.workspace_id,
            "workspace_name": m.workspace_name,
            "role": m.role,
            "joined_at": m.joined_at,
        })).collect::<Vec<_>>(),
        "sessions": sessions.iter().map(|s| json!({
            "session_id": s.session_id.0,
            "created_at": s.created_at,
            "expires_at": s.expires_at,
            "revoked_at": s.revoked_at,
        })).collect::<Vec<_>>(),
        "events": events,
        "audit": audit.iter().map(|a| json!({
            "position": a.position,
            "action": a.action,
            "stream_id": a.stream_id,
            "ip": a.ip,
            "user_agent": a.user_agent,
            "request_id": a.request_id,
            "occurred_at": a.occurred_at,
        })).collect::<Vec<_>>(),
    }))
}
