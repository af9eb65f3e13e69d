//! People: register, log in (password, then TOTP or a recovery code when enabled), refresh and
//! log out, change password, enrol and disable TOTP, erase, export. Passwords, codes and tokens
//! are checked here with `infra::crypto`; the user aggregate keeps the rules that need history.
//! Personal data is sealed under the user's own key before it reaches an event.

use crate::execute::{Executed, Target};
use crate::{CommandContext, CommandError, Commands};
use adledger_domain::event::SecondFactor;
use adledger_domain::user::{self, Registered, Totp, User};
use adledger_domain::{
    Actor, DomainError, EventMetadata, RequestSource, Sealed, SessionId, UserId, WorkspaceId,
};
use adledger_infra::crypto::{
    self, hash_token, Claims, JwtKeys, MasterKeys, OpaqueToken, Opened, Sealer, TokenKind,
    TotpSecret,
};
use adledger_infra::identity::{IdentityStore, RefreshUse};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// How long credentials live. Defaults suit a web app; operators can shorten them.
#[derive(Debug, Clone, Copy)]
pub struct AuthPolicy {
    pub access_token_ttl: Duration,
    /// A session (and each of its refresh tokens) ends this long after login.
    pub session_ttl: Duration,
    pub invitation_ttl: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::minutes(15),
            session_ttl: Duration::days(30),
            invitation_ttl: Duration::days(7),
        }
    }
}

/// The keys identity needs: the master keys that wrap per-person keys, and the JWT signing keys.
#[derive(Clone)]
pub struct Keys {
    pub master: MasterKeys,
    pub jwt: JwtKeys,
}

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

/// Who a valid credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: UserId,
        session_id: SessionId,
    },
    ApiKey {
        api_key_id: adledger_domain::ApiKeyId,
        workspace_id: WorkspaceId,
        scope: adledger_domain::ApiKeyScope,
    },
}

impl Principal {
    pub fn actor(&self) -> Actor {
        match self {
            Principal::User { user_id, .. } => Actor::User { user_id: *user_id },
            Principal::ApiKey { api_key_id, .. } => Actor::ApiKey {
                api_key_id: *api_key_id,
            },
        }
    }
}

/// A TOTP enrolment in progress: shown once to the user.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// What adledger holds about a person, decrypted, for `GET /v1/me/export`.
#[derive(Debug, Clone)]
pub struct Profile {
    pub user_id: UserId,
    pub email: String,
    pub name: String,
    pub totp_enabled: bool,
}

/// The identity service: cheap to clone.
#[derive(Clone)]
pub struct Identity {
    pub(crate) commands: Commands,
    pub(crate) ids: IdentityStore,
    pub(crate) sealer: Sealer,
    pub(crate) jwt: JwtKeys,
    pub(crate) policy: AuthPolicy,
}

pub(crate) fn crypto_err(e: impl std::fmt::Display) -> CommandError {
    CommandError::Crypto(e.to_string())
}

fn invalid_login() -> CommandError {
    CommandError::Unauthenticated("invalid email or password".into())
}

/// Emails: trimmed, lowercased for comparison elsewhere, 3 to 254 characters, one `@` with text
/// on both sides, no spaces or control characters. Deliverability is the mail server's business.
pub fn parse_email(raw: &str) -> Result<String, DomainError> {
    let email = raw.trim();
    let bad = || DomainError::invalid("email", "must be an email address like name@example.com");
    if email.len() < 3 || email.len() > 254 {
        return Err(bad());
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match email.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@') =>
        {
            Ok(email.to_owned())
        }
        _ => Err(bad()),
    }
}

pub fn parse_name(raw: &str) -> Result<String, DomainError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(DomainError::invalid(
            "name",
            "must be 1 to 200 printable characters",
        ));
    }
    Ok(name.to_owned())
}

pub fn check_password(password: &str) -> Result<(), DomainError> {
    crypto::check_password_policy(password)
        .map_err(|e| DomainError::invalid("password", e.to_string()))
}

impl Identity {
    /// Identity over the store `commands` write to.
    pub fn new(commands: Commands, keys: Keys, policy: AuthPolicy) -> Self {
        let pool = commands.store.pool().clone();
        Self {
            commands,
            ids: IdentityStore::new(pool.clone()),
            sealer: Sealer::new(pool, keys.master),
            jwt: keys.jwt,
            policy,
        }
    }

    pub fn sealer(&self) -> &Sealer {
        &self.sealer
    }

