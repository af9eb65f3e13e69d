//! What several test binaries share: waiting for an eventually consistent answer, and running
//! `adledger` as a child process, as an operator would (killed with SIGKILL when dropped, also
//! when a test fails half-way; logging to a file the failure messages name).

// Each test binary that includes this module uses part of it.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
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

/// A PostgreSQL cluster of this test alone (scripts/pg.sh in a directory of its own), so that
/// it can be stopped and started without disturbing other tests. Stopped and removed on drop.
pub struct PrivateCluster {
    pub dir: PathBuf,
    pub url: String,
}

impl PrivateCluster {
    pub fn pg(dir: &PathBuf, command: &str) -> String {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh");
        let out = Command::new(script)
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

    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("adledger-pg-{}", Uuid::new_v4().simple()));
        let env = Self::pg(&dir, "env");
        let url = env
            .trim()
            .strip_prefix("export DATABASE_URL='")
            .and_then(|rest| rest.strip_suffix('\''))
            .unwrap_or_else(|| panic!("unexpected pg.sh output {env:?}"))
            .to_owned();
        Self { dir, url }
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Command::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/pg.sh"))
            .arg("stop")
            .env("ADLEDGER_PG_DIR", &self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
