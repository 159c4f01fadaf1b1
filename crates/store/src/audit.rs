//! The audit log: every reveal of personal data, every import and export, every change of access.

use crate::{Result, Store, counters};
use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    pub at: i64,
    pub company_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

impl Store {
    /// Records that `scope`'s actor did `action` to `subject`.
    pub async fn audit(
        &self,
        scope: &Scope,
        company: Option<CompanyId>,
        action: &str,
        subject: Option<&str>,
        detail: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        let id = counters::allocate(&mut tx, 0, "audit", 1).await?;
        sqlx::query("INSERT INTO audit_log (id, at, company_id, actor, action, subject, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id)
            .bind(now_ms())
            .bind(company.map(|c| c.0))
            .bind(scope.actor.as_str())
            .bind(action)
            .bind(subject)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest audit entries the caller may see.
    pub async fn audit_entries(&self, scope: &Scope, limit: i64) -> Result<Vec<AuditEntry>> {
        let rows = match scope.data.company() {
            None => {
                sqlx::query("SELECT * FROM audit_log ORDER BY id DESC LIMIT $1")
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(c) => {
                sqlx::query("SELECT * FROM audit_log WHERE company_id = $1 ORDER BY id DESC LIMIT $2")
                    .bind(c.0)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(AuditEntry {
                    at: r.try_get("at")?,
                    company_id: r.try_get("company_id")?,
                    actor: r.try_get("actor")?,
                    action: r.try_get("action")?,
                    subject: r.try_get("subject")?,
                    detail: r.try_get("detail")?,
                })
            })
            .collect()
    }
}
