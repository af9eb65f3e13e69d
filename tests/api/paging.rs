//! Every listing that grows with use comes in pages: `limit` (1 to 500, 100 by default) and the
//! next page's address in `Link: <…>; rel="next"`; followed to the end, the pages are the whole
//! listing, in its order.

use crate::helpers::{assert_problem, eventually, spawn_app, TestApp};
use serde_json::{json, Value};

/// The path and query of a `Link: <…>; rel="next"` header.
fn next_link(r: &reqwest::Response) -> Option<String> {
    let link = r.headers().get("link")?.to_str().unwrap();
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(link[1..link.find('>').unwrap()].to_owned())
}

/// Every item of `path`, `limit` at a time, following the links.
async fn paged(app: &TestApp, path: &str, limit: usize) -> Vec<Value> {
    let mut next = Some(format!("{path}?limit={limit}"));
    let mut items = Vec::new();
    while let Some(page_path) = next {
        let r = app.get(&page_path).await;
        assert_eq!(r.status(), 200, "{page_path}");
        next = next_link(&r);
        let page: Value = r.json().await.unwrap();
        let page = page.as_array().expect("a listing is an array");
        match next {
            Some(_) => assert_eq!(
                page.len(),
                limit,
                "{page_path}: a full page before the last"
            ),
            None => assert!(page.len() <= limit, "{page_path}"),
        }
        items.extend(page.iter().cloned());
    }
    items
}

#[tokio::test]
async fn every_growing_listing_pages_and_its_pages_make_the_whole() {
    let app = spawn_app().await;
    let ws = app.workspace("Acme").await;
    for name in ["Beta", "Gamma"] {
        app.workspace(name).await;
    }
    for email in ["ann@example.com", "bob@example.com"] {
        let user = app.user(email).await;
        app.join(&ws, &user, "analyst").await;
    }
    for name in ["one", "two", "three"] {
        let r = app
            .post(
                &format!("/v1/workspaces/{ws}/api-keys"),
                &json!({"name": name, "scope": "read_only"}),
            )
            .await;
        assert_eq!(r.status(), 201);
    }
    let mut connections = Vec::new();
    for seed in 1..=3 {
        connections.push(app.sandbox(&ws, seed, 1).await);
    }
    for day in ["2024-01-01", "2024-01-02", "2024-01-03"] {
        app.sync(&ws, &connections[0], day, day).await;
    }
    let w = format!("/v1/workspaces/{ws}");
    let listings = [
        "/v1/workspaces".to_owned(),
        format!("{w}/members"),
        format!("{w}/api-keys"),
        format!("{w}/connections"),
        format!("{w}/ad-accounts"),
        format!("{w}/connections/{}/syncs", connections[0]),
    ];
    for path in &listings {
        // Read models follow the log: wait until each listing holds its three items.
        let whole = eventually(path, || async {
            let all = app.get_json(&format!("{path}?limit=500")).await;
            (all.as_array()?.len() == 3).then_some(all)
        })
        .await;
        let whole = whole.as_array().unwrap();
        let r = app.get(path).await;
        assert!(next_link(&r).is_none(), "{path}: 100 by default");
        for limit in [1, 2] {
            assert_eq!(
                &paged(&app, path, limit).await,
                whole,
                "{path}, {limit} a page"
            );
        }
    }

    // The bounds of a page, and cursors that are not this listing's.
    let first = app.get(&format!("{w}/connections?limit=1")).await;
    let connections_next = next_link(&first).unwrap();
    let cursor = connections_next.split("cursor=").nth(1).unwrap().to_owned();
    for path in &listings {
        for (query, field) in [
            ("limit=0".to_owned(), "limit"),
            ("limit=501".to_owned(), "limit"),
            ("cursor=garbage".to_owned(), "cursor"),
            (format!("cursor={cursor}"), "cursor"),
        ] {
            if path.ends_with("/connections") && query.contains(&cursor) {
                continue;
            }
            let body = assert_problem(
                app.get(&format!("{path}?{query}")).await,
                422,
                "validation-failed",
            )
            .await;
            assert_eq!(body["errors"][0]["field"], field, "{path}?{query}: {body}");
        }
    }
}
