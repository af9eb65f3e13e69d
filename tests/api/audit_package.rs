//! Audit packages end to end: exported by the CLI and served by the API, checked by
//! `adledger audit verify` with no database, and every kind of tampering refused, naming the
//! first event that fails.

use crate::helpers::{assert_problem, spawn_app, TestApp, CHECKPOINT_ORIGIN};
use adledger_infra::audit_package::{self, PackageError};
use adledger_infra::checkpoint::{Checkpoint, CheckpointKeys};
use serde_json::Value;
use std::path::{Path, PathBuf};

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("adledger-audit-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A workspace whose history interleaves with another's, so its positions are not contiguous.
async fn history(app: &TestApp) -> String {
    let ws = app.workspace("Audited").await;
    let other = app.workspace("Other").await;
    app.sandbox(&ws, 7, 2).await;
    app.sandbox(&other, 8, 1).await;
    app.sandbox(&ws, 9, 1).await;
    app.events(&ws, "").await;
    ws
}

/// `adledger audit verify` with no DATABASE_URL at all: exit status and standard output.
fn verify_offline(package: &Path, keys: &Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(["audit", "verify"])
        .arg(package)
        .arg("--key")
        .arg(keys)
        .env_remove("DATABASE_URL")
        .env_remove("ADLEDGER_CHECKPOINT_KEYS")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn join(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn check(package: &str, keys: &[String]) -> Result<audit_package::Verified, PackageError> {
    audit_package::verify(package.as_bytes(), keys, || {})
}

/// The failing event's position, asserting that the failure names an event.
fn failing_position(result: Result<audit_package::Verified, PackageError>) -> (i64, String) {
    match result {
        Err(PackageError::Event { position, why, .. }) => (position, why),
        other => panic!("expected an event to fail, got {other:?}"),
    }
}

#[tokio::test]
async fn a_package_verifies_offline_and_every_tampering_is_refused_naming_what_failed() {
    let app = spawn_app().await;
    let ws = history(&app).await;
    let files = Files::new();
    let keys_file = files.path("keys.txt");
    std::fs::write(&keys_file, app.adledger(&["keys", "public"]).await).unwrap();
    let keys: Vec<String> = std::fs::read_to_string(&keys_file)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let package_file = files.path("package.ndjson");
    let out = package_file.to_str().unwrap();
    app.adledger(&["audit", "export", "--workspace", &ws, "--out", out])
        .await;

    let (ok, said) = verify_offline(&package_file, &keys_file);
    assert!(ok, "{said}");
    let text = std::fs::read_to_string(&package_file).unwrap();
    let package = lines(&text);
    let events = &package[1..];
    assert_eq!(events.len(), app.events(&ws, "").await.len());
    assert!(said.contains(&format!("ok: {} events of workspace {ws}", events.len())));
    // Positions are the workspace's, with the other workspace's events between them.
    let positions: Vec<i64> = events
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert!(
        positions.windows(2).any(|w| w[1] > w[0] + 1),
        "{positions:?}"
    );

    // The API serves the same package to whoever may read the workspace's history.
    let r = app.get(&format!("/v1/workspaces/{ws}/audit/package")).await;
    assert_eq!(r.status(), 200);
    let served = r.text().await.unwrap();
    let verified = check(&served, &keys).unwrap();
    assert_eq!(verified.events, events.len() as u64);
    assert_eq!(verified.checkpoint.origin, CHECKPOINT_ORIGIN);

    // One byte of one payload.
    let mut altered = package.clone();
    let victim = 3;
    let payload = altered[victim]["payload"].as_str().unwrap().to_owned();
    let at = payload.find(|c: char| c.is_ascii_lowercase()).unwrap();
    let mut bytes = payload.into_bytes();
    bytes[at] = bytes[at].to_ascii_uppercase();
    altered[victim]["payload"] = Value::String(String::from_utf8(bytes).unwrap());
    let altered = join(&altered);
    let (position, why) = failing_position(check(&altered, &keys));
    assert_eq!(position, positions[victim - 1]);
    assert!(why.contains("not in the checkpoint's tree"), "{why}");
    std::fs::write(&package_file, &altered).unwrap();
    let (ok, said) = verify_offline(&package_file, &keys_file);
    assert!(!ok);
    let event_id = package[victim]["event_id"].as_str().unwrap();
    assert!(
        said.contains(&format!("position {}", positions[victim - 1])) && said.contains(event_id),
        "{said}"
    );

    // An event removed: its stream's next event is refused (the stream skips a version).
    let removed = (1..package.len() - 1)
        .find(|&i| {
            package[i + 1..]
                .iter()
                .any(|e| e["stream_id"] == package[i]["stream_id"])
        })
        .unwrap();
    let neighbour = (removed + 1..package.len())
        .find(|&i| package[i]["stream_id"] == package[removed]["stream_id"])
        .unwrap();
    let mut gapped = package.clone();
    gapped.remove(removed);
    let (position, why) = failing_position(check(&join(&gapped), &keys));
    assert_eq!(position, package[neighbour]["position"].as_i64().unwrap());
    assert!(why.contains("missing"), "{why}");

    // Two events swapped: the one now out of log order is named.
    let mut swapped = package.clone();
    swapped.swap(2, 3);
    let (position, why) = failing_position(check(&join(&swapped), &keys));
    assert_eq!(position, positions[1]);
    assert!(why.contains("out of log order"), "{why}");

    // A forged proof: one sibling hash changed.
    let mut forged = package.clone();
    forged[2]["proof"][0] = Value::String(base64_of(&[9u8; 32]));
    let (position, _) = failing_position(check(&join(&forged), &keys));
    assert_eq!(position, positions[1]);

    // The wrong key.
    let (_, stranger) = CheckpointKeys::generate(CHECKPOINT_ORIGIN).unwrap();
    assert!(matches!(
        check(&text, &[stranger]),
        Err(PackageError::Checkpoint(_))
    ));

    // The same checkpoint re-signed by another key (and with another root): refused.
    let (other, _) = CheckpointKeys::generate(CHECKPOINT_ORIGIN).unwrap();
    let opened = Checkpoint::parse(package[0]["checkpoint"].as_str().unwrap()).unwrap();
    let resigned = CheckpointKeys::parse(&other).unwrap();
    for root in [opened.root, [1; 32]] {
        let mut package = package.clone();
        package[0]["checkpoint"] = Value::String(
            resigned
                .sign(&Checkpoint {
                    root,
                    ..opened.clone()
                })
                .unwrap(),
        );
        assert!(matches!(
            check(&join(&package), &keys),
            Err(PackageError::Checkpoint(_))
        ));
    }
}

fn base64_of(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn a_range_holds_only_its_events_and_bad_ranges_are_refused() {
    let app = spawn_app().await;
    let ws = history(&app).await;
    let keys = vec![app.adledger(&["keys", "public"]).await.trim().to_owned()];
    let events = app.events(&ws, "").await;
    let cut = events[2]["recorded_at"].as_str().unwrap().to_owned();
    let from = urlencode(&cut);
    let r = app
        .get(&format!("/v1/workspaces/{ws}/audit/package?from={from}"))
        .await;
    assert_eq!(r.status(), 200);
    let verified = check(&r.text().await.unwrap(), &keys).unwrap();
    let expected = events
        .iter()
        .filter(|e| e["recorded_at"].as_str().unwrap() >= cut.as_str())
        .count();
    assert!(expected < events.len());
    assert_eq!(verified.events, expected as u64);

    let r = app
        .get(&format!(
            "/v1/workspaces/{ws}/audit/package?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z"
        ))
        .await;
    assert_problem(r, 422, "validation-failed").await;
    let r = app
        .get(&format!("/v1/workspaces/{ws}/audit/package?from=yesterday"))
        .await;
    assert_problem(r, 422, "validation-failed").await;
    // Someone who is no member of the workspace: the same 404 as for no workspace.
    let stranger = app.user("stranger@example.com").await;
    let r = app
        .get_as(
            &stranger.token,
            &format!("/v1/workspaces/{ws}/audit/package"),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}
