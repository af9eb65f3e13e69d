//! Crypto-shredding against a real Postgres: per-subject keys, erasure across processes, key
//! creation races and master key rotation (DESIGN.md, property 8).

use adledger_infra::crypto::{CryptoError, MasterKeys, Opened, Sealer};
use adledger_infra::testing::{test_master_keys, TestDatabase};
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

async fn key_rows(db: &TestDatabase, subject: Uuid) -> Vec<(Option<String>, Option<String>, bool)> {
    sqlx::query(
        "SELECT wrapped_key, master_kid, erased_at IS NOT NULL FROM subject_keys WHERE subject_id = $1",
    )
    .bind(subject)
    .fetch_all(&db.db.app)
    .await
    .expect("read subject_keys")
    .into_iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

#[tokio::test]
async fn sealed_text_opens_and_plain_text_passes_through() {
    let db = TestDatabase::new().await;
    let sealer = Sealer::new(db.db.app.clone(), test_master_keys());
    let ana = Uuid::new_v4();

    let sealed = sealer.seal(ana, "ana@example.com").await.unwrap();
    assert!(adledger_infra::crypto::is_sealed(&sealed));
    assert!(!sealed.contains("ana@example.com"));
    assert!(sealed.starts_with(&format!("sealed:v1:{ana}:")));
    assert_eq!(
        sealer.open(&sealed).await.unwrap(),
        Opened::Revealed("ana@example.com".into())
    );
    assert_eq!(
        sealer.open("old@example.com").await.unwrap(),
        Opened::Plain("old@example.com".into())
    );
    // One key per subject, however many values.
    let again = sealer.seal(ana, "Ana Souza").await.unwrap();
    assert_eq!(key_rows(&db, ana).await.len(), 1);

    // Another process (fresh cache) opens it too.
    let other = Sealer::new(db.db.app.clone(), sealer.master_keys().clone());
    assert_eq!(
        other.reveal_or_marker(&again).await.unwrap(),
        "Ana Souza".to_owned()
    );
}

#[tokio::test]
async fn erasure_shreds_every_value_of_the_subject_only() {
    let db = TestDatabase::new().await;
    let sealer = Sealer::new(db.db.app.clone(), test_master_keys());
    let (ana, bia) = (Uuid::new_v4(), Uuid::new_v4());
    let ana_email = sealer.seal(ana, "ana@example.com").await.unwrap();
    let ana_name = sealer.seal(ana, "Ana").await.unwrap();
    let bia_email = sealer.seal(bia, "bia@example.com").await.unwrap();
    // Warm the cache: the erase must still win at once.
    sealer.open(&ana_email).await.unwrap();

    assert!(sealer.erase(ana).await.unwrap());
    assert!(!sealer.erase(ana).await.unwrap(), "erase is idempotent");

    assert_eq!(sealer.open(&ana_email).await.unwrap(), Opened::Erased);
    assert_eq!(
        sealer.reveal_or_marker(&ana_name).await.unwrap(),
        "[erased]"
    );
    assert_eq!(
        sealer.open(&bia_email).await.unwrap(),
        Opened::Revealed("bia@example.com".into())
    );
    assert_eq!(key_rows(&db, ana).await, vec![(None, None, true)]);
    assert!(matches!(
        sealer.seal(ana, "again").await,
        Err(CryptoError::SubjectErased(s)) if s == ana
    ));

    let texts = [
        ana_email.as_str(),
        "plain",
        bia_email.as_str(),
        ana_name.as_str(),
    ];
    let fresh = Sealer::new(db.db.app.clone(), sealer.master_keys().clone());
    assert_eq!(
        fresh.open_many(&texts).await.unwrap(),
        vec![
            Opened::Erased,
            Opened::Plain("plain".into()),
            Opened::Revealed("bia@example.com".into()),
            Opened::Erased,
        ]
    );
}

#[tokio::test]
async fn another_process_sees_the_erasure_when_its_cache_expires() {
    let db = TestDatabase::new().await;
    let keys = test_master_keys();
    let eraser = Sealer::new(db.db.app.clone(), keys.clone());
    let ttl = Duration::from_millis(300);
    let cached = Sealer::with_cache_ttl(db.db.app.clone(), keys.clone(), ttl);
    let strict = Sealer::with_cache_ttl(db.db.app.clone(), keys, Duration::ZERO);
    let ana = Uuid::new_v4();
    let sealed = eraser.seal(ana, "ana@example.com").await.unwrap();
    let revealed = Opened::Revealed("ana@example.com".into());
    assert_eq!(cached.open(&sealed).await.unwrap(), revealed);
    assert_eq!(strict.open(&sealed).await.unwrap(), revealed);

    assert!(eraser.erase(ana).await.unwrap());

    // No cache: the very next open sees it.
    assert_eq!(strict.open(&sealed).await.unwrap(), Opened::Erased);
    // A cached key serves until its TTL runs out, never after.
    tokio::time::sleep(ttl + Duration::from_millis(50)).await;
    assert_eq!(cached.open(&sealed).await.unwrap(), Opened::Erased);
    assert_eq!(
        cached.open_many(&[&sealed]).await.unwrap(),
        vec![Opened::Erased]
    );
}

#[tokio::test]
async fn a_subject_erased_before_any_key_can_never_get_one() {
    let db = TestDatabase::new().await;
    let sealer = Sealer::new(db.db.app.clone(), test_master_keys());
    let ghost = Uuid::new_v4();
    assert!(sealer.erase(ghost).await.unwrap());
    assert!(matches!(
        sealer.seal(ghost, "x").await,
        Err(CryptoError::SubjectErased(_))
    ));
    let other = Sealer::new(db.db.app.clone(), sealer.master_keys().clone());
    assert!(matches!(
        other.seal(ghost, "x").await,
        Err(CryptoError::SubjectErased(_))
    ));
}

#[tokio::test]
async fn concurrent_first_seals_of_one_subject_share_one_key() {
    let db = TestDatabase::new().await;
    let keys = test_master_keys();
    let subject = Uuid::new_v4();
    // Separate sealers: no shared cache, every one races to create the key.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let sealer = Sealer::new(db.db.app.clone(), keys.clone());
            tokio::spawn(async move { sealer.seal(subject, &format!("value {i}")).await })
        })
        .collect();
    let mut sealed = Vec::new();
    for task in tasks {
        sealed.push(task.await.unwrap().unwrap());
    }
    assert_eq!(key_rows(&db, subject).await.len(), 1);
    let reader = Sealer::new(db.db.app.clone(), keys);
    let opened = reader.open_many(&sealed).await.unwrap();
    for (i, o) in opened.into_iter().enumerate() {
        assert_eq!(o, Opened::Revealed(format!("value {i}")));
    }
}

