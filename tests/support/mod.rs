//! What several test binaries share: waiting for an eventually consistent answer, running
//! `adledger` as a child process, as an operator would (killed with SIGKILL when dropped, also
//! when a test fails half-way; logging to a file the failure messages name), and a PostgreSQL
//! cluster of a test's own, for tests that stop or restart the database.

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Polls `check` every 20 ms until it answers `Some`, failing the test after `within`.
pub async fn eventually_within<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Process {
    child: Child,
    pub log: PathBuf,
}

impl Process {
    /// `adledger <args>` with `env` added to the test's environment. Child logs are at `info`
    /// unless TEST_CHILD_LOG says otherwise.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let log = std::env::temp_dir().join(format!("adledger-{}-{}.log", args[0], Uuid::new_v4()));
        let file = std::fs::File::create(&log).expect("process log");
        let child = Command::new(env!("CARGO_BIN_EXE_adledger"))
            .args(args)
            .envs(env.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("TEST_CHILD_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start adledger");
        Process { child, log }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no clean-up runs, as in a crash.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as every deploy sends.
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "could not send SIGTERM");
    }

    /// The exit status, once the process has exited within `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the process logged so far (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

fn pg_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh")
}

/// `scripts/pg.sh <command>` on the cluster in `dir`; its standard output.
fn pg_sh(dir: &Path, command: &str) -> String {
    let out = Command::new(pg_script())
        .arg(command)
        .env_remove("DATABASE_URL")
        .env("ADLEDGER_PG_DIR", dir)
        .output()
        .expect("run scripts/pg.sh");
    assert!(
        out.status.success(),
        "pg.sh {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PostgreSQL program (`pg_dump`, `pg_restore`, ...), found where scripts/pg.sh finds them.
pub fn pg_program(name: &str) -> PathBuf {
    let out = Command::new(pg_script())
        .arg("bindir")
        .output()
        .expect("run scripts/pg.sh bindir");
    assert!(
        out.status.success(),
        "pg.sh bindir: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join(name)
}

/// A PostgreSQL cluster of this test alone (scripts/pg.sh in a directory of its own), so that
/// it can be stopped and started without disturbing other tests. Stopped and removed on drop.
pub struct PrivateCluster {
    pub dir: PathBuf,
    /// The server's URL (its `adledger` database; tests make their own beside it).
    pub url: String,
}

fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()))
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Hands `path` (recursively) to the `postgres` user when the tests run as root, as
/// scripts/pg.sh runs the server as that user then.
pub fn give_to_postgres(path: &Path) {
    if running_as_root() {
        let done = Command::new("chown")
            .args(["-R", "postgres"])
            .arg(path)
            .status()
            .expect("run chown");
        assert!(done.success(), "chown postgres {path:?}");
    }
}

impl PrivateCluster {
    pub fn start() -> Self {
        Self::open(temp_dir("adledger-pg"))
    }

    /// The cluster of scripts/pg.sh in `dir`, started (a new one when `dir` holds none).
    pub fn open(dir: PathBuf) -> Self {
        let env = pg_sh(&dir, "env");
        let url = env
            .trim()
            .strip_prefix("export DATABASE_URL='")
            .and_then(|rest| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("unexpected pg.sh output {env:?}"))
            .to_owned();
        Self { dir, url }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Stops the server (sessions are cut, new ones refused).
    pub fn stop(&self) {
        pg_sh(&self.dir, "stop");
    }

    /// Starts it again after [`Self::stop`], on the same port.
    pub fn start_again(&self) {
        pg_sh(&self.dir, "start");
    }

    /// `pg_ctl restart -m fast`: every session is cut, the server is back within seconds.
    pub fn restart(&self) {
        pg_sh(&self.dir, "restart");
    }

    /// A directory of the cluster's own that the server may write to.
    pub fn server_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("create a directory");
        give_to_postgres(&dir);
        dir
    }

    /// `pg_basebackup` of this running cluster into a directory of its own, as scripts/pg.sh
    /// lays a cluster out (`data/`), not started: [`Self::open`] starts it.
    pub fn base_backup(&self) -> PathBuf {
        let dir = temp_dir("adledger-pg-base");
        std::fs::create_dir_all(&dir).expect("create a directory");
        give_to_postgres(&dir);
        let data = dir.join("data");
        self.as_owner(
            "pg_basebackup",
            &[
                "-d",
                &self.url,
                "-D",
                &data.to_string_lossy(),
                "-Fp",
                "-X",
                "stream",
                "-c",
                "fast",
            ],
        );
        dir
    }

    /// Runs a PostgreSQL program as the owner of the data directory (`postgres` when the tests
    /// run as root, as scripts/pg.sh does), failing the test when it fails; its output.
    pub fn as_owner(&self, program: &str, args: &[&str]) -> String {
        let program = pg_program(program);
        let out = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .output()
        } else {
            Command::new(&program).args(args).output()
        }
        .unwrap_or_else(|e| panic!("run {program:?}: {e}"));
        assert!(
            out.status.success(),
            "{program:?} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(pg_script())
            .arg("stop")
            .env("ADLEDGER_PG_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
