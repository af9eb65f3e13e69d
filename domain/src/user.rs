//! The user aggregate: a person's credentials and second factor as facts. Passwords and codes
//! are checked by the command side (hashing and clocks are I/O); this module keeps the rules that
//! need history: a TOTP step or a recovery code is used at most once, TOTP is required once
//! enabled, and an erased user does nothing more.

use crate::event::{
    Decided, PasswordChanged, SecondFactor, TotpDisabled, TotpEnabled, TotpEnrolmentStarted,
    UserErased, UserLoggedIn, UserLoggedOut, UserRegistered,
};
use crate::{DomainError, DomainEvent, Sealed, SessionId, UserId};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Totp {
    Off,
    /// A secret was issued; a code from it must confirm before it is required at login.
    Pending {
        secret: Sealed,
    },
    On {
        secret: Sealed,
        recovery_code_hashes: Vec<String>,
        used_recovery_codes: BTreeSet<usize>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub id: UserId,
    pub email: Sealed,
    pub name: Sealed,
    pub password_hash: Sealed,
    pub totp: Totp,
    /// The newest TOTP time step used; codes of this step or older are refused (no replay).
    pub last_totp_step: Option<u64>,
    pub erased: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User(pub Option<Registered>);

impl User {
    /// The user, unless they never existed or were erased.
    pub fn active(&self) -> Option<&Registered> {
        self.0.as_ref().filter(|u| !u.erased)
    }
}

#[derive(Debug, Clone)]
pub enum Command {
    Register {
        user_id: UserId,
        email: Sealed,
        name: Sealed,
        password_hash: Sealed,
        at: DateTime<Utc>,
    },
    /// The password was verified; `second_factor` is the verified code when TOTP is on.
    RecordLogin {
        session_id: SessionId,
        second_factor: Option<SecondFactor>,
        at: DateTime<Utc>,
    },
    RecordLogout {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    ChangePassword {
        password_hash: Sealed,
        at: DateTime<Utc>,
    },
    StartTotpEnrolment {
        secret: Sealed,
        at: DateTime<Utc>,
    },
    /// A code of the pending secret was verified at `step`.
    ConfirmTotp {
        step: u64,
        recovery_code_hashes: Vec<String>,
        at: DateTime<Utc>,
    },
    DisableTotp {
        second_factor: SecondFactor,
        at: DateTime<Utc>,
    },
    Erase {
        at: DateTime<Utc>,
    },
}

fn active(state: &User) -> Result<&Registered, DomainError> {
    state.active().ok_or(DomainError::NotFound("user"))
}

/// Refuses a second factor that was used before (or that does not exist).
fn check_unused(user: &Registered, factor: &SecondFactor) -> Result<(), DomainError> {
    match factor {
        SecondFactor::Totp { step } => {
            if user.last_totp_step.is_some_and(|last| *step <= last) {
                return Err(DomainError::invalid(
                    "code",
                    "this code was already used; wait for the next one",
                ));
            }
        }
        SecondFactor::RecoveryCode { index } => match &user.totp {
            Totp::On {
                recovery_code_hashes,
                used_recovery_codes,
                ..
            } if *index < recovery_code_hashes.len() => {
                if used_recovery_codes.contains(index) {
                    return Err(DomainError::invalid(
                        "code",
                        "this recovery code was already used",
                    ));
                }
            }
            _ => return Err(DomainError::invalid("code", "no such recovery code")),
        },
    }
    Ok(())
}

pub fn decide(state: &User, command: &Command) -> Result<Vec<Decided>, DomainError> {
    let one = |event, at: &DateTime<Utc>| {
        Ok(vec![Decided {
            event,
            occurred_at: *at,
        }])
    };
    match command {
        Command::Register {
            user_id,
            email,
            name,
            password_hash,
            at,
        } => {
            if state.0.is_some() {
                return Err(DomainError::AlreadyExists("user"));
            }
            one(
                DomainEvent::UserRegistered(UserRegistered {
                    user_id: *user_id,
                    email: email.clone(),
                    name: name.clone(),
                    password_hash: password_hash.clone(),
                }),
                at,
            )
        }
        Command::RecordLogin {
            session_id,
            second_factor,
            at,
        } => {
            let user = active(state)?;
            match (&user.totp, second_factor) {
                (Totp::On { .. }, None) => {
                    return Err(DomainError::invalid("code", "a second factor is required"))
                }
                (Totp::On { .. }, Some(factor)) => check_unused(user, factor)?,
                (_, Some(_)) => {
                    return Err(DomainError::invalid(
                        "code",
                        "two-factor authentication is not enabled",
                    ))
                }
                (_, None) => {}
            }
            one(
                DomainEvent::UserLoggedIn(UserLoggedIn {
                    user_id: user.id,
                    session_id: *session_id,
                    second_factor: *second_factor,
                }),
                at,
            )
        }
        Command::RecordLogout { session_id, at } => {
            let user = active(state)?;
            one(
                DomainEvent::UserLoggedOut(UserLoggedOut {
                    user_id: user.id,
                    session_id: *session_id,
                }),
                at,
            )
        }
        Command::ChangePassword { password_hash, at } => {
            let user = active(state)?;
            one(
                DomainEvent::PasswordChanged(PasswordChanged {
                    user_id: user.id,
                    password_hash: password_hash.clone(),
                }),
                at,
            )
        }
        Command::StartTotpEnrolment { secret, at } => {
            let user = active(state)?;
            if matches!(user.totp, Totp::On { .. }) {
                return Err(DomainError::AlreadyExists("two-factor authentication"));
            }
            one(
                DomainEvent::TotpEnrolmentStarted(TotpEnrolmentStarted {
                    user_id: user.id,
                    secret: secret.clone(),
                }),
                at,
            )
        }
        Command::ConfirmTotp {
            step,
            recovery_code_hashes,
            at,
        } => {
            let user = active(state)?;
            if !matches!(user.totp, Totp::Pending { .. }) {
                return Err(DomainError::invalid(
                    "code",
                    "no two-factor enrolment is waiting for confirmation",
                ));
            }
            check_unused(user, &SecondFactor::Totp { step: *step })?;
            one(
                DomainEvent::TotpEnabled(TotpEnabled {
                    user_id: user.id,
                    step: *step,
                    recovery_code_hashes: recovery_code_hashes.clone(),
                }),
                at,
            )
        }
        Command::DisableTotp { second_factor, at } => {
            let user = active(state)?;
            if !matches!(user.totp, Totp::On { .. }) {
                return Err(DomainError::invalid(
                    "code",
                    "two-factor authentication is not enabled",
                ));
            }
            check_unused(user, second_factor)?;
            one(
                DomainEvent::TotpDisabled(TotpDisabled {
                    user_id: user.id,
                    second_factor: *second_factor,
                }),
                at,
            )
        }
        Command::Erase { at } => {
            let user = active(state)?;
            one(DomainEvent::UserErased(UserErased { user_id: user.id }), at)
        }
    }
}

fn used(user: &mut Registered, factor: &SecondFactor) {
    match factor {
        SecondFactor::Totp { step } => user.last_totp_step = Some(*step),
        SecondFactor::RecoveryCode { index } => {
            if let Totp::On {
                used_recovery_codes,
                ..
            } = &mut user.totp
            {
                used_recovery_codes.insert(*index);
            }
        }
    }
}

pub fn evolve(mut state: User, event: &DomainEvent) -> User {
    if let DomainEvent::UserRegistered(e) = event {
        state.0 = Some(Registered {
            id: e.user_id,
            email: e.email.clone(),
            name: e.name.clone(),
            password_hash: e.password_hash.clone(),
            totp: Totp::Off,
            last_totp_step: None,
            erased: false,
        });
        return state;
    }
    let Some(user) = state.0.as_mut() else {
        return state;
    };
    match event {
        DomainEvent::UserLoggedIn(e) => {
            if let Some(factor) = &e.second_factor {
                used(user, factor);
            }
        }
        DomainEvent::PasswordChanged(e) => user.password_hash = e.password_hash.clone(),
        DomainEvent::TotpEnrolmentStarted(e) => {
            user.totp = Totp::Pending {
                secret: e.secret.clone(),
            }
        }
        DomainEvent::TotpEnabled(e) => {
            if let Totp::Pending { secret } = &user.totp {
                user.totp = Totp::On {
                    secret: secret.clone(),
                    recovery_code_hashes: e.recovery_code_hashes.clone(),
                    used_recovery_codes: BTreeSet::new(),
                };
            }
            user.last_totp_step = Some(e.step);
        }
        DomainEvent::TotpDisabled(e) => {
            used(user, &e.second_factor);
            user.totp = Totp::Off;
        }
        DomainEvent::UserErased(_) => user.erased = true,
        _ => {}
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const AT: DateTime<Utc> = DateTime::UNIX_EPOCH;

    fn given(commands: &[Command]) -> User {
        commands.iter().fold(User::default(), |state, command| {
            let events = decide(&state, command).unwrap();
            events
                .iter()
                .fold(state, |state, decided| evolve(state, &decided.event))
        })
    }

    fn register() -> Command {
        Command::Register {
            user_id: UserId(Uuid::from_u128(1)),
            email: Sealed("sealed-email".into()),
            name: Sealed("sealed-name".into()),
            password_hash: Sealed("sealed-hash".into()),
            at: AT,
        }
    }

    fn login(second_factor: Option<SecondFactor>) -> Command {
        Command::RecordLogin {
            session_id: SessionId(Uuid::now_v7()),
            second_factor,
            at: AT,
        }
    }

    fn with_totp() -> User {
        given(&[
            register(),
            Command::StartTotpEnrolment {
                secret: Sealed("s".into()),
                at: AT,
            },
            Command::ConfirmTotp {
                step: 100,
                recovery_code_hashes: vec!["h0".into(), "h1".into()],
                at: AT,
            },
        ])
    }

    #[test]
    fn given_registered_when_register_again_then_refused() {
        let state = given(&[register()]);
        assert_eq!(
            decide(&state, &register()),
            Err(DomainError::AlreadyExists("user"))
        );
    }

    #[test]
    fn given_totp_on_when_login_without_code_then_refused() {
        let state = with_totp();
        assert!(decide(&state, &login(None)).is_err());
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 101 }))).is_ok());
    }

    #[test]
    fn a_totp_step_cannot_be_replayed() {
        let state = with_totp();
        // The step that confirmed enrolment is spent already.
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 100 }))).is_err());
        let state = given_more(state, login(Some(SecondFactor::Totp { step: 101 })));
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 101 }))).is_err());
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 99 }))).is_err());
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 102 }))).is_ok());
    }

    #[test]
    fn a_recovery_code_works_once() {
        let state = with_totp();
        let code = Some(SecondFactor::RecoveryCode { index: 1 });
        let state = given_more(state, login(code));
        assert!(decide(&state, &login(code)).is_err());
        assert!(decide(
            &state,
            &login(Some(SecondFactor::RecoveryCode { index: 0 }))
        )
        .is_ok());
        assert!(decide(
            &state,
            &login(Some(SecondFactor::RecoveryCode { index: 2 }))
        )
        .is_err());
    }

    #[test]
    fn disabling_needs_a_fresh_code_and_then_logins_need_none() {
        let state = with_totp();
        let disable = |step| Command::DisableTotp {
            second_factor: SecondFactor::Totp { step },
            at: AT,
        };
        assert!(decide(&state, &disable(100)).is_err(), "spent code");
        let state = given_more(state, disable(101));
        assert!(decide(&state, &login(None)).is_ok());
        assert!(decide(&state, &login(Some(SecondFactor::Totp { step: 102 }))).is_err());
    }

    #[test]
    fn given_erased_then_nothing_more() {
        let state = given(&[register(), Command::Erase { at: AT }]);
        assert!(state.active().is_none());
        assert_eq!(
            decide(&state, &login(None)),
            Err(DomainError::NotFound("user"))
        );
    }

    fn given_more(state: User, command: Command) -> User {
        decide(&state, &command)
            .unwrap()
            .iter()
            .fold(state, |s, d| evolve(s, &d.event))
    }
}
