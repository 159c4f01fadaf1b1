//! The harness both HTTP test files share: the router on the tiny demo chain (SQLite, or PostgreSQL
//! with RXMEMBER_TEST_PG), a request helper, and login.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use rxmember_server::{AppState, router};
use rxmember_store::testing::TestDb;
use serde_json::{Value, json};
use tower::ServiceExt;

pub struct App {
    pub router: Router,
    pub db: TestDb,
}

pub async fn app() -> App {
    let db = TestDb::new().await;
    rxmember_demo::load(&db.store, &rxmember_demo::Options { size: rxmember_demo::Size::Tiny, seed: 3 }, &mut |_| {})
        .await
        .unwrap();
    rxmember_demo::ensure_demo_logins(&db.store).await.unwrap();
    App { router: router(AppState::new(db.store.clone(), false, None)), db }
}

pub async fn call(
    app: &App,
    method: &str,
    uri: &str,
    cookie: Option<&str>,
    bearer: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(t) = bearer {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req.header(header::CONTENT_TYPE, "application/json").body(Body::from(b.to_string())).unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let res = app.router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let set_cookie = res.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_string());
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, json, set_cookie)
}

pub async fn login(app: &App, user: &str) -> String {
    let (status, me, cookie) = call(
        app,
        "POST",
        "/api/v1/login",
        None,
        None,
        Some(json!({"username": user, "password": rxmember_demo::DEMO_PASSWORD})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let cookie = cookie.unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    cookie.split(';').next().unwrap().to_string()
}
