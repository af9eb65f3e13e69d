//! Sync workers: processes that carry out the queued sync runs and discoveries, whoever started
//! them, so that API replicas scale apart from sync capacity. A worker leases a job and renews
//! the lease while it works; a job whose lease lapses (its worker died) is taken over by another
//! worker (or the restarted one) and carried on from where it stopped. A stopping worker (SIGTERM)
//! hands its runs back so that another carries them on at once. "Abandoned" is the lease's call
//! (no renewal), never the run's age.

use super::discovery::Discovered;
use super::interrupt::{self, Interrupt, Interrupter, StopReason};
use super::retrying;
use super::run::RunEnd;
use crate::{CommandError, Commands};
use adledger_domain::event::SyncCounts;
use adledger_domain::{ConnectionId, DomainError, SyncId, WorkerId, WorkspaceId};
use adledger_infra::shutdown::Shutdown;
use adledger_infra::sync_jobs::{JobKind, Lease, SyncJobs};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use uuid::Uuid;

/// Sync runs one worker carries out at the same time unless configured otherwise.
pub const DEFAULT_MAX_CONCURRENT_SYNCS: usize = 4;
/// How long a lease lasts unless configured otherwise: a dead worker's runs are taken over
/// within about this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(15);
/// How often an idle worker looks for work when no notification arrives.
const POLL: Duration = Duration::from_secs(1);
/// A discovery that failed for a passing reason is tried again after this long, this many times.
const DISCOVERY_RETRY: Duration = Duration::from_secs(30);
const DISCOVERY_ATTEMPTS: i32 = 5;
/// A job whose worker met an error of its own (its database stayed unreachable) waits this long.
const ERROR_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub id: WorkerId,
    /// How long a lease lasts; it is renewed every third of that.
    pub lease: Duration,
    /// Jobs carried out at the same time.
    pub max_concurrent: usize,
    /// How long a stopping worker waits for its runs to hand back before it cuts them off
    /// (their leases then lapse).
    pub grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            id: worker_id(),
            lease: DEFAULT_LEASE,
            max_concurrent: DEFAULT_MAX_CONCURRENT_SYNCS,
            grace: Duration::from_secs(20),
        }
    }
}

/// `host:pid:random`: unique per process start, and says where to look.
pub fn worker_id() -> WorkerId {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    let nonce = Uuid::new_v4().simple().to_string();
    WorkerId(format!("{host}:{}:{}", std::process::id(), &nonce[..8]))
}

/// Aborts its task when dropped: a lease keeper lives exactly as long as its run, even when the
/// run itself is cut off (aborted).
struct KeeperGuard(tokio::task::JoinHandle<()>);

impl Drop for KeeperGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What became of one job this worker took.
#[derive(Debug)]
enum JobEnd {
    Sync(Result<RunEnd, CommandError>),
    Discovery(Result<Discovered, CommandError>),
}

#[derive(Clone)]
pub struct SyncWorker {
    commands: Commands,
    jobs: SyncJobs,
    config: Arc<WorkerConfig>,
}

impl SyncWorker {
    pub fn new(commands: Commands, config: WorkerConfig) -> Self {
        let jobs = SyncJobs::new(commands.store.pool().clone());
        Self {
            commands,
            jobs,
            config: Arc::new(config),
        }
    }

    pub fn id(&self) -> &WorkerId {
        &self.config.id
    }

