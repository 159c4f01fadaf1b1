//! A company's loyalty rules (points, tiers, member days), kept as the TOML document operators edit.
//! A company without its own rules runs on the defaults.

use crate::{Result, Store, StoreError};
use rxmember_core::CompanyId;
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;

impl Store {
    /// The company's rules (defaults when none were saved).
    pub async fn loyalty_rules(&self, scope: &Scope, company: CompanyId) -> Result<LoyaltyRules> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let text: Option<String> = sqlx::query_scalar("SELECT rules FROM loyalty_rules WHERE company_id = $1")
            .bind(company.0)
            .fetch_optional(&self.pool)
            .await?;
        match text {
            Some(t) => LoyaltyRules::from_toml(&t).map_err(|e| StoreError::Invalid(e.0)),
            None => Ok(LoyaltyRules::default()),
        }
    }

    /// Replaces the company's rules (company admins); validated first, audited.
    pub async fn set_loyalty_rules(&self, scope: &Scope, company: CompanyId, rules: &LoyaltyRules) -> Result<()> {
        scope.require_company_admin(company)?;
        rules.validate().map_err(|e| StoreError::Invalid(e.0))?;
        let text = rules.to_toml();
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO loyalty_rules (company_id, rules, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (company_id) DO UPDATE SET rules = excluded.rules, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(company.0)
        .bind(&text)
        .bind(&scope.actor)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "loyalty.rules", None, Some(&format!("{} bytes", text.len()))).await
    }
}
