//! Stores (门店) of a company.

use crate::outcome::{RowOutcome, RowResult};
use crate::{Result, Store, StoreError, counters, db::values_placeholders, rowhash};
use rxmember_core::org::{DataScope, Scope, StoreInput};
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, StoreId};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreInfo {
    pub company_id: CompanyId,
    pub id: StoreId,
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    pub address: Option<String>,
    pub opened_on: Option<String>,
}

fn hash(s: &StoreInput) -> Vec<u8> {
    let opened = s.opened_on.map(|d| d.to_string());
    rowhash::of(&[&s.code, &s.name, rowhash::opt(&s.city), rowhash::opt(&s.address), rowhash::opt(&opened)])
}

impl Store {
    /// Inserts or updates stores by code. One transaction: all or nothing.
    pub async fn upsert_stores(
        &self,
        scope: &Scope,
        company: CompanyId,
        rows: &[StoreInput],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        let mut existing: HashMap<String, (i64, Vec<u8>)> = HashMap::new();
        let codes: Vec<_> = rows.iter().map(|r| r.code.clone()).collect();
        for r in crate::db::select_in(
            &mut tx,
            self.backend,
            "SELECT code, id, row_hash FROM stores WHERE company_id = {company} AND code IN ({keys})",
            company.0,
            &codes,
        )
        .await?
        {
            existing.insert(r.try_get("code")?, (r.try_get("id")?, r.try_get("row_hash")?));
        }
        let new_count = rows.iter().filter(|r| !existing.contains_key(&r.code)).count() as i64;
        let mut next_id = counters::allocate(&mut tx, company.0, "store", new_count.max(1)).await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let h = hash(r);
            let opened = r.opened_on.map(|d| d.to_string());
            match existing.get(&r.code) {
                Some((_, old)) if *old == h => out.push(RowResult::of(RowOutcome::Unchanged)),
                Some((id, _)) => {
                    let id = *id;
                    sqlx::query("UPDATE stores SET name = $3, city = $4, address = $5, opened_on = $6, row_hash = $7, updated_at = $8 WHERE company_id = $1 AND id = $2")
                        .bind(company.0).bind(id).bind(r.name.as_str()).bind(r.city.as_deref()).bind(r.address.as_deref())
                        .bind(opened).bind(h.clone()).bind(now)
                        .execute(&mut *tx).await?;
                    existing.insert(r.code.clone(), (id, h));
                    out.push(RowResult::of(RowOutcome::Updated));
                }
                None => {
                    let id = next_id;
                    next_id += 1;
                    let sql = format!(
                        "INSERT INTO stores (company_id, id, code, name, city, address, opened_on, row_hash, created_at, updated_at) VALUES {}",
                        values_placeholders(self.backend, 1, 10)
                    );
                    sqlx::query(AssertSqlSafe(sql))
                        .bind(company.0)
                        .bind(id)
                        .bind(r.code.as_str())
                        .bind(r.name.as_str())
                        .bind(r.city.as_deref())
                        .bind(r.address.as_deref())
                        .bind(opened)
                        .bind(h.clone())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    existing.insert(r.code.clone(), (id, h));
                    out.push(RowResult::of(RowOutcome::Inserted));
                }
            }
        }
        if out.iter().any(|r| r.outcome != RowOutcome::Unchanged) {
            crate::facts::inputs_changed(&mut tx, company).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The stores the caller may see, in code order.
    pub async fn stores(&self, scope: &Scope, company: Option<CompanyId>) -> Result<Vec<StoreInfo>> {
        let company = match (scope.data.company(), company) {
            (Some(own), Some(asked)) if own != asked => return Err(StoreError::AccessDenied),
            (Some(own), _) => Some(own),
            (None, asked) => asked,
        };
        let rows = match company {
            Some(c) => {
                sqlx::query("SELECT * FROM stores WHERE company_id = $1 ORDER BY code")
                    .bind(c.0)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => sqlx::query("SELECT * FROM stores ORDER BY company_id, code").fetch_all(&self.pool).await?,
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let s = StoreInfo {
                company_id: CompanyId(r.try_get("company_id")?),
                id: StoreId(r.try_get("id")?),
                code: r.try_get("code")?,
                name: r.try_get("name")?,
                city: r.try_get("city")?,
                address: r.try_get("address")?,
                opened_on: r.try_get("opened_on")?,
            };
            let visible = match &scope.data {
                DataScope::Stores { stores, .. } => stores.contains(&s.id),
                _ => true,
            };
            if visible {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Store code → id for a company (used by imports to resolve codes).
    pub async fn store_codes(&self, scope: &Scope, company: CompanyId) -> Result<HashMap<String, StoreId>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT code, id FROM stores WHERE company_id = $1")
            .bind(company.0)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.into_iter().map(|(c, i)| (c, StoreId(i))).collect())
    }
}
