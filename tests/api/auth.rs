use crate::helpers::{
    assert_problem, spawn_app, spawn_app_with, spawn_app_with_auth, TestApp, PASSWORD,
};
use adledger_infra::crypto::TotpSecret;
use chrono::Utc;
use serde_json::{json, Value};
use std::time::Instant;

async fn refresh_with(app: &TestApp, token: &str) -> reqwest::Response {
    app.post_anonymous("/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

async fn post_code(app: &TestApp, token: &str, path: &str, code: &str) -> reqwest::Response {
    app.post_as(token, path, &json!({ "code": code })).await
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_revokes_its_session() {
    let app = spawn_app().await;
    let user = app.user("ada@example.com").await;
    assert_eq!(app.get_as(&user.token, "/v1/me").await.status(), 200);

    let refresh = |token: &str| {
        let (app, token) = (&app, token.to_owned());
        async move { refresh_with(app, &token).await }
    };
    let r = refresh(&user.refresh_token).await;
    assert_eq!(r.status(), 200);
    let second: Value = r.json().await.unwrap();
    let second_refresh = second["refresh_token"].as_str().unwrap();
    assert_ne!(second_refresh, user.refresh_token, "rotated");
    let second_access = second["access_token"].as_str().unwrap();
    assert_eq!(app.get_as(second_access, "/v1/me").await.status(), 200);

    // The first token again: theft. The whole family dies, the legitimate holder's too.
    assert_problem(
        refresh(&user.refresh_token).await,
        401,
        "refresh-token-reused",
    )
    .await;
    assert_problem(refresh(second_refresh).await, 401, "unauthenticated").await;
    assert_problem(
        app.get_as(second_access, "/v1/me").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_problem(refresh("adl_rt_nonsense").await, 401, "unauthenticated").await;

    // Logging in again starts a new session; logging out ends it at once.
    let r = app.login(&user.email, PASSWORD, None).await;
    let tokens: Value = r.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let r = app
        .request(reqwest::Method::POST, Some(access), "/v1/auth/logout", None)
        .await;
    assert_eq!(r.status(), 204);
    assert_problem(app.get_as(access, "/v1/me").await, 401, "unauthenticated").await;
    let refresh_after_logout = refresh(tokens["refresh_token"].as_str().unwrap()).await;
    assert_problem(refresh_after_logout, 401, "unauthenticated").await;
}

#[tokio::test]
async fn expired_and_forged_access_tokens_are_refused() {
    let app = spawn_app_with_auth(
        Default::default(),
        adledger_commands::identity::AuthPolicy {
            // Expired the moment it is issued (past the verifier's 5 s leeway).
            access_token_ttl: chrono::Duration::seconds(-10),
            ..Default::default()
        },
    )
    .await;
    let body = assert_problem(app.get("/v1/me").await, 401, "unauthenticated").await;
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );
    let r = app.get_as("eyJhbGciOiJub25lIn0.e30.", "/v1/me").await;
    assert_problem(r, 401, "unauthenticated").await;
    let r = app
        .request(reqwest::Method::GET, None, "/v1/me", None)
        .await;
    assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"adledger\"");
    assert_problem(r, 401, "unauthenticated").await;
}

#[tokio::test]
async fn unknown_emails_and_wrong_passwords_answer_alike_and_repeated_failures_lock() {
    let app = spawn_app().await;
    let user = app.user("grace@example.com").await;
    let mut unknown_time = Vec::new();
    let mut wrong_time = Vec::new();
    let mut bodies = Vec::new();
    for _ in 0..2 {
        let t = Instant::now();
        let r = app.login("nobody@example.com", PASSWORD, None).await;
        unknown_time.push(t.elapsed());
        bodies.push(assert_problem(r, 401, "unauthenticated").await);
        let t = Instant::now();
        let r = app
            .login(&user.email, "not the password at all", None)
            .await;
        wrong_time.push(t.elapsed());
        bodies.push(assert_problem(r, 401, "unauthenticated").await);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // Both paths verify an argon2 hash: the unknown email is not answered noticeably faster.
    let (unknown, wrong) = (
        unknown_time.iter().min().unwrap(),
        wrong_time.iter().min().unwrap(),
    );
    assert!(
        unknown.as_secs_f64() > wrong.as_secs_f64() * 0.4,
        "unknown email {unknown:?} vs wrong password {wrong:?}"
    );

    // Five failures are free (two above); then the email is locked, even for the right password.
    for _ in 0..3 {
        let r = app.login(&user.email, "still not it", None).await;
        assert_problem(r, 401, "unauthenticated").await;
    }
    let r = app.login(&user.email, "and again not it", None).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "too-many-attempts").await;
    let r = app.login(&user.email, PASSWORD, None).await;
    assert_problem(r, 429, "too-many-attempts").await;
}

#[tokio::test]
async fn registration_validates_and_emails_are_unique_whatever_their_case() {
    let app = spawn_app().await;
    let r = app
        .post_anonymous(
            "/v1/auth/register",
            &json!({ "email": "Owner@Example.com", "name": "Twin", "password": PASSWORD }),
        )
        .await;
    assert_problem(r, 409, "email-taken").await;
    let r = app
        .post_anonymous(
            "/v1/auth/register",
            &json!({ "email": "not-an-email", "name": " ", "password": "short" }),
        )
        .await;
    let body = assert_problem(r, 422, "validation-failed").await;
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["email", "name", "password"],
        "every invalid field is named"
    );
    let r = app
        .post_anonymous(
            "/v1/auth/register",
            &json!({ "email": "short@example.com", "name": "X", "password": "short" }),
        )
        .await;
    let body = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "password");
    // Logging in works with any case of the email.
    assert_eq!(
        app.login("OWNER@example.COM", PASSWORD, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn changing_the_password_checks_the_old_one_and_ends_other_sessions() {
    let app = spawn_app().await;
    let user = app.user("linus@example.com").await;
    let other: Value = app
        .login(&user.email, PASSWORD, None)
        .await
        .json()
        .await
        .unwrap();
    let change = |current: &str| json!({ "current_password": current, "new_password": "a brand new passphrase" });
    let r = app
        .post_as(&user.token, "/v1/me/password", &change("wrong"))
        .await;
    let body = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "current_password");
    let r = app
        .post_as(&user.token, "/v1/me/password", &change(PASSWORD))
        .await;
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.get_as(&user.token, "/v1/me").await.status(),
        200,
        "this session stays"
    );
    let other_access = other["access_token"].as_str().unwrap();
    assert_problem(
        app.get_as(other_access, "/v1/me").await,
        401,
        "unauthenticated",
    )
    .await;
    assert_eq!(app.login(&user.email, PASSWORD, None).await.status(), 401);
    let r = app.login(&user.email, "a brand new passphrase", None).await;
    assert_eq!(r.status(), 200);
}

fn code(secret: &TotpSecret, steps_ahead: i64) -> String {
    let step = TotpSecret::step_at(Utc::now()).unwrap() as i64 + steps_ahead;
    secret.code_for_step(step as u64)
}

#[tokio::test]
async fn totp_is_required_once_enabled_and_codes_cannot_be_replayed() {
    let app = spawn_app().await;
    let user = app.user("hedy@example.com").await;
    let enrol: Value = app
        .post_as(&user.token, "/v1/me/totp", &json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(enrol["otpauth_uri"]
        .as_str()
        .unwrap()
        .starts_with("otpauth://totp/adledger:hedy%40example.com?secret="));
    let secret = TotpSecret::from_base32(enrol["secret"].as_str().unwrap()).unwrap();
    let confirm = |code: String| {
        let (app, token) = (&app, user.token.clone());
        async move { post_code(app, &token, "/v1/me/totp/confirm", &code).await }
    };
    assert_problem(confirm("000000".into()).await, 422, "validation-failed").await;
    let now = code(&secret, 0);
    let r = confirm(now.clone()).await;
    assert_eq!(r.status(), 200);
    let recovery: Vec<String> = r.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);

    let login = |code: Option<&str>| {
        let code = code.map(str::to_owned);
        let (app, email) = (&app, user.email.clone());
        async move { app.login(&email, PASSWORD, code.as_deref()).await }
    };
    assert_problem(login(None).await, 401, "second-factor-required").await;
    assert_problem(login(Some("123456")).await, 401, "unauthenticated").await;
    // The code that confirmed the enrolment is spent.
    assert_problem(login(Some(&now)).await, 401, "unauthenticated").await;
    let next = code(&secret, 1);
    assert_eq!(login(Some(&next)).await.status(), 200);
    assert_problem(login(Some(&next)).await, 401, "unauthenticated").await;
    // A recovery code works once.
    assert_eq!(login(Some(&recovery[0])).await.status(), 200);
    assert_problem(login(Some(&recovery[0])).await, 401, "unauthenticated").await;
    // Disabling needs a fresh factor; a spent one is refused.
    let disable = |code: &str| {
        let code = code.to_owned();
        let (app, token) = (&app, user.token.clone());
        async move { post_code(app, &token, "/v1/me/totp/disable", &code).await }
    };
    assert_problem(disable(&recovery[0]).await, 422, "validation-failed").await;
    assert_eq!(disable(&recovery[1]).await.status(), 204);
    assert_eq!(login(None).await.status(), 200);
    assert_eq!(
        app.get_as(&user.token, "/v1/me")
            .await
            .json::<Value>()
            .await
            .unwrap()["totp_enabled"],
        false
    );
}

#[tokio::test]
async fn login_and_refresh_have_a_stricter_per_ip_limit() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        credential_rate_limit_per_minute: Some(4),
        ..Default::default()
    })
    .await;
    // Registering and logging in the first user took two.
    for _ in 0..2 {
        assert_eq!(
            app.login("owner@example.com", PASSWORD, None)
                .await
                .status(),
            200
        );
    }
    let r = app.login("owner@example.com", PASSWORD, None).await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "rate-limited").await;
    // Other routes are not limited by it.
    assert_eq!(app.get("/v1/me").await.status(), 200);
}

