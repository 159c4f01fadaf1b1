//! Health checks (健康检测) recorded in store. Sensitive personal information: read only by roles that
//! may see personal data.

use crate::outcome::{Issue, RowOutcome, RowResult};
use crate::{Result, Store, StoreError, counters, rowhash};
use rxmember_core::health::{HealthCheck, HealthCheckInput};
use rxmember_core::org::Scope;
use rxmember_core::time::{local_date, now_ms};
use rxmember_core::{CompanyId, MemberId, StoreId};
use sqlx::Row;
use std::collections::HashMap;

/// Readings are stored as integer thousandths. (Floats would also work on their own, but sqlx 0.9's
/// `Any` driver sends a NULL `f64` as `float4`, which breaks PostgreSQL's cached statements when the
/// next row carries a value; integers keep both backends exact and alike.)
fn milli(v: Option<f64>) -> Option<i64> {
    v.map(|x| (x * 1000.0).round() as i64)
}

impl Store {
    /// Writes a batch of health checks, keyed by (member, kind, time).
    pub async fn write_health_checks(
        &self,
        scope: &Scope,
        company: CompanyId,
        stores: &HashMap<String, StoreId>,
        rows: &[HealthCheckInput],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(company)?;
        let c = company.0;
        let mut tx = self.begin_write().await?;
        let mut members: HashMap<String, i64> = HashMap::new();
        let card_nos: Vec<_> = rows.iter().map(|r| r.card_no.clone()).collect();
        for r in crate::db::select_in(
            &mut tx,
            self.backend,
            "SELECT card_no, member_id FROM member_cards WHERE company_id = {company} AND card_no IN ({keys})",
            c,
            &card_nos,
        )
        .await?
        {
            members.insert(r.try_get("card_no")?, r.try_get("member_id")?);
        }
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(&member_id) = members.get(&r.card_no) else {
                out.push(RowResult::rejected(Issue::new(
                    "card_no",
                    &r.card_no,
                    "unknown_card",
                    format!("会员卡号“{}”不存在，检测记录无法归属，请先导入会员", r.card_no),
                )));
                continue;
            };
            let mut warnings = Vec::new();
            let store_id = match &r.store_code {
                Some(code) => match stores.get(code) {
                    Some(s) => Some(s.0),
                    None => {
                        warnings.push(Issue::new(
                            "store_code",
                            code,
                            "unknown_store",
                            format!("门店编码“{code}”不存在，已留空"),
                        ));
                        None
                    }
                },
                None => None,
            };
            let h = rowhash::of(&[
                &r.card_no,
                rowhash::opt(&r.store_code),
                &r.checked_at.to_string(),
                &r.kind_name,
                &r.value,
                rowhash::opt(&r.unit),
            ]);
            let prior: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, row_hash FROM health_checks WHERE company_id = $1 AND member_id = $2 AND kind = $3 AND checked_at = $4",
            )
            .bind(c)
            .bind(member_id)
            .bind(r.kind_name.as_str())
            .bind(r.checked_at)
            .fetch_optional(&mut *tx)
            .await?;
            let outcome = match prior {
                Some((_, old)) if old == h => RowOutcome::Unchanged,
                Some((id, _)) => {
                    sqlx::query(
                        "UPDATE health_checks SET store_id = $3, value = $4, value1_milli = $5, value2_milli = $6, unit = $7, abnormal = $8, row_hash = $9 \
                         WHERE company_id = $1 AND id = $2",
                    )
                    .bind(c)
                    .bind(id)
                    .bind(store_id)
                    .bind(r.value.as_str())
                    .bind(milli(r.value1))
                    .bind(milli(r.value2))
                    .bind(r.unit.as_deref())
                    .bind(r.abnormal)
                    .bind(h)
                    .execute(&mut *tx)
                    .await?;
                    RowOutcome::Updated
                }
                None => {
                    let id = counters::allocate(&mut tx, c, "health_check", 1).await?;
                    sqlx::query(
                        "INSERT INTO health_checks (company_id, id, member_id, store_id, checked_at, kind, value, value1_milli, value2_milli, unit, abnormal, row_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    )
                    .bind(c)
                    .bind(id)
                    .bind(member_id)
                    .bind(store_id)
                    .bind(r.checked_at)
                    .bind(r.kind_name.as_str())
                    .bind(r.value.as_str())
                    .bind(milli(r.value1))
                    .bind(milli(r.value2))
                    .bind(r.unit.as_deref())
                    .bind(r.abnormal)
                    .bind(h)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    RowOutcome::Inserted
                }
            };
            out.push(RowResult { outcome, warnings });
        }
        tx.commit().await?;
        Ok(out)
    }

    /// A member's health checks, newest first. Only for roles that may see personal data; audited.
    pub async fn health_checks(&self, scope: &Scope, company: CompanyId, member: MemberId) -> Result<Vec<HealthCheck>> {
        if !scope.role.sees_personal_data() || !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let company_row = self.company(scope, company).await?;
        let rows = sqlx::query(
            "SELECT checked_at, kind, value, unit, abnormal FROM health_checks WHERE company_id = $1 AND member_id = $2 ORDER BY checked_at DESC",
        )
        .bind(company.0)
        .bind(member.0)
        .fetch_all(&self.pool)
        .await?;
        self.audit(scope, Some(company), "health.view", Some(&member.to_string()), None).await?;
        rows.iter()
            .map(|r| {
                Ok(HealthCheck {
                    checked_on: local_date(r.try_get("checked_at")?, company_row.utc_offset_minutes),
                    kind: r.try_get("kind")?,
                    value: r.try_get("value")?,
                    unit: r.try_get("unit")?,
                    abnormal: crate::db::flag(r, "abnormal")?,
                })
            })
            .collect()
    }
}
