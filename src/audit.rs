//! `adledger audit export` writes a workspace's audit package (its events with their inclusion
//! proofs and the signed checkpoint that covers them); `adledger audit verify` checks one
//! offline, with only the verifier keys: it never opens a database or calls a server.

use crate::proofs::CheckpointArgs;
use adledger_domain::WorkspaceId;
use adledger_infra::audit_package;
use adledger_infra::event_store::PackageRange;
use adledger_infra::EventStore;
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use uuid::Uuid;

#[derive(Debug, clap::Subcommand)]
pub enum AuditCommand {
    /// Write a workspace's audit package (the whole history when no range is given).
    Export {
        #[arg(long)]
        workspace: Uuid,
        /// Events recorded at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Events recorded before this time (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// The package file to write.
        #[arg(long)]
        out: PathBuf,
        /// With a signing key, the package is proven in a checkpoint of the current head;
        /// without, in the newest checkpoint issued.
        #[command(flatten)]
        checkpoints: CheckpointArgs,
    },
    /// Check a package offline against verifier keys; exit 1 naming the first event that fails.
    Verify {
        /// The package file.
        file: PathBuf,
        /// A file of verifier keys (`name+hexid+base64`, one a line, as `adledger keys public`
        /// prints them); lines starting with `#` are skipped.
        #[arg(long)]
        key: PathBuf,
    },
}

/// `adledger audit export`.
pub async fn export(
    store: &EventStore,
    range: PackageRange,
    out: &std::path::Path,
    checkpoints: &CheckpointArgs,
) -> anyhow::Result<()> {
    if let (Some(from), Some(to)) = (range.from, range.to) {
        anyhow::ensure!(from < to, "--from must be before --to");
    }
    let signer = checkpoints.checkpointer()?;
    let checkpoint = store
        .package_checkpoint(signer.as_ref())
        .await?
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no checkpoint has been issued and no checkpoint key is configured to issue one"
            )
        })?;
    let total = store.package_count(&range, &checkpoint).await?;
    let bar = crate::progress::events(total, "exporting the audit package");
    let file = std::fs::File::create(out)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let size = checkpoint.tree_size;
    let mut lines = std::pin::pin!(store.package(range, checkpoint));
    let mut first = true;
    while let Some(chunk) = lines.next().await {
        let chunk = chunk?;
        writer.write_all(&chunk)?;
        if !std::mem::take(&mut first) {
            bar.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
        }
    }
    writer.flush()?;
    bar.finish_and_clear();
    println!(
        "wrote {total} events of workspace {} proven in the checkpoint of tree size {size} to {}",
        range.workspace.0,
        out.display()
    );
    Ok(())
}

/// `adledger audit verify`.
pub fn verify(file: &std::path::Path, key: &std::path::Path) -> anyhow::Result<ExitCode> {
    let keys: Vec<String> = std::fs::read_to_string(key)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", key.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    anyhow::ensure!(!keys.is_empty(), "{} holds no verifier key", key.display());
    let open = || {
        std::fs::File::open(file)
            .map(BufReader::new)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))
    };
    let total = open()?.lines().count().saturating_sub(1) as u64;
    let bar = crate::progress::events(total, "verifying the audit package");
    let outcome = audit_package::verify(open()?, &keys, || bar.inc(1));
    bar.finish_and_clear();
    match outcome {
        Ok(verified) => {
            println!(
                "ok: {} events of workspace {} verified in the checkpoint of tree size {} \
                 (origin {}, signed by {})",
                verified.events,
                verified.workspace_id,
                verified.checkpoint.size,
                verified.checkpoint.origin,
                verified.signed_by.join(", ")
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(failure) => {
            println!("FAILED: {failure}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The range of `audit export`'s flags.
pub fn range(
    workspace: Uuid,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> PackageRange {
    PackageRange {
        workspace: WorkspaceId(workspace),
        from,
        to,
    }
}
