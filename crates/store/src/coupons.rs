//! Coupons (优惠券): templates and their stores, issuing (to a member, to many, on events), holding,
//! redemption (exactly once: a conditional status change plus the `coupon_redemptions` primary key,
//! both in the redeeming transaction), sharing to a friend, and statistics per template with the
//! columns of seed 000's coupon table.

use crate::{Backend, Result, Store, StoreError, counters};
use chrono::NaiveDate;
use rxmember_core::coupons::{
    CouponKind, CouponRules, IssueEvent, Validity, code_from_random, display_code, normalize_code,
};
use rxmember_core::org::Scope;
use rxmember_core::time::{local_date, now_ms};
use rxmember_core::{CompanyId, Fen, MemberId, StoreId};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

/// A template as an operator writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponTemplateInput {
    pub code: String,
    pub name: String,
    pub kind: CouponKind,
    #[serde(default)]
    pub face_value: Fen,
    /// Percentage coupons: price paid in percent (90 = 9折).
    #[serde(default = "hundred")]
    pub percent: u32,
    #[serde(default)]
    pub gift_product: Option<String>,
    #[serde(default)]
    pub min_spend: Fen,
    pub validity: Validity,
    #[serde(default)]
    pub products: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub stackable: bool,
    #[serde(default)]
    pub per_member_limit: Option<u32>,
    #[serde(default)]
    pub total_quantity: Option<u32>,
    #[serde(default)]
    pub issue_event: Option<IssueEvent>,
}

fn hundred() -> u32 {
    100
}

impl CouponTemplateInput {
    fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(StoreError::Invalid(format!("优惠券模板“{}”: {m}", self.code)));
        if self.code.trim().is_empty() || self.name.trim().is_empty() {
            return bad("编码和名称不能为空");
        }
        match self.kind {
            CouponKind::Cash if self.face_value.0 <= 0 => return bad("代金券面额须大于0"),
            CouponKind::Percentage if self.percent == 0 || self.percent >= 100 => {
                return bad("折扣券折扣应在 1–99 之间");
            }
            CouponKind::Gift if self.gift_product.as_deref().is_none_or(|g| g.trim().is_empty()) => {
                return bad("赠品券须指定赠品商品编码");
            }
            _ => {}
        }
        if self.min_spend.0 < 0 {
            return bad("最低消费不能为负");
        }
        match self.validity {
            Validity::Absolute { from, to } if to < from => return bad("结束日期早于开始日期"),
            Validity::Days { days: 0 } => return bad("有效天数须大于0"),
            _ => {}
        }
        Ok(())
    }
}

/// A template with its statistics (优惠券统计).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CouponTemplate {
    pub id: i64,
    #[serde(flatten)]
    pub input: CouponTemplateInput,
    /// draft, enabled, disabled, expired.
    pub status: String,
    pub status_label: String,
    pub all_stores: bool,
    pub stores: Vec<String>,
    pub issued: i64,
    pub used: i64,
    pub shared: i64,
    pub share_succeeded: i64,
    pub share_failed: i64,
    pub discount_total: Fen,
}

/// A coupon a member holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeldCouponRow {
    pub id: i64,
    pub code: String,
    pub display_code: String,
    pub template_code: String,
    pub name: String,
    pub status: String,
    pub valid_from: String,
    pub valid_to: String,
    pub rules: CouponRules,
}

/// What issuing to many members did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IssueReport {
    pub issued: u64,
    /// Already issued under the same cause (a re-run).
    pub unchanged: u64,
    /// The member reached the template's per-member limit.
    pub over_limit: u64,
    /// The template's total quantity ran out.
    pub exhausted: u64,
    /// Codes of the coupons issued (for a single issue; empty for bulk).
    pub codes: Vec<String>,
}

impl IssueReport {
    fn add(&mut self, r: &IssueReport) {
        self.issued += r.issued;
        self.unchanged += r.unchanged;
        self.over_limit += r.over_limit;
        self.exhausted += r.exhausted;
    }
}

fn status_label(s: &str) -> &'static str {
    match s {
        "draft" => "草稿",
        "enabled" => "启用",
        "disabled" => "停用",
        "expired" => "过期",
        _ => "",
    }
}

