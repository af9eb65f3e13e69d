//! Erasure (crypto-shredding): once a person is erased, their email, name, IP and user agent
//! appear in no API answer, no read model and no replay output, and the log still verifies.

use crate::helpers::{assert_problem, eventually, spawn_app, OWNER, PASSWORD};
use serde_json::{json, Value};
use sqlx::Row;

/// Every row of every table in every schema but the system's, as text, that contains `needle`
/// in any case (schemas, not only `public`: read models may live in versioned schemas).
pub(crate) async fn tables_containing(pool: &sqlx::PgPool, needle: &str) -> Vec<String> {
    let tables: Vec<(String, String)> = sqlx::query(
        // pg_class, not information_schema: that one hides tables the role may not read,
        // where the search must fail instead.
        "SELECT n.nspname::text, c.relname::text FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p', 'm')
            AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'",
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    assert!(
        tables.iter().any(|(_, t)| t == "events"),
        "the search sees the log's tables"
    );
    let mut found = Vec::new();
    for (schema, table) in tables {
        let hits: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM \"{schema}\".\"{table}\" t
             WHERE strpos(lower(t::text), lower($1)) > 0"
        ))
        .bind(needle)
        .fetch_one(pool)
        .await
        .unwrap();
        if hits > 0 {
            found.push(format!("{schema}.{table} ({hits})"));
        }
    }
    found
}

