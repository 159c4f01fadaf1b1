//! What the member-intelligence engine is configured with: per-company settings (a JSON document
//! the engine validates), saved tags (an expression or a list of members), and the database's
//! instance token that engine snapshots carry.

use crate::db::{select_in, values_placeholders};
use crate::{Result, Store, StoreError, counters};
use rxmember_core::org::Scope;
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, MemberId};
use serde::Serialize;
use sqlx::Row;

/// A saved tag as stored: exactly one of `expression` and `members` is meaningful.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredTag {
    pub name: String,
    pub expression: Option<String>,
    pub members: Vec<MemberId>,
    pub created_by: String,
    pub updated_at: i64,
}

impl Store {
    /// This database's identity, fixed at creation.
    pub async fn instance_token(&self) -> Result<String> {
        Ok(sqlx::query("SELECT token FROM instance WHERE id = 1").fetch_one(&self.pool).await?.try_get("token")?)
    }

    /// The company's engine settings document, if one was saved.
    pub async fn engine_settings(&self, scope: &Scope, company: CompanyId) -> Result<Option<String>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let row = sqlx::query("SELECT settings FROM engine_settings WHERE company_id = $1")
            .bind(company.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("settings")).transpose()?)
    }

    /// Saves the company's engine settings (already validated by the caller). Audited.
    pub async fn set_engine_settings(&self, scope: &Scope, company: CompanyId, json: &str) -> Result<()> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO engine_settings (company_id, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (company_id) DO UPDATE SET settings = excluded.settings, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
        )
        .bind(company.0)
        .bind(json)
        .bind(scope.actor.as_str())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        crate::facts::inputs_changed(&mut tx, company).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "engine.settings", None, None).await
    }

    pub async fn saved_tags(&self, scope: &Scope, company: CompanyId) -> Result<Vec<StoredTag>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let rows = sqlx::query(
            "SELECT id, name, expression, created_by, updated_at FROM saved_tags WHERE company_id = $1 ORDER BY id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let mut tags = Vec::new();
        for r in rows {
            let id: i64 = r.try_get("id")?;
            let expression: Option<String> = r.try_get("expression")?;
            let members = if expression.is_none() {
                sqlx::query(
                    "SELECT member_id FROM saved_tag_members WHERE company_id = $1 AND tag_id = $2 ORDER BY member_id",
                )
                .bind(company.0)
                .bind(id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| r.try_get("member_id").map(MemberId))
                .collect::<std::result::Result<Vec<_>, _>>()?
            } else {
                Vec::new()
            };
            tags.push(StoredTag {
                name: r.try_get("name")?,
                expression,
                members,
                created_by: r.try_get("created_by")?,
                updated_at: r.try_get("updated_at")?,
            });
        }
        Ok(tags)
    }

    /// Saves (or replaces) a tag defined by an expression the caller has already checked.
    pub async fn save_expression_tag(
        &self,
        scope: &Scope,
        company: CompanyId,
        name: &str,
        expression: &str,
    ) -> Result<()> {
        self.save_tag(scope, company, name, Some(expression), &[]).await
    }

    /// Saves (or replaces) a manual tag from card numbers. Returns the cards no member holds (not
    /// tagged, reported to the operator).
    pub async fn save_card_list_tag(
        &self,
        scope: &Scope,
        company: CompanyId,
        name: &str,
        cards: &[String],
    ) -> Result<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let rows = select_in(
            &mut conn,
            self.backend,
            "SELECT card_no, member_id FROM member_cards WHERE company_id = {company} AND card_no IN ({keys})",
            company.0,
            cards,
        )
        .await?;
        drop(conn);
        let mut found = std::collections::HashMap::new();
        for r in rows {
            found.insert(r.try_get::<String, _>("card_no")?, MemberId(r.try_get("member_id")?));
        }
        let unknown: Vec<String> = cards.iter().filter(|c| !found.contains_key(*c)).cloned().collect();
        let mut members: Vec<MemberId> = found.into_values().collect();
        members.sort();
        members.dedup();
        self.save_tag(scope, company, name, None, &members).await?;
        Ok(unknown)
    }

    async fn save_tag(
        &self,
        scope: &Scope,
        company: CompanyId,
        name: &str,
        expression: Option<&str>,
        members: &[MemberId],
    ) -> Result<()> {
        scope.require_company_admin(company)?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let existing = sqlx::query("SELECT id FROM saved_tags WHERE company_id = $1 AND name = $2")
            .bind(company.0)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let id = match existing {
            Some(r) => {
                let id: i64 = r.try_get("id")?;
                sqlx::query("UPDATE saved_tags SET expression = $3, updated_at = $4 WHERE company_id = $1 AND id = $2")
                    .bind(company.0)
                    .bind(id)
                    .bind(expression)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM saved_tag_members WHERE company_id = $1 AND tag_id = $2")
                    .bind(company.0)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                id
            }
            None => {
                let id = counters::allocate(&mut tx, company.0, "saved_tag", 1).await?;
                sqlx::query(
                    "INSERT INTO saved_tags (company_id, id, name, expression, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(company.0)
                .bind(id)
                .bind(name)
                .bind(expression)
                .bind(scope.actor.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        for chunk in members.chunks(500) {
            let sql = format!(
                "INSERT INTO saved_tag_members (company_id, tag_id, member_id) VALUES {}",
                values_placeholders(self.backend, chunk.len(), 3)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                q = q.bind(company.0).bind(id).bind(m.0);
            }
            q.execute(&mut *tx).await?;
        }
        crate::facts::inputs_changed(&mut tx, company).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "tag.save", Some(name), Some(&format!("{} members listed", members.len())))
            .await
    }

    /// Deletes a saved tag; false if there was none of that name.
    pub async fn delete_tag(&self, scope: &Scope, company: CompanyId, name: &str) -> Result<bool> {
        scope.require_company_admin(company)?;
        let mut tx = self.begin_write().await?;
        let Some(r) = sqlx::query("SELECT id FROM saved_tags WHERE company_id = $1 AND name = $2")
            .bind(company.0)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let id: i64 = r.try_get("id")?;
        for sql in [
            "DELETE FROM saved_tag_members WHERE company_id = $1 AND tag_id = $2",
            "DELETE FROM saved_tags WHERE company_id = $1 AND id = $2",
        ] {
            sqlx::query(sql).bind(company.0).bind(id).execute(&mut *tx).await?;
        }
        crate::facts::inputs_changed(&mut tx, company).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "tag.delete", Some(name), None).await?;
        Ok(true)
    }
}
