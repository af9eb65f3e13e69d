//! The second factor: TOTP enrolment (a secret shown once, confirmed by a first code, ten
//! single-use recovery codes), disabling it with a fresh code, and telling which factor a code
//! presented at login is. That a code is used once is the user aggregate's rule.

use super::{crypto_err, Identity};
use crate::{CommandContext, CommandError};
use adledger_domain::event::SecondFactor;
use adledger_domain::user::{self, Registered, Totp};
use adledger_domain::{DomainError, Sealed, UserId};
use adledger_infra::crypto::{self, TotpSecret};

/// A TOTP enrolment in progress: shown once to the user.
#[derive(Debug, Clone)]
pub struct TotpEnrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

fn invalid_code() -> CommandError {
    CommandError::Rejected(DomainError::invalid("code", "is not valid"))
}

impl Identity {
    /// Which second factor `code` is: a TOTP code of an unused step, or an unused recovery code.
    /// `None` when it is neither.
    pub(super) async fn second_factor(
        &self,
        user: &Registered,
        code: &str,
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
                .verify_after(code, self.now(), user.last_totp_step)
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
            ctx,
            user_id,
            user::Command::StartTotpEnrolment { secret: sealed },
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
            .verify_after(code.trim(), self.now(), user.last_totp_step)
            .ok_or_else(invalid_code)?;
        let codes = crypto::recovery_codes(10).map_err(crypto_err)?;
        let command = user::Command::ConfirmTotp {
            step,
            recovery_code_hashes: codes.iter().map(|c| c.hash.clone()).collect(),
        };
        self.decide(ctx, user_id, command).await?;
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
        let second_factor = self
            .second_factor(&user, code)
            .await?
            .ok_or_else(invalid_code)?;
        self.decide(ctx, user_id, user::Command::DisableTotp { second_factor })
            .await
    }
}
