//! Members' tiers (会员等级) and their history. A sale can raise a tier at once; the yearly review
//! (a job) keeps, lowers or raises it by the retention rules. Every change is recorded with its
//! reason and is idempotent by its cause (`ticket:<no>`, `review:<year>`).

use crate::{Result, Store, counters};
use chrono::{Datelike, NaiveDate};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::tiers::{TierChange, TierStats};
use rxmember_core::time::{local_date, now_ms};
use rxmember_core::{CompanyId, MemberId};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierHistoryEntry {
    pub from_tier: Option<String>,
    pub to_tier: String,
    pub reason: String,
    pub cause: String,
    pub at: i64,
    pub actor: String,
}

/// A member's tier statistics on `day` (the 12 months up to and including it).
pub(crate) async fn tier_stats_in(
    tx: &mut Transaction<'static, Any>,
    backend: crate::Backend,
    company: i64,
    member: i64,
    day: NaiveDate,
    offset: i32,
) -> Result<TierStats> {
    let stats = crate::points::tier_stats_of(tx, backend, company, &[member], day, offset, true).await?;
    Ok(stats.into_iter().next().map(|(_, s)| s).unwrap_or_default())
}

pub(crate) async fn current_tier_in(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    member: i64,
) -> Result<Option<String>> {
    Ok(sqlx::query_scalar("SELECT tier FROM member_tiers WHERE company_id = $1 AND member_id = $2")
        .bind(company)
        .bind(member)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Records a change (idempotent by `cause`). Returns whether it was applied now.
pub(crate) async fn apply_change_in(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    member: i64,
    change: &TierChange,
    cause: &str,
    at: i64,
    actor: &str,
) -> Result<bool> {
    let exists: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM tier_history WHERE company_id = $1 AND member_id = $2 AND cause = $3")
            .bind(company)
            .bind(member)
            .bind(cause)
            .fetch_one(&mut **tx)
            .await?;
    if exists > 0 {
        return Ok(false);
    }
    let id = counters::allocate(tx, company, "tier_history", 1).await?;
    sqlx::query(
        "INSERT INTO tier_history (company_id, id, member_id, from_tier, to_tier, reason, cause, at, actor) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(company)
    .bind(id)
    .bind(member)
    .bind(change.from.clone())
    .bind(&change.to)
    .bind(&change.reason)
    .bind(cause)
    .bind(at)
    .bind(actor)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO member_tiers (company_id, member_id, tier, since) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (company_id, member_id) DO UPDATE SET tier = excluded.tier, since = excluded.since",
    )
    .bind(company)
    .bind(member)
    .bind(&change.to)
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(true)
}

/// After a sale: raise the member's tier at once if an entry condition now holds.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn upgrade_after_sale_in(
    tx: &mut Transaction<'static, Any>,
    backend: crate::Backend,
    company: i64,
    member: i64,
    rules: &LoyaltyRules,
    sold_at: i64,
    offset: i32,
    ticket_no: &str,
    actor: &str,
) -> Result<Option<TierChange>> {
    let day = local_date(sold_at, offset);
    let stats = tier_stats_in(tx, backend, company, member, day, offset).await?;
    let current = current_tier_in(tx, company, member).await?;
    let base = rules.tiers.base().map(|l| l.code.clone());
    let effective = current.clone().or(base);
    let Some(mut change) = rules.tiers.upgrade(effective.as_deref(), &stats) else { return Ok(None) };
    change.from = current;
    let applied = apply_change_in(tx, company, member, &change, &format!("ticket:{ticket_no}"), sold_at, actor).await?;
    Ok(applied.then_some(change))
}

impl Store {
    /// The member's tier code (the base level when never assigned) and its history, newest first.
    pub async fn member_tier(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
    ) -> Result<(Option<String>, Vec<TierHistoryEntry>)> {
        self.require_member(scope, company, member).await?;
        let tier: Option<String> =
            sqlx::query_scalar("SELECT tier FROM member_tiers WHERE company_id = $1 AND member_id = $2")
                .bind(company.0)
                .bind(member.0)
                .fetch_optional(&self.pool)
                .await?;
        let rows = sqlx::query(
            "SELECT from_tier, to_tier, reason, cause, at, actor FROM tier_history WHERE company_id = $1 AND member_id = $2 ORDER BY id DESC",
        )
        .bind(company.0)
        .bind(member.0)
        .fetch_all(&self.pool)
        .await?;
        let history = rows
            .iter()
            .map(|r| {
                Ok(TierHistoryEntry {
                    from_tier: r.try_get("from_tier")?,
                    to_tier: r.try_get("to_tier")?,
                    reason: r.try_get("reason")?,
                    cause: r.try_get("cause")?,
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((tier, history))
    }

    /// The yearly review as of `day` (the review job): every member of the company is re-evaluated on
    /// the 12 months up to `day`. Idempotent per member and year. Returns (members reviewed, changed).
    pub async fn review_tiers(&self, scope: &Scope, company: CompanyId, day: NaiveDate) -> Result<(u64, u64)> {
        scope.require_company_admin(company)?;
        let rules = self.loyalty_rules(scope, company).await?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let c = company.0;
        let cause = format!("review:{}", day.year());
        let at = now_ms();
        let (mut reviewed, mut changed) = (0u64, 0u64);
        let mut after = 0i64;
        loop {
            let ids: Vec<(i64,)> =
                sqlx::query_as("SELECT id FROM members WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT 500")
                    .bind(c)
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await?;
            let Some(last) = ids.last() else { break };
            after = last.0;
            let mut tx = self.begin_write().await?;
            for (m,) in &ids {
                reviewed += 1;
                let stats = tier_stats_in(&mut tx, self.backend, c, *m, day, offset).await?;
                let current = current_tier_in(&mut tx, c, *m).await?;
                if let Some(change) = rules.tiers.review(current.as_deref(), &stats)
                    && apply_change_in(&mut tx, c, *m, &change, &cause, at, &scope.actor).await?
                {
                    changed += 1;
                }
            }
            tx.commit().await?;
        }
        self.audit(
            scope,
            Some(company),
            "tiers.review",
            Some(&cause),
            Some(&format!("{reviewed} reviewed, {changed} changed")),
        )
        .await?;
        Ok((reviewed, changed))
    }
}