#[tokio::test]
async fn each_user_and_api_key_has_its_own_request_limit() {
    let app = spawn_app_with(adledger_api::HttpPolicy {
        caller_rate_limit_per_minute: Some(3),
        ..Default::default()
    })
    .await;
    let other = app.user("other@example.com").await;
    for _ in 0..3 {
        assert_eq!(app.get("/v1/me").await.status(), 200);
    }
    let r = app.get("/v1/me").await;
    assert!(r.headers().contains_key("retry-after"));
    assert_problem(r, 429, "rate-limited").await;
    assert_eq!(
        app.get_as(&other.token, "/v1/me").await.status(),
        200,
        "another user's own bucket"
    );
}

#[tokio::test]
async fn api_keys_are_shown_once_scoped_and_revocable() {
    let app = spawn_app().await;
    let ws = app.workspace("Keys").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/api-keys"),
            &json!({ "name": "dashboard", "scope": "read_only" }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let created: Value = r.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("adl_ak_"));
    assert_eq!(
        app.get_as(key, &format!("/v1/workspaces/{ws}"))
            .await
            .status(),
        200
    );
    let r = app
        .client
        .get(app.url(&format!("/v1/workspaces/{ws}/connections")))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the X-Api-Key header works too");
    let r = app
        .post_as(
            key,
            &format!("/v1/workspaces/{ws}/connections"),
            &json!({ "platform": "sandbox", "sandbox": { "seed": 1, "ad_accounts": 1, "campaigns": 1 } }),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    assert_problem(app.get_as(key, "/v1/me").await, 403, "forbidden").await;

    let keys: Value = app.get_json(&format!("/v1/workspaces/{ws}/api-keys")).await;
    assert_eq!(keys[0]["name"], "dashboard");
    assert!(keys[0]["last_used_at"].is_string(), "{keys}");
    assert!(keys[0].get("key").is_none(), "never shown again");

    let id = created["id"].as_str().unwrap();
    let r = app
        .request(
            reqwest::Method::DELETE,
            Some(&app.token),
            &format!("/v1/workspaces/{ws}/api-keys/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let r = app.get_as(key, &format!("/v1/workspaces/{ws}")).await;
    assert_problem(r, 401, "unauthenticated").await;
    let tampered = format!("{}x", &key[..key.len() - 1]);
    assert_problem(
        app.get_as(&tampered, "/v1/me").await,
        401,
        "unauthenticated",
    )
    .await;
}

#[tokio::test]
async fn invitations_are_single_use_and_only_for_the_invited_email() {
    let app = spawn_app().await;
    let ws = app.workspace("Team").await;
    let ada = app.user("ada@example.com").await;
    let eve = app.user("eve@example.com").await;
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/invitations"),
            &json!({ "email": "ADA@example.com", "role": "analyst", "expires_in_hours": 2 }),
        )
        .await;
    assert_eq!(r.status(), 201);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let accept = |who: &str| {
        let (app, who, token) = (&app, who.to_owned(), token.clone());
        async move {
            app.post_as(&who, "/v1/invitations/accept", &json!({ "token": token }))
                .await
        }
    };
    assert_problem(accept(&eve.token).await, 403, "forbidden").await;
    assert_problem(
        app.get_as(&ada.token, &format!("/v1/workspaces/{ws}"))
            .await,
        404,
        "not-found",
    )
    .await;
    let r = accept(&ada.token).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["role"], "analyst");
    assert_problem(accept(&ada.token).await, 422, "validation-failed").await;
    let r = app
        .post_as(
            &ada.token,
            "/v1/invitations/accept",
            &json!({ "token": "adl_inv_garbage_x" }),
        )
        .await;
    assert_problem(r, 404, "not-found").await;
    let members: Value = app.get_json(&format!("/v1/workspaces/{ws}/members")).await;
    let roles: Vec<(&str, &str)> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert!(roles.contains(&("ada@example.com", "analyst")), "{members}");
    let r = app
        .post(
            &format!("/v1/workspaces/{ws}/invitations"),
            &json!({ "email": "x@example.com", "role": "root" }),
        )
        .await;
    let body = assert_problem(r, 422, "validation-failed").await;
    assert_eq!(body["errors"][0]["field"], "role");
}

#[tokio::test]
async fn the_last_owner_cannot_leave_or_be_demoted() {
    let app = spawn_app().await;
    let ws = app.workspace("Solo").await;
    let me = app.get_json("/v1/me").await;
    let path = format!(
        "/v1/workspaces/{ws}/members/{}",
        me["user_id"].as_str().unwrap()
    );
    let demote = app
        .request(
            reqwest::Method::PATCH,
            Some(&app.token),
            &path,
            Some(&json!({ "role": "admin" })),
        )
        .await;
    assert_problem(demote, 422, "validation-failed").await;
    let remove = app
        .request(reqwest::Method::DELETE, Some(&app.token), &path, None)
        .await;
    assert_problem(remove, 422, "validation-failed").await;

    let ada = app.user("ada@example.com").await;
    app.join(&ws, &ada, "owner").await;
    let demote = app
        .request(
            reqwest::Method::PATCH,
            Some(&app.token),
            &path,
            Some(&json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!(demote.status(), 204);
    crate::helpers::eventually("the new role in my workspace list", || async {
        let listed: Value = app.get_json("/v1/workspaces").await;
        (listed[0]["role"] == "auditor").then_some(())
    })
    .await;
}
