//! Products: the company's drug master (商品档案).

use crate::outcome::{RowOutcome, RowResult};
use crate::{Result, Store, StoreError, counters, db::values_placeholders, rowhash};
use rxmember_core::org::Scope;
use rxmember_core::product::ProductInput;
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, Fen, ProductId};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Product {
    pub company_id: CompanyId,
    pub id: ProductId,
    pub code: String,
    pub name: String,
    pub generic_name: Option<String>,
    pub spec: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub category_code: Option<String>,
    pub is_prescription: bool,
    pub retail_price: Option<Fen>,
    pub cost_price: Option<Fen>,
    pub days_per_pack: Option<i64>,
    pub ingredients: Vec<String>,
    pub points_excluded: bool,
}

/// What sales imports need to know of a product.
#[derive(Debug, Clone, Copy)]
pub struct ProductRef {
    pub id: ProductId,
    pub cost_price: Option<Fen>,
}

const COLS: usize = 18;

fn hash(p: &ProductInput) -> Vec<u8> {
    let f = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_default();
    rowhash::of(&[
        &p.code,
        &p.name,
        rowhash::opt(&p.generic_name),
        rowhash::opt(&p.spec),
        rowhash::opt(&p.manufacturer),
        rowhash::opt(&p.brand),
        rowhash::opt(&p.category_code),
        if p.is_prescription { "1" } else { "0" },
        &f(p.retail_price.map(|x| x.0)),
        &f(p.cost_price.map(|x| x.0)),
        &f(p.days_per_pack),
        &p.ingredients.join(";"),
        if p.points_excluded { "1" } else { "0" },
    ])
}

fn from_row(r: &AnyRow) -> Result<Product> {
    let ingredients: Option<String> = r.try_get("ingredients")?;
    Ok(Product {
        company_id: CompanyId(r.try_get("company_id")?),
        id: ProductId(r.try_get("id")?),
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        generic_name: r.try_get("generic_name")?,
        spec: r.try_get("spec")?,
        manufacturer: r.try_get("manufacturer")?,
        brand: r.try_get("brand")?,
        category_code: r.try_get("category_code")?,
        is_prescription: crate::db::flag(r, "is_prescription")?,
        retail_price: r.try_get::<Option<i64>, _>("retail_price")?.map(Fen),
        cost_price: r.try_get::<Option<i64>, _>("cost_price")?.map(Fen),
        days_per_pack: r.try_get("days_per_pack")?,
        ingredients: ingredients.map(|s| s.split(';').map(String::from).collect()).unwrap_or_default(),
        points_excluded: crate::db::flag(r, "points_excluded")?,
    })
}

