//! Erasure reaches every subject about a person, whoever the actor was: a person with several
//! workspaces and roles, invited before and after registering, with a pending invitation, an
//! invitation of old sealed under its own id and an API key of their own, is erased; then no API
//! answer the others can reach, no row of any table in any schema and no `replay --reveal` holds
//! their email (in any case), name, IPs or user agents.

use crate::erasure::tables_containing;
use crate::helpers::{eventually, spawn_app, TestApp, PASSWORD};
use adledger_domain::workspace::Command as WorkspaceCommand;
use adledger_domain::{EventMetadata, InvitationId, Role, Sealed, WorkspaceId};
use adledger_infra::crypto::{hash_token, Sealer};
use serde_json::{json, Value};
use uuid::Uuid;

const EMAIL: &str = "Bruna.Zed@Example.com";
const NAME: &str = "Bruna Zedsdottir";
const IP: &str = "127.0.0.66";
const USER_AGENT: &str = "bruna-browser/7.1";
const KEY_IP: &str = "127.0.0.67";
const KEY_USER_AGENT: &str = "bruna-robot/2.0";
/// Someone else invited the old way: their invitation must still open.
const OTHER: &str = "olga.other@example.com";

/// What must not remain anywhere, compared in lower case.
const NEEDLES: [&str; 6] = [EMAIL, NAME, IP, USER_AGENT, KEY_IP, KEY_USER_AGENT];

/// A client whose requests come from `ip` (any 127/8 address is the loopback on Linux).
fn client_from(ip: &str, user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(ip.parse().unwrap()))
        .user_agent(user_agent)
        .build()
        .unwrap()
}