    pub fn store(&self) -> &IdentityStore {
        &self.ids
    }

    pub fn commands(&self) -> &Commands {
        &self.commands
    }

    pub(crate) async fn seal(&self, subject: Uuid, text: &str) -> Result<Sealed, CommandError> {
        self.sealer
            .seal(subject, text)
            .await
            .map(Sealed)
            .map_err(crypto_err)
    }

    pub(crate) async fn reveal(&self, sealed: &Sealed) -> Result<Option<String>, CommandError> {
        match self
            .sealer
            .open(sealed.as_str())
            .await
            .map_err(crypto_err)?
        {
            Opened::Plain(text) | Opened::Revealed(text) => Ok(Some(text)),
            Opened::Erased => Ok(None),
        }
    }

    /// The request's metadata with its source (IP, user agent) sealed under the key of whoever
    /// acts, so that erasing them erases where they came from too.
    pub async fn seal_source(
        &self,
        mut ctx: CommandContext,
    ) -> Result<CommandContext, CommandError> {
        let Some(subject) = ctx.metadata.actor.data_subject() else {
            return Ok(ctx);
        };
        let RequestSource { ip, user_agent } = ctx.metadata.source;
        let mut sealed = RequestSource::default();
        if let Some(ip) = ip {
            sealed.ip = Some(self.seal(subject, &ip).await?.0);
        }
        if let Some(ua) = user_agent {
            sealed.user_agent = Some(self.seal(subject, &ua).await?.0);
        }
        ctx.metadata.source = sealed;
        Ok(ctx)
    }

