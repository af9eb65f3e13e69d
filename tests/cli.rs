//! The `adledger` binary end to end: migrate, demo, replay, verify, projections.

use adledger_infra::testing::TestDatabase;
use sqlx::Executor;
use std::process::{Command, Output};
use std::sync::OnceLock;

/// One set of keys for every run of the binary in this test process.
fn keys() -> &'static (String, String) {
    static KEYS: OnceLock<(String, String)> = OnceLock::new();
    KEYS.get_or_init(|| {
        (
            adledger_infra::testing::test_master_keys()
                .to_env_string()
                .expose()
                .clone(),
            adledger_infra::testing::test_jwt_keys()
                .to_env_string()
                .expose()
                .clone(),
        )
    })
}

fn adledger(db: &TestDatabase, args: &[&str]) -> Output {
    adledger_with_keys(db, args, &keys().0)
}

fn adledger_with_keys(db: &TestDatabase, args: &[&str], master_keys: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(args)
        .env("DATABASE_URL", db.url.expose())
        .env("RUST_LOG", "warn")
        .env("ADLEDGER_MASTER_KEYS", master_keys)
        .env("ADLEDGER_JWT_KEYS", &keys().1)
        .output()
        .expect("run adledger")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn demo_replay_verify_and_projection_commands_work_end_to_end() {
    let db = TestDatabase::new().await;
    assert!(adledger(&db, &["migrate"]).status.success());

    let demo = adledger(&db, &["demo", "--campaigns", "3", "--days", "5"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(stdout(&demo).contains("curl"), "demo prints example calls");
    // A second run appends nothing new: the same idempotency keys, the same numbers.
    let again = adledger(&db, &["demo", "--campaigns", "3", "--days", "5"]);
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let replay = adledger(&db, &["replay"]);
    assert!(replay.status.success());
    let lines: Vec<serde_json::Value> = stdout(&replay)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let insights = lines
        .iter()
        .filter(|e| e["event_type"] == "DailyInsightsRecorded")
        .count();
    assert_eq!(
        insights,
        3 * 5,
        "3 campaigns × 5 days, recorded once across two demo runs"
    );
    let positions: Vec<i64> = lines
        .iter()
        .map(|e| e["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions, (1..=lines.len() as i64).collect::<Vec<_>>());
    let window = adledger(
        &db,
        &["replay", "--from-position", "2", "--to-position", "4"],
    );
    assert_eq!(stdout(&window).lines().count(), 3);

    let verify = adledger(&db, &["verify"]);
    assert!(verify.status.success(), "{}", stdout(&verify));
    assert!(stdout(&verify).starts_with("ok:"));

    let status = adledger(&db, &["projections", "status"]);
    assert!(status.status.success());
    assert!(stdout(&status).contains("daily_insights") && stdout(&status).contains("catalog"));
    assert!(stdout(&status).contains("events/s"), "{}", stdout(&status));

    let checksum = |db: &TestDatabase| {
        stdout(&adledger(
            db,
            &["projections", "checksum", "daily_insights"],
        ))
    };
    let before = checksum(&db);
    let rebuild = adledger(&db, &["projections", "rebuild", "daily_insights"]);
    assert!(
        rebuild.status.success(),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert_eq!(checksum(&db), before, "a rebuild gives byte-identical rows");
    assert!(stdout(&rebuild).contains("as version 2 (version 1 retired)"));
    let versions = stdout(&adledger(&db, &["projections", "versions"]));
    assert!(
        versions
            .lines()
            .any(|l| l.starts_with("daily_insights") && l.contains(" 2 ") && l.contains("live")),
        "{versions}"
    );
    let rollback = adledger(&db, &["projections", "rollback", "daily_insights"]);
    assert!(
        rollback.status.success(),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    assert!(
        stdout(&rollback).contains("back to version 1"),
        "{}",
        stdout(&rollback)
    );
    assert_eq!(checksum(&db), before);
    let of_version_2 = adledger(
        &db,
        &[
            "projections",
            "checksum",
            "daily_insights",
            "--version",
            "2",
        ],
    );
    assert_eq!(stdout(&of_version_2), before, "the retired version too");
    let drop = |version: &str| {
        adledger(&db, &["projections", "drop", "daily_insights", version])
            .status
            .code()
    };
    assert_eq!(drop("1"), Some(2), "the live version is never dropped");
    assert_eq!(drop("2"), Some(0));
    assert_eq!(drop("2"), Some(2), "gone");
    assert_eq!(
        adledger(&db, &["projections", "rollback", "daily_insights"])
            .status
            .code(),
        Some(2),
        "nothing left to roll back to"
    );
    assert_eq!(
        adledger(&db, &["projections", "rebuild", "nope"])
            .status
            .code(),
        Some(2)
    );

    // Tamper with one event behind the application's back: verify names it and fails.
    let victim = &lines[4];
    let mut owner = db.owner().await;
    owner
        .execute("SET session_replication_role = replica")
        .await
        .unwrap();
    sqlx::query(
        "UPDATE events SET occurred_at = occurred_at + interval '1 second' WHERE event_id = $1",
    )
    .bind(uuid::Uuid::parse_str(victim["event_id"].as_str().unwrap()).unwrap())
    .execute(&mut owner)
    .await
    .unwrap();
    let verify = adledger(&db, &["verify"]);
    assert_eq!(verify.status.code(), Some(1));
    assert!(
        stdout(&verify).contains("BROKEN at position 5"),
        "{}",
        stdout(&verify)
    );
}

#[test]
fn a_missing_database_url_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_adledger"))
        .arg("verify")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is not set"));
}

#[tokio::test]
async fn keys_are_generated_and_rotated_without_losing_sealed_data() {
    let generated = Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(["keys", "generate", "--kid", "old"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(generated.status.success());
    let text = stdout(&generated);
    let line = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
            .to_owned()
    };
    let old = line("ADLEDGER_MASTER_KEYS");
    assert!(old.starts_with("old:"));
    assert!(line("ADLEDGER_JWT_KEYS").starts_with("old:"));

    // Data sealed under the old key: a person's key and a connection's tokens.
    let db = TestDatabase::new().await;
    let pool = db.store().pool().clone();
    let old_keys = adledger_infra::MasterKeys::parse(&old).unwrap();
    let sealer = adledger_infra::Sealer::new(pool.clone(), old_keys.clone());
    let subject = uuid::Uuid::now_v7();
    let sealed = sealer.seal(subject, "someone@example.com").await.unwrap();
    let credentials =
        adledger_infra::credentials::CredentialStore::new(pool.clone(), old_keys.clone());
    let connection = adledger_domain::ConnectionId(uuid::Uuid::now_v7());
    credentials
        .save(
            connection,
            adledger_domain::WorkspaceId(uuid::Uuid::now_v7()),
            adledger_domain::Platform::Google,
            "{\"access_token\":\"t\"}",
            None,
        )
        .await
        .unwrap();

    let rotated = old_keys.with_new_active("new").unwrap();
    let both = rotated.to_env_string().expose().clone();
    assert!(both.starts_with("new:") && both.contains(",old:"));
    let rewrap = adledger_with_keys(&db, &["keys", "rewrap"], &both);
    assert!(
        rewrap.status.success(),
        "{}",
        String::from_utf8_lossy(&rewrap.stderr)
    );
    assert!(
        stdout(&rewrap).contains("re-wrapped 1 subject key(s) and 1 connection token set(s)"),
        "{}",
        stdout(&rewrap)
    );

    // The old key can go: everything opens with the new one alone.
    let new_only = rotated.without("old").unwrap();
    let sealer = adledger_infra::Sealer::new(pool.clone(), new_only.clone());
    assert_eq!(
        sealer.reveal_or_marker(&sealed).await.unwrap(),
        "someone@example.com"
    );
    let credentials = adledger_infra::credentials::CredentialStore::new(pool, new_only);
    assert_eq!(
        credentials.load(connection).await.unwrap().as_deref(),
        Some("{\"access_token\":\"t\"}")
    );
}

#[test]
fn every_platform_setting_is_listed_in_the_help_and_secrets_are_never_shown() {
    for subcommand in ["serve", "worker"] {
        let out = Command::new(env!("CARGO_BIN_EXE_adledger"))
            .args([subcommand, "--help"])
            .env("ADLEDGER_META_CLIENT_SECRET", "m3ta-s3cret")
            .env("ADLEDGER_GOOGLE_DEVELOPER_TOKEN", "g00gle-t0ken")
            .env("ADLEDGER_TIKTOK_SECRET", "t1kt0k-s3cret")
            .output()
            .unwrap();
        assert!(out.status.success());
        let help = stdout(&out);
        for name in [
            "--meta-client-id",
            "ADLEDGER_META_CLIENT_SECRET",
            "ADLEDGER_META_REDIRECT_URL",
            "ADLEDGER_META_API_VERSION",
            "ADLEDGER_META_AUTH_URL",
            "ADLEDGER_META_GRAPH_URL",
            "--google-developer-token",
            "ADLEDGER_GOOGLE_CLIENT_ID",
            "ADLEDGER_GOOGLE_CLIENT_SECRET",
            "ADLEDGER_GOOGLE_REDIRECT_URL",
            "ADLEDGER_GOOGLE_DEVELOPER_TOKEN",
            "ADLEDGER_GOOGLE_LOGIN_CUSTOMER_ID",
            "ADLEDGER_GOOGLE_AUTH_URL",
            "ADLEDGER_GOOGLE_OAUTH_URL",
            "ADLEDGER_GOOGLE_API_URL",
            "ADLEDGER_GOOGLE_API_VERSION",
            "ADLEDGER_GOOGLE_CONVERSION_WINDOW_DAYS",
            "--tiktok-app-id",
            "ADLEDGER_TIKTOK_SECRET",
            "ADLEDGER_TIKTOK_REDIRECT_URL",
            "ADLEDGER_TIKTOK_AUTH_URL",
            "ADLEDGER_TIKTOK_API_URL",
            "ADLEDGER_TIKTOK_ATTRIBUTION_WINDOW_DAYS",
        ] {
            assert!(
                help.contains(name),
                "{subcommand} --help lacks {name}:\n{help}"
            );
        }
        for secret in ["m3ta-s3cret", "g00gle-t0ken", "t1kt0k-s3cret"] {
            assert!(!help.contains(secret), "{subcommand} --help shows a secret");
        }
    }
}

#[test]
fn a_partly_configured_platform_is_refused_before_anything_starts_naming_what_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(["serve", "--meta-client-id", "123"])
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("ADLEDGER_META_REDIRECT_URL", "http://127.0.0.1/cb")
        .env_remove("ADLEDGER_META_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Meta: partially configured: --meta-client-secret (ADLEDGER_META_CLIENT_SECRET) missing"
        ),
        "{stderr}"
    );
}

#[tokio::test]
async fn logs_carry_colours_only_on_a_terminal_and_json_never() {
    for format in ["text", "json"] {
        // A fresh database, so that migrating logs something.
        let (_, url) = TestDatabase::unmigrated().await;
        let out = Command::new(env!("CARGO_BIN_EXE_adledger"))
            .args(["--log-format", format, "migrate"])
            .env("DATABASE_URL", url.expose())
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .output()
            .expect("run adledger");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("migration applied"), "{stderr}");
        assert!(
            !stderr.contains('\u{1b}'),
            "colour codes in a pipe: {stderr}"
        );
        if format == "json" {
            for line in stderr.lines() {
                serde_json::from_str::<serde_json::Value>(line).expect("one JSON object a line");
            }
        }
    }
}

#[tokio::test]
async fn a_generated_checkpoint_key_signs_checkpoints_its_published_key_verifies() {
    let db = TestDatabase::new().await;
    let generated = Command::new(env!("CARGO_BIN_EXE_adledger"))
        .args(["keys", "checkpoint", "cli.test/log"])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(generated.status.success());
    let text = stdout(&generated);
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("ADLEDGER_CHECKPOINT_KEYS="))
        .unwrap()
        .to_owned();
    let shown = text
        .lines()
        .find_map(|l| l.strip_prefix("# verifier key: "))
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("PRIVATE+KEY+cli.test/log+"));

    let with_key = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_adledger"))
            .args(args)
            .env("DATABASE_URL", db.url.expose())
            .env("RUST_LOG", "warn")
            .env("ADLEDGER_CHECKPOINT_KEYS", &secret)
            .env("ADLEDGER_CHECKPOINT_ORIGIN", "cli.test/log")
            .output()
            .unwrap()
    };
    let public = with_key(&["keys", "public"]);
    assert!(public.status.success());
    assert_eq!(stdout(&public).trim(), shown);
    assert!(!stdout(&public).contains("PRIVATE"));

    adledger(&db, &["demo"]);
    let issued = with_key(&["checkpoint"]);
    assert!(
        issued.status.success(),
        "{}",
        String::from_utf8_lossy(&issued.stderr)
    );
    let note = stdout(&issued);
    let (checkpoint, _) = adledger_infra::checkpoint::open(&note, &[shown]).unwrap();
    assert_eq!(checkpoint.origin, "cli.test/log");
    assert!(checkpoint.size > 0);
    // One checkpoint per tree size: asking again gives the same note.
    assert_eq!(stdout(&with_key(&["checkpoint"])), note);
    // Without a key there is nothing to sign with, and the command says how to get one.
    let keyless = adledger(&db, &["checkpoint"]);
    assert!(!keyless.status.success());
    assert!(String::from_utf8_lossy(&keyless.stderr).contains("adledger keys checkpoint"));
}

/// `adledger replay` keeps exactly the events its filters select (each alone and combined),
/// compared with the same predicate over the unfiltered replay, and refuses unknown filters.
#[tokio::test]
async fn replay_filters_select_exactly_the_matching_events() {
    use chrono::{DateTime, Utc};
    use serde_json::Value;
    let db = TestDatabase::new().await;
    assert!(adledger(&db, &["migrate"]).status.success());
    let demo = adledger(&db, &["demo", "--campaigns", "2", "--days", "4"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let replay = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["replay"];
        all.extend_from_slice(args);
        let out = adledger(&db, &all);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let positions = |events: &[Value]| -> Vec<i64> {
        events
            .iter()
            .map(|e| e["position"].as_i64().unwrap())
            .collect()
    };
    let actor = |e: &Value| {
        let a = &e["metadata"]["actor"];
        match a["kind"].as_str().unwrap() {
            "user" => format!("user:{}", a["user_id"].as_str().unwrap()),
            "api_key" => format!("api_key:{}", a["api_key_id"].as_str().unwrap()),
            "system" => format!("system:{}", a["name"].as_str().unwrap()),
            other => other.to_owned(),
        }
    };
    let recorded = |e: &Value| {
        e["recorded_at"]
            .as_str()
            .unwrap()
            .parse::<DateTime<Utc>>()
            .unwrap()
    };
    // The demo sequences what has settled when it ends; an open transaction elsewhere in the
    // cluster can hold its last events back, and then nobody places them: the test does.
    let store = db.store();
    let mut all = replay(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !all.iter().any(|e| e["event_type"] == "SyncCompleted") {
        assert!(
            std::time::Instant::now() < deadline,
            "the demo's sync never sequenced: {:?}",
            all.iter()
                .map(|e| e["event_type"].clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        store.sequence_all().await.unwrap();
        all = replay(&[]);
    }
    let expect = |keep: &dyn Fn(&Value) -> bool| -> Vec<i64> {
        positions(&all.iter().filter(|e| keep(e)).cloned().collect::<Vec<_>>())
    };
    let campaign_event = all.iter().find(|e| e["stream_type"] == "campaign").unwrap();
    let campaign_actor = actor(campaign_event);
    let workspace = all[0]["workspace_id"].as_str().unwrap().to_owned();
    let middle = all[all.len() / 2]["recorded_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let middle_t = recorded(&all[all.len() / 2]);

    let types = expect(&|e| {
        e["event_type"] == "DailyInsightsRecorded" || e["event_type"] == "SyncCompleted"
    });
    assert!(!types.is_empty() && types.len() < all.len());
    assert_eq!(
        positions(&replay(&[
            "--event-type",
            "DailyInsightsRecorded,SyncCompleted"
        ])),
        types
    );
    assert_eq!(
        positions(&replay(&[
            "--event-type",
            "DailyInsightsRecorded",
            "--event-type",
            "SyncCompleted"
        ])),
        types
    );
    let campaigns = expect(&|e| e["stream_type"] == "campaign");
    assert!(!campaigns.is_empty() && campaigns.len() < all.len());
    assert_eq!(
        positions(&replay(&["--stream-type", "campaign"])),
        campaigns
    );
    assert_eq!(
        positions(&replay(&["--actor", &campaign_actor])),
        expect(&|e| actor(e) == campaign_actor)
    );
    assert_eq!(
        positions(&replay(&["--actor", "system"])),
        expect(&|e| actor(e).starts_with("system:"))
    );
    let since = expect(&|e| recorded(e) >= middle_t);
    assert!(!since.is_empty() && since.len() < all.len());
    assert_eq!(positions(&replay(&["--from-time", &middle])), since);
    assert_eq!(
        positions(&replay(&["--to-time", &middle])),
        expect(&|e| recorded(e) <= middle_t)
    );
    assert_eq!(
        positions(&replay(&["--workspace", &workspace])),
        expect(&|e| e["workspace_id"] == workspace.as_str())
    );
    let combined = expect(&|e| {
        e["stream_type"] == "campaign"
            && e["event_type"] == "DailyInsightsRecorded"
            && actor(e) == campaign_actor
            && recorded(e) >= middle_t
    });
    let got = replay(&[
        "--stream-type",
        "campaign",
        "--event-type",
        "DailyInsightsRecorded",
        "--actor",
        &campaign_actor,
        "--from-time",
        &middle,
    ]);
    assert_eq!(positions(&got), combined);
    // Resuming after the first of them gives the rest.
    if let Some(first) = combined.first() {
        let from = (first + 1).to_string();
        let rest = replay(&[
            "--stream-type",
            "campaign",
            "--event-type",
            "DailyInsightsRecorded",
            "--actor",
            &campaign_actor,
            "--from-time",
            &middle,
            "--from-position",
            &from,
        ]);
        assert_eq!(positions(&rest), combined[1..].to_vec());
    }
    for bad in [
        &["replay", "--event-type", "Nope"][..],
        &["replay", "--actor", "root"],
        &["replay", "--stream-type", "galaxy"],
        &["replay", "--from-time", "yesterday"],
    ] {
        let out = adledger(&db, bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(stdout(&out).is_empty(), "{bad:?} printed events");
    }
}
