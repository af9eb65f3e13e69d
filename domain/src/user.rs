//! The user aggregate: a person's credentials and second factor as facts, and the value objects
//! of a person (email address, name, password policy). Passwords and codes are checked by the
//! command side (hashing is I/O); this module keeps the rules that need history: a TOTP step or a
//! recovery code is used at most once, TOTP is required once enabled, an erased user does nothing
//! more, and who runs the deployment (operators).

use crate::aggregate::Aggregate;
use crate::event::{
    OperatorGranted, OperatorRevoked, PasswordChanged, SecondFactor, TotpDisabled, TotpEnabled,
    TotpEnrolmentStarted, UserErased, UserLoggedIn, UserLoggedOut, UserRegistered,
};
use crate::{DomainError, DomainEvent, Sealed, SessionId, StreamType, SubjectId, UserId};
use chrono::{DateTime, Utc};
use std::collections::BTreeSet;

/// An email address: trimmed, 3 to 254 characters, one `@` with text on both sides, no spaces or
/// control characters. Its case is kept (comparisons elsewhere ignore it); whether mail reaches
/// it is the mail server's business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let email = raw.trim();
        let bad =
            || DomainError::invalid("email", "must be an email address like name@example.com");
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
                Ok(Self(email.to_owned()))
            }
            _ => Err(bad()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's name as they give it: trimmed, 1 to 200 printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

impl PersonName {
    pub fn parse(raw: &str) -> Result<Self, DomainError> {
        let name = raw.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(DomainError::invalid(
                "name",
                "must be 1 to 200 printable characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a new password must be: 12 to 1024 characters (Unicode characters, not bytes), anything
/// allowed. Length is what makes a password strong; composition rules only annoy.
pub struct PasswordPolicy;

impl PasswordPolicy {
    pub const MIN_CHARS: usize = 12;
    pub const MAX_CHARS: usize = 1024;

    /// Checks a new password; `field` names it in the refusal (`password`, `new_password`).
    pub fn check(password: &str, field: &'static str) -> Result<(), DomainError> {
        let actual = password.chars().count();
        if actual < Self::MIN_CHARS {
            return Err(DomainError::invalid(
                field,
                format!(
                    "the password has {actual} characters; it needs at least {}",
                    Self::MIN_CHARS
                ),
            ));
        }
        if actual > Self::MAX_CHARS {
            return Err(DomainError::invalid(
                field,
                format!(
                    "the password has {actual} characters; it may have at most {}",
                    Self::MAX_CHARS
                ),
            ));
        }
        Ok(())
    }
}

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
    /// May use the deployment-wide routes.
    pub operator: bool,
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
    },
    /// The password was verified; `second_factor` is the verified code when TOTP is on.
    RecordLogin {
        session_id: SessionId,
        second_factor: Option<SecondFactor>,
    },
    RecordLogout {
        session_id: SessionId,
    },
    ChangePassword {
        password_hash: Sealed,
    },
    StartTotpEnrolment {
        secret: Sealed,
    },
    /// A code of the pending secret was verified at `step`.
    ConfirmTotp {
        step: u64,
        recovery_code_hashes: Vec<String>,
    },
    DisableTotp {
        second_factor: SecondFactor,
    },
    /// Erases the person and, with them, the other subjects that hold data about them.
    Erase {
        also_erased: Vec<SubjectId>,
    },
    GrantOperator,
    RevokeOperator,
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

impl Aggregate for User {
    const STREAM_TYPE: StreamType = StreamType::User;
    const NAME: &'static str = "user";
    type Command = Command;

    fn decide(&self, command: &Command, _: DateTime<Utc>) -> Result<Vec<DomainEvent>, DomainError> {
        if let Command::Register {
            user_id,
            email,
            name,
            password_hash,
        } = command
        {
            if self.0.is_some() {
                return Err(DomainError::AlreadyExists("user"));
            }
            return Ok(vec![DomainEvent::UserRegistered(UserRegistered {
                user_id: *user_id,
                email: email.clone(),
                name: name.clone(),
                password_hash: password_hash.clone(),
            })]);
        }
        let user = active(self)?;
        let user_id = user.id;
        let event = match command {
            Command::Register { .. } => return Err(DomainError::AlreadyExists("user")),
            Command::RecordLogin {
                session_id,
                second_factor,
            } => {
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
                DomainEvent::UserLoggedIn(UserLoggedIn {
                    user_id,
                    session_id: *session_id,
                    second_factor: *second_factor,
                })
            }
            Command::RecordLogout { session_id } => DomainEvent::UserLoggedOut(UserLoggedOut {
                user_id,
                session_id: *session_id,
            }),
            Command::ChangePassword { password_hash } => {
                DomainEvent::PasswordChanged(PasswordChanged {
                    user_id,
                    password_hash: password_hash.clone(),
                })
            }
            Command::StartTotpEnrolment { secret } => {
                if matches!(user.totp, Totp::On { .. }) {
                    return Err(DomainError::AlreadyExists("two-factor authentication"));
                }
                DomainEvent::TotpEnrolmentStarted(TotpEnrolmentStarted {
                    user_id,
                    secret: secret.clone(),
                })
            }
            Command::ConfirmTotp {
                step,
                recovery_code_hashes,
            } => {
                if !matches!(user.totp, Totp::Pending { .. }) {
                    return Err(DomainError::invalid(
                        "code",
                        "no two-factor enrolment is waiting for confirmation",
                    ));
                }
                check_unused(user, &SecondFactor::Totp { step: *step })?;
                DomainEvent::TotpEnabled(TotpEnabled {
                    user_id,
                    step: *step,
                    recovery_code_hashes: recovery_code_hashes.clone(),
                })
            }
            Command::DisableTotp { second_factor } => {
                if !matches!(user.totp, Totp::On { .. }) {
                    return Err(DomainError::invalid(
                        "code",
                        "two-factor authentication is not enabled",
                    ));
                }
                check_unused(user, second_factor)?;
                DomainEvent::TotpDisabled(TotpDisabled {
                    user_id,
                    second_factor: *second_factor,
                })
            }
            Command::Erase { also_erased } => {
                // Each linked subject once, in a stable order; the person's own key is erased
                // as the person, not as a link.
                let own = SubjectId(user_id.as_uuid());
                let linked: BTreeSet<SubjectId> =
                    also_erased.iter().copied().filter(|s| *s != own).collect();
                DomainEvent::UserErased(UserErased {
                    user_id,
                    also_erased: linked.into_iter().collect(),
                })
            }
            Command::GrantOperator if user.operator => return Ok(vec![]),
            Command::GrantOperator => DomainEvent::OperatorGranted(OperatorGranted { user_id }),
            Command::RevokeOperator if !user.operator => return Ok(vec![]),
            Command::RevokeOperator => DomainEvent::OperatorRevoked(OperatorRevoked { user_id }),
        };
        Ok(vec![event])
    }

    fn evolve(mut self, event: &DomainEvent, _: DateTime<Utc>) -> Self {
        if let DomainEvent::UserRegistered(e) = event {
            self.0 = Some(Registered {
                id: e.user_id,
                email: e.email.clone(),
                name: e.name.clone(),
                password_hash: e.password_hash.clone(),
                totp: Totp::Off,
                last_totp_step: None,
                erased: false,
                operator: false,
            });
            return self;
        }
        let Some(user) = self.0.as_mut() else {
            return self;
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
            DomainEvent::UserErased(_) => {
                user.erased = true;
                user.operator = false;
            }
            DomainEvent::OperatorGranted(_) => user.operator = true,
            DomainEvent::OperatorRevoked(_) => user.operator = false,
            _ => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{given, given_nothing};
    use uuid::Uuid;

    const ALICE: UserId = UserId(Uuid::from_u128(1));

    fn registered() -> DomainEvent {
        DomainEvent::UserRegistered(UserRegistered {
            user_id: ALICE,
            email: Sealed("sealed-email".into()),
            name: Sealed("sealed-name".into()),
            password_hash: Sealed("sealed-hash".into()),
        })
    }

    fn register() -> Command {
        Command::Register {
            user_id: ALICE,
            email: Sealed("sealed-email".into()),
            name: Sealed("sealed-name".into()),
            password_hash: Sealed("sealed-hash".into()),
        }
    }

    fn session() -> SessionId {
        SessionId(Uuid::from_u128(77))
    }

    fn login(second_factor: Option<SecondFactor>) -> Command {
        Command::RecordLogin {
            session_id: session(),
            second_factor,
        }
    }

    fn logged_in(second_factor: Option<SecondFactor>) -> DomainEvent {
        DomainEvent::UserLoggedIn(UserLoggedIn {
            user_id: ALICE,
            session_id: session(),
            second_factor,
        })
    }

    fn totp(step: u64) -> Option<SecondFactor> {
        Some(SecondFactor::Totp { step })
    }

    fn recovery(index: usize) -> Option<SecondFactor> {
        Some(SecondFactor::RecoveryCode { index })
    }

    /// Registered, with TOTP confirmed at step 100 and two recovery codes.
    fn with_totp() -> [DomainEvent; 3] {
        [
            registered(),
            DomainEvent::TotpEnrolmentStarted(TotpEnrolmentStarted {
                user_id: ALICE,
                secret: Sealed("s".into()),
            }),
            DomainEvent::TotpEnabled(TotpEnabled {
                user_id: ALICE,
                step: 100,
                recovery_code_hashes: vec!["h0".into(), "h1".into()],
            }),
        ]
    }

    #[test]
    fn a_person_registers_once() {
        given_nothing::<User>()
            .when(register())
            .then([registered()]);
        given::<User>([registered()])
            .when(register())
            .then_error(DomainError::AlreadyExists("user"));
    }

    #[test]
    fn with_totp_on_a_login_needs_a_second_factor() {
        given::<User>(with_totp())
            .when(login(None))
            .then_invalid("code");
        given::<User>(with_totp())
            .when(login(totp(101)))
            .then([logged_in(totp(101))]);
    }

    #[test]
    fn without_totp_a_login_brings_no_second_factor() {
        given::<User>([registered()])
            .when(login(totp(5)))
            .then_invalid("code");
        given::<User>([registered()])
            .when(login(None))
            .then([logged_in(None)]);
    }

    #[test]
    fn a_totp_step_cannot_be_replayed() {
        // The step that confirmed enrolment is spent already.
        given::<User>(with_totp())
            .when(login(totp(100)))
            .then_invalid("code");
        let after_101 = || given::<User>(with_totp()).and([logged_in(totp(101))]);
        after_101().when(login(totp(101))).then_invalid("code");
        after_101().when(login(totp(99))).then_invalid("code");
        after_101()
            .when(login(totp(102)))
            .then([logged_in(totp(102))]);
    }

    #[test]
    fn a_recovery_code_works_once() {
        let after_1 = || given::<User>(with_totp()).and([logged_in(recovery(1))]);
        after_1().when(login(recovery(1))).then_invalid("code");
        after_1()
            .when(login(recovery(0)))
            .then([logged_in(recovery(0))]);
        after_1().when(login(recovery(2))).then_invalid("code");
    }

    #[test]
    fn disabling_needs_a_fresh_code_and_then_logins_need_none() {
        let disable = |step| Command::DisableTotp {
            second_factor: SecondFactor::Totp { step },
        };
        given::<User>(with_totp())
            .when(disable(100))
            .then_invalid("code");
        let disabled = DomainEvent::TotpDisabled(TotpDisabled {
            user_id: ALICE,
            second_factor: SecondFactor::Totp { step: 101 },
        });
        given::<User>(with_totp())
            .when(disable(101))
            .then([disabled.clone()]);
        let off = || given::<User>(with_totp()).and([disabled.clone()]);
        off().when(login(None)).then([logged_in(None)]);
        off().when(login(totp(102))).then_invalid("code");
    }

    fn erase(also_erased: &[SubjectId]) -> Command {
        Command::Erase {
            also_erased: also_erased.to_vec(),
        }
    }

    #[test]
    fn an_erased_person_does_nothing_more() {
        let erased = DomainEvent::UserErased(UserErased {
            user_id: ALICE,
            also_erased: vec![],
        });
        given::<User>([registered()])
            .when(erase(&[]))
            .then([erased.clone()]);
        let state = given::<User>([registered(), erased.clone()]);
        assert!(state.state().active().is_none());
        state
            .when(login(None))
            .then_error(DomainError::NotFound("user"));
    }

    #[test]
    fn an_erasure_records_every_other_subject_it_erases_once_in_order() {
        let (email, key) = (SubjectId(Uuid::from_u128(9)), SubjectId(Uuid::from_u128(5)));
        let own = SubjectId(ALICE.as_uuid());
        given::<User>([registered()])
            .when(erase(&[email, key, own, email]))
            .then([DomainEvent::UserErased(UserErased {
                user_id: ALICE,
                also_erased: vec![key, email],
            })]);
    }

    #[test]
    fn a_person_is_erased_once() {
        let erased = DomainEvent::UserErased(UserErased {
            user_id: ALICE,
            also_erased: vec![],
        });
        given::<User>([registered(), erased])
            .when(erase(&[SubjectId(Uuid::from_u128(9))]))
            .then_error(DomainError::NotFound("user"));
    }

    #[test]
    fn operators_are_granted_and_revoked_once() {
        let granted = DomainEvent::OperatorGranted(OperatorGranted { user_id: ALICE });
        let state = given::<User>([registered()])
            .when(Command::GrantOperator)
            .then([granted.clone()]);
        assert!(state.active().is_some_and(|u| u.operator));
        given::<User>([registered(), granted.clone()])
            .when(Command::GrantOperator)
            .then_nothing();
        let state = given::<User>([registered(), granted.clone()])
            .when(Command::RevokeOperator)
            .then([DomainEvent::OperatorRevoked(OperatorRevoked {
                user_id: ALICE,
            })]);
        assert!(state.active().is_some_and(|u| !u.operator));
        given::<User>([registered()])
            .when(Command::RevokeOperator)
            .then_nothing();
    }

    #[test]
    fn emails_names_and_passwords_are_checked() {
        assert_eq!(
            EmailAddress::parse("  ana@example.com ").unwrap().as_str(),
            "ana@example.com"
        );
        for bad in ["", "a@", "@b", "a b@c.d", "a@b@c", "a\u{0}b@c.d"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
        assert!(EmailAddress::parse(&format!("{}@b.c", "a".repeat(251))).is_err());
        assert_eq!(PersonName::parse(" Ana ").unwrap().as_str(), "Ana");
        assert!(PersonName::parse(" ").is_err());
        assert!(PersonName::parse(&"x".repeat(201)).is_err());
        assert!(PasswordPolicy::check("twelve chars", "password").is_ok());
        // Twelve characters, more bytes.
        assert!(PasswordPolicy::check("ééééééééééé1", "password").is_ok());
        assert!(PasswordPolicy::check(&"x".repeat(1024), "password").is_ok());
        assert_eq!(
            PasswordPolicy::check("short", "new_password"),
            Err(DomainError::invalid(
                "new_password",
                "the password has 5 characters; it needs at least 12"
            ))
        );
        assert!(PasswordPolicy::check(&"x".repeat(1025), "password").is_err());
    }
}
