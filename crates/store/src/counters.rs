//! Id allocation in blocks, per company and kind. Portable across SQLite and PostgreSQL, and lets a
//! batch import know its new rows' ids without a round trip per row. Runs inside the caller's write
//! transaction, so a rolled-back batch gives its ids back.

use crate::Result;
use sqlx::{Any, Transaction};

/// Reserves `n` consecutive ids for `(company, kind)`; returns the first.
pub(crate) async fn allocate(tx: &mut Transaction<'static, Any>, company: i64, kind: &str, n: i64) -> Result<i64> {
    sqlx::query("INSERT INTO id_counters (company_id, kind, next_id) VALUES ($1, $2, 1) ON CONFLICT (company_id, kind) DO NOTHING")
        .bind(company)
        .bind(kind)
        .execute(&mut **tx)
        .await?;
    let next: i64 = sqlx::query_scalar(
        "UPDATE id_counters SET next_id = next_id + $3 WHERE company_id = $1 AND kind = $2 RETURNING next_id",
    )
    .bind(company)
    .bind(kind)
    .bind(n)
    .fetch_one(&mut **tx)
    .await?;
    Ok(next - n)
}
