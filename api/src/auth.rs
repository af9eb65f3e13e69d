//! Accounts and sessions: register, log in, refresh, log out, and the signed-in person's own
//! resources under `/v1/me` (profile, password, TOTP, data export, erasure).

use crate::access::Person;
use crate::caller::Request;
use crate::error::{ApiError, FieldError, Problem};
use crate::extract::ApiJson;
use crate::responses::{Forbidden, Invalid, Malformed, RateLimited, Unauthenticated};
use crate::AppState;
use adledger_commands::identity::Tokens;
use adledger_domain::user::{EmailAddress, PasswordPolicy, PersonName};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(me, erase_me))
        .routes(routes!(change_password))
        .routes(routes!(start_totp))
        .routes(routes!(confirm_totp))
        .routes(routes!(disable_totp))
        .routes(routes!(export))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Register {
    #[schema(schema_with = crate::schemas::email)]
    pub email: String,
    #[schema(schema_with = crate::schemas::name)]
    pub name: String,
    #[schema(schema_with = crate::schemas::new_password)]
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user_id: Uuid,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Login {
    pub email: String,
    pub password: String,
    /// A TOTP code or a recovery code, once two-factor authentication is on.
    pub code: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Refresh {
    pub refresh_token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Single use: each refresh answers a new one. Using one twice ends the session.
    pub refresh_token: String,
}

impl From<Tokens> for TokenPair {
    fn from(t: Tokens) -> Self {
        Self {
            access_token: t.access_token,
            token_type: "Bearer".into(),
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub totp_enabled: bool,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct ChangePassword {
    pub current_password: String,
    #[schema(schema_with = crate::schemas::new_password)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// Base32 secret, for entering by hand.
    pub secret: String,
    /// For QR codes in authenticator apps.
    pub otpauth_uri: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct Code {
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Single-use codes for when the authenticator is lost. Shown once.
    pub recovery_codes: Vec<String>,
}

/// Create an account.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Register,
    security(()),
    responses((status = 201, body = Registered),
              (status = 409, description = "Email taken", body = Problem, content_type = "application/problem+json"),
              Malformed, Invalid, RateLimited))]
async fn register(
    State(state): State<AppState>,
    Request(request): Request,
    ApiJson(body): ApiJson<Register>,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    // Every invalid field at once, not the first one only.
    let errors: Vec<FieldError> = [
        EmailAddress::parse(&body.email).err(),
        PersonName::parse(&body.name).err(),
        PasswordPolicy::check(&body.password, "password").err(),
    ]
    .into_iter()
    .flatten()
    .filter_map(|e| match e {
        adledger_domain::DomainError::Invalid { field, reason } => {
            Some(FieldError::new(field, reason))
        }
        _ => None,
    })
    .collect();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let user = state
        .identity
        .register(
            &request.anonymous_context(),
            &body.email,
            &body.name,
            &body.password,
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user_id: user.as_uuid(),
        }),
    ))
}

/// Log in. Unknown emails and wrong passwords get the same answer; repeated failures lock the
/// email for a while (429 with `Retry-After`).
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    security(()),
    responses((status = 200, body = TokenPair),
              (status = 401, description = "Wrong credentials, or a second factor is required (type `second-factor-required`)", body = Problem, content_type = "application/problem+json"),
              Malformed, Invalid, RateLimited))]
async fn login(
    State(state): State<AppState>,
    Request(request): Request,
    ApiJson(body): ApiJson<Login>,
) -> Result<Json<TokenPair>, ApiError> {
    let tokens = state
        .identity
        .login(
            &request.anonymous_context(),
            &body.email,
            &body.password,
            body.code.as_deref(),
        )
        .await?;
    Ok(Json(tokens.into()))
}

/// Trade a refresh token for a new pair.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = Refresh,
    security(()),
    responses((status = 200, body = TokenPair),
              (status = 401, description = "Invalid, expired, or reused (type `refresh-token-reused`: the session was revoked)", body = Problem, content_type = "application/problem+json"),
              Malformed, Invalid, RateLimited))]