async fn send(request: reqwest::RequestBuilder, status: u16) -> Value {
    let r = request.send().await.unwrap();
    let code = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert_eq!(code, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Invites `email` into `ws` as `token`'s holder; answers the invitation's token.
async fn invite(app: &TestApp, token: &str, ws: &str, email: &str, role: &str) -> String {
    let path = format!("/v1/workspaces/{ws}/invitations");
    let body = json!({ "email": email, "role": role });
    let invited = send(
        app.client
            .post(app.url(&path))
            .bearer_auth(token)
            .json(&body),
        201,
    )
    .await;
    invited["token"].as_str().unwrap().to_owned()
}

/// An invitation as they were recorded before addresses had subjects: its email sealed under
/// the invitation's own id.
async fn invite_the_old_way(app: &TestApp, ws: &str, email: &str) {
    let pool = app._db.store().pool().clone();
    let sealer = Sealer::new(pool, app.keys.master.clone());
    let invitation_id = InvitationId(Uuid::now_v7());
    let email = sealer
        .seal(invitation_id.as_uuid(), &email.to_lowercase())
        .await
        .unwrap();
    let command = WorkspaceCommand::Invite {
        invitation_id,
        email: Sealed(email),
        role: Role::Analyst,
        token_hash: hash_token(&format!("adl_inv_old_{invitation_id}")),
        expires_at: chrono::Utc::now() + chrono::Duration::days(7),
    };
    let workspace = WorkspaceId(ws.parse().unwrap());
    let metadata = EventMetadata::system("test", Uuid::now_v7());
    let target = adledger_commands::Target::<adledger_domain::workspace::Workspace>::new(
        &metadata,
        workspace,
        workspace.stream(),
    );
    app.commands.decide(target, &command).await.unwrap();
}

/// Every answer about `workspaces` that `token`'s holder can read, concatenated.
async fn answers(app: &TestApp, token: &str, workspaces: &[&str]) -> String {
    let mut paths = vec![
        "/v1/workspaces".to_owned(),
        "/v1/me".to_owned(),
        "/v1/me/export".to_owned(),
    ];
    for ws in workspaces {
        for tail in [
            "",
            "/events?reveal=true",
            "/events",
            "/members",
            "/audit?limit=500",
            "/api-keys",
            "/connections",
        ] {
            paths.push(format!("/v1/workspaces/{ws}{tail}"));
        }
        // The workspace's state folded from its stream (members, invitations).
        paths.push(format!("/v1/workspaces/{ws}/streams/workspace-{ws}"));
    }
    let mut all = String::new();
    for path in paths {
        let r = app.get_as(token, &path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        all.push_str(&path);
        all.push('\n');
        all.push_str(&r.text().await.unwrap());
        all.push('\n');
    }
    all
}

/// The needles found in `text`, whatever their case.
fn found_in(text: &str) -> Vec<&'static str> {
    let text = text.to_lowercase();
    NEEDLES
        .into_iter()
        .filter(|n| text.contains(&n.to_lowercase()))
        .collect()
}

/// Every needle found in any row of any table, with where.
async fn in_tables(pool: &sqlx::PgPool) -> Vec<String> {
    let mut found = Vec::new();
    for needle in NEEDLES {
        for table in tables_containing(pool, needle).await {
            found.push(format!("{needle} in {table}"));
        }
    }
    found
}

#[tokio::test]
async fn an_erased_person_leaves_nothing_in_any_workspace_table_or_replay() {
    let app = spawn_app().await;
    let pool = app._db.store().pool().clone();
    let bruna = client_from(IP, USER_AGENT);
    let robot = client_from(KEY_IP, KEY_USER_AGENT);

    // A (the app's first user) owns an agency and a workspace with invitations still pending;
    // Carl owns a third.
    let agency = app.workspace("Agency").await;
    let pending = app.workspace("Pending").await;
    let carl = app.user("carl@example.com").await;
    let carls = send(
        app.client
            .post(app.url("/v1/workspaces"))
            .bearer_auth(&carl.token)
            .json(&json!({ "name": "Carl's" })),
        201,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    invite_the_old_way(&app, &pending, EMAIL).await;
    invite_the_old_way(&app, &pending, OTHER).await;

    // Bruna is invited to the agency before she registers, then registers and accepts.
    let to_agency = invite(&app, &app.token, &agency, &EMAIL.to_lowercase(), "admin").await;
    let registered = json!({ "email": EMAIL, "name": NAME, "password": PASSWORD });
    send(
        bruna.post(app.url("/v1/auth/register")).json(&registered),
        201,
    )
    .await;
    let login = json!({ "email": EMAIL, "password": PASSWORD });
    let tokens = send(bruna.post(app.url("/v1/auth/login")).json(&login), 200).await;
    let token = tokens["access_token"].as_str().unwrap().to_owned();
    let accept = |invitation: String| {
        bruna
            .post(app.url("/v1/invitations/accept"))
            .bearer_auth(&token)
            .json(&json!({ "token": invitation }))
    };
    send(accept(to_agency), 200).await;
    // Carl invites her as she registered (another case); she joins as an auditor.
    let to_carls = invite(
        &app,
        &carl.token,
        &carls,
        "BRUNA.ZED@example.COM",
        "auditor",
    )
    .await;
    send(accept(to_carls), 200).await;
    // A invites her to a third workspace; she never answers.
    invite(&app, &app.token, &pending, EMAIL, "analyst").await;
    // Her own workspace, alone (a last owner alone may be erased), under an idempotency key
    // made of her address: the keys' table is append-only.
    send(
        bruna
            .post(app.url("/v1/workspaces"))
            .bearer_auth(&token)
            .header("idempotency-key", format!("{EMAIL} 1"))
            .json(&json!({ "name": "Bruna's own" })),
        201,
    )
    .await;
    // An API key of hers in the agency, used from another machine.
    let key = send(
        bruna
            .post(app.url(&format!("/v1/workspaces/{agency}/api-keys")))
            .bearer_auth(&token)
            .json(&json!({ "name": "robot", "scope": "read_write" })),
        201,
    )
    .await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let sandbox = json!({ "platform": "sandbox", "sandbox": { "seed": 3, "ad_accounts": 1, "campaigns": 1 } });
    let connect = |client: &reqwest::Client, bearer: &str| {
        client
            .post(app.url(&format!("/v1/workspaces/{agency}/connections")))
            .bearer_auth(bearer)
            .json(&sandbox)
    };
    send(connect(&robot, &key), 201).await;
    send(connect(&bruna, &token), 201).await;

    // Before: the test finds her everywhere it will look, so it can fail.
    let audit = format!("/v1/workspaces/{agency}/audit?action=PlatformConnected");
    eventually("both connections in the agency's audit", || async {
        let page = app.get_json(&audit).await;
        (page["items"].as_array()?.len() == 2).then_some(())
    })
    .await;
    let before = answers(&app, &app.token, &[&agency, &pending]).await;
    // Her name is only in her own stream, which the others never read (the replay below does).
    let seen_by_others: Vec<&str> = NEEDLES.into_iter().filter(|n| *n != NAME).collect();
    assert_eq!(found_in(&before), seen_by_others, "{before}");
    let carls_before = answers(&app, &carl.token, &[&carls]).await;
    assert!(found_in(&carls_before).contains(&EMAIL), "{carls_before}");
    assert!(!in_tables(&pool).await.is_empty());
    let replay = app.adledger(&["replay", "--reveal"]).await;
    assert_eq!(found_in(&replay), NEEDLES.to_vec());

    // She erases herself.
    send(bruna.delete(app.url("/v1/me")).bearer_auth(&token), 204).await;

    // Every projection applied her erasure and what followed it (her keys' revocations).
    eventually("projections to catch up", || async {
        let body: Value = app.get("/readyz").await.json().await.ok()?;
        body["projections"]
            .as_array()?
            .iter()
            .all(|p| p["lag_events"] == 0)
            .then_some(())
    })
    .await;
    let after = answers(&app, &app.token, &[&agency, &pending]).await;
    assert_eq!(found_in(&after), Vec::<&str>::new(), "{after}");
    assert!(after.contains("[erased]"));
    assert!(
        after.contains(OTHER),
        "someone else's invitation of old still opens"
    );
    let carls_after = answers(&app, &carl.token, &[&carls]).await;
    assert_eq!(found_in(&carls_after), Vec::<&str>::new(), "{carls_after}");
    assert_eq!(in_tables(&pool).await, Vec::<String>::new());
    let replay = app.adledger(&["replay", "--reveal"]).await;
    assert_eq!(found_in(&replay), Vec::<&str>::new());
    assert!(replay.contains(OTHER));
    // A rebuild after the erasure gives the same read models, still without her.
    let checksums = app.adledger(&["projections", "checksum"]).await;
    for name in ["audit", "catalog"] {
        app.adledger(&["projections", "rebuild", name]).await;
    }
    assert_eq!(app.adledger(&["projections", "checksum"]).await, checksums);
    assert_eq!(in_tables(&pool).await, Vec::<String>::new());
    // Her key went with her: it could no longer seal where its requests come from.
    let r = connect(&robot, &key).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_erasure_that_stopped_after_being_recorded_is_carried_out_when_asked_again() {
    let app = spawn_app().await;
    let pool = app._db.store().pool().clone();
    let ws = app.workspace("Halfway").await;
    let email = "half.way@example.com";
    invite(&app, &app.token, &ws, email, "analyst").await;
    let half = app.user(email).await;
    // The erasure is recorded, with the address's subject, and the process dies right after.
    let sealer = Sealer::new(pool.clone(), app.keys.master.clone());
    let address = sealer.find_email_subject(email).await.unwrap().unwrap();
    let user_id = adledger_domain::UserId(half.id.parse().unwrap());
    let metadata = EventMetadata::system("test", Uuid::now_v7());
    let target = adledger_commands::Target::<adledger_domain::user::User>::new(
        &metadata,
        WorkspaceId::IDENTITY,
        user_id.stream(),
    );
    let command = adledger_domain::user::Command::Erase {
        also_erased: vec![adledger_domain::SubjectId(address)],
    };
    app.commands.decide(target, &command).await.unwrap();
    assert!(!tables_containing(&pool, email).await.is_empty());
    let invitations = format!("/v1/workspaces/{ws}/events?reveal=true");
    let text = app.get(&invitations).await.text().await.unwrap();
    assert!(text.contains(email), "not carried out yet: {text}");

    // Asked again, it finishes what the record says.
    let r = app
        .request(reqwest::Method::DELETE, Some(&half.token), "/v1/me", None)
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(tables_containing(&pool, email).await, Vec::<String>::new());
    let text = app.get(&invitations).await.text().await.unwrap();
    assert!(!text.contains(email) && text.contains("[erased]"), "{text}");
}
