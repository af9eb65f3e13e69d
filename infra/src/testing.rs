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
        Self::on(&server_url()).await
    }

    /// A fresh, migrated database on the server at `server` (a private cluster of a test).
    pub async fn on(server: &str) -> Self {
        let server = server.to_owned();
        let name = format!("adledger_test_{}", uuid::Uuid::new_v4().simple());
        let url = create_database(&Secret::new(server), &name)
            .await
            .expect("create a test database on the test's server");
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

    /// A fresh database on the `DATABASE_URL` server that no migration has touched (for tests of
    /// the migrations themselves): its name and URL.
    pub async fn unmigrated() -> (String, Secret<String>) {
        let name = format!("adledger_test_{}", uuid::Uuid::new_v4().simple());
        let url = create_database(&Secret::new(server_url()), &name)
            .await
            .expect("create a test database on the DATABASE_URL server");
        (name, url)
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

/// A ring of one random master key (kid `test`).
pub fn test_master_keys() -> crate::crypto::MasterKeys {
    crate::crypto::MasterKeys::generate("test").expect("random master key")
}

/// A ring of one random JWT key (kid `test`).
pub fn test_jwt_keys() -> crate::crypto::JwtKeys {
    crate::crypto::JwtKeys::generate("test").expect("random JWT key")
}

/// The shared broker started by scripts/test.sh (scripts/kafka.sh), for tests on the Kafka paths.
/// Each test uses a topic of its own.
pub fn kafka_brokers() -> String {
    std::env::var("ADLEDGER_KAFKA_BROKERS").unwrap_or_else(|_| {
        panic!(
            "ADLEDGER_KAFKA_BROKERS is not set: run the tests through scripts/test.sh, which \
             starts a Kafka-protocol broker"
        )
    })
}

/// A topic name no other test uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}.{}", uuid::Uuid::new_v4().simple())
}

/// A private tansu broker (for tests that stop and restart one): its own port and data directory,
/// killed when dropped.
pub struct TansuBroker {
    pub brokers: String,
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

fn tansu_bin() -> std::path::PathBuf {
    if let Some(bin) = std::env::var_os("TANSU_BIN").filter(|b| !b.is_empty()) {
        return bin.into();
    }
    let cargo_home = std::env::var("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cargo")
        });
    let bin = cargo_home.join("bin/tansu");
    if bin.exists() {
        bin
    } else {
        "tansu".into()
    }
}

impl TansuBroker {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("adledger-tansu-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("broker data directory");
        let mut broker = Self {
            brokers: format!("127.0.0.1:{port}"),
            port,
            dir,
            child: None,
        };
        broker.restart();
        broker
    }

    /// Starts the broker again on the same port and data (after [`Self::stop`]).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the broker is already running");
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.join("tansu.log")).expect("broker log");
        let child = std::process::Command::new(tansu_bin())
            .current_dir(&self.dir)
            // Its info logs are huge; the test's own RUST_LOG must not reach it.
            .env("RUST_LOG", "warn")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            // Relative to the working directory (tansu joins the two).
            .args(["--storage-engine", "sqlite://tansu.db"])
            .stdout(log.try_clone().expect("broker log"))
            .stderr(log)
            .spawn()
            .expect("start tansu (scripts/kafka.sh install installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // tansu 0.6.0 lacks an index that fetching needs (see the script).
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/tansu-index.py");
        let indexed = std::process::Command::new("python3")
            .arg(script)
            .arg(self.dir.join("tansu.db"))
            .status()
            .expect("run scripts/tansu-index.py");
        assert!(indexed.success(), "could not index the broker's headers");
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still running after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TansuBroker {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
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