    /// Takes jobs while it has room, until shutdown; then hands back what it is running.
    pub async fn run(self, mut shutdown: Shutdown) {
        let config = &self.config;
        tracing::info!(worker = %config.id, max_concurrent = config.max_concurrent,
                       lease_ms = config.lease.as_millis() as u64, "sync worker started");
        let slots = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
        let mut running = JoinSet::new();
        let mut listener = match self.jobs.listen().await {
            Ok(listener) => Some(listener),
            Err(error) => {
                tracing::warn!(%error, "sync worker cannot listen for new jobs; polling only");
                None
            }
        };
        while !shutdown.is_triggered() {
            while let Ok(slot) = slots.clone().try_acquire_owned() {
                match self.jobs.claim_next(&config.id, config.lease).await {
                    Ok(Some(lease)) => {
                        let worker = self.clone();
                        let shutdown = shutdown.clone();
                        running.spawn(async move {
                            worker.take(lease, shutdown).await;
                            drop(slot);
                        });
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(%error, "sync worker cannot take a job");
                        break;
                    }
                }
            }
            tokio::select! {
                notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(error) = notified {
                        tracing::debug!(%error, "sync job notifications interrupted; polling");
                        tokio::time::sleep(POLL).await;
                    }
                }
                _ = tokio::time::sleep(POLL) => {}
                Some(_) = running.join_next(), if !running.is_empty() => {}
                _ = shutdown.wait() => {}
            }
        }
        // Every run saw the shutdown too and hands itself back; wait for that, within reason.
        let waited = tokio::time::timeout(config.grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if waited.is_err() {
            tracing::warn!(runs = running.len(), "sync runs still going at the end of the grace period were cut off; their leases will lapse and other workers take them over");
            running.abort_all();
        }
        tracing::info!(worker = %config.id, "sync worker stopped");
    }

    /// Carries out a job this worker holds, renewing its lease, then settles the job.
    async fn take(&self, lease: Lease, shutdown: Shutdown) {
        let (stop, interrupt) = interrupt::channel();
        let keeper = KeeperGuard(tokio::spawn(
            self.clone().keep_lease(lease.id, stop, shutdown),
        ));
        let end = self.carry_out(&lease, interrupt).await;
        drop(keeper);
        self.settle(&lease, end).await;
    }

    /// Renews the lease every third of its length; tells the run to stop when the worker shuts
    /// down (and goes on renewing while the run hands itself back, so that nobody takes it over
    /// meanwhile) or when the lease is lost (another worker took the job, or renewals kept
    /// failing for a whole lease).
    async fn keep_lease(self, job: Uuid, stop: Interrupter, mut shutdown: Shutdown) {
        let every = self.config.lease / 3;
        let mut last_renewed = tokio::time::Instant::now();
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.wait(), if !stopping => {
                    stop.stop(StopReason::Shutdown);
                    stopping = true;
                    continue;
                }
            }
            match self
                .jobs
                .renew(job, &self.config.id, self.config.lease)
                .await
            {
                Ok(true) => last_renewed = tokio::time::Instant::now(),
                Ok(false) => {
                    stop.stop(StopReason::LeaseLost);
                    return;
                }
                Err(error) if last_renewed.elapsed() >= self.config.lease => {
                    tracing::warn!(%error, %job, "the lease could not be renewed in time; stopping the run");
                    stop.stop(StopReason::LeaseLost);
                    return;
                }
                Err(error) => tracing::warn!(%error, %job, "could not renew a lease; trying again"),
            }
        }
    }

    async fn carry_out(&self, lease: &Lease, interrupt: Interrupt) -> JobEnd {
        let (workspace, connection) = (lease.workspace_id, lease.connection_id);
        if let Some(previous) = &lease.previous_owner {
            tracing::info!(job = %lease.id, previous_worker = %previous, worker = %self.config.id,
                           "taking over a job whose lease lapsed");
        }
        match lease.kind {
            JobKind::Sync => JobEnd::Sync(
                self.commands
                    .carry_out(
                        workspace,
                        connection,
                        SyncId(lease.id),
                        &self.config.id,
                        interrupt,
                    )
                    .await,
            ),
            JobKind::Discovery => JobEnd::Discovery(
                self.commands
                    .discover(workspace, connection, lease.id)
                    .await,
            ),
        }
    }

    /// Done, handed back, retried later, or left to whoever holds it now.
    async fn settle(&self, lease: &Lease, end: JobEnd) {
        let worker = &self.config.id;
        let settled = match end {
            JobEnd::Sync(Ok(RunEnd::Completed(_) | RunEnd::Failed(_) | RunEnd::AlreadyEnded))
            | JobEnd::Discovery(Ok(Discovered::Done)) => self.finish(lease).await,
            JobEnd::Sync(Ok(RunEnd::Interrupted(StopReason::Shutdown))) => {
                self.release(lease, None).await
            }
            JobEnd::Sync(Ok(RunEnd::Interrupted(StopReason::LeaseLost))) => Ok(()),
            JobEnd::Discovery(Ok(Discovered::RetryLater)) if lease.claims >= DISCOVERY_ATTEMPTS => {
                tracing::warn!(job = %lease.id, "discovery keeps failing; the next sync discovers");
                self.finish(lease).await
            }
            JobEnd::Discovery(Ok(Discovered::RetryLater)) => {
                self.release(lease, Some(DISCOVERY_RETRY)).await
            }
            JobEnd::Sync(Err(error)) | JobEnd::Discovery(Err(error)) => {
                tracing::warn!(%error, job = %lease.id, %worker, "a job failed on this worker; it will be taken up again");
                self.release(lease, Some(ERROR_WAIT)).await
            }
        };
        if let Err(error) = settled {
            // The lease lapses and another worker takes the job up: nothing is lost.
            tracing::warn!(%error, job = %lease.id, "could not settle a job");
        }
    }

    async fn finish(&self, lease: &Lease) -> Result<(), CommandError> {
        retrying("finishing a job", || async {
            Ok(self.jobs.finish(lease.id).await?)
        })
        .await
    }

    async fn release(&self, lease: &Lease, wait: Option<Duration>) -> Result<(), CommandError> {
        let worker = &self.config.id;
        retrying("handing a job back", || async {
            Ok(self.jobs.release(lease.id, worker, wait).await?)
        })
        .await
    }
}