async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Refresh>,
) -> Result<Json<TokenPair>, ApiError> {
    let tokens = state.identity.refresh(&body.refresh_token).await?;
    Ok(Json(tokens.into()))
}

/// End the current session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth",
    responses((status = 204), Unauthenticated, Forbidden, RateLimited))]
async fn logout(State(state): State<AppState>, person: Person) -> Result<StatusCode, ApiError> {
    state
        .identity
        .logout(&person.context(&state).await?, person.user, person.session)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The signed-in person.
#[utoipa::path(get, path = "/v1/me", tag = "auth",
    responses((status = 200, body = Me), Unauthenticated, Forbidden, RateLimited))]
async fn me(State(state): State<AppState>, person: Person) -> Result<Json<Me>, ApiError> {
    let profile = state.identity.profile(person.user).await?;
    Ok(Json(Me {
        user_id: profile.user_id.as_uuid(),
        email: profile.email,
        name: profile.name,
        totp_enabled: profile.totp_enabled,
    }))
}

/// Erase yourself: your personal data in every event becomes unreadable (the log stays intact
/// and verifiable), your email is forgotten and every session ends.
#[utoipa::path(delete, path = "/v1/me", tag = "auth",
    responses((status = 204), Unauthenticated, Forbidden, Invalid, RateLimited))]
async fn erase_me(State(state): State<AppState>, person: Person) -> Result<StatusCode, ApiError> {
    state
        .identity
        .erase_user(&person.context(&state).await?, person.user)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change your password; every other session ends.
#[utoipa::path(post, path = "/v1/me/password", tag = "auth", request_body = ChangePassword,
    responses((status = 204), Malformed, Unauthenticated, Forbidden, Invalid, RateLimited))]
async fn change_password(
    State(state): State<AppState>,
    person: Person,
    ApiJson(body): ApiJson<ChangePassword>,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .change_password(
            &person.context(&state).await?,
            person.user,
            person.session,
            &body.current_password,
            &body.new_password,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start two-factor enrolment: a new TOTP secret, to confirm with a code.
#[utoipa::path(post, path = "/v1/me/totp", tag = "auth",
    responses((status = 200, body = TotpEnrolment),
              (status = 409, description = "Already enabled", body = Problem, content_type = "application/problem+json"),
              Unauthenticated, Forbidden, RateLimited))]
async fn start_totp(
    State(state): State<AppState>,
    person: Person,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let enrolment = state
        .identity
        .start_totp(&person.context(&state).await?, person.user)
        .await?;
    Ok(Json(TotpEnrolment {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

/// Confirm enrolment with a current code; answers the recovery codes (shown once).
#[utoipa::path(post, path = "/v1/me/totp/confirm", tag = "auth", request_body = Code,
    responses((status = 200, body = RecoveryCodes),
              Malformed, Unauthenticated, Forbidden, Invalid, RateLimited))]
async fn confirm_totp(
    State(state): State<AppState>,
    person: Person,
    ApiJson(body): ApiJson<Code>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let recovery_codes = state
        .identity
        .confirm_totp(&person.context(&state).await?, person.user, &body.code)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// Turn two-factor authentication off; needs a fresh code or an unused recovery code.
#[utoipa::path(post, path = "/v1/me/totp/disable", tag = "auth", request_body = Code,
    responses((status = 204), Malformed, Unauthenticated, Forbidden, Invalid, RateLimited))]
async fn disable_totp(
    State(state): State<AppState>,
    person: Person,
    ApiJson(body): ApiJson<Code>,
) -> Result<StatusCode, ApiError> {
    state
        .identity
        .disable_totp(&person.context(&state).await?, person.user, &body.code)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Everything adledger holds about you (data subject access): profile, memberships, sessions,
/// and your own events and audit entries with their personal fields decrypted.
#[utoipa::path(get, path = "/v1/me/export", tag = "auth",
    responses((status = 200, description = "A JSON document"), Unauthenticated, Forbidden, RateLimited))]
async fn export(
    State(state): State<AppState>,
    person: Person,
) -> Result<Json<serde_json::Value>, ApiError> {
    Ok(Json(crate::personal::export(&state, person.user).await?))
}