#[tokio::test]
async fn tampered_or_foreign_values_fail_loudly() {
    let db = TestDatabase::new().await;
    let sealer = Sealer::new(db.db.app.clone(), test_master_keys());
    let (ana, bia) = (Uuid::new_v4(), Uuid::new_v4());
    let sealed = sealer.seal(ana, "ana@example.com").await.unwrap();
    sealer.seal(bia, "bia").await.unwrap();

    // Moved to another subject: that subject's key and AAD do not fit.
    let moved = sealed.replace(&ana.to_string(), &bia.to_string());
    assert!(matches!(
        sealer.open(&moved).await,
        Err(CryptoError::Decrypt)
    ));
    // A subject that never had a key.
    let orphan = sealed.replace(&ana.to_string(), &Uuid::new_v4().to_string());
    assert!(matches!(
        sealer.open(&orphan).await,
        Err(CryptoError::MissingSubjectKey(_))
    ));
    // Another deployment's master keys cannot unwrap the subject key.
    let stranger = Sealer::new(db.db.app.clone(), MasterKeys::generate("test").unwrap());
    assert!(matches!(
        stranger.open(&sealed).await,
        Err(CryptoError::Decrypt)
    ));
}

#[tokio::test]
async fn master_key_rotation_and_rewrap_keep_every_value_readable() {
    let db = TestDatabase::new().await;
    let k1 = MasterKeys::generate("k1").unwrap();
    let before = Sealer::new(db.db.app.clone(), k1.clone());
    let subjects: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut sealed = Vec::new();
    for (i, s) in subjects.iter().enumerate() {
        sealed.push(before.seal(*s, &format!("person {i}")).await.unwrap());
    }
    before.erase(subjects[4]).await.unwrap();

    // k2 becomes active; k1 still opens.
    let k2 = k1.with_new_active("k2").unwrap();
    let after = Sealer::new(db.db.app.clone(), k2.clone());
    assert_eq!(
        after.open(&sealed[0]).await.unwrap(),
        Opened::Revealed("person 0".into())
    );
    let newcomer = Uuid::new_v4();
    let new_value = after.seal(newcomer, "newcomer").await.unwrap();
    assert_eq!(key_rows(&db, newcomer).await[0].1.as_deref(), Some("k2"));

    assert_eq!(after.rewrap_all().await.unwrap(), 4, "live k1 keys only");
    assert_eq!(after.rewrap_all().await.unwrap(), 0, "nothing left to do");
    for s in &subjects[..4] {
        let rows = key_rows(&db, *s).await;
        assert_eq!(rows[0].1.as_deref(), Some("k2"));
        assert!(rows[0].0.as_deref().unwrap().starts_with("v1.k2."));
    }

    // With k1 gone, everything still opens (fresh cache: keys come from the database).
    let retired = Sealer::new(db.db.app.clone(), k2.without("k1").unwrap());
    let mut texts = sealed.clone();
    texts.push(new_value);
    assert_eq!(
        retired.open_many(&texts).await.unwrap(),
        vec![
            Opened::Revealed("person 0".into()),
            Opened::Revealed("person 1".into()),
            Opened::Revealed("person 2".into()),
            Opened::Revealed("person 3".into()),
            Opened::Erased,
            Opened::Revealed("newcomer".into()),
        ]
    );
}

