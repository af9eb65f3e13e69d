//! People: registration, password changes, profiles and operators here; sessions (log in,
//! refresh, log out, access tokens), the second factor (TOTP, recovery codes) and erasure in their
//! own files. Passwords, codes and tokens are checked with `infra::crypto`; the user aggregate
//! keeps the rules that need history. Personal data is sealed under the person's own key before
//! it reaches an event.

mod erasure;
mod second_factor;
mod sessions;

pub use second_factor::TotpEnrolment;
pub use sessions::Tokens;

use crate::{CommandContext, CommandError, Commands, Target};
use adledger_domain::user::{
    self, EmailAddress, PasswordPolicy, PersonName, Registered, Totp, User,
};
use adledger_domain::{
    Actor, ApiKeyId, ApiKeyScope, RequestSource, Sealed, SessionId, UserId, WorkspaceId,
};
use adledger_infra::crypto::{self, JwtKeys, MasterKeys, Opened, Sealer};
use adledger_infra::identity::IdentityStore;
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

/// Who a valid credential belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    User {
        user_id: UserId,
        session_id: SessionId,
    },
    ApiKey {
        api_key_id: ApiKeyId,
        workspace_id: WorkspaceId,
        scope: ApiKeyScope,
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

/// 256 random bits as base64url text, for tokens handed out once (API keys, invitations).
pub(crate) fn random_secret(kind: crypto::TokenKind) -> Result<String, CommandError> {
    let token = crypto::OpaqueToken::generate(kind).map_err(crypto_err)?;
    Ok(token.expose()[kind.prefix().len()..].to_owned())
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

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.commands.now()
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
        let seal = |text: String| async move {
            match self.sealer.seal(subject, &text).await {
                Ok(sealed) => Ok(sealed),
                // Erased while its request was under way (a person, or an API key of theirs
                // revoked with them): the credential is gone, not the server.
                Err(crypto::CryptoError::SubjectErased(_)) => Err(CommandError::Unauthenticated(
                    "this credential's holder was erased".into(),
                )),
                Err(other) => Err(crypto_err(other)),
            }
        };
        let mut sealed = RequestSource::default();
        if let Some(ip) = ip {
            sealed.ip = Some(seal(ip).await?);
        }
        if let Some(ua) = user_agent {
            sealed.user_agent = Some(seal(ua).await?);
        }
        ctx.metadata.source = sealed;
        Ok(ctx)
    }

    /// `ctx` acting as `user` (registration and login act as the person they are about), with
    /// the request's source sealed under their key.
    async fn as_user(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
    ) -> Result<CommandContext, CommandError> {
        let mut ctx = ctx.clone();
        ctx.metadata.actor = Actor::User { user_id };
        self.seal_source(ctx).await
    }

    /// Decides `command` on the user's stream.
    async fn decide(
        &self,
        ctx: &CommandContext,
        user: UserId,
        command: user::Command,
    ) -> Result<(), CommandError> {
        let target = Target::<User>::new(&ctx.metadata, WorkspaceId::IDENTITY, user.stream());
        self.commands.decide(target, &command).await.map(|_| ())
    }

    pub(crate) async fn load_user(&self, user: UserId) -> Result<Registered, CommandError> {
        let loaded = self
            .commands
            .load::<User>(WorkspaceId::IDENTITY, &user.stream())
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
        let email = EmailAddress::parse(email)?;
        let name = PersonName::parse(name)?;
        PasswordPolicy::check(password, "password")?;
        let user_id = UserId(Uuid::now_v7());
        if !self.ids.reserve_email(user_id, email.as_str()).await? {
            return Err(CommandError::EmailTaken);
        }
        let registered = async {
            let hash = crypto::hash_password(password).await.map_err(crypto_err)?;
            let subject = user_id.as_uuid();
            let command = user::Command::Register {
                user_id,
                email: self.seal(subject, email.as_str()).await?,
                name: self.seal(subject, name.as_str()).await?,
                password_hash: self.seal(subject, &hash).await?,
            };
            let ctx = self.as_user(ctx, user_id).await?;
            self.decide(&ctx, user_id, command).await
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

    /// Changes the password after checking the current one; every other session ends.
    pub async fn change_password(
        &self,
        ctx: &CommandContext,
        user_id: UserId,
        session: SessionId,
        current: &str,
        new: &str,
    ) -> Result<(), CommandError> {
        PasswordPolicy::check(new, "new_password")?;
        let user = self.load_user(user_id).await?;
        let hash = self.reveal(&user.password_hash).await?.unwrap_or_default();
        if !crypto::verify_password(current, &hash)
            .await
            .map_err(crypto_err)?
        {
            return Err(CommandError::Rejected(
                adledger_domain::DomainError::invalid(
                    "current_password",
                    "is not the current password",
                ),
            ));
        }
        let new_hash = crypto::hash_password(new).await.map_err(crypto_err)?;
        let password_hash = self.seal(user_id.as_uuid(), &new_hash).await?;
        self.decide(
            ctx,
            user_id,
            user::Command::ChangePassword { password_hash },
        )
        .await?;
        self.ids
            .revoke_sessions_of(user_id, Some(session), "password changed")
            .await?;
        Ok(())
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

    /// Makes the person with this email an operator (`grant`) or no longer one: they may then use
    /// (or no longer use) the deployment-wide routes. Answers their id.
    pub async fn set_operator(
        &self,
        ctx: &CommandContext,
        email: &str,
        grant: bool,
    ) -> Result<UserId, CommandError> {
        let email = EmailAddress::parse(email)?;
        let user_id = self
            .ids
            .user_by_email(email.as_str())
            .await?
            .ok_or(CommandError::NotFound("user"))?;
        let command = if grant {
            user::Command::GrantOperator
        } else {
            user::Command::RevokeOperator
        };
        self.decide(ctx, user_id, command).await?;
        tracing::info!(user_id = %user_id, operator = grant, "operator role changed");
        Ok(user_id)
    }
}