fn rules_of(r: &sqlx::any::AnyRow) -> Result<(CouponTemplateInput, i64, String, bool)> {
    let kind: String = r.try_get("kind")?;
    let validity: String = r.try_get("validity")?;
    let products: String = r.try_get("products")?;
    let categories: String = r.try_get("categories")?;
    let event: Option<String> = r.try_get("issue_event")?;
    let input = CouponTemplateInput {
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        kind: CouponKind::parse(&kind).unwrap_or(CouponKind::Cash),
        face_value: Fen(r.try_get("face_value")?),
        percent: r.try_get::<i64, _>("percent")? as u32,
        gift_product: r.try_get("gift_product")?,
        min_spend: Fen(r.try_get("min_spend")?),
        validity: serde_json::from_str(&validity).map_err(|e| StoreError::Invalid(e.to_string()))?,
        products: serde_json::from_str(&products).unwrap_or_default(),
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        stackable: crate::db::flag(r, "stackable")?,
        per_member_limit: r.try_get::<Option<i64>, _>("per_member_limit")?.map(|v| v as u32),
        total_quantity: r.try_get::<Option<i64>, _>("total_quantity")?.map(|v| v as u32),
        issue_event: event.as_deref().and_then(IssueEvent::parse),
    };
    Ok((input, r.try_get("id")?, r.try_get("status")?, crate::db::flag(r, "all_stores")?))
}

/// Binds a template's terms, name to issue event, in the column order of `coupon_templates`.
fn bind_terms<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments>,
    t: &'q CouponTemplateInput,
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments> {
    q.bind(t.name.trim())
        .bind(t.kind.as_str())
        .bind(t.face_value.0)
        .bind(t.percent as i64)
        .bind(t.gift_product.clone())
        .bind(t.min_spend.0)
        .bind(serde_json::to_string(&t.validity).unwrap_or_default())
        .bind(serde_json::to_string(&t.products).unwrap_or_default())
        .bind(serde_json::to_string(&t.categories).unwrap_or_default())
        .bind(t.stackable)
        .bind(t.per_member_limit.map(|v| v as i64))
        .bind(t.total_quantity.map(|v| v as i64))
        .bind(t.issue_event.map(|e| e.as_str()))
}

pub(crate) fn coupon_rules(t: &CouponTemplateInput) -> CouponRules {
    CouponRules {
        kind: t.kind,
        face_value: t.face_value,
        percent: t.percent,
        gift_product: t.gift_product.clone(),
        min_spend: t.min_spend,
        products: t.products.clone(),
        categories: t.categories.clone(),
        stackable: t.stackable,
    }
}

fn new_code() -> String {
    let mut b = [0u8; 10];
    getrandom::fill(&mut b).expect("system randomness");
    code_from_random(b)
}