#[tokio::test]
async fn rewrap_refuses_to_lose_a_key_it_cannot_open() {
    let db = TestDatabase::new().await;
    let k1 = MasterKeys::generate("k1").unwrap();
    let sealer = Sealer::new(db.db.app.clone(), k1);
    let subject = Uuid::new_v4();
    sealer.seal(subject, "x").await.unwrap();
    // k1 dropped before the re-wrap: an error, and the row is untouched.
    let wrong = Sealer::new(db.db.app.clone(), MasterKeys::generate("k2").unwrap());
    assert!(matches!(
        wrong.rewrap_all().await,
        Err(CryptoError::UnknownKid(k)) if k == "k1"
    ));
    assert_eq!(key_rows(&db, subject).await[0].1.as_deref(), Some("k1"));
}

#[tokio::test]
async fn the_application_role_cannot_delete_a_key_row() {
    let db = TestDatabase::new().await;
    let sealer = Sealer::new(db.db.app.clone(), test_master_keys());
    let subject = Uuid::new_v4();
    sealer.seal(subject, "x").await.unwrap();
    let denied = sqlx::query("DELETE FROM subject_keys WHERE subject_id = $1")
        .bind(subject)
        .execute(&db.db.app)
        .await;
    let code = |r: Result<_, sqlx::Error>| match r {
        Err(sqlx::Error::Database(e)) => e.code().map(|c| c.into_owned()),
        other => panic!("expected a database error, got {other:?}"),
    };
    assert_eq!(
        code(denied).as_deref(),
        Some("42501"),
        "insufficient_privilege"
    );
    // And a live row cannot lose its key without being marked erased.
    let broken = sqlx::query("UPDATE subject_keys SET wrapped_key = NULL WHERE subject_id = $1")
        .bind(subject)
        .execute(&db.db.app)
        .await;
    assert_eq!(code(broken).as_deref(), Some("23514"), "check_violation");
}