    fn target<'a>(&self, user: UserId, metadata: &'a EventMetadata) -> Target<'a> {
        Target {
            stream: user.stream(),
            workspace: WorkspaceId::IDENTITY,
            metadata,
            idempotency: None,
        }
    }

    async fn decide(
        &self,
        user: UserId,
        metadata: &EventMetadata,
        command: user::Command,
    ) -> Result<(), CommandError> {
        match self
            .commands
            .execute::<User, _>(self.target(user, metadata), |state| {
                Ok((user::decide(state, &command)?, ()))
            })
            .await?
        {
            Executed::Decided(()) | Executed::Duplicate(_) => Ok(()),
        }
    }

    pub(crate) async fn load_user(&self, user: UserId) -> Result<Registered, CommandError> {
        let loaded = self
            .commands
            .load::<User>(&user.stream(), WorkspaceId::IDENTITY)
            .await?;
        loaded
            .state
            .active()
            .cloned()
            .ok_or(CommandError::NotFound("user"))
    }

    /// Registers a person; they act as themself from the first event on.
    pub async fn register(
        &self,
        ctx: &CommandContext,
        email: &str,
        name: &str,
        password: &str,
    ) -> Result<UserId, CommandError> {
        let email = parse_email(email)?;
        let name = parse_name(name)?;
        check_password(password)?;
        let user_id = UserId(Uuid::now_v7());
        if !self.ids.reserve_email(user_id, &email).await? {
            return Err(CommandError::EmailTaken);
        }
        let registered = async {
            let hash = crypto::hash_password(password).await.map_err(crypto_err)?;
            let subject = user_id.as_uuid();
            let command = user::Command::Register {
                user_id,
                email: self.seal(subject, &email).await?,
                name: self.seal(subject, &name).await?,
                password_hash: self.seal(subject, &hash).await?,
                at: ctx.now,
            };
            let mut ctx = ctx.clone();
            ctx.metadata.actor = Actor::User { user_id };
            let ctx = self.seal_source(ctx).await?;
            self.decide(user_id, &ctx.metadata, command).await
        }
        .await;
        if let Err(e) = registered {
            // The email is free again; the half-made user has no events.
            if let Err(release) = self.ids.release_email(user_id).await {
                tracing::error!(user_id = %user_id, error = %release, "could not release a reserved email");
            }
            return Err(e);
        }
        tracing::info!(user_id = %user_id, "user registered");
        Ok(user_id)
    }

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
        if let Some(until) = self.ids.login_locked_until(email).await? {
            return Err(locked(until, ctx.now));
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
            return Err(self.failed_login(email, ctx.now).await?);
        };
        let hash = self.reveal(&user.password_hash).await?.unwrap_or_default();
        if !crypto::verify_password(password, &hash)
            .await
            .map_err(crypto_err)?
        {
            return Err(self.failed_login(email, ctx.now).await?);
        }
        let second_factor = match (&user.totp, code) {
            (Totp::On { .. }, None) => return Err(CommandError::SecondFactorRequired),
            (Totp::On { .. }, Some(code)) => {
                match self.second_factor(&user, code, ctx.now).await? {
                    Some(factor) => Some(factor),
                    None => {
                        return Err(self.failed_login(email, ctx.now).await?);
                    }
                }
            }
            _ => None,
        };
        let session_id = SessionId(Uuid::now_v7());
        let mut ctx = ctx.clone();
        ctx.metadata.actor = Actor::User { user_id: user.id };
        let ctx = self.seal_source(ctx).await?;
        self.decide(
            user.id,
            &ctx.metadata,
            user::Command::RecordLogin {
                session_id,
                second_factor,
                at: ctx.now,
            },
        )
        .await
        .map_err(|e| match e {
            // A replayed code: the same answer as a wrong one.
            CommandError::Rejected(_) => CommandError::Unauthenticated("invalid code".into()),
            other => other,
        })?;
        self.ids.clear_login_failures(email).await?;
        self.ids
            .create_session(session_id, user.id, ctx.now + self.policy.session_ttl)
            .await?;
        tracing::info!(user_id = %user.id, session_id = %session_id.0, "logged in");
        self.issue(user.id, session_id, ctx.now).await
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

    /// Which second factor `code` is: a TOTP code of an unused step, or an unused recovery code.
    /// `None` when it is neither.
    async fn second_factor(
        &self,
        user: &Registered,
        code: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<SecondFactor>, CommandError> {
        let Totp::On {
            secret,
            recovery_code_hashes,
            used_recovery_codes,
        } = &user.totp
        else {
            return Ok(None);
        };
        let code = code.trim();
        if code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()) {
            let secret = self.totp_secret(secret).await?;
            return Ok(secret
                .verify_after(code, now, user.last_totp_step)
                .map(|step| SecondFactor::Totp { step }));
        }
        Ok(recovery_code_hashes
            .iter()
            .position(|h| crypto::verify_recovery_code(code, h))
            .filter(|index| !used_recovery_codes.contains(index))
            .map(|index| SecondFactor::RecoveryCode { index }))
    }

    async fn totp_secret(&self, sealed: &Sealed) -> Result<TotpSecret, CommandError> {
        let text = self
            .reveal(sealed)
            .await?
            .ok_or_else(|| crypto_err("the TOTP secret was erased"))?;
        TotpSecret::from_base32(&text).map_err(crypto_err)
    }

    async fn issue(
        &self,
        user: UserId,
        session: SessionId,
        now: DateTime<Utc>,
    ) -> Result<Tokens, CommandError> {
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
    pub async fn refresh(
        &self,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<Tokens, CommandError> {
        match self
            .ids
            .use_refresh_token(&hash_token(refresh_token.trim()))
            .await?
        {
            RefreshUse::Rotated {
                session_id,
                user_id,
            } => self.issue(user_id, session_id, now).await,
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
        self.decide(
            user,
            &ctx.metadata,
            user::Command::RecordLogout {
                session_id: session,
                at: ctx.now,
            },
        )
        .await
    }

    /// Changes the password after checking the current one; every other session ends.
    pub async fn change_password(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        session: SessionId,
        current: &str,
        new: &str,
    ) -> Result<(), CommandError> {
        check_password(new)?;
        let user = self.load_user(user_id).await?;
        let hash = self.reveal(&user.password_hash).await?.unwrap_or_default();
        if !crypto::verify_password(current, &hash)
            .await
            .map_err(crypto_err)?
        {
            return Err(CommandError::Rejected(DomainError::invalid(
                "current_password",
                "is not the current password",
            )));
        }
        let new_hash = crypto::hash_password(new).await.map_err(crypto_err)?;
        let password_hash = self.seal(user_id.as_uuid(), &new_hash).await?;
        self.decide(
            user_id,
            &ctx.metadata,
            user::Command::ChangePassword {
                password_hash,
                at: ctx.now,
            },
        )
        .await?;
        self.ids
            .revoke_sessions_of(user_id, Some(session), "password changed")
            .await?;
        Ok(())
    }

    /// Starts (or restarts) a TOTP enrolment: a new secret, shown once.
    pub async fn start_totp(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<TotpEnrolment, CommandError> {
        let user = self.load_user(user_id).await?;
        let label = self.reveal(&user.email).await?.unwrap_or_default();
        let secret = TotpSecret::generate().map_err(crypto_err)?;
        let encoded = secret.to_base32();
        let sealed = self.seal(user_id.as_uuid(), &encoded).await?;
        self.decide(
            user_id,
            &ctx.metadata,
            user::Command::StartTotpEnrolment {
                secret: sealed,
                at: ctx.now,
            },
        )
        .await?;
        Ok(TotpEnrolment {
            otpauth_uri: secret.otpauth_uri("adledger", &label),
            secret: encoded,
        })
    }

    /// Confirms the enrolment with a current code; answers the recovery codes, shown once.
    pub async fn confirm_totp(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        code: &str,
    ) -> Result<Vec<String>, CommandError> {
        let user = self.load_user(user_id).await?;
        let Totp::Pending { secret } = &user.totp else {
            return Err(CommandError::Rejected(DomainError::invalid(
                "code",
                "no two-factor enrolment is waiting for confirmation",
            )));
        };
        let secret = self.totp_secret(secret).await?;
        let step = secret
            .verify_after(code.trim(), ctx.now, user.last_totp_step)
            .ok_or_else(|| CommandError::Rejected(DomainError::invalid("code", "is not valid")))?;
        let codes = crypto::recovery_codes(10).map_err(crypto_err)?;
        self.decide(
            user_id,
            &ctx.metadata,
            user::Command::ConfirmTotp {
                step,
                recovery_code_hashes: codes.iter().map(|c| c.hash.clone()).collect(),
                at: ctx.now,
            },
        )
        .await?;
        Ok(codes.into_iter().map(|c| c.code).collect())
    }

    /// Turns TOTP off; needs a fresh code (or an unused recovery code).
    pub async fn disable_totp(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        code: &str,
    ) -> Result<(), CommandError> {
        let user = self.load_user(user_id).await?;
        let factor = self
            .second_factor(&user, code, ctx.now)
            .await?
            .ok_or_else(|| CommandError::Rejected(DomainError::invalid("code", "is not valid")))?;
        self.decide(
            user_id,
            &ctx.metadata,
            user::Command::DisableTotp {
                second_factor: factor,
                at: ctx.now,
            },
        )
        .await
    }

    pub async fn profile(&self, user_id: UserId) -> Result<Profile, CommandError> {
        let user = self.load_user(user_id).await?;
        Ok(Profile {
            user_id,
            email: self.reveal(&user.email).await?.unwrap_or_default(),
            name: self.reveal(&user.name).await?.unwrap_or_default(),
            totp_enabled: matches!(user.totp, Totp::On { .. }),
        })
    }

    /// A person who is the last owner of a workspace that has other members must hand it over
    /// first: erased, nobody could manage it any more. (Alone in a workspace, they may go.)
    async fn refuse_if_last_owner(&self, user_id: UserId) -> Result<(), CommandError> {
        for workspace in self.ids.workspaces_of(user_id).await? {
            let state = match self.workspace(workspace).await {
                Ok(state) => state,
                Err(CommandError::NotFound(_)) => continue,
                Err(other) => return Err(other),
            };
            let owners = state
                .members
                .values()
                .filter(|r| **r == adledger_domain::Role::Owner)
                .count();
            let last_owner =
                state.role_of(user_id) == Some(adledger_domain::Role::Owner) && owners == 1;
            if last_owner && state.members.len() > 1 {
                return Err(CommandError::Rejected(DomainError::invalid(
                    "user",
                    format!(
                        "the last owner of workspace {workspace} cannot be erased while it has \
                         other members; make one of them owner first"
                    ),
                )));
            }
        }
        Ok(())
    }

    /// Erases a person: records it, destroys their key (every sealed field of theirs, in every
    /// event, now reads as erased), and forgets their email and sessions. The log stays intact.
    pub async fn erase_user(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<(), CommandError> {
        self.refuse_if_last_owner(user_id).await?;
        self.decide(user_id, &ctx.metadata, user::Command::Erase { at: ctx.now })
            .await?;
        self.sealer
            .erase(user_id.as_uuid())
            .await
            .map_err(crypto_err)?;
        self.ids.forget_user(user_id).await?;
        tracing::info!(user_id = %user_id, "user erased");
        Ok(())
    }
}

fn locked(until: DateTime<Utc>, now: DateTime<Utc>) -> CommandError {
    CommandError::TooManyAttempts {
        retry_after_secs: (until - now).num_seconds().max(1) as u64,
    }
}