impl Store {
    /// Creates a template (draft until enabled).
    pub async fn create_coupon_template(
        &self,
        scope: &Scope,
        company: CompanyId,
        t: &CouponTemplateInput,
    ) -> Result<i64> {
        scope.require_company_admin(company)?;
        t.validate()?;
        let mut tx = self.begin_write().await?;
        let id = counters::allocate(&mut tx, company.0, "coupon_template", 1).await?;
        let now = now_ms();
        let head = sqlx::query(
            "INSERT INTO coupon_templates (company_id, id, code, name, kind, face_value, percent, gift_product, min_spend, validity, \
             products, categories, stackable, per_member_limit, total_quantity, issued_count, issue_event, status, all_stores, \
             created_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, 0, $16, 'draft', $17, $18, $19, $19)",
        )
        .bind(company.0)
        .bind(id)
        .bind(t.code.trim());
        bind_terms(head, t)
            .bind(true)
            .bind(&scope.actor)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::conflict_on_unique(e, || format!("优惠券模板 {}", t.code)))?;
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon_template.create", Some(&t.code), None).await?;
        Ok(id)
    }

    async fn template_id(&self, company: CompanyId, code: &str) -> Result<i64> {
        sqlx::query_scalar("SELECT id FROM coupon_templates WHERE company_id = $1 AND code = $2")
            .bind(company.0)
            .bind(code)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound { what: format!("优惠券模板 {code}") })
    }

    /// Rewrites a draft template's terms (the code stays). Once enabled a template's terms are
    /// fixed, since coupons issued from it are redeemed under them: disable it and create another.
    pub async fn update_coupon_template(
        &self,
        scope: &Scope,
        company: CompanyId,
        code: &str,
        t: &CouponTemplateInput,
    ) -> Result<()> {
        scope.require_company_admin(company)?;
        if t.code.trim() != code {
            return Err(StoreError::Invalid(format!("模板编码不能修改（{code} → {}）", t.code.trim())));
        }
        t.validate()?;
        let id = self.template_id(company, code).await?;
        let mut tx = self.begin_write().await?;
        let head = sqlx::query(
            "UPDATE coupon_templates SET name = $3, kind = $4, face_value = $5, percent = $6, gift_product = $7, \
             min_spend = $8, validity = $9, products = $10, categories = $11, stackable = $12, per_member_limit = $13, \
             total_quantity = $14, issue_event = $15, updated_at = $16 WHERE company_id = $1 AND id = $2 AND status = 'draft'",
        )
        .bind(company.0)
        .bind(id);
        let changed = bind_terms(head, t).bind(now_ms()).execute(&mut *tx).await?.rows_affected();
        if changed == 0 {
            return Err(StoreError::Conflict {
                what: format!("优惠券模板 {code} 已启用过，条款不能再改（可停用后新建）"),
            });
        }
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon_template.update", Some(code), None).await
    }

    /// Deletes a draft template (never enabled, so no coupon was issued from it).
    pub async fn delete_coupon_template(&self, scope: &Scope, company: CompanyId, code: &str) -> Result<()> {
        scope.require_company_admin(company)?;
        let id = self.template_id(company, code).await?;
        let mut tx = self.begin_write().await?;
        let deleted = sqlx::query(
            "DELETE FROM coupon_templates WHERE company_id = $1 AND id = $2 AND status = 'draft' \
             AND NOT EXISTS (SELECT 1 FROM coupons c WHERE c.company_id = $1 AND c.template_id = $2)",
        )
        .bind(company.0)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if deleted == 0 {
            return Err(StoreError::Conflict {
                what: format!("优惠券模板 {code} 已启用过，只能停用，不能删除")
            });
        }
        sqlx::query("DELETE FROM coupon_template_stores WHERE company_id = $1 AND template_id = $2")
            .bind(company.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon_template.delete", Some(code), None).await
    }

    /// One template with its statistics.
    pub async fn coupon_template(
        &self,
        scope: &Scope,
        company: CompanyId,
        code: &str,
        today: NaiveDate,
    ) -> Result<CouponTemplate> {
        self.coupon_templates(scope, company, today)
            .await?
            .into_iter()
            .find(|t| t.input.code == code)
            .ok_or_else(|| StoreError::NotFound { what: format!("优惠券模板 {code}") })
    }

    /// Enables a template for the given stores (by code; `None`: every store of the company) —
    /// 启用优惠券，启用时选择适用门店 (seed 000).
    pub async fn enable_coupon_template(
        &self,
        scope: &Scope,
        company: CompanyId,
        code: &str,
        stores: Option<&[String]>,
    ) -> Result<()> {
        scope.require_company_admin(company)?;
        let id = self.template_id(company, code).await?;
        let known = self.store_codes(scope, company).await?;
        let mut ids = Vec::new();
        for s in stores.unwrap_or(&[]) {
            ids.push(known.get(s).ok_or_else(|| StoreError::Invalid(format!("门店编码“{s}”不存在")))?.0);
        }
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM coupon_template_stores WHERE company_id = $1 AND template_id = $2")
            .bind(company.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        for s in &ids {
            sqlx::query("INSERT INTO coupon_template_stores (company_id, template_id, store_id) VALUES ($1, $2, $3)")
                .bind(company.0)
                .bind(id)
                .bind(*s)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("UPDATE coupon_templates SET status = 'enabled', all_stores = $3, updated_at = $4 WHERE company_id = $1 AND id = $2")
            .bind(company.0)
            .bind(id)
            .bind(stores.is_none())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon_template.enable", Some(code), Some(&format!("{} stores", ids.len())))
            .await
    }

    /// Disables a template (停用): its coupons can no longer be issued or redeemed.
    pub async fn disable_coupon_template(&self, scope: &Scope, company: CompanyId, code: &str) -> Result<()> {
        scope.require_company_admin(company)?;
        let id = self.template_id(company, code).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE coupon_templates SET status = 'disabled', updated_at = $3 WHERE company_id = $1 AND id = $2",
        )
        .bind(company.0)
        .bind(id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon_template.disable", Some(code), None).await
    }

    /// The company's templates with statistics, newest first. `today` decides “expired”.
    pub async fn coupon_templates(
        &self,
        scope: &Scope,
        company: CompanyId,
        today: NaiveDate,
    ) -> Result<Vec<CouponTemplate>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let rows = sqlx::query("SELECT * FROM coupon_templates WHERE company_id = $1 ORDER BY id DESC")
            .bind(company.0)
            .fetch_all(&self.pool)
            .await?;
        let stats: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT template_id, COUNT(*), CAST(SUM(CASE WHEN status = 'redeemed' THEN 1 ELSE 0 END) AS BIGINT) FROM coupons \
             WHERE company_id = $1 GROUP BY template_id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let shares: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT template_id, COUNT(*), CAST(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS BIGINT) FROM coupon_shares WHERE company_id = $1 GROUP BY template_id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let discounts: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT c.template_id, CAST(SUM(r.discount) AS BIGINT) FROM coupon_redemptions r JOIN coupons c ON c.company_id = r.company_id AND c.id = r.coupon_id \
             WHERE r.company_id = $1 GROUP BY c.template_id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let store_rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT ts.template_id, s.code FROM coupon_template_stores ts JOIN stores s ON s.company_id = ts.company_id AND s.id = ts.store_id \
             WHERE ts.company_id = $1 ORDER BY s.code",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let (input, id, mut status, all_stores) = rules_of(r)?;
            if status == "enabled"
                && let Validity::Absolute { to, .. } = input.validity
                && to < today
            {
                status = "expired".into();
            }
            let (issued, used) = stats.iter().find(|s| s.0 == id).map_or((0, 0), |s| (s.1, s.2));
            let (shared, ok, failed) = shares.iter().find(|s| s.0 == id).map_or((0, 0, 0), |s| (s.1, s.2, s.3));
            out.push(CouponTemplate {
                id,
                status_label: status_label(&status).into(),
                status,
                all_stores,
                stores: store_rows.iter().filter(|s| s.0 == id).map(|s| s.1.clone()).collect(),
                issued,
                used,
                shared,
                share_succeeded: ok,
                share_failed: failed,
                discount_total: Fen(discounts.iter().find(|d| d.0 == id).map_or(0, |d| d.1)),
                input,
            });
        }
        Ok(out)
    }

    /// Issues one coupon of template `code` to each member, each under cause `{cause}:{member}`.
    /// Members over the per-member limit are skipped; the total quantity is never exceeded (a
    /// conditional update of the template's counter). Re-running with the same cause changes nothing.
    pub async fn issue_coupons(
        &self,
        scope: &Scope,
        company: CompanyId,
        code: &str,
        members: &[MemberId],
        cause: &str,
        today: NaiveDate,
    ) -> Result<IssueReport> {
        scope.require_company_admin(company)?;
        let id = self.template_id(company, code).await?;
        let mut report = IssueReport::default();
        for chunk in members.chunks(500) {
            let mut tx = self.begin_write().await?;
            for m in chunk {
                let key = format!("{cause}:{}", m.0);
                match issue_in(&mut tx, company.0, id, m.0, &key, today).await? {
                    Issued::New(c) => {
                        report.issued += 1;
                        if members.len() == 1 {
                            report.codes.push(c);
                        }
                    }
                    Issued::Existing => report.unchanged += 1,
                    Issued::OverLimit => report.over_limit += 1,
                    Issued::Exhausted => report.exhausted += 1,
                }
            }
            tx.commit().await?;
        }
        self.audit(
            scope,
            Some(company),
            "coupon.issue",
            Some(code),
            Some(&format!("{cause}: {} issued", report.issued)),
        )
        .await?;
        Ok(report)
    }

    /// Issues the templates set to `event` for what happened on `day`: birthdays on the day;
    /// registrations on the day; referral successes (a member registered on the day naming a
    /// referrer: the referrer gets the coupon). Idempotent per member and occasion.
    pub async fn issue_event_coupons(&self, scope: &Scope, company: CompanyId, day: NaiveDate) -> Result<IssueReport> {
        scope.require_company_admin(company)?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let templates: Vec<(String, String)> = sqlx::query_as(
            "SELECT code, issue_event FROM coupon_templates WHERE company_id = $1 AND status = 'enabled' AND issue_event IS NOT NULL",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        // Tier benefits: a level's birthday coupon goes to its members on their birthday.
        let rules = self.loyalty_rules(scope, company).await?;
        let md = day.format("-%m-%d").to_string();
        let mut total = IssueReport::default();
        for (i, level) in rules.tiers.levels.iter().enumerate() {
            let Some(code) = &level.benefits.birthday_coupon else { continue };
            // Members without a recorded tier are at the base level.
            let rows: Vec<(i64,)> = sqlx::query_as(
                "SELECT m.id FROM members m LEFT JOIN member_tiers t ON t.company_id = m.company_id AND t.member_id = m.id \
                 WHERE m.company_id = $1 AND m.status = 'active' AND m.birthday LIKE $2 \
                 AND (t.tier = $3 OR (t.tier IS NULL AND $4 = 1)) ORDER BY m.id",
            )
            .bind(company.0)
            .bind(format!("%{md}"))
            .bind(&level.code)
            .bind(i64::from(i == 0))
            .fetch_all(&self.pool)
            .await?;
            if rows.is_empty() {
                continue;
            }
            let members: Vec<MemberId> = rows.into_iter().map(|r| MemberId(r.0)).collect();
            let r = self
                .issue_coupons(scope, company, code, &members, &format!("tier-birthday:{}", day.format("%Y")), day)
                .await?;
            total.add(&r);
        }
        let start = rxmember_core::time::local_to_epoch_ms(day.and_hms_opt(0, 0, 0).unwrap_or_default(), offset);
        let end = start + 86_400_000;
        for (code, event) in templates {
            let (members, cause): (Vec<MemberId>, String) = match IssueEvent::parse(&event) {
                Some(IssueEvent::Birthday) => {
                    let md = day.format("-%m-%d").to_string();
                    let rows: Vec<(i64,)> = sqlx::query_as(
                        "SELECT id FROM members WHERE company_id = $1 AND status = 'active' AND birthday LIKE $2 ORDER BY id",
                    )
                    .bind(company.0)
                    .bind(format!("%{md}"))
                    .fetch_all(&self.pool)
                    .await?;
                    (rows.into_iter().map(|r| MemberId(r.0)).collect(), format!("birthday:{}", day.format("%Y")))
                }
                Some(IssueEvent::Registration) => {
                    let rows: Vec<(i64,)> = sqlx::query_as(
                        "SELECT id FROM members WHERE company_id = $1 AND registered_at >= $2 AND registered_at < $3 ORDER BY id",
                    )
                    .bind(company.0)
                    .bind(start)
                    .bind(end)
                    .fetch_all(&self.pool)
                    .await?;
                    (rows.into_iter().map(|r| MemberId(r.0)).collect(), "registration".into())
                }
                Some(IssueEvent::ReferralSuccess) => {
                    // One coupon per referred member: the cause names the new member.
                    let rows: Vec<(i64, i64)> = sqlx::query_as(
                        "SELECT c.member_id, m.id FROM members m JOIN member_cards c ON c.company_id = m.company_id AND c.card_no = m.referrer_card_no \
                         WHERE m.company_id = $1 AND m.registered_at >= $2 AND m.registered_at < $3 ORDER BY m.id",
                    )
                    .bind(company.0)
                    .bind(start)
                    .bind(end)
                    .fetch_all(&self.pool)
                    .await?;
                    for (referrer, new_member) in rows {
                        let r = self
                            .issue_coupons(
                                scope,
                                company,
                                &code,
                                &[MemberId(referrer)],
                                &format!("referral:{new_member}"),
                                day,
                            )
                            .await?;
                        total.add(&r);
                    }
                    continue;
                }
                _ => continue,
            };
            let r = self.issue_coupons(scope, company, &code, &members, &cause, day).await?;
            total.add(&r);
        }
        Ok(total)
    }

    /// A member's coupons: with `usable_at = Some((store, day))` only those redeemable there that day.
    pub async fn member_coupons(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
        usable_at: Option<(Option<StoreId>, NaiveDate)>,
    ) -> Result<Vec<HeldCouponRow>> {
        self.require_member(scope, company, member).await?;
        self.member_coupons_unchecked(company, member, usable_at).await
    }

    /// The member's coupons, soonest-expiring first; with `usable_at`, only those usable on that
    /// day (issued, template enabled, in validity) — at that store (the template's stores) if one is
    /// given, else at any — chosen by the database in one statement.
    pub(crate) async fn member_coupons_unchecked(
        &self,
        company: CompanyId,
        member: MemberId,
        usable_at: Option<(Option<StoreId>, NaiveDate)>,
    ) -> Result<Vec<HeldCouponRow>> {
        let select = "SELECT c.id AS coupon_id, c.code AS coupon_code, c.status AS coupon_status, c.valid_from, \
             c.valid_to, t.* FROM coupons c JOIN coupon_templates t ON t.company_id = c.company_id AND t.id = c.template_id \
             WHERE c.company_id = $1 AND c.member_id = $2";
        let rows = match usable_at {
            None => {
                sqlx::query(AssertSqlSafe(format!("{select} ORDER BY c.valid_to, c.id")))
                    .bind(company.0)
                    .bind(member.0)
                    .fetch_all(&self.pool)
                    .await?
            }
            Some((store, day)) => {
                let all_stores = if self.backend == Backend::Postgres { "t.all_stores" } else { "t.all_stores <> 0" };
                // Store -1 (none) with the check skipped when no store is given.
                sqlx::query(AssertSqlSafe(format!(
                    "{select} AND c.status = 'issued' AND t.status = 'enabled' AND c.valid_from <= $4 AND c.valid_to >= $4 \
                     AND ($3 < 0 OR {all_stores} OR EXISTS (SELECT 1 FROM coupon_template_stores s \
                       WHERE s.company_id = c.company_id AND s.template_id = c.template_id AND s.store_id = $3)) \
                     ORDER BY c.valid_to, c.id"
                )))
                .bind(company.0)
                .bind(member.0)
                .bind(store.map_or(-1, |s| s.0))
                .bind(day.format("%Y-%m-%d").to_string())
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut out = Vec::new();
        for r in &rows {
            let (input, _, _, _) = rules_of(r)?;
            let status: String = r.try_get("coupon_status")?;
            let from: String = r.try_get("valid_from")?;
            let to: String = r.try_get("valid_to")?;
            let code: String = r.try_get("coupon_code")?;
            out.push(HeldCouponRow {
                id: r.try_get("coupon_id")?,
                display_code: display_code(&code),
                code,
                template_code: input.code.clone(),
                name: input.name.clone(),
                status,
                valid_from: from,
                valid_to: to,
                rules: coupon_rules(&input),
            });
        }
        Ok(out)
    }

    /// Offers a coupon to a friend (分享): the coupon is held aside until claimed or failed.
    pub async fn share_coupon(&self, scope: &Scope, company: CompanyId, member: MemberId, code: &str) -> Result<i64> {
        self.require_member(scope, company, member).await?;
        let code = normalize_code(code);
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, template_id FROM coupons WHERE company_id = $1 AND code = $2 AND member_id = $3 AND status = 'issued'",
        )
        .bind(company.0)
        .bind(&code)
        .bind(member.0)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((coupon, template)) = row else {
            return Err(StoreError::Invalid("只能分享自己持有、未使用的优惠券".into()));
        };
        let id = counters::allocate(&mut tx, company.0, "coupon_share", 1).await?;
        sqlx::query("UPDATE coupons SET status = 'sharing' WHERE company_id = $1 AND id = $2 AND status = 'issued'")
            .bind(company.0)
            .bind(coupon)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO coupon_shares (company_id, id, coupon_id, template_id, from_member_id, status, created_at) \
             VALUES ($1, $2, $3, $4, $5, 'pending', $6)",
        )
        .bind(company.0)
        .bind(id)
        .bind(coupon)
        .bind(template)
        .bind(member.0)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Resolves a share: `to = Some(friend)` — the friend claimed it (share succeeded; the coupon is
    /// now the friend's); `None` — declined or timed out (share failed; back to the sharer).
    pub async fn resolve_share(
        &self,
        scope: &Scope,
        company: CompanyId,
        share: i64,
        to: Option<MemberId>,
    ) -> Result<()> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        if let Some(friend) = to {
            self.require_member(scope, company, friend).await?;
        }
        let mut tx = self.begin_write().await?;
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT coupon_id, from_member_id FROM coupon_shares WHERE company_id = $1 AND id = $2 AND status = 'pending'",
        )
        .bind(company.0)
        .bind(share)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((coupon, from)) = row else {
            return Err(StoreError::Invalid("该分享已处理或不存在".into()));
        };
        if to == Some(MemberId(from)) {
            return Err(StoreError::Invalid("不能领取自己分享的优惠券".into()));
        }
        let (status, owner) = match to {
            Some(f) => ("succeeded", f.0),
            None => ("failed", from),
        };
        sqlx::query("UPDATE coupon_shares SET status = $3, to_member_id = $4, resolved_at = $5 WHERE company_id = $1 AND id = $2")
            .bind(company.0)
            .bind(share)
            .bind(status)
            .bind(to.map(|m| m.0))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE coupons SET status = 'issued', member_id = $3, shared_from_member_id = $4 WHERE company_id = $1 AND id = $2",
        )
        .bind(company.0)
        .bind(coupon)
        .bind(owner)
        .bind(to.map(|_| from))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Redeems one coupon by code outside a POS sale (手机核销 by a clerk), exactly once.
    pub async fn redeem_coupon(
        &self,
        scope: &Scope,
        company: CompanyId,
        code: &str,
        store: StoreId,
        reference: &str,
    ) -> Result<HeldCouponRow> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let code = normalize_code(code);
        let member: Option<i64> =
            sqlx::query_scalar("SELECT member_id FROM coupons WHERE company_id = $1 AND code = $2")
                .bind(company.0)
                .bind(&code)
                .fetch_optional(&self.pool)
                .await?;
        let member = member.ok_or_else(|| StoreError::NotFound { what: format!("优惠券 {code}") })?;
        self.require_member(scope, company, MemberId(member)).await?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let today = local_date(now_ms(), offset);
        let held = self.member_coupons_unchecked(company, MemberId(member), Some((Some(store), today))).await?;
        let Some(c) = held.into_iter().find(|c| c.code == code) else {
            return Err(StoreError::Invalid(format!(
                "优惠券 {} 不可用（已使用、已过期、已停用或不适用于本门店）",
                display_code(&code)
            )));
        };
        let mut tx = self.begin_write().await?;
        redeem_in(&mut tx, company.0, c.id, reference, store.0, Fen::ZERO).await?;
        tx.commit().await?;
        self.audit(scope, Some(company), "coupon.redeem", Some(&code), Some(reference)).await?;
        Ok(c)
    }
}

