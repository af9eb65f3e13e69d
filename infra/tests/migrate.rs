//! Migrations against a real Postgres: a fresh database gets every file once, a database migrated
//! by the hand-kept list that came before sqlx carries its history over without running anything
//! again, and an applied migration whose file changed is refused, before and after that bridge.

use adledger_infra::db::{connect_owner, Database};
use adledger_infra::migrate::{self, MigrateError};
use adledger_infra::testing::TestDatabase;
use adledger_infra::Secret;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256, Sha384};
use sqlx::{Connection, Executor};

/// A row of `_sqlx_migrations`: version, description, installed_on, success, checksum and
/// execution_time.
type SqlxRow = (i64, String, DateTime<Utc>, bool, Vec<u8>, i64);

struct File {
    version: i64,
    name: String,
    sql: String,
}

/// The files of /migrations, in order.
fn files() -> Vec<File> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations");
    let mut files: Vec<File> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
            let (version, name) = stem.split_once('_').unwrap();
            File {
                version: version.parse().unwrap(),
                name: name.to_owned(),
                sql: std::fs::read_to_string(&p).unwrap(),
            }
        })
        .collect();
    files.sort_by_key(|f| f.version);
    files
}

fn versions(files: &[File]) -> Vec<i64> {
    files.iter().map(|f| f.version).collect()
}

/// Roles are cluster-wide: tests migrating fresh databases at once can collide creating them.
async fn retried<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    mut attempt: impl FnMut() -> F,
) -> Result<T, E> {
    for n in 1.. {
        match attempt().await {
            Err(e) if n < 5 => {
                eprintln!("attempt {n} failed ({e}); retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 * n)).await;
            }
            outcome => return outcome,
        }
    }
    unreachable!()
}

async fn run(url: &Secret<String>) -> Result<Vec<i64>, MigrateError> {
    retried(|| migrate::run(url)).await
}

/// What the hand-kept list did before sqlx, for the files up to `through`: each file and its
/// `schema_migrations` row (SHA-256 in hex) in one transaction, then the app role's read grant.
async fn migrate_the_old_way(url: &Secret<String>, through: i64) {
    let mut conn = connect_owner(url).await.unwrap();
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version bigint PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for file in files().iter().filter(|f| f.version <= through) {
        // Roles are cluster-wide: tests migrating fresh databases at once can collide on them.
        for attempt in 1.. {
            match apply_the_old_way(&mut conn, file).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    eprintln!("attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => panic!("migration {} the old way: {e}", file.version),
            }
        }
    }
    conn.execute("GRANT SELECT ON schema_migrations TO adledger_app")
        .await
        .unwrap();
}

async fn apply_the_old_way(conn: &mut sqlx::PgConnection, file: &File) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(&file.sql).execute(&mut *tx).await?;
    sqlx::query("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)")
        .bind(file.version)
        .bind(&file.name)
        .bind(hex::encode(Sha256::digest(file.sql.as_bytes())))
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}

async fn table_exists(url: &Secret<String>, table: &str) -> bool {
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(&mut connect_owner(url).await.unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_fresh_database_gets_every_migration_once_and_the_app_may_only_read_the_history() {
    let (_, url) = TestDatabase::unmigrated().await;
    assert_eq!(run(&url).await.unwrap(), versions(&files()));
    assert_eq!(run(&url).await.unwrap(), Vec::<i64>::new());
    assert!(
        !table_exists(&url, "schema_migrations").await,
        "only sqlx's table"
    );

    let db = Database::connect(&url, 2).await.unwrap();
    assert_eq!(migrate::pending(&db.app).await.unwrap(), Vec::<i64>::new());
    let rewrite = sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(&db.app)
        .await;
    assert!(rewrite.is_err(), "the app role cannot rewrite the history");
}

#[tokio::test]
async fn a_database_migrated_by_the_old_list_carries_its_history_over_and_reruns_nothing() {
    let (_, url) = TestDatabase::unmigrated().await;
    let files = files();
    let last = files.last().unwrap().version;
    // A database of the previous release: every migration but the newest.
    migrate_the_old_way(&url, last - 1).await;
    let db = Database::connect(&url, 2).await.unwrap();
    assert_eq!(
        migrate::pending(&db.app).await.unwrap(),
        versions(&files),
        "before the bridge the app sees no sqlx history: everything is pending"
    );
    let old: Vec<(i64, DateTime<Utc>)> =
        sqlx::query_as("SELECT version, applied_at FROM schema_migrations ORDER BY version")
            .fetch_all(&mut connect_owner(&url).await.unwrap())
            .await
            .unwrap();

    assert_eq!(run(&url).await.unwrap(), [last], "only the new one ran");

    let history: Vec<SqlxRow> = sqlx::query_as(
        "SELECT version, description, installed_on, success, checksum, execution_time
         FROM _sqlx_migrations ORDER BY version",
    )
    .fetch_all(&db.app)
    .await
    .unwrap();
    assert_eq!(history.len(), files.len());
    for (file, (version, description, installed_on, success, checksum, time)) in
        files.iter().zip(&history)
    {
        assert_eq!(*version, file.version);
        assert_eq!(*description, file.name.replace('_', " "));
        assert!(success);
        assert_eq!(
            checksum.as_slice(),
            Sha384::digest(file.sql.as_bytes()).as_slice(),
            "recorded as sqlx records it"
        );
        match old.iter().find(|(v, _)| v == version) {
            Some((_, applied_at)) => {
                assert_eq!(installed_on, applied_at, "version {version} keeps its date");
                assert_eq!(*time, -1, "carried over, not run");
            }
            None => assert!(*time >= 0, "version {version} ran now"),
        }
    }
    assert_eq!(migrate::pending(&db.app).await.unwrap(), Vec::<i64>::new());
    assert_eq!(run(&url).await.unwrap(), Vec::<i64>::new());
}

#[tokio::test]
async fn an_applied_migration_whose_file_changed_is_refused_before_and_after_the_bridge() {
    // Before: the old list recorded a checksum that the file no longer has.
    let (_, url) = TestDatabase::unmigrated().await;
    migrate_the_old_way(&url, files().last().unwrap().version).await;
    let mut owner = connect_owner(&url).await.unwrap();
    owner
        .execute("UPDATE schema_migrations SET checksum = repeat('0', 64) WHERE version = 2")
        .await
        .unwrap();
    let refused = migrate::run(&url).await;
    assert!(
        matches!(refused, Err(MigrateError::Changed { version: 2 })),
        "{refused:?}"
    );
    assert!(
        !table_exists(&url, "_sqlx_migrations").await,
        "nothing carried over"
    );

    // After: sqlx's own check, kept under the same error.
    let (_, url) = TestDatabase::unmigrated().await;
    run(&url).await.unwrap();
    let mut owner = connect_owner(&url).await.unwrap();
    owner
        .execute("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = 3")
        .await
        .unwrap();
    let refused = migrate::run(&url).await;
    assert!(
        matches!(refused, Err(MigrateError::Changed { version: 3 })),
        "{refused:?}"
    );
}
