//! `adledger replay`: the log in order as NDJSON on stdout, exactly as stored (or with personal
//! fields opened), filtered as the events API filters (positions, workspace, stream, recorded
//! time, event types, actor, stream type; combined), with a progress bar over the positions it
//! covers on stderr. It only reads.

use crate::ops::store;
use adledger_domain::{DomainEvent, StreamId, StreamType, WorkspaceId};
use adledger_infra::{ActorFilter, EventFilter, LogFilter, Secret};
use chrono::{DateTime, Utc};
use std::io::Write;
use uuid::Uuid;

#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[arg(long)]
    pub workspace: Option<Uuid>,
    #[arg(long)]
    pub stream: Option<String>,
    /// First position (inclusive). To resume a replay, the last position printed + 1.
    #[arg(long, default_value_t = 1)]
    pub from_position: i64,
    /// Last position (inclusive).
    #[arg(long)]
    pub to_position: Option<i64>,
    /// Only events recorded at or after this time (RFC 3339).
    #[arg(long)]
    pub from_time: Option<DateTime<Utc>>,
    /// Only events recorded at or before this time (RFC 3339).
    #[arg(long)]
    pub to_time: Option<DateTime<Utc>>,
    /// Only events of these types (repeat the flag or separate with commas).
    #[arg(long = "event-type", value_delimiter = ',')]
    pub event_types: Vec<String>,
    /// Only events caused by this actor: user:<id>, api_key:<id>, system, system:<component>
    /// or anonymous.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only events of streams of this kind: workspace, connection, campaign or user.
    #[arg(long)]
    pub stream_type: Option<String>,
    /// Open sealed personal fields (needs ADLEDGER_MASTER_KEYS); erased people's read
    /// `[erased]`. Without it, events are printed exactly as stored (as the hash chain covers).
    #[arg(long)]
    pub reveal: bool,
}

/// The filters the arguments ask for; an unknown event type, actor or stream type is refused
/// before anything is read.
fn filters(args: &ReplayArgs) -> anyhow::Result<(LogFilter, EventFilter)> {
    let stream_id = match &args.stream {
        Some(raw) => {
            Some(StreamId::parse(raw).ok_or_else(|| anyhow::anyhow!("invalid stream id {raw:?}"))?)
        }
        None => None,
    };
    let mut event_types = Vec::new();
    for raw in args
        .event_types
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
    {
        if !DomainEvent::TYPES.iter().any(|(name, _)| *name == raw) {
            anyhow::bail!("unknown event type {raw:?}");
        }
        event_types.push(raw.to_owned());
    }
    let actor = match &args.actor {
        Some(raw) => Some(ActorFilter::parse(raw).map_err(|e| anyhow::anyhow!("--actor {e}"))?),
        None => None,
    };
    let stream_type = match &args.stream_type {
        Some(raw) => Some(StreamType::parse(raw).ok_or_else(|| {
            anyhow::anyhow!("--stream-type must be workspace, connection, campaign or user")
        })?),
        None => None,
    };
    let log = LogFilter {
        after: args.from_position.max(1) - 1,
        up_to: args.to_position,
        workspace_id: args.workspace.map(WorkspaceId),
        stream_id,
        limit: 1_000,
    };
    let events = EventFilter {
        recorded_from: args.from_time,
        recorded_to: args.to_time,
        event_types,
        actor,
        stream_type,
    };
    Ok((log, events))
}

pub async fn replay(url: &Secret<String>, args: ReplayArgs) -> anyhow::Result<()> {
    let (mut log, events) = filters(&args)?;
    let store = store(url).await?;
    let sealer = if args.reveal {
        let keys = crate::startup::keys_from_env()?;
        Some(adledger_infra::Sealer::new(
            store.pool().clone(),
            keys.master,
        ))
    } else {
        None
    };
    // The bar counts positions covered (filters skip some), up to the head as it is now.
    let start = log.after;
    let end = match log.up_to {
        Some(up_to) => up_to.min(store.head_position().await?),
        None => store.head_position().await?,
    };
    let bar = crate::progress::events(end.saturating_sub(start).max(0) as u64, "replaying");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let page = store.read_log_filtered(&log, &events).await?;
        let Some(last) = page.last().and_then(|e| e.position) else {
            break;
        };
        match &sealer {
            None => {
                for event in &page {
                    serde_json::to_writer(&mut out, event)?;
                    out.write_all(b"\n")?;
                }
            }
            Some(sealer) => {
                let mut values = page
                    .iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?;
                sealer.reveal_json(&mut values).await?;
                for value in &values {
                    serde_json::to_writer(&mut out, value)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        bar.set_position(last.saturating_sub(start).max(0) as u64);
        log.after = last;
    }
    bar.finish_and_clear();
    out.flush()?;
    Ok(())
}
