//! Id allocation in blocks, per company and kind. Portable across SQLite and PostgreSQL, and lets a
//! batch import know its new rows' ids without a round trip per row. Runs inside the caller's write
//! transaction, so a rolled-back batch gives its ids back.

use crate::Result;
use crate::sqlite_native::{Db, params};
use sqlx::{Any, Transaction};

const CREATE: &str =
    "INSERT INTO id_counters (company_id, kind, next_id) VALUES ($1, $2, 1) ON CONFLICT (company_id, kind) DO NOTHING";
const ADVANCE: &str =
    "UPDATE id_counters SET next_id = next_id + $1 WHERE company_id = $2 AND kind = $3 RETURNING next_id";

/// Reserves `n` consecutive ids for `(company, kind)`; returns the first.
pub(crate) async fn allocate(tx: &mut Transaction<'static, Any>, company: i64, kind: &str, n: i64) -> Result<i64> {
    sqlx::query(CREATE).bind(company).bind(kind).execute(&mut **tx).await?;
    let next: i64 = sqlx::query_scalar(ADVANCE).bind(n).bind(company).bind(kind).fetch_one(&mut **tx).await?;
    Ok(next - n)
}

/// [`allocate`] on the native SQLite bulk path.
pub(crate) fn allocate_native(db: &Db<'_>, company: i64, kind: &str, n: i64) -> Result<i64> {
    db.prepare(CREATE)?.execute(params![company, kind])?;
    let mut next = None;
    db.prepare(ADVANCE)?.run(params![n, company, kind], |r| {
        next = Some(r.int(0));
        Ok(())
    })?;
    let next = next.ok_or_else(|| crate::StoreError::Invalid(format!("no id counter for {kind}")))?;
    Ok(next - n)
}
