//! `adledger projections rebuild|rollback|drop|versions`: versioned rebuilds of read models
//! (`adledger_projections::versions`), with a progress bar over the log while a version builds.
//! Never writes a read model's live tables directly.

use adledger_infra::EventStore;
use adledger_projections::versions;
use adledger_projections::{Projection, ProjectionError};
use indicatif::ProgressBar;
use std::process::ExitCode;

/// Builds a new version and switches readers to it.
pub async fn rebuild(
    store: &EventStore,
    projection: &dyn Projection,
    batch: i64,
) -> anyhow::Result<ExitCode> {
    store.sequence_all().await?;
    let name = projection.name();
    let started = std::time::Instant::now();
    let (bar, on_page) = bar(store, &format!("rebuilding {name}")).await?;
    let done = versions::rebuild(store, store.pool(), projection, batch, &on_page).await;
    bar.finish_and_clear();
    let done = done?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "rebuilt {name} as version {} (version {} retired): {} events in {secs:.2} s ({:.0} events/s)",
        done.version,
        done.previous,
        done.applied,
        done.applied as f64 / secs.max(1e-9)
    );
    Ok(ExitCode::SUCCESS)
}

/// Switches readers back to the version retired last.
pub async fn rollback(
    store: &EventStore,
    projection: &dyn Projection,
    batch: i64,
) -> anyhow::Result<ExitCode> {
    store.sequence_all().await?;
    let name = projection.name();
    let (bar, on_page) = bar(store, &format!("catching up {name}")).await?;
    let done = versions::rollback(store, store.pool(), projection, batch, &on_page).await;
    bar.finish_and_clear();
    match done {
        Ok(done) => {
            println!(
                "rolled {name} back to version {} (version {} retired; {} events caught up)",
                done.version, done.previous, done.applied
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(ProjectionError::NothingToRollBack(_)) => {
            eprintln!("{name} has no retired version to roll back to");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// Drops a version readers do not see.
pub async fn drop(
    store: &EventStore,
    projection: &dyn Projection,
    version: i32,
) -> anyhow::Result<ExitCode> {
    let name = projection.name();
    match versions::drop_version(store.pool(), projection, version).await {
        Ok(()) => {
            println!("dropped version {version} of {name}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ (ProjectionError::VersionIsLive { .. } | ProjectionError::NoVersion { .. })) => {
            eprintln!("{e}");
            Ok(ExitCode::from(2))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every version of every read model.
pub async fn list(store: &EventStore) -> anyhow::Result<ExitCode> {
    println!(
        "{:<16} {:>7} {:>5} {:<9} {:>10} {:>14}  switched_at / last_error",
        "read model", "version", "code", "state", "position", "events_applied"
    );
    for v in versions::list(store.pool()).await? {
        println!(
            "{:<16} {:>7} {:>5} {:<9} {:>10} {:>14}  {} {}",
            v.name,
            v.version,
            v.code_version,
            format!("{:?}", v.state).to_lowercase(),
            if v.state == versions::State::Live {
                "-".to_owned()
            } else {
                v.position.to_string()
            },
            v.events_applied,
            v.switched_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            v.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A progress bar over the log's head, and what moves it to a page's position (the head moves
/// while a build runs: the bar grows with it).
async fn bar(
    store: &EventStore,
    doing: &str,
) -> Result<(ProgressBar, impl Fn(i64) + Send + Sync), ProjectionError> {
    let head = store.head_position().await?;
    let bar = crate::progress::events(head.max(0) as u64, doing);
    let moved = bar.clone();
    let on_page = move |position: i64| {
        let position = position.max(0) as u64;
        if position > moved.length().unwrap_or(0) {
            moved.set_length(position);
        }
        moved.set_position(position);
    };
    Ok((bar, on_page))
}