#[tokio::test]
async fn an_erased_person_disappears_everywhere_and_the_log_still_verifies() {
    let app = spawn_app().await;
    let ws = app.workspace("Shredded").await;
    let bob = app.user("bob.secret@example.com").await;
    app.join(&ws, &bob, "admin").await;
    let r = app
        .client
        .post(app.url(&format!("/v1/workspaces/{ws}/connections")))
        .bearer_auth(&bob.token)
        .header("user-agent", "bobs-agent/1.0")
        .json(&json!({ "platform": "sandbox", "sandbox": { "seed": 2, "ad_accounts": 1, "campaigns": 1 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Before: the owner's audit view and Bob's own export show where he came from.
    let audit_path = format!("/v1/workspaces/{ws}/audit?action=PlatformConnected");
    let entry = eventually("Bob's action in the audit view", || async {
        let page = app.get_json(&audit_path).await;
        page["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(entry["user_agent"], "bobs-agent/1.0");
    assert_eq!(entry["actor"], bob.id);
    // Memberships come from another projection than the audit view: wait for it too.
    let export = eventually("Bob's membership in his export", || async {
        let export = app.get_as(&bob.token, "/v1/me/export").await;
        assert_eq!(export.status(), 200);
        let export: Value = export.json().await.unwrap();
        (export["memberships"][0]["role"] == "admin").then_some(export)
    })
    .await;
    assert_eq!(export["profile"]["email"], "bob.secret@example.com");
    assert!(export["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["event_type"] == "UserRegistered"));
    assert!(export["audit"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["user_agent"] == "bobs-agent/1.0"));
    let pool = app._db.store().pool().clone();
    assert!(!tables_containing(&pool, "bob.secret@example.com")
        .await
        .is_empty());

    let r = app
        .request(reqwest::Method::DELETE, Some(&bob.token), "/v1/me", None)
        .await;
    assert_eq!(r.status(), 204);

    assert_problem(
        app.get_as(&bob.token, "/v1/me").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(
        app.login(&bob.email, PASSWORD, None).await,
        401,
        "unauthenticated",
    )
    .await;
    let entry = eventually("the audit view to drop Bob's sources", || async {
        let page = app.get_json(&audit_path).await;
        let entry = page["items"].as_array()?.first()?.clone();
        entry["user_agent"].is_null().then_some(entry)
    })
    .await;
    assert!(entry["ip"].is_null());
    assert_eq!(
        entry["actor"], bob.id,
        "what happened stays: only who-was-where goes"
    );

    let needles = ["bob.secret@example.com", "bobs-agent", "Name of bob.secret"];
    let members = app
        .get(&format!("/v1/workspaces/{ws}/members"))
        .await
        .text()
        .await
        .unwrap();
    let events = app
        .get(&format!("/v1/workspaces/{ws}/events?reveal=true"))
        .await
        .text()
        .await
        .unwrap();
    let audit = app
        .get(&format!("/v1/workspaces/{ws}/audit"))
        .await
        .text()
        .await
        .unwrap();
    let export = app.get("/v1/me/export").await.text().await.unwrap();
    assert!(
        events.contains("[erased]"),
        "Bob's sealed fields read as erased"
    );
    for needle in needles {
        for (what, text) in [
            ("members", &members),
            ("events", &events),
            ("audit", &audit),
            ("owner's export", &export),
        ] {
            assert!(!text.contains(needle), "{needle} still in {what}: {text}");
        }
        assert_eq!(
            tables_containing(&pool, needle).await,
            Vec::<String>::new(),
            "{needle}"
        );
    }

    // The log is untouched: the chain verifies, and a replay with the keys shows erased fields.
    app.adledger(&["operators", "grant", OWNER]).await;
    let verify = app.get_json("/v1/log/verify").await;
    assert_eq!(verify["ok"], true, "{verify}");
    let replay = app.adledger(&["replay", "--reveal"]).await;
    assert!(replay.contains("UserErased") && replay.contains("[erased]"));
    for needle in needles {
        assert!(!replay.contains(needle), "{needle} in the replay output");
    }
    // The owner's own data still opens.
    assert!(replay.contains(OWNER));
}

#[tokio::test]
async fn an_owner_erases_a_removed_member_but_not_a_current_one() {
    let app = spawn_app().await;
    let ws = app.workspace("Leavers").await;
    let carol = app.user("carol@example.com").await;
    app.join(&ws, &carol, "analyst").await;
    let member = format!("/v1/workspaces/{ws}/members/{}", carol.id);
    let erase = format!("{member}/erasure");
    let r = app.post(&erase, &json!({})).await;
    assert_problem(r, 422, "validation-failed").await;
    let r = app
        .request(reqwest::Method::DELETE, Some(&app.token), &member, None)
        .await;
    assert_eq!(r.status(), 204);
    assert_problem(
        app.get_as(&carol.token, &format!("/v1/workspaces/{ws}"))
            .await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(app.post(&erase, &json!({})).await.status(), 204);
    assert_problem(
        app.login(&carol.email, PASSWORD, None).await,
        401,
        "unauthenticated",
    )
    .await;
    let pool = app._db.store().pool().clone();
    assert_eq!(
        tables_containing(&pool, "carol@example.com").await,
        Vec::<String>::new()
    );
    // Someone who never was a member cannot be erased through this workspace.
    let dave = app.user("dave@example.com").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/members/{}/erasure", dave.id),
            &json!({}),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
}

#[tokio::test]
async fn the_last_owner_of_a_shared_workspace_hands_it_over_before_being_erased() {
    let app = spawn_app().await;
    let ws = app.workspace("Handed over").await;
    let erin = app.user("erin@example.com").await;
    app.join(&ws, &erin, "admin").await;
    let erase_me = || app.request(reqwest::Method::DELETE, Some(&app.token), "/v1/me", None);
    let body = assert_problem(erase_me().await, 422, "validation-failed").await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("last owner"),
        "{body}"
    );
    let r = app
        .request(
            reqwest::Method::PATCH,
            Some(&app.token),
            &format!("/v1/workspaces/{ws}/members/{}", erin.id),
            Some(&json!({ "role": "owner" })),
        )
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(erase_me().await.status(), 204);
    // Alone in a workspace, a person may go.
    let solo = app.user("solo@example.com").await;
    let r = app
        .post_as(&solo.token, "/v1/workspaces", &json!({ "name": "Mine" }))
        .await;
    assert_eq!(r.status(), 201);
    let r = app
        .request(reqwest::Method::DELETE, Some(&solo.token), "/v1/me", None)
        .await;
    assert_eq!(r.status(), 204);
}
