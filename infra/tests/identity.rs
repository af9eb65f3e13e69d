//! The identity tables against a real Postgres: refresh-token rotation and reuse, and the purge
//! of what can no longer be used.

use adledger_domain::{SessionId, UserId};
use adledger_infra::identity::{IdentityStore, RefreshUse};
use adledger_infra::testing::TestDatabase;
use chrono::{Duration, Utc};
use uuid::Uuid;

#[tokio::test]
async fn a_refresh_token_rotates_once_and_its_reuse_ends_the_session() {
    let db = TestDatabase::new().await;
    let ids = IdentityStore::new(db.store().pool().clone());
    let (user, session) = (UserId(Uuid::now_v7()), SessionId(Uuid::now_v7()));
    ids.create_session(session, user, Utc::now() + Duration::days(1))
        .await
        .unwrap();
    ids.issue_refresh_token("h1", session, Utc::now() + Duration::days(1))
        .await
        .unwrap();
    assert_eq!(
        ids.use_refresh_token("h1").await.unwrap(),
        RefreshUse::Rotated {
            session_id: session,
            user_id: user
        }
    );
    assert_eq!(
        ids.use_refresh_token("h1").await.unwrap(),
        RefreshUse::Reused
    );
    assert!(!ids.session_is_live(session, user).await.unwrap());
    assert_eq!(
        ids.use_refresh_token("unknown").await.unwrap(),
        RefreshUse::Invalid
    );
}

#[tokio::test]
async fn the_purge_removes_only_what_can_no_longer_be_used() {
    let db = TestDatabase::new().await;
    let pool = db.store().pool().clone();
    let ids = IdentityStore::new(pool.clone());
    let user = UserId(Uuid::now_v7());
    let live = SessionId(Uuid::now_v7());
    let expired = SessionId(Uuid::now_v7());
    let revoked = SessionId(Uuid::now_v7());
    ids.create_session(live, user, Utc::now() + Duration::days(30))
        .await
        .unwrap();
    ids.create_session(expired, user, Utc::now() - Duration::days(2))
        .await
        .unwrap();
    ids.create_session(revoked, user, Utc::now() + Duration::days(30))
        .await
        .unwrap();
    ids.issue_refresh_token("old", expired, Utc::now() - Duration::days(2))
        .await
        .unwrap();
    sqlx::query("UPDATE sessions SET revoked_at = now() - interval '2 days' WHERE session_id = $1")
        .bind(revoked.0)
        .execute(&pool)
        .await
        .unwrap();
    // A failed login from two days ago, and a fresh one.
    ids.record_login_failure("old@example.com").await.unwrap();
    sqlx::query("UPDATE login_failures SET last_failed_at = now() - interval '2 days'")
        .execute(&pool)
        .await
        .unwrap();
    ids.record_login_failure("new@example.com").await.unwrap();

    let purged = ids.purge_expired().await.unwrap();
    assert_eq!(purged, 3, "two sessions and one counter");
    let sessions: Vec<Uuid> = sqlx::query_scalar("SELECT session_id FROM sessions")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(sessions, vec![live.0]);
    let tokens: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_tokens")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tokens, 0, "the expired session's tokens went with it");
    let counters: i64 = sqlx::query_scalar("SELECT count(*) FROM login_failures")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(counters, 1);
    assert_eq!(ids.purge_expired().await.unwrap(), 0, "nothing twice");
}