impl Commands {
    /// Runs `sync` to its end in this process, as a worker of its own (the demo, benchmarks and
    /// tests, which have no worker running). Refused when a worker holds it already
    /// (`SyncAlreadyRunning`) or it has ended (`SyncNotRunning`).
    pub async fn run_sync(
        &self,
        workspace: WorkspaceId,
        connection: ConnectionId,
        sync: SyncId,
    ) -> Result<SyncCounts, CommandError> {
        self.connected(workspace, connection).await?;
        let worker = SyncWorker::new(self.clone(), WorkerConfig::default());
        let config = &worker.config;
        let Some(lease) = worker
            .jobs
            .claim(sync.as_uuid(), &config.id, config.lease)
            .await?
        else {
            let rule = match worker.jobs.is_done(sync.as_uuid()).await? {
                Some(false) => DomainError::SyncAlreadyRunning(sync),
                _ => DomainError::SyncNotRunning(sync),
            };
            return Err(CommandError::Rejected(rule));
        };
        if (lease.workspace_id, lease.connection_id) != (workspace, connection) {
            worker.release(&lease, None).await?;
            return Err(CommandError::NotFound("sync"));
        }
        let (stop, interrupt) = interrupt::channel();
        let keeper = KeeperGuard(tokio::spawn(worker.clone().keep_lease(
            lease.id,
            stop,
            Shutdown::never(),
        )));
        let end = worker.carry_out(&lease, interrupt).await;
        drop(keeper);
        let answer = match &end {
            JobEnd::Sync(Ok(RunEnd::Completed(counts))) => Ok(*counts),
            JobEnd::Sync(Ok(RunEnd::Failed(failure))) => {
                Err(CommandError::SyncFailed(failure.clone()))
            }
            JobEnd::Sync(Ok(RunEnd::AlreadyEnded)) => {
                Err(CommandError::Rejected(DomainError::SyncNotRunning(sync)))
            }
            JobEnd::Sync(Ok(RunEnd::Interrupted(_))) => Err(CommandError::Rejected(
                DomainError::SyncClaimedElsewhere(sync),
            )),
            JobEnd::Sync(Err(e)) => Err(CommandError::Conflict(e.to_string())),
            JobEnd::Discovery(_) => Err(CommandError::NotFound("sync")),
        };
        worker.settle(&lease, end).await;
        answer
    }
}
