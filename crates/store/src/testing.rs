//! A database for tests: a temporary SQLite file, or — when `RXMEMBER_TEST_PG` names a PostgreSQL
//! server (`postgres://postgres@127.0.0.1:5432/postgres`) — a fresh database on it, so the same test
//! body runs on both backends. CI runs the suite once per backend. If `RXMEMBER_TEST_PG` is set but the
//! server cannot be reached, tests fail: they never fall back silently.

use crate::crypto::Crypto;
use crate::{Backend, Store};
use std::path::PathBuf;

/// A store on a throwaway database. The SQLite directory is removed on drop; PostgreSQL test
/// databases (`rxm_test_*`) are dropped by [`TestDb::cleanup`] or by the next CI run.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    dir: Option<PathBuf>,
    pg: Option<(String, String)>,
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl TestDb {
    /// The backend the test suite runs on in this process.
    pub fn backend() -> Backend {
        if std::env::var("RXMEMBER_TEST_PG").is_ok_and(|v| !v.is_empty()) { Backend::Postgres } else { Backend::Sqlite }
    }

    pub async fn new() -> TestDb {
        match std::env::var("RXMEMBER_TEST_PG").ok().filter(|v| !v.is_empty()) {
            Some(admin_url) => {
                let name = format!("rxm_test_{}", random_suffix());
                sqlx::any::install_default_drivers();
                let admin = sqlx::AnyPool::connect(&admin_url)
                    .await
                    .expect("RXMEMBER_TEST_PG is set but PostgreSQL is unreachable");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&admin)
                    .await
                    .expect("create test database");
                admin.close().await;
                let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin_url);
                let url = format!("{base}/{name}");
                let store = Store::open(&url, Crypto::for_tests()).await.expect("open PostgreSQL test store");
                TestDb { store, url, dir: None, pg: Some((admin_url, name)) }
            }
            None => {
                let dir = std::env::temp_dir().join(format!("rxmember-test-{}", random_suffix()));
                std::fs::create_dir_all(&dir).expect("temp dir");
                let url = format!("sqlite://{}", dir.join("test.db").display());
                let store = Store::open(&url, Crypto::for_tests()).await.expect("open SQLite test store");
                TestDb { store, url, dir: Some(dir), pg: None }
            }
        }
    }

    /// Closes the pool and drops the PostgreSQL database.
    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some((admin_url, name)) = &self.pg
            && let Ok(admin) = sqlx::AnyPool::connect(admin_url).await
        {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&admin)
                .await;
            admin.close().await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
