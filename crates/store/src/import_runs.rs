//! One row per import run: who imported what, when, and the summary it ended with.

use crate::{Result, Store, counters};
use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;

impl Store {
    /// Opens a run record; returns its id.
    pub async fn start_import_run(&self, scope: &Scope, company: CompanyId, kind: &str, source: &str) -> Result<i64> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        let id = counters::allocate(&mut tx, company.0, "import_run", 1).await?;
        sqlx::query(
            "INSERT INTO import_runs (company_id, id, kind, source, actor, started_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(company.0)
        .bind(id)
        .bind(kind)
        .bind(source)
        .bind(scope.actor.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Closes a run with its JSON summary.
    pub async fn finish_import_run(&self, company: CompanyId, id: i64, summary_json: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE import_runs SET finished_at = $3, summary = $4 WHERE company_id = $1 AND id = $2")
            .bind(company.0)
            .bind(id)
            .bind(now_ms())
            .bind(summary_json)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
