//! rxmember-store: the source of truth. Persistence on SQLite (embedded default, a file under `./data/`)
//! or PostgreSQL (production), through sqlx's `Any` driver so one SQL text serves both; migrations per
//! backend are applied at start-up. Sales imports into SQLite write through a native connection of
//! their own instead (`sqlite_native`): sqlx's per-row overhead was their critical path.
//!
//! Every function that touches tenant data takes the caller's [`Scope`](rxmember_core::org::Scope) and
//! filters by it: there is no unscoped query for tenant data. Personal data is encrypted here, on the
//! way in, and decrypted on the way out ([`crypto`]). This crate knows nothing of HTTP or files.

pub mod audit;
pub mod categories;
pub mod companies;
pub mod counters;
pub mod coupons;
pub mod crypto;
pub mod db;
pub mod engine_config;
pub mod facts;
pub mod health_checks;
pub mod import_runs;
pub mod loyalty_rules;
pub mod members;
pub mod outcome;
pub mod points;
pub mod pos;
pub mod products;
mod rowhash;
pub mod sales;
pub mod sessions;
mod sqlite_native;
pub mod staff;
pub mod stores;
pub mod testing;
pub mod tiers;
pub mod tokens;

pub use db::{Backend, Store};
pub use outcome::{Issue, RowOutcome, RowResult};

use rxmember_core::org::AccessDenied;

/// What can go wrong in the store, in domain words.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("access denied: outside the caller's data scope")]
    AccessDenied,
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("encryption key problem: {0}")]
    Crypto(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the native SQLite bulk path, which calls SQLite without sqlx.
    #[error("SQLite error {code}: {message}")]
    Sqlite { code: i32, message: String },
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl From<AccessDenied> for StoreError {
    fn from(_: AccessDenied) -> Self {
        StoreError::AccessDenied
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A database error, with a unique-key violation read as a conflict on `what` (a cause applied
/// already, a ticket number taken, a coupon redeemed): the database is what enforces exactly-once.
pub(crate) fn conflict_on_unique(e: sqlx::Error, what: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict { what: what() },
        _ => StoreError::Database(e),
    }
}
