//! Connecting, migrating, and the few places where SQLite and PostgreSQL differ.

use crate::Result;
use crate::crypto::Crypto;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Transaction};
use std::time::Duration;

/// Which database is behind the `Any` pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// Rows per multi-row INSERT for a table of `cols` columns. A fixed size (about 4,000 parameters,
    /// well under both backends' limits) means every full chunk has the same SQL text, so the prepared
    /// statement is reused from sqlx's cache instead of being parsed and planned again.
    pub fn rows_per_insert(self, cols: usize) -> usize {
        (4_000 / cols).max(1)
    }
}

/// The store: a connection pool plus the keys for personal data.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) crypto: Crypto,
    /// The SQLite file's URL, for bulk writers that open a native connection of their own.
    pub(crate) sqlite_url: Option<String>,
    /// SQLite only: POS commits of this process queue here, first come first served, before they
    /// ask SQLite for the write lock. Without it they wait in SQLite's busy handler, which sleeps
    /// (up to 100 ms a try) and lets later arrivals overtake: measured, POS commits at 8 concurrent
    /// tills had p50 11 ms but p99 over 1 s (`rxmember bench pos`).
    pub(crate) pos_commits: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// Each company's rules as last parsed, with the stored text they were parsed from: a read that
    /// finds the same text skips the TOML parse (the till reads the rules on every quote).
    pub(crate) parsed_rules: crate::loyalty_rules::RulesCache,
    /// API tokens this process checked in the last [`crate::tokens::TOKEN_RECHECK`].
    pub(crate) api_tokens: crate::tokens::TokenCache,
    /// SQLite only: the connection the engine's pages of sales facts are read through, natively
    /// (opened at the first page; see [`Store::fact_sales`]).
    pub(crate) fact_reader: std::sync::Arc<tokio::sync::Mutex<Option<crate::sqlite_native::NativeSqlite>>>,
}

/// Settings of every SQLite connection: WAL, checkpoints every 64 MB of WAL, a 64 MB page cache.
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
     PRAGMA busy_timeout = 10000; PRAGMA cache_size = -65536; \
     PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 1073741824; \
     PRAGMA wal_autocheckpoint = 16384;";

/// Connections to PostgreSQL: `RXMEMBER_DB_POOL`, default twice the machine's cores and at least 4.
/// More connections than cores mostly adds backends competing for them: on a 2-core machine the
/// till's p99 at 8 clients was 3.4–4.4 ms with 4 connections and 4.2–7.0 ms with 16, at the same
/// throughput (bench/results/pos-2026-12-04-vm-2.md).
fn pg_pool_size() -> u32 {
    let default = std::thread::available_parallelism().map_or(4, |n| (2 * n.get() as u32).max(4));
    std::env::var("RXMEMBER_DB_POOL").ok().and_then(|v| v.parse().ok()).filter(|n| *n > 0).unwrap_or(default)
}

/// A pooled connection idle longer than this is pinged before it is used again.
const IDLE_CHECK: Duration = Duration::from_secs(1);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`), creating a SQLite file if missing, and
    /// applies pending migrations.
    pub async fn open(url: &str, crypto: Crypto) -> Result<Store> {
        install_default_drivers();
        let backend = Backend::of_url(url).ok_or_else(|| {
            crate::StoreError::Invalid(format!(
                "unsupported database URL (use sqlite:// or postgres://): {}",
                redact(url)
            ))
        })?;
        let sqlite_url = (backend == Backend::Sqlite)
            .then(|| if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") });
        // sqlx pings every connection it hands out by default: one more round trip per statement,
        // which on PostgreSQL doubled the till's round trips. Only a connection idle long enough
        // to have been dropped by the server or a proxy is checked; a broken one is replaced.
        let options = || {
            AnyPoolOptions::new().test_before_acquire(false).before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > IDLE_CHECK {
                        use sqlx::Connection;
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
        };
        let pool = match &sqlite_url {
            Some(url) => {
                options()
                    .max_connections(8)
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            use sqlx::Executor;
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect(url)
                    .await?
            }
            None => {
                options().max_connections(pg_pool_size()).acquire_timeout(Duration::from_secs(30)).connect(url).await?
            }
        };
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Store {
            pool,
            backend,
            crypto,
            sqlite_url,
            pos_commits: Default::default(),
            parsed_rules: Default::default(),
            api_tokens: Default::default(),
            fact_reader: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// On SQLite, the turn of a POS commit (see the `pos_commits` field); held until the commit's
    /// transaction ends. PostgreSQL locks rows, not the database: no turn needed.
    pub(crate) async fn pos_commit_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite => Some(self.pos_commits.lock().await),
            Backend::Postgres => None,
        }
    }

    /// Starts a write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`) so a
    /// read-then-write transaction waits for a concurrent writer instead of failing.
    pub(crate) async fn begin_write(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Refreshes the planner's statistics for tables a bulk load is filling. PostgreSQL plans the
    /// import's `IN (...)` lookups as sequential scans on a freshly filled table nobody has analyzed
    /// yet (autovacuum lags a bulk load, or is off), turning milliseconds into seconds per batch.
    /// SQLite uses its indexes without statistics; there this is a no-op.
    pub async fn refresh_statistics(&self, tables: &[&str]) -> Result<()> {
        if self.backend == Backend::Postgres {
            for t in tables {
                if t.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {t}"))).execute(&self.pool).await?;
                }
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// PostgreSQL: vacuums and refreshes the planner's statistics of every table, as autovacuum
    /// would soon after a bulk load (benchmarks call it so that autovacuum does not run during the
    /// measurement). SQLite: nothing (its plans do not use statistics unless ANALYZE was run).
    pub async fn vacuum_analyze(&self) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("VACUUM (ANALYZE)").execute(&self.pool).await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }
}

/// Creates a scratch PostgreSQL database `name` through an admin URL and returns its URL (tests,
/// benchmarks). `name` must be a plain identifier.
pub async fn create_pg_database(admin_url: &str, name: &str) -> Result<String> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(crate::StoreError::Invalid(format!("not a plain database name: {name}")));
    }
    install_default_drivers();
    let admin = sqlx::AnyPool::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await?;
    admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin_url);
    Ok(format!("{base}/{name}"))
}