impl Store {
    /// Inserts or updates products by code in one transaction.
    pub async fn upsert_products(
        &self,
        scope: &Scope,
        company: CompanyId,
        rows: &[ProductInput],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        let mut existing: HashMap<String, (i64, Vec<u8>)> = HashMap::new();
        let codes: Vec<_> = rows.iter().map(|r| r.code.clone()).collect();
        for r in crate::db::select_in(
            &mut tx,
            self.backend,
            "SELECT code, id, row_hash FROM products WHERE company_id = {company} AND code IN ({keys})",
            company.0,
            &codes,
        )
        .await?
        {
            existing.insert(r.try_get("code")?, (r.try_get("id")?, r.try_get("row_hash")?));
        }
        let fresh = rows.iter().filter(|r| !existing.contains_key(&r.code)).count() as i64;
        let mut next_id = counters::allocate(&mut tx, company.0, "product", fresh.max(1)).await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        let mut inserts: Vec<(i64, &ProductInput, Vec<u8>)> = Vec::new();
        for r in rows {
            let h = hash(r);
            match existing.get(&r.code) {
                Some((_, old)) if *old == h => out.push(RowResult::of(RowOutcome::Unchanged)),
                Some((id, _)) if *id < 0 => {
                    // Same code twice in one batch, both new: the later row wins.
                    if let Some(slot) = inserts.iter_mut().find(|(_, p, _)| p.code == r.code) {
                        *slot = (slot.0, r, h.clone());
                    }
                    existing.insert(r.code.clone(), (-1, h));
                    out.push(RowResult::of(RowOutcome::Updated));
                }
                Some((id, _)) => {
                    let id = *id;
                    sqlx::query(
                        "UPDATE products SET name = $3, generic_name = $4, spec = $5, manufacturer = $6, brand = $7, category_code = $8, \
                         is_prescription = $9, retail_price = $10, cost_price = $11, days_per_pack = $12, ingredients = $13, \
                         points_excluded = $14, row_hash = $15, updated_at = $16 WHERE company_id = $1 AND id = $2",
                    )
                    .bind(company.0)
                    .bind(id)
                    .bind(r.name.as_str())
                    .bind(r.generic_name.as_deref())
                    .bind(r.spec.as_deref())
                    .bind(r.manufacturer.as_deref())
                    .bind(r.brand.as_deref())
                    .bind(r.category_code.as_deref())
                    .bind(r.is_prescription)
                    .bind(r.retail_price.map(|f| f.0))
                    .bind(r.cost_price.map(|f| f.0))
                    .bind(r.days_per_pack)
                    .bind(if r.ingredients.is_empty() { None } else { Some(r.ingredients.join(";")) })
                    .bind(r.points_excluded)
                    .bind(h.clone())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    existing.insert(r.code.clone(), (id, h));
                    out.push(RowResult::of(RowOutcome::Updated));
                }
                None => {
                    inserts.push((next_id, r, h.clone()));
                    next_id += 1;
                    existing.insert(r.code.clone(), (-1, h));
                    out.push(RowResult::of(RowOutcome::Inserted));
                }
            }
        }
        for chunk in inserts.chunks(self.backend.rows_per_insert(COLS)) {
            let sql = format!(
                "INSERT INTO products (company_id, id, code, name, generic_name, spec, manufacturer, brand, category_code, is_prescription, \
                 retail_price, cost_price, days_per_pack, ingredients, points_excluded, row_hash, created_at, updated_at) VALUES {}",
                values_placeholders(self.backend, chunk.len(), COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (id, r, h) in chunk {
                q = q
                    .bind(company.0)
                    .bind(*id)
                    .bind(r.code.as_str())
                    .bind(r.name.as_str())
                    .bind(r.generic_name.as_deref())
                    .bind(r.spec.as_deref())
                    .bind(r.manufacturer.as_deref())
                    .bind(r.brand.as_deref())
                    .bind(r.category_code.as_deref())
                    .bind(r.is_prescription)
                    .bind(r.retail_price.map(|f| f.0))
                    .bind(r.cost_price.map(|f| f.0))
                    .bind(r.days_per_pack)
                    .bind(if r.ingredients.is_empty() { None } else { Some(r.ingredients.join(";")) })
                    .bind(r.points_excluded)
                    .bind(h.clone())
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        if out.iter().any(|r| r.outcome != RowOutcome::Unchanged) {
            crate::facts::inputs_changed(&mut tx, company).await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Product code → id and cost, for a company (sales imports).
    pub async fn product_refs(&self, scope: &Scope, company: CompanyId) -> Result<HashMap<String, ProductRef>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let rows: Vec<(String, i64, Option<i64>)> =
            sqlx::query_as("SELECT code, id, cost_price FROM products WHERE company_id = $1")
                .bind(company.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(c, id, cost)| (c, ProductRef { id: ProductId(id), cost_price: cost.map(Fen) }))
            .collect())
    }

    /// Products of a company, optionally filtered by a text found in code, name, generic name or
    /// manufacturer; paged.
    pub async fn products(
        &self,
        scope: &Scope,
        company: CompanyId,
        q: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<(i64, Vec<Product>)> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let pattern = q.map(|s| format!("%{}%", s.replace(['%', '_'], "")));
        let filter = "company_id = $1 AND ($2 IS NULL OR code LIKE $2 OR name LIKE $2 OR generic_name LIKE $2 OR manufacturer LIKE $2)";
        let total: i64 = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM products WHERE {filter}")))
            .bind(company.0)
            .bind(pattern.clone())
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT * FROM products WHERE {filter} ORDER BY code LIMIT $3 OFFSET $4"
        )))
        .bind(company.0)
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        Ok((total, rows.iter().map(from_row).collect::<Result<_>>()?))
    }

    pub async fn product(&self, scope: &Scope, company: CompanyId, id: ProductId) -> Result<Product> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let r = sqlx::query("SELECT * FROM products WHERE company_id = $1 AND id = $2")
            .bind(company.0)
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("product {id}") })?;
        from_row(&r)
    }
}
