//! The group and its retail companies (tenants). Creating a company gives it a copy of the default
//! category taxonomy.

use crate::{Result, Store, StoreError, categories, counters};
use rxmember_core::CompanyId;
use rxmember_core::org::{Role, Scope};
use rxmember_core::time::now_ms;
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Company {
    pub id: CompanyId,
    pub code: String,
    pub name: String,
    pub brand: Option<String>,
    pub utc_offset_minutes: i32,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<Company> {
    Ok(Company {
        id: CompanyId(r.try_get("id")?),
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        brand: r.try_get("brand")?,
        utc_offset_minutes: r.try_get::<i64, _>("utc_offset_minutes")? as i32,
    })
}

impl Store {
    /// Names the group (the deployment). Idempotent.
    pub async fn init_group(&self, name: &str) -> Result<()> {
        sqlx::query("INSERT INTO group_info (id, name, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn group_name(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT name FROM group_info WHERE id = 1").fetch_optional(&self.pool).await?)
    }

    /// Creates a company (group admins only) and seeds its category taxonomy.
    pub async fn create_company(&self, scope: &Scope, code: &str, name: &str, brand: Option<&str>) -> Result<Company> {
        if scope.role != Role::GroupAdmin || scope.data.company().is_some() {
            return Err(StoreError::AccessDenied);
        }
        let mut tx = self.begin_write().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM companies WHERE code = $1").bind(code).fetch_optional(&mut *tx).await?;
        if exists.is_some() {
            return Err(StoreError::Conflict { what: format!("company {code}") });
        }
        let id = counters::allocate(&mut tx, 0, "company", 1).await?;
        sqlx::query("INSERT INTO companies (id, code, name, brand, utc_offset_minutes, created_at) VALUES ($1, $2, $3, $4, 480, $5)")
            .bind(id)
            .bind(code)
            .bind(name)
            .bind(brand)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        categories::seed_default(&mut tx, self.backend, CompanyId(id)).await?;
        tx.commit().await?;
        self.audit(scope, Some(CompanyId(id)), "company.create", Some(code), None).await?;
        Ok(Company {
            id: CompanyId(id),
            code: code.into(),
            name: name.into(),
            brand: brand.map(Into::into),
            utc_offset_minutes: 480,
        })
    }

    /// The companies the caller may see.
    pub async fn companies(&self, scope: &Scope) -> Result<Vec<Company>> {
        let rows = match scope.data.company() {
            None => sqlx::query("SELECT * FROM companies ORDER BY id").fetch_all(&self.pool).await?,
            Some(c) => sqlx::query("SELECT * FROM companies WHERE id = $1").bind(c.0).fetch_all(&self.pool).await?,
        };
        rows.iter().map(from_row).collect()
    }

    /// A company by code, if the caller may see it.
    pub async fn company_by_code(&self, scope: &Scope, code: &str) -> Result<Company> {
        let row = sqlx::query("SELECT * FROM companies WHERE code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("company {code}") })?;
        let c = from_row(&row)?;
        if !scope.data.touches_company(c.id) {
            return Err(StoreError::AccessDenied);
        }
        Ok(c)
    }

    pub async fn company(&self, scope: &Scope, id: CompanyId) -> Result<Company> {
        if !scope.data.touches_company(id) {
            return Err(StoreError::AccessDenied);
        }
        let row = sqlx::query("SELECT * FROM companies WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("company {id}") })?;
        from_row(&row)
    }
}
