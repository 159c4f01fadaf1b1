//! A company's loyalty rules (points, tiers, member days), kept as the TOML document operators edit.
//! A company without its own rules runs on the defaults.

use crate::{Result, Store, StoreError};
use rxmember_core::CompanyId;
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Parsed rules per company, keyed by the exact text they came from. The text is always read from
/// the database, so a change by another process is seen at once; only the parse is saved.
pub(crate) type RulesCache = Arc<Mutex<HashMap<CompanyId, (String, Arc<LoyaltyRules>)>>>;

impl Store {
    /// The rules stored as `text` for `company` (defaults for none), parsed once per distinct text.
    pub(crate) fn rules_from_text(&self, company: CompanyId, text: Option<String>) -> Result<LoyaltyRules> {
        let Some(text) = text else { return Ok(LoyaltyRules::default()) };
        let cached = {
            let cache = self.parsed_rules.lock().unwrap_or_else(|e| e.into_inner());
            cache.get(&company).filter(|(t, _)| *t == text).map(|(_, r)| Arc::clone(r))
        };
        if let Some(rules) = cached {
            return Ok((*rules).clone());
        }
        let rules = LoyaltyRules::from_toml(&text).map_err(|e| StoreError::Invalid(e.0))?;
        self.parsed_rules.lock().unwrap_or_else(|e| e.into_inner()).insert(company, (text, Arc::new(rules.clone())));
        Ok(rules)
    }

    /// The company's rules (defaults when none were saved).
    pub async fn loyalty_rules(&self, scope: &Scope, company: CompanyId) -> Result<LoyaltyRules> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let text: Option<String> = sqlx::query_scalar("SELECT rules FROM loyalty_rules WHERE company_id = $1")
            .bind(company.0)
            .fetch_optional(&self.pool)
            .await?;
        self.rules_from_text(company, text)
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
        crate::facts::inputs_changed(&mut tx, company).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "loyalty.rules", None, Some(&format!("{} bytes", text.len()))).await
    }
}