/// Drops a scratch database made by [`create_pg_database`].
pub async fn drop_pg_database(admin_url: &str, name: &str) -> Result<()> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(crate::StoreError::Invalid(format!("not a plain database name: {name}")));
    }
    install_default_drivers();
    let admin = sqlx::AnyPool::connect(admin_url).await?;
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))).execute(&admin).await?;
    admin.close().await;
    Ok(())
}

/// A database URL with any password removed, for logs and errors.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// One placeholder of a statement with a dynamic number of parameters. PostgreSQL: `$n`.
/// SQLite: anonymous `?`, bound in textual order. sqlx asks SQLite for every parameter's name, and
/// SQLite finds a named (`$n`) or numbered (`?n`) parameter's name by a linear scan, which makes a
/// statement with thousands of parameters quadratic (seconds per batch); anonymous ones cost nothing.
/// A statement must then use this for *every* parameter, in the order they are bound.
pub(crate) fn placeholder(b: Backend, n: usize) -> String {
    match b {
        Backend::Sqlite => "?".to_string(),
        Backend::Postgres => format!("${n}"),
    }
}

/// Placeholders for `rows` rows of `cols` columns, numbered from 1: `($1,$2),($3,$4)`.
pub(crate) fn values_placeholders(b: Backend, rows: usize, cols: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push_str(&placeholder(b, n));
            n += 1;
        }
        s.push(')');
    }
    s
}

/// Placeholders numbered `from..from+n` for an `IN (...)` list.
pub(crate) fn list_placeholders(b: Backend, from: usize, n: usize) -> String {
    (from..from + n).map(|i| placeholder(b, i)).collect::<Vec<_>>().join(",")
}

/// Runs a lookup `template` over many keys in chunks: the template holds `{company}` where the
/// company id goes and `{keys}` where the `IN (...)` list goes, e.g.
/// `SELECT code, id FROM stores WHERE company_id = {company} AND code IN ({keys})`.
pub(crate) async fn select_in<K>(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    template: &str,
    company: i64,
    keys: &[K],
) -> Result<Vec<sqlx::any::AnyRow>>
where
    K: for<'q> sqlx::Encode<'q, Any> + sqlx::Type<Any> + Send + Clone + 'static,
{
    let mut out = Vec::new();
    for chunk in keys.chunks(1000) {
        let sql = template
            .replace("{company}", &placeholder(backend, 1))
            .replace("{keys}", &list_placeholders(backend, 2, chunk.len()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(company);
        for k in chunk {
            q = q.bind(k.clone());
        }
        out.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(out)
}

/// Reads a flag column: PostgreSQL stores `BOOLEAN`, SQLite `INTEGER` 0/1 (the `Any` driver cannot
/// decode SQLite's boolean affinity). Binding a Rust `bool` works on both.
pub(crate) fn flag(r: &sqlx::any::AnyRow, col: &str) -> Result<bool> {
    use sqlx::Row;
    match r.try_get::<bool, _>(col) {
        Ok(b) => Ok(b),
        Err(_) => Ok(r.try_get::<i64, _>(col)? != 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(values_placeholders(Backend::Postgres, 2, 2), "($1,$2),($3,$4)");
        assert_eq!(values_placeholders(Backend::Sqlite, 1, 2), "(?,?)");
        assert_eq!(list_placeholders(Backend::Postgres, 3, 3), "$3,$4,$5");
    }

    #[test]
    fn redacts_passwords() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
