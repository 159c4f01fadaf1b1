//! rxmember-server: the HTTP face of the platform — the JSON API (scoped by the caller's session or
//! API token), the web console, the OpenAPI document, health checks, graceful shutdown.
//!
//! Handlers translate HTTP to store calls and back; they hold no business rules and run no SQL. Errors
//! become HTTP responses in exactly one place ([`error`]).

mod api;
mod auth;
pub mod error;
mod openapi;

use axum::Router;
use rxmember_store::Store;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub secure_cookies: bool,
}

impl AppState {
    pub fn new(store: Store, secure_cookies: bool) -> AppState {
        AppState { store, secure_cookies }
    }
}

/// The whole application as a router (tests drive it in-process).
pub fn router(state: AppState) -> Router {
    api::routes()
        .merge(openapi::routes())
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests and closes the database.
pub async fn serve(state: AppState, bind: &str, demo: bool) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let store = state.store.clone();
    println!("rxmember 已启动: http://{addr}/");
    if demo {
        println!("演示账号 (demo logins), 密码 password: {DEMO_PASSWORD}");
        println!("  admin          集团管理员 (group admin)");
        for c in store.companies(&rxmember_core::org::Scope::cli()).await.unwrap_or_default().iter().take(1) {
            let p = c.code.to_lowercase();
            println!("  {p}-admin      公司管理员 (company admin, {})", c.name);
            println!("  {p}-manager    店长 (store manager)");
            println!("  {p}-clerk      店员 (clerk)");
        }
    }
    println!("API 文档 (OpenAPI): http://{addr}/api/openapi.json");
    tracing::info!(%addr, "listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The demo logins' password (kept equal to rxmember-demo's, which the server does not depend on).
const DEMO_PASSWORD: &str = "demo1234";

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
