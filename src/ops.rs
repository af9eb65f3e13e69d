//! Ops commands: projection status and rebuilds, replay as NDJSON, chain verification.

use crate::cli::{ProjectionsCommand, Source};
use adledger_infra::{Database, EventStore, LogFilter, Secret};
use adledger_projections::status::ProjectionSource;
use adledger_projections::{DeploymentStatus, ProjectionStatus};
use std::process::ExitCode;

pub(crate) async fn store(url: &Secret<String>) -> anyhow::Result<EventStore> {
    let db = Database::connect(url, 4).await?;
    Ok(EventStore::new(db.app))
}

pub async fn projections(
    url: &Secret<String>,
    command: ProjectionsCommand,
) -> anyhow::Result<ExitCode> {
    let store = store(url).await?;
    match command {
        ProjectionsCommand::Status { kafka } => {
            let kafka = kafka.config();
            let deployment = adledger_projections::Deployment {
                relay_topic: kafka.as_ref().map(|k| k.topic.as_str()),
                projections_from_kafka: kafka.as_ref(),
            };
            print_status(&adledger_projections::deployment_status(&store, deployment).await?);
        }
        ProjectionsCommand::Rebuild {
            name,
            batch,
            source: Source::Postgres,
            ..
        } => {
            let Some(projection) = adledger_projections::by_name(&name) else {
                return Ok(unknown(&name));
            };
            return crate::rebuilds::rebuild(&store, &*projection, batch).await;
        }
        ProjectionsCommand::Rebuild {
            name,
            source: Source::Kafka,
            kafka,
            ..
        } => {
            if adledger_projections::by_name(&name).is_none() {
                return Ok(unknown(&name));
            }
            let started = std::time::Instant::now();
            let applied =
                adledger_projections::kafka::rebuild(store.pool(), &kafka.required()?, &name)
                    .await?;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "rebuilt {name} in place from kafka: {applied} events in {secs:.2} s ({:.0} events/s)",
                applied as f64 / secs.max(1e-9)
            );
        }
        ProjectionsCommand::Rollback { name, batch } => {
            let Some(projection) = adledger_projections::by_name(&name) else {
                return Ok(unknown(&name));
            };
            return crate::rebuilds::rollback(&store, &*projection, batch).await;
        }
        ProjectionsCommand::Drop { name, version } => {
            let Some(projection) = adledger_projections::by_name(&name) else {
                return Ok(unknown(&name));
            };
            return crate::rebuilds::drop(&store, &*projection, version).await;
        }
        ProjectionsCommand::Versions => return crate::rebuilds::list(&store).await,
        ProjectionsCommand::Checksum {
            name: Some(name),
            version: Some(version),
        } => {
            if adledger_projections::by_name(&name).is_none() {
                return Ok(unknown(&name));
            }
            println!(
                "{}",
                adledger_projections::checksum_version(store.pool(), &name, version).await?
            );
        }
        ProjectionsCommand::Checksum {
            name: Some(name), ..
        } => {
            if adledger_projections::by_name(&name).is_none() {
                eprintln!("unknown projection {name:?}; known: {}", known());
                return Ok(ExitCode::from(2));
            }
            println!(
                "{}",
                adledger_projections::checksum(store.pool(), &name).await?
            );
        }
        // The whole read side in one listing, so that two databases (a live one and a rebuild,
        // an original and its restored backup) compare with `diff`.
        ProjectionsCommand::Checksum { name: None, .. } => {
            for projection in adledger_projections::all() {
                let name = projection.name();
                let sum = adledger_projections::checksum(store.pool(), name).await?;
                println!("{name} {sum}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The projections fed from the Postgres log; then, with a topic, the relay's lag and, per
/// projection and partition, what Kafka-mode workers have applied against what the topic holds.
fn print_status(status: &DeploymentStatus) {
    let waiting = &status.unsequenced;
    println!(
        "log head {}; {}{} events wait to be sequenced{}",
        status.head,
        if waiting.at_least { "at least " } else { "" },
        waiting.count,
        waiting
            .oldest_age_seconds
            .map(|age| format!(", the oldest for {age:.1} s"))
            .unwrap_or_default()
    );
    if let Some(holder) = &status.horizon.holder {
        println!("settle horizon held by {}", holder.describe());
    }
    println!(
        "{:<16} {:>10} {:>10} {:>10} {:>10} {:>14} {:>12}  last_error",
        "projection", "position", "head", "lag", "lag_s", "events_applied", "events/s"
    );
    for s in status.projections.iter() {
        if s.source != ProjectionSource::PostgresLog {
            continue;
        }
        println!(
            "{:<16} {:>10} {:>10} {:>10} {:>10.1} {:>14} {:>12.0}  {}",
            s.name,
            s.position,
            s.head,
            s.lag_events,
            s.lag_seconds,
            s.events_applied,
            s.events_per_sec,
            s.last_error.as_deref().unwrap_or("-")
        );
    }
    print_versions(status);
    match &status.relay {
        Some(r) if r.updated_at.is_some() => println!(
            "\nrelay to {}: position {} of {}, lag {} events / {:.1} s, {} published",
            r.topic, r.position, r.head, r.lag_events, r.lag_seconds, r.events_published
        ),
        Some(r) => println!("\nrelay to {}: has not published yet", r.topic),
        None => {}
    }
    let kafka: Vec<(&ProjectionStatus, &str)> = status
        .projections
        .iter()
        .filter_map(|s| match &s.source {
            ProjectionSource::Kafka { topic } => Some((s, topic.as_str())),
            ProjectionSource::PostgresLog => None,
        })
        .collect();
    if kafka.is_empty() {
        return;
    }
    println!(
        "{:<16} {:<20} {:>9} {:>12} {:>12} {:>10} {:>14}  owner / last_error",
        "kafka projection",
        "topic",
        "partition",
        "next_offset",
        "end_offset",
        "lag",
        "events_applied"
    );
    for (s, topic) in kafka {
        for p in &s.partitions {
            let unknown = || "?".to_owned();
            println!(
                "{:<16} {:<20} {:>9} {:>12} {:>12} {:>10} {:>14}  {} {}",
                s.name,
                topic,
                p.partition,
                p.next_offset,
                p.end_offset.map_or_else(unknown, |e| e.to_string()),
                p.lag_events().map_or_else(unknown, |l| l.to_string()),
                p.events_applied,
                p.owner.as_deref().unwrap_or("-"),
                p.last_error.as_deref().unwrap_or("")
            );
        }
    }
}

/// Each read model's live version, retired versions and build in progress (position, rate, ETA).
fn print_versions(status: &DeploymentStatus) {
    for s in status.projections.iter() {
        let Some(v) = s
            .versions
            .as_ref()
            .filter(|_| s.source == ProjectionSource::PostgresLog)
        else {
            continue;
        };
        let live = match (v.live, v.live_code_version) {
            (Some(live), Some(code)) => format!("live version {live} (code version {code})"),
            _ => "no live version yet".to_owned(),
        };
        let outdated = if v.outdated() {
            format!(
                "; outdated, this binary has code version {}",
                v.code_version
            )
        } else {
            String::new()
        };
        let retired = if v.retired.is_empty() {
            String::new()
        } else {
            format!("; retired {:?}", v.retired)
        };
        println!("{:<16} {live}{outdated}{retired}", s.name);
        if let Some(b) = &v.building {
            println!(
                "{:<16} building version {}: position {} of {}, {} to go, {:.0} events/s, ETA {}{}",
                "",
                b.version,
                b.position,
                s.head,
                b.lag_events,
                b.events_per_sec,
                b.eta_seconds
                    .map_or_else(|| "?".to_owned(), |eta| format!("{eta:.0} s")),
                b.last_error
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            );
        }
    }
}

fn unknown(name: &str) -> ExitCode {
    eprintln!("unknown projection {name:?}; known: {}", known());
    ExitCode::from(2)
}

fn known() -> String {
    adledger_projections::all()
        .iter()
        .map(|p| p.name())
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn verify(url: &Secret<String>) -> anyhow::Result<ExitCode> {
    let store = store(url).await?;
    let bar = crate::progress::events(0, "verifying the hash chain");
    let report = store
        .verify_with_progress(|progress| match progress {
            adledger_infra::event_store::verify::Progress::Head(head) => bar.set_length(head),
            adledger_infra::event_store::verify::Progress::Verified(n) => bar.inc(n),
        })
        .await?;
    bar.finish_and_clear();
    match &report.first_broken {
        None => {
            // The head's hash stands for the whole chain up to it: kept apart from the database
            // (with each backup), it shows later whether a restored log is the one verified here.
            let head = head_hash(&store, report.head).await?;
            println!(
                "ok: {} events verified, the hash chain is intact{head}",
                report.verified
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(broken) => {
            println!(
                "BROKEN at position {} of {}: {} ({} events before it verified)",
                broken.position, report.head, broken.reason, report.verified
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `; position N has hash HEX` for a log whose head is `head`, nothing for an empty log.
async fn head_hash(store: &EventStore, head: i64) -> anyhow::Result<String> {
    if head == 0 {
        return Ok(String::new());
    }
    let filter = LogFilter {
        after: head - 1,
        up_to: Some(head),
        workspace_id: None,
        stream_id: None,
        limit: 1,
    };
    let page = store.read_log(&filter).await?;
    Ok(match page.first().and_then(|event| event.hash) {
        Some(hash) => {
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            format!("; position {head} has hash {hex}")
        }
        None => String::new(),
    })
}

/// `adledger keys generate`: fresh key lists for the environment. Nothing is stored.
pub fn generate_keys(kid: &str) -> anyhow::Result<()> {
    let master = adledger_infra::MasterKeys::generate(kid)?;
    let jwt = adledger_infra::JwtKeys::generate(kid)?;
    println!(
        "{}={}",
        adledger_infra::crypto::MASTER_KEYS_ENV,
        master.to_env_string().expose()
    );
    println!(
        "{}={}",
        adledger_infra::crypto::JWT_KEYS_ENV,
        jwt.to_env_string().expose()
    );
    Ok(())
}

/// `adledger keys rewrap`: every per-person key and every connection's tokens re-encrypted under
/// the active master key, so that older master keys can be dropped from the list.
pub async fn rewrap_keys(url: &Secret<String>) -> anyhow::Result<()> {
    let keys = crate::startup::keys_from_env()?;
    let store = store(url).await?;
    let active = keys.master.active_kid().to_owned();
    let credentials = adledger_infra::credentials::CredentialStore::new(
        store.pool().clone(),
        keys.master.clone(),
    );
    let sealer = adledger_infra::Sealer::new(store.pool().clone(), keys.master);
    let rewrapped = sealer.rewrap_all().await?;
    let tokens = credentials.rewrap_all().await?;
    println!(
        "re-wrapped {rewrapped} subject key(s) and {tokens} connection token set(s) under master \
         key {active:?}"
    );
    Ok(())
}

/// `adledger operators grant|revoke EMAIL`: recorded on the person's stream as the CLI's act.
pub async fn set_operator(url: &Secret<String>, email: &str, grant: bool) -> anyhow::Result<()> {
    let store = store(url).await?;
    let identity = crate::startup::identity(
        &store,
        crate::startup::keys_from_env()?,
        adledger_commands::identity::AuthPolicy::default(),
    );
    let ctx = adledger_commands::CommandContext::system("cli");
    let user = identity.set_operator(&ctx, email, grant).await?;
    let what = if grant {
        "is an operator now"
    } else {
        "is no longer an operator"
    };
    println!("{email} ({user}) {what}");
    Ok(())
}
