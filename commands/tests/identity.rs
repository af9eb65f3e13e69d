//! Identity rules that need a clock or concurrency, against a real Postgres: invitations expire,
//! and a TOTP code is accepted once even when two logins race with it.

use adledger_commands::identity::{AuthPolicy, Identity, Keys};
use adledger_commands::{CommandContext, CommandError, Commands, ManualClock};
use adledger_domain::{Actor, DomainError, EventMetadata, Role, UserId};
use adledger_infra::crypto::TotpSecret;
use adledger_infra::testing::{test_jwt_keys, test_master_keys, TestDatabase};
use chrono::{Duration, Utc};
use std::sync::Arc;
use uuid::Uuid;

const PASSWORD: &str = "a long enough password";

fn identity(db: &TestDatabase) -> Identity {
    identity_at(db, Arc::new(ManualClock::new(Utc::now())))
}

/// Identity whose commands take their time from `clock`.
fn identity_at(db: &TestDatabase, clock: Arc<ManualClock>) -> Identity {
    let keys = Keys {
        master: test_master_keys(),
        jwt: test_jwt_keys(),
    };
    let commands = Commands::new(db.store()).with_clock(clock);
    Identity::new(commands, keys, AuthPolicy::default())
}

fn ctx() -> CommandContext {
    CommandContext {
        metadata: EventMetadata::system("tests", Uuid::now_v7()),
        idempotency_key: None,
    }
}

fn as_user(user: UserId) -> CommandContext {
    let mut ctx = ctx();
    ctx.metadata.actor = Actor::User { user_id: user };
    ctx
}

#[tokio::test]
async fn an_invitation_is_refused_once_it_has_expired() {
    let db = TestDatabase::new().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let identity = identity_at(&db, clock.clone());
    let owner = identity
        .register(&ctx(), "owner@example.com", "Owner", PASSWORD)
        .await
        .unwrap();
    let guest = identity
        .register(&ctx(), "guest@example.com", "Guest", PASSWORD)
        .await
        .unwrap();
    let ws = identity
        .commands()
        .create_workspace(&as_user(owner), "Team")
        .await
        .unwrap();
    let invited = identity
        .invite(
            &as_user(owner),
            ws,
            "guest@example.com",
            Role::Auditor,
            Some(Duration::hours(1)),
        )
        .await
        .unwrap();
    clock.advance(Duration::hours(2));
    let refused = identity
        .accept_invitation(&as_user(guest), guest, &invited.token)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, CommandError::Rejected(DomainError::Invalid { reason, .. }) if reason.contains("expired")),
        "{refused:?}"
    );
    clock.advance(Duration::hours(-2));
    let (joined, role) = identity
        .accept_invitation(&as_user(guest), guest, &invited.token)
        .await
        .unwrap();
    assert_eq!((joined, role), (ws, Role::Auditor));
}

#[tokio::test]
async fn two_logins_racing_with_one_totp_code_let_only_one_in() {
    let db = TestDatabase::new().await;
    let identity = identity(&db);
    let user = identity
        .register(&ctx(), "racer@example.com", "Racer", PASSWORD)
        .await
        .unwrap();
    let enrolment = identity.start_totp(&as_user(user), user).await.unwrap();
    let secret = TotpSecret::from_base32(&enrolment.secret).unwrap();
    let now = Utc::now();
    let step = TotpSecret::step_at(now).unwrap();
    identity
        .confirm_totp(&as_user(user), user, &secret.code_for_step(step))
        .await
        .unwrap();
    let next = secret.code_for_step(step + 1);
    let ctx = ctx();
    let login = || identity.login(&ctx, "racer@example.com", PASSWORD, Some(&next));
    let results = tokio::join!(login(), login(), login(), login());
    let results = [results.0, results.1, results.2, results.3];
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 1, "{results:?}");
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            matches!(refused, CommandError::Unauthenticated(_)),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn a_request_of_someone_erased_meanwhile_is_unauthenticated_not_a_failure() {
    let db = TestDatabase::new().await;
    let identity = identity(&db);
    let gone = identity
        .register(&ctx(), "gone@example.com", "Gone", PASSWORD)
        .await
        .unwrap();
    let mut request = as_user(gone);
    request.metadata.source.ip = Some("198.51.100.4".into());
    assert!(identity.seal_source(request.clone()).await.is_ok());
    identity.erase_user(&as_user(gone), gone).await.unwrap();
    assert!(matches!(
        identity.seal_source(request).await,
        Err(CommandError::Unauthenticated(_))
    ));
}