pub(crate) enum Issued {
    New(String),
    Existing,
    OverLimit,
    Exhausted,
}

/// Issues one coupon of template `template` to `member` under `cause`, in `tx`.
pub(crate) async fn issue_in(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    template: i64,
    member: i64,
    cause: &str,
    today: NaiveDate,
) -> Result<Issued> {
    let exists: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM coupons WHERE company_id = $1 AND template_id = $2 AND issue_cause = $3",
    )
    .bind(company)
    .bind(template)
    .bind(cause)
    .fetch_one(&mut **tx)
    .await?;
    if exists > 0 {
        return Ok(Issued::Existing);
    }
    let row = sqlx::query("SELECT * FROM coupon_templates WHERE company_id = $1 AND id = $2")
        .bind(company)
        .bind(template)
        .fetch_one(&mut **tx)
        .await?;
    let (input, _, status, _) = rules_of(&row)?;
    if status != "enabled" {
        return Err(StoreError::Invalid(format!("优惠券模板“{}”未启用，不能发放", input.code)));
    }
    if let Some(limit) = input.per_member_limit {
        let held: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM coupons WHERE company_id = $1 AND template_id = $2 AND member_id = $3 AND status <> 'void'",
        )
        .bind(company)
        .bind(template)
        .bind(member)
        .fetch_one(&mut **tx)
        .await?;
        if held >= limit as i64 {
            return Ok(Issued::OverLimit);
        }
    }
    // The counter only moves while under the total: atomic on both backends.
    let moved = sqlx::query(
        "UPDATE coupon_templates SET issued_count = issued_count + 1 WHERE company_id = $1 AND id = $2 \
         AND (total_quantity IS NULL OR issued_count < total_quantity)",
    )
    .bind(company)
    .bind(template)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved == 0 {
        return Ok(Issued::Exhausted);
    }
    let (from, to) = input.validity.window(today);
    let id = counters::allocate(tx, company, "coupon", 1).await?;
    let code = new_code();
    sqlx::query(
        "INSERT INTO coupons (company_id, id, template_id, code, member_id, status, issue_cause, issued_at, valid_from, valid_to) \
         VALUES ($1, $2, $3, $4, $5, 'issued', $6, $7, $8, $9)",
    )
    .bind(company)
    .bind(id)
    .bind(template)
    .bind(&code)
    .bind(member)
    .bind(cause)
    .bind(now_ms())
    .bind(from.format("%Y-%m-%d").to_string())
    .bind(to.format("%Y-%m-%d").to_string())
    .execute(&mut **tx)
    .await?;
    Ok(Issued::New(code))
}

