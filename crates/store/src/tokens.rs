//! API tokens for a company's ERP/POS push: `rxm_<company id>_<secret>`. Only the SHA-256 of the
//! token is stored; the token itself is shown once, at creation.

use crate::sessions::{random_token, token_hash};
use crate::{Result, Store, counters};
use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// How long this process trusts a token it has checked before asking the database again. A token
/// revoked by another process (the CLI) stops working on a running server within this time; one
/// revoked through this process stops at once.
pub const TOKEN_RECHECK: Duration = Duration::from_secs(5);

/// Tokens checked recently, by their hash: the till sends its token with every call.
pub(crate) type TokenCache = Arc<Mutex<HashMap<Vec<u8>, (Scope, Instant)>>>;

impl Store {
    /// Creates a token for `company` (company admins). Returns the token: show it once.
    pub async fn create_api_token(&self, scope: &Scope, company: CompanyId, name: &str) -> Result<String> {
        scope.require_company_admin(company)?;
        let token = format!("rxm_{}_{}", company.0, random_token());
        let mut tx = self.begin_write().await?;
        let id = counters::allocate(&mut tx, company.0, "api_token", 1).await?;
        sqlx::query(
            "INSERT INTO api_tokens (company_id, id, name, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(company.0)
        .bind(id)
        .bind(name)
        .bind(token_hash(&token))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "api_token.create", Some(name), None).await?;
        Ok(token)
    }

    /// The scope of a live token, or `None`.
    pub async fn api_token_scope(&self, token: &str) -> Result<Option<Scope>> {
        let Some(company) =
            token.strip_prefix("rxm_").and_then(|rest| rest.split_once('_')).and_then(|(c, _)| c.parse::<i64>().ok())
        else {
            return Ok(None);
        };
        let hash = token_hash(token);
        if let Some((scope, _)) = self
            .api_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&hash)
            .filter(|(_, at)| at.elapsed() < TOKEN_RECHECK)
        {
            return Ok(Some(scope.clone()));
        }
        let row: Option<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT token_hash, name FROM api_tokens WHERE company_id = $1 AND token_hash = $2 AND revoked_at IS NULL",
        )
        .bind(company)
        .bind(hash.clone())
        .fetch_optional(&self.pool)
        .await?;
        let scope = row
            .filter(|(stored, _)| bool::from(stored.ct_eq(&hash)))
            .map(|(_, name)| Scope::company_token(CompanyId(company), &name));
        if let Some(scope) = &scope {
            let mut cache = self.api_tokens.lock().unwrap_or_else(|e| e.into_inner());
            if cache.len() >= 10_000 {
                cache.retain(|_, (_, at)| at.elapsed() < TOKEN_RECHECK);
            }
            cache.insert(hash, (scope.clone(), Instant::now()));
        }
        Ok(scope)
    }

    /// Revokes a company's token by name.
    pub async fn revoke_api_token(&self, scope: &Scope, company: CompanyId, name: &str) -> Result<u64> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $3 WHERE company_id = $1 AND name = $2 AND revoked_at IS NULL",
        )
        .bind(company.0)
        .bind(name)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        let prefix = format!("token:{}/", company.0);
        self.api_tokens.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (s, _)| !s.actor.starts_with(&prefix));
        self.audit(scope, Some(company), "api_token.revoke", Some(name), None).await?;
        Ok(n)
    }
}
