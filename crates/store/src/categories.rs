//! Each company's category taxonomy: a copy of the shipped default, which the company may replace.

use crate::{Backend, Result, Store, db::values_placeholders};
use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_core::taxonomy::{Category, Taxonomy};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

pub(crate) async fn seed_default(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    company: CompanyId,
) -> Result<()> {
    write(tx, backend, company, &Taxonomy::default_pharmacy()).await
}

async fn write(tx: &mut Transaction<'static, Any>, backend: Backend, company: CompanyId, t: &Taxonomy) -> Result<()> {
    crate::facts::inputs_changed(tx, company).await?;
    sqlx::query("DELETE FROM categories WHERE company_id = $1").bind(company.0).execute(&mut **tx).await?;
    for chunk in t.categories.chunks(500) {
        let sql = format!(
            "INSERT INTO categories (company_id, code, major_code, name, name_en) VALUES {}",
            values_placeholders(backend, chunk.len(), 5)
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in chunk {
            q = q
                .bind(company.0)
                .bind(c.code.clone())
                .bind(c.major_code.clone())
                .bind(c.name.clone())
                .bind(c.name_en.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Store {
    /// The company's taxonomy.
    pub async fn taxonomy(&self, scope: &Scope, company: CompanyId) -> Result<Taxonomy> {
        if !scope.data.touches_company(company) {
            return Err(crate::StoreError::AccessDenied);
        }
        let rows =
            sqlx::query("SELECT code, major_code, name, name_en FROM categories WHERE company_id = $1 ORDER BY code")
                .bind(company.0)
                .fetch_all(&self.pool)
                .await?;
        let categories = rows
            .iter()
            .map(|r| {
                Ok(Category {
                    code: r.try_get("code")?,
                    major_code: r.try_get("major_code")?,
                    name: r.try_get("name")?,
                    name_en: r.try_get("name_en")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Taxonomy { categories })
    }

    /// Replaces the company's taxonomy (company admins). Products keep their codes; codes that no
    /// longer exist simply stop resolving to a name.
    pub async fn replace_taxonomy(&self, scope: &Scope, company: CompanyId, t: &Taxonomy) -> Result<()> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        write(&mut tx, self.backend, company, t).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "taxonomy.replace", None, Some(&format!("{} categories", t.categories.len())))
            .await
    }
}