/// Redeems coupon `coupon` in `tx`, exactly once: the status moves from issued to redeemed only if it
/// was issued (a concurrent redemption finds nothing to move), and the redemption row's primary key
/// refuses a second row.
pub(crate) async fn redeem_in(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    coupon: i64,
    ticket_no: &str,
    store: i64,
    discount: Fen,
) -> Result<()> {
    let now = now_ms();
    let moved = sqlx::query(
        "UPDATE coupons SET status = 'redeemed', redeemed_at = $3 WHERE company_id = $1 AND id = $2 AND status = 'issued'",
    )
    .bind(company)
    .bind(coupon)
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if moved != 1 {
        return Err(StoreError::Conflict { what: "优惠券核销（该券已被使用）".into() });
    }
    sqlx::query(
        "INSERT INTO coupon_redemptions (company_id, coupon_id, ticket_no, store_id, discount, redeemed_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(company)
    .bind(coupon)
    .bind(ticket_no)
    .bind(store)
    .bind(discount.0)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(|e| crate::conflict_on_unique(e, || "优惠券核销".into()))?;
    Ok(())
}

impl Store {
    /// Exchanges points for a coupon by the company's exchange tiers (积分兑换优惠券, e.g. 500 points →
    /// a 10-yuan discount coupon): the points are spent and the coupon issued in one transaction,
    /// idempotent by `request_id`. Returns the coupon code and the new balance.
    pub async fn exchange_points(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
        template_code: &str,
        request_id: &str,
    ) -> Result<(String, i64)> {
        self.require_member(scope, company, member).await?;
        let rules = self.loyalty_rules(scope, company).await?;
        let tier = rules
            .points
            .redemption
            .coupon_tiers
            .iter()
            .find(|t| t.template == template_code)
            .ok_or_else(|| StoreError::Invalid(format!("优惠券“{template_code}”不在积分兑换档位中")))?;
        let template = self.template_id(company, template_code).await?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let now = now_ms();
        let today = local_date(now, offset);
        let key = format!("exchange:{request_id}");
        let mut tx = self.begin_write().await?;
        let existing: Option<String> = sqlx::query_scalar(
            "SELECT code FROM coupons WHERE company_id = $1 AND template_id = $2 AND issue_cause = $3",
        )
        .bind(company.0)
        .bind(template)
        .bind(&key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(code) = existing {
            let balance: i64 =
                sqlx::query_scalar("SELECT balance FROM points_accounts WHERE company_id = $1 AND member_id = $2")
                    .bind(company.0)
                    .bind(member.0)
                    .fetch_one(&mut *tx)
                    .await?;
            return Ok((code, balance));
        }
        let cause = crate::points::Cause {
            kind: rxmember_core::points::EntryKind::Redeem,
            key: &key,
            at: now,
            on: today,
            detail: Some(serde_json::json!({ "coupon": template_code }).to_string()),
        };
        let applied =
            crate::points::redeem_in(&mut tx, self.backend, company.0, member.0, tier.points, &cause, &scope.actor)
                .await?;
        let code = match issue_in(&mut tx, company.0, template, member.0, &key, today).await? {
            Issued::New(code) => code,
            Issued::Existing => return Err(StoreError::Conflict { what: format!("兑换请求 {request_id}") }),
            Issued::OverLimit => return Err(StoreError::Invalid("已达到该券的每人限领数量".into())),
            Issued::Exhausted => return Err(StoreError::Invalid("该券已兑完".into())),
        };
        tx.commit().await?;
        let balance = match applied {
            crate::points::Applied::Done { balance, .. } => balance,
            crate::points::Applied::AlreadyApplied => 0,
        };
        Ok((code, balance))
    }
}
