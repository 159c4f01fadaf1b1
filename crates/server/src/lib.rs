//! rxmember-server: the HTTP face of the platform — the JSON API (scoped by the caller's session or
//! API token), the web console, the OpenAPI document, health checks, graceful shutdown.
//!
//! Handlers translate HTTP to store calls and back; they hold no business rules and run no SQL. Errors
//! become HTTP responses in exactly one place ([`error`]).

mod api;
mod audiences;
mod auth;
pub mod error;
pub mod intelligence;
mod jobs;
mod loyalty;
mod openapi;
mod pos;
pub mod tables;

use axum::Router;
use intelligence::Intelligence;
use rxmember_store::Store;
use std::path::PathBuf;
use std::sync::Arc;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub secure_cookies: bool,
    pub intelligence: Arc<Intelligence>,
}

impl AppState {
    /// `engine_dir`: where engine snapshots are kept (`None`: in memory only), written at most
    /// every `RXMEMBER_SNAPSHOT_SECS` seconds (600 unless set) as catch-ups change the facts.
    pub fn new(store: Store, secure_cookies: bool, engine_dir: Option<PathBuf>) -> AppState {
        let every = env_secs("RXMEMBER_SNAPSHOT_SECS", 600);
        let intelligence = Intelligence::with_snapshot_interval(store.clone(), engine_dir, every);
        AppState { store, secure_cookies, intelligence }
    }
}

/// A number of seconds from the environment, `default` if unset or not a number.
fn env_secs(name: &str, default: u64) -> std::time::Duration {
    std::time::Duration::from_secs(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

/// The whole application as a router (tests drive it in-process).
pub fn router(state: AppState) -> Router {
    api::routes()
        .merge(audiences::routes())
        .merge(loyalty::routes())
        .merge(pos::routes())
        .merge(openapi::routes())
        .layer(axum::extract::DefaultBodyLimit::max(1 << 30))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves until Ctrl-C or SIGTERM, then finishes in-flight requests and closes the database.
/// `banner` lines (e.g. the demo logins) are printed after the URL.
pub async fn serve(state: AppState, bind: &str, banner: &[String]) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let addr = listener.local_addr()?;
    let store = state.store.clone();
    let intelligence = state.intelligence.clone();
    let jobs = jobs::spawn(store.clone(), env_secs("RXMEMBER_LOYALTY_INTERVAL_SECS", 300));
    println!("rxmember 已启动: http://{addr}/");
    for line in banner {
        println!("{line}");
    }
    println!("API 文档 (OpenAPI): http://{addr}/api/openapi.json");
    tracing::info!(%addr, "listening");
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown_signal()).await?;
    jobs.abort();
    // Facts read since the last snapshots go to disk, so the next start has nothing to catch up.
    if let Err(e) = intelligence.flush_snapshots().await {
        tracing::warn!(error = %e, "engine snapshots not written at shutdown");
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

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
