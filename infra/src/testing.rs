//! Test support: a fresh, migrated database per test on the server named by `DATABASE_URL`
//! (scripts/test.sh starts a private one). Databases are named `adledger_test_*`; the test script
//! drops leftovers before each run.

use crate::db::{connect_owner, create_database, Database};
use crate::secret::Secret;
use crate::EventStore;

pub struct TestDatabase {
    pub name: String,
    pub url: Secret<String>,
    pub db: Database,
}

fn server_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "DATABASE_URL is not set: run the tests through scripts/test.sh, which starts Postgres"
        )
    })
}

impl TestDatabase {
    pub async fn new() -> Self {
        let server = server_url();
        let name = format!("adledger_test_{}", uuid::Uuid::new_v4().simple());
        let url = create_database(&Secret::new(server), &name)
            .await
            .expect("create a test database on the DATABASE_URL server");
        // Roles are cluster-wide: parallel tests migrating at once can collide on them; retry.
        let mut attempt = 0;
        loop {
            match crate::migrate::run(&url).await {
                Ok(_) => break,
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    eprintln!("migration attempt {attempt} failed ({e}); retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => panic!("migrate test database: {e}"),
            }
        }
        let db = Database::connect(&url, 20)
            .await
            .expect("connect to test database");
        Self { name, url, db }
    }

    /// Sequences until every committed event has a position. One `sequence_all` may stop early
    /// while a transaction anywhere on the cluster (another test's database) holds the settle
    /// horizon back; that is correct behaviour, so tests wait it out.
    pub async fn settle(&self, store: &EventStore) -> i64 {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let head = store.sequence_all().await.expect("sequence");
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
                .fetch_one(store.pool())
                .await
                .expect("count events");
            if head == total {
                return head;
            }
            assert!(std::time::Instant::now() < deadline, "events never settled");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    pub fn store(&self) -> EventStore {
        EventStore::new(self.db.app.clone())
    }

    /// A connection with the owner's rights (no `SET ROLE`), to act behind the application's back.
    pub async fn owner(&self) -> sqlx::PgConnection {
        connect_owner(&self.url).await.expect("owner connection")
    }
}

#[cfg(test)]
mod tests {
    use crate::db::with_database;

    #[test]
    fn replaces_only_the_database_name() {
        assert_eq!(
            with_database("postgres://u:p@127.0.0.1:5433/postgres", "x"),
            "postgres://u:p@127.0.0.1:5433/x"
        );
        assert_eq!(
            with_database("postgres://127.0.0.1:5433?sslmode=disable", "x"),
            "postgres://127.0.0.1:5433/x?sslmode=disable"
        );
    }
}
