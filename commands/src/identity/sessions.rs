//! Sessions: log in (password, then TOTP or a recovery code when enabled), refresh, log out, and
//! the access tokens every request presents. Unknown emails and wrong passwords get the same
//! answer after the same work, and both count towards the email's lock-out.

use super::{crypto_err, Identity, Principal};
use crate::{CommandContext, CommandError};
use adledger_domain::user::{self, Totp};
use adledger_domain::{SessionId, UserId};
use adledger_infra::crypto::{self, hash_token, Claims, OpaqueToken, TokenKind};
use adledger_infra::identity::RefreshUse;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// What a login or a refresh hands out. Its Debug form hides the tokens.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub session_id: SessionId,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("expires_in", &self.expires_in)
            .field("session_id", &self.session_id)
            .finish()
    }
}

fn invalid_login() -> CommandError {
    CommandError::Unauthenticated("invalid email or password".into())
}

fn locked(until: DateTime<Utc>, now: DateTime<Utc>) -> CommandError {
    CommandError::TooManyAttempts {
        retry_after_secs: (until - now).num_seconds().max(1) as u64,
    }
}

impl Identity {
    /// Logs in with email and password, plus a TOTP or recovery code when TOTP is on. Unknown
    /// emails and wrong passwords get the same answer after the same work (a dummy hash is
    /// verified), and both count towards the email's lock-out.
    pub async fn login(
        &self,
        ctx: &CommandContext,
        email: &str,
        password: &str,
        code: Option<&str>,
    ) -> Result<Tokens, CommandError> {
        let email = email.trim();
        let now = self.now();
        if let Some(until) = self.ids.login_locked_until(email).await? {
            return Err(locked(until, now));
        }
        let user = match self.ids.user_by_email(email).await? {
            Some(id) => match self.load_user(id).await {
                Ok(user) => Some(user),
                // Erased meanwhile: the same answer as an unknown email.
                Err(CommandError::NotFound(_)) => None,
                Err(other) => return Err(other),
            },
            None => None,
        };
        let Some(user) = user else {
            crypto::verify_dummy(password).await;
            return Err(self.failed_login(email, now).await?);
        };
        let hash = self.reveal(&user.password_hash).await?.unwrap_or_default();
        if !crypto::verify_password(password, &hash)
            .await
            .map_err(crypto_err)?
        {
            return Err(self.failed_login(email, now).await?);
        }
        let second_factor = match (&user.totp, code) {
            (Totp::On { .. }, None) => return Err(CommandError::SecondFactorRequired),
            (Totp::On { .. }, Some(code)) => match self.second_factor(&user, code).await? {
                Some(factor) => Some(factor),
                None => return Err(self.failed_login(email, now).await?),
            },
            _ => None,
        };
        let session_id = SessionId(Uuid::now_v7());
        let ctx = self.as_user(ctx, user.id).await?;
        let command = user::Command::RecordLogin {
            session_id,
            second_factor,
        };
        self.decide(&ctx, user.id, command)
            .await
            .map_err(|e| match e {
                // A replayed code: the same answer as a wrong one.
                CommandError::Rejected(_) => CommandError::Unauthenticated("invalid code".into()),
                other => other,
            })?;
        self.ids.clear_login_failures(email).await?;
        self.ids
            .create_session(session_id, user.id, now + self.policy.session_ttl)
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session_id.0, "logged in");
        self.issue(user.id, session_id).await
    }

    async fn failed_login(
        &self,
        email: &str,
        now: DateTime<Utc>,
    ) -> Result<CommandError, CommandError> {
        Ok(match self.ids.record_login_failure(email).await? {
            Some(until) => locked(until, now),
            None => invalid_login(),
        })
    }

    async fn issue(&self, user: UserId, session: SessionId) -> Result<Tokens, CommandError> {
        let now = self.now();
        let claims = Claims::new(user.as_uuid(), session.0, now, self.policy.access_token_ttl);
        let access_token = self.jwt.issue(&claims).map_err(crypto_err)?;
        let refresh = OpaqueToken::generate(TokenKind::Refresh).map_err(crypto_err)?;
        self.ids
            .issue_refresh_token(&refresh.hash(), session, now + self.policy.session_ttl)
            .await?;
        Ok(Tokens {
            access_token,
            expires_in: self.policy.access_token_ttl.num_seconds(),
            refresh_token: refresh.expose().to_owned(),
            session_id: session,
        })
    }

    /// Trades a refresh token for a new pair. Each token works once; a second use revokes the
    /// session it belongs to, for whoever holds any of its tokens.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, CommandError> {
        match self
            .ids
            .use_refresh_token(&hash_token(refresh_token.trim()))
            .await?
        {
            RefreshUse::Rotated {
                session_id,
                user_id,
            } => self.issue(user_id, session_id).await,
            RefreshUse::Reused => {
                tracing::warn!("a used refresh token was presented again; its session is revoked");
                Err(CommandError::RefreshTokenReused)
            }
            RefreshUse::Invalid => Err(CommandError::Unauthenticated(
                "the refresh token is invalid or expired".into(),
            )),
        }
    }

    /// The principal behind an access token, if the token is valid and its session lives.
    pub async fn authenticate_access_token(&self, token: &str) -> Result<Principal, CommandError> {
        let claims = self
            .jwt
            .verify(token)
            .map_err(|e| CommandError::Unauthenticated(format!("invalid access token: {e}")))?;
        let user_id = UserId(claims.sub);
        let session_id = SessionId(claims.sid);
        if !self.ids.session_is_live(session_id, user_id).await? {
            return Err(CommandError::Unauthenticated(
                "the session has ended; log in again".into(),
            ));
        }
        Ok(Principal::User {
            user_id,
            session_id,
        })
    }

    pub async fn logout(
        &self,
        ctx: &CommandContext,
        user: UserId,
        session: SessionId,
    ) -> Result<(), CommandError> {
        self.ids.revoke_session(session, "logged out").await?;
        let command = user::Command::RecordLogout {
            session_id: session,
        };
        self.decide(ctx, user, command).await
    }
}
