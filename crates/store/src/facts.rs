//! Reading the facts the member-intelligence engine is built from ([`rxmember_core::facts`]), in pages
//! keyed by id so memory stays bounded on a chain of any size, and by member for incremental refresh.
//! Reading facts needs the whole company in scope: the engine applies narrower scopes itself.

use crate::db::{flag, select_in};
use crate::sqlite_native::{Db, Param, Row as NativeRow, params};
use crate::{Result, Store, StoreError};
use rxmember_core::facts::{
    HealthCheckFact, LineFact, LoyaltyFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact, TierLevelFact,
};
use rxmember_core::health::HealthKind;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use rxmember_core::org::Scope;
use rxmember_core::{CompanyId, MemberId, ProductId, StoreId, TicketId};
use sqlx::any::AnyRow;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

/// Members whose loyalty state changed after a pair of watermarks, and the watermarks to read from
/// next time.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct LoyaltyChanges {
    pub members: Vec<MemberId>,
    /// The last points ledger entry covered.
    pub ledger_id: i64,
    /// The last tier change covered.
    pub tier_id: i64,
}

/// Where a company's engine inputs stand ([`Store::fact_input_marks`]): the version of those
/// without ids (counted up by every write of them, [`inputs_changed`]) and the largest ids and
/// update time of the facts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InputMarks {
    pub inputs: i64,
    pub member_updated_at: i64,
    pub member_id: i64,
    pub ticket_id: i64,
    pub return_id: i64,
    pub check_id: i64,
    pub ledger_id: i64,
    pub tier_id: i64,
}

/// Counts up the company's engine inputs version, inside the transaction writing one of them (its
/// taxonomy, engine settings, saved tags, loyalty rules, stores or products).
pub(crate) async fn inputs_changed(tx: &mut Transaction<'static, Any>, company: CompanyId) -> Result<()> {
    sqlx::query(
        "INSERT INTO engine_inputs (company_id, version) VALUES ($1, 1) \
         ON CONFLICT (company_id) DO UPDATE SET version = engine_inputs.version + 1",
    )
    .bind(company.0)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Tickets of one page, and the lines of its member tickets.
#[derive(Debug, Default)]
pub struct SalesFacts {
    pub tickets: Vec<TicketFact>,
    pub lines: Vec<LineFact>,
}

const MEMBER_COLS: &str = "id, card_no, gender, birthday, store_id, registered_at, clerk_code, source, \
    referrer_card_no, allergies_enc, chronic_conditions, sms_opt_in, health_consent, status, updated_at";
const TICKET_COLS: &str = "id, member_id, store_id, sold_at, line_count, amount, discount, cost";
const RETURN_SELECT: &str = "SELECT r.id, r.ticket_id, t.member_id, t.sold_at, r.product_id, r.amount, \
    CASE WHEN t.amount > 0 THEN r.amount * t.cost / t.amount ELSE 0 END AS cost \
    FROM returns r JOIN tickets t ON t.company_id = r.company_id AND t.id = r.ticket_id";
const CHECK_COLS: &str = "id, member_id, checked_at, kind, abnormal";

impl Store {
    fn require_whole_company(scope: &Scope, company: CompanyId) -> Result<()> {
        if scope.data.covers_company(company) { Ok(()) } else { Err(StoreError::AccessDenied) }
    }

    /// On SQLite, runs `f` in one read transaction on the store's native fact reader (opened at
    /// the first call; [`crate::sqlite_native`]): the engine's bulk reads step SQLite's rows straight
    /// into facts. Through sqlx every row crosses a channel from its worker thread and is converted
    /// twice, which was most of a full build's time. `None` on PostgreSQL.
    async fn native_read<T>(&self, f: impl FnOnce(&Db<'_>) -> Result<T>) -> Result<Option<T>> {
        let Some(url) = &self.sqlite_url else { return Ok(None) };
        let mut reader = self.fact_reader.lock().await;
        if reader.is_none() {
            *reader = Some(crate::sqlite_native::NativeSqlite::open(url).await?);
        }
        reader.as_mut().expect("opened above").read(f).await.map(Some)
    }

    /// Runs `template` (with `{company}` and `{keys}`, see `db::select_in`) over member ids.
    async fn rows_of_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        members: &[MemberId],
        template: &str,
    ) -> Result<Vec<AnyRow>> {
        Self::require_whole_company(scope, company)?;
        let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
        let mut conn = self.pool.acquire().await?;
        select_in(&mut conn, self.backend, template, company.0, &ids).await
    }

    /// Every member of the company, `limit` at a time in id order after `after_id` (an engine's
    /// first read).
    pub async fn fact_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<MemberFact>> {
        Self::require_whole_company(scope, company)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MEMBER_COLS} FROM members WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        )))
        .bind(company.0)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_fact).collect()
    }

    /// Members changed after a watermark, `limit` at a time in (update time, id) order after
    /// `after`: start from `(watermark, i64::MAX)` and go on from the last member's update time
    /// and id. Read through the members' update-time index (a row-value range on it, in SQLite and
    /// PostgreSQL alike; the same bound spelt with `OR` let PostgreSQL add every member of a higher
    /// id from the primary key to later pages): a catch-up reads the changed members, not every
    /// member of the company.
    pub async fn fact_members_changed(
        &self,
        scope: &Scope,
        company: CompanyId,
        after: (i64, i64),
        limit: i64,
    ) -> Result<Vec<MemberFact>> {
        Self::require_whole_company(scope, company)?;
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {MEMBER_COLS} FROM members WHERE company_id = $1 AND (updated_at, id) > ($2, $3) \
             ORDER BY updated_at, id LIMIT $4"
        )))
        .bind(company.0)
        .bind(after.0)
        .bind(after.1)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_fact).collect()
    }

    /// Where the company's engine inputs stand (one statement, each part an index lookup): equal
    /// marks read before two catch-ups mean the second has nothing to read.
    pub async fn fact_input_marks(&self, scope: &Scope, company: CompanyId) -> Result<InputMarks> {
        Self::require_whole_company(scope, company)?;
        let r = sqlx::query(
            "SELECT \
               COALESCE((SELECT version FROM engine_inputs WHERE company_id = $1), 0) AS inputs, \
               COALESCE((SELECT MAX(updated_at) FROM members WHERE company_id = $1), 0) AS member_updated_at, \
               COALESCE((SELECT MAX(id) FROM members WHERE company_id = $1), 0) AS member_id, \
               COALESCE((SELECT MAX(id) FROM tickets WHERE company_id = $1), 0) AS ticket_id, \
               COALESCE((SELECT MAX(id) FROM returns WHERE company_id = $1), 0) AS return_id, \
               COALESCE((SELECT MAX(id) FROM health_checks WHERE company_id = $1), 0) AS check_id, \
               COALESCE((SELECT MAX(id) FROM points_ledger WHERE company_id = $1), 0) AS ledger_id, \
               COALESCE((SELECT MAX(id) FROM tier_history WHERE company_id = $1), 0) AS tier_id",
        )
        .bind(company.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(InputMarks {
            inputs: r.try_get("inputs")?,
            member_updated_at: r.try_get("member_updated_at")?,
            member_id: r.try_get("member_id")?,
            ticket_id: r.try_get("ticket_id")?,
            return_id: r.try_get("return_id")?,
            check_id: r.try_get("check_id")?,
            ledger_id: r.try_get("ledger_id")?,
            tier_id: r.try_get("tier_id")?,
        })
    }

    pub async fn fact_products(&self, scope: &Scope, company: CompanyId) -> Result<Vec<ProductFact>> {
        Self::require_whole_company(scope, company)?;
        let rows = sqlx::query(
            "SELECT id, code, name, category_code, manufacturer, brand, is_prescription FROM products WHERE company_id = $1 ORDER BY id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ProductFact {
                    id: ProductId(r.try_get("id")?),
                    code: r.try_get("code")?,
                    name: r.try_get("name")?,
                    category_code: r.try_get("category_code")?,
                    manufacturer: r.try_get("manufacturer")?,
                    brand: r.try_get("brand")?,
                    is_prescription: flag(r, "is_prescription")?,
                })
            })
            .collect()
    }

    pub async fn fact_stores(&self, scope: &Scope, company: CompanyId) -> Result<Vec<StoreFact>> {
        Self::require_whole_company(scope, company)?;
        let rows = sqlx::query("SELECT id, code, name FROM stores WHERE company_id = $1 ORDER BY id")
            .bind(company.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoreFact { id: StoreId(r.try_get("id")?), code: r.try_get("code")?, name: r.try_get("name")? })
            })
            .collect()
    }

    /// Up to `limit` tickets with id above `after_id` (member and non-member), in id order, with the
    /// lines of the member tickets among them, read in one snapshot (on SQLite natively,
    /// [`Store::native_read`]). A full build reads every sale of a company this way.
    pub async fn fact_sales(&self, scope: &Scope, company: CompanyId, after_id: i64, limit: i64) -> Result<SalesFacts> {
        Self::require_whole_company(scope, company)?;
        let tickets_sql =
            format!("SELECT {TICKET_COLS} FROM tickets WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        const LINES_SQL: &str = "SELECT l.ticket_id, t.member_id, t.sold_at, l.product_id, l.amount FROM ticket_lines l \
             JOIN tickets t ON t.company_id = l.company_id AND t.id = l.ticket_id \
             WHERE l.company_id = $1 AND l.ticket_id >= $2 AND l.ticket_id <= $3 AND t.member_id IS NOT NULL \
             ORDER BY l.ticket_id, l.line_no";
        let native = self
            .native_read(|db| {
                let mut tickets = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(1 << 16));
                db.prepare(&tickets_sql)?.run(params![company.0, after_id, limit], |r| {
                    tickets.push(TicketFact {
                        id: TicketId(r.int(0)),
                        member: r.opt_int(1).map(MemberId),
                        store: StoreId(r.int(2)),
                        sold_at: r.int(3),
                        line_count: r.int(4),
                        amount: r.int(5),
                        discount: r.int(6),
                        cost: r.int(7),
                    });
                    Ok(())
                })?;
                let (Some(first), Some(last)) = (tickets.first(), tickets.last()) else {
                    return Ok(SalesFacts::default());
                };
                let mut lines = Vec::with_capacity(tickets.len());
                db.prepare(LINES_SQL)?.run(params![company.0, first.id.0, last.id.0], |r| {
                    lines.push(LineFact {
                        ticket: TicketId(r.int(0)),
                        member: MemberId(r.int(1)),
                        sold_at: r.int(2),
                        product: ProductId(r.int(3)),
                        amount: r.int(4),
                    });
                    Ok(())
                })?;
                Ok(SalesFacts { tickets, lines })
            })
            .await?;
        if let Some(facts) = native {
            return Ok(facts);
        }
        let rows = sqlx::query(AssertSqlSafe(tickets_sql))
            .bind(company.0)
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let tickets = rows.iter().map(ticket_fact).collect::<Result<Vec<_>>>()?;
        let (Some(first), Some(last)) = (tickets.first(), tickets.last()) else {
            return Ok(SalesFacts::default());
        };
        let rows =
            sqlx::query(LINES_SQL).bind(company.0).bind(first.id.0).bind(last.id.0).fetch_all(&self.pool).await?;
        let lines = rows.iter().map(line_fact).collect::<Result<Vec<_>>>()?;
        Ok(SalesFacts { tickets, lines })
    }

    /// Every ticket and line of the given members (for members whose history changed as a whole:
    /// new cards linking earlier tickets, merges).
    pub async fn fact_sales_of_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        members: &[MemberId],
    ) -> Result<SalesFacts> {
        let rows = self
            .rows_of_members(
                scope,
                company,
                members,
                &format!(
                    "SELECT {TICKET_COLS} FROM tickets WHERE company_id = {{company}} AND member_id IN ({{keys}}) ORDER BY id"
                ),
            )
            .await?;
        let tickets = rows.iter().map(ticket_fact).collect::<Result<Vec<_>>>()?;
        let rows = self
            .rows_of_members(
                scope,
                company,
                members,
                "SELECT l.ticket_id, t.member_id, t.sold_at, l.product_id, l.amount FROM tickets t \
             JOIN ticket_lines l ON l.company_id = t.company_id AND l.ticket_id = t.id \
             WHERE t.company_id = {company} AND t.member_id IN ({keys}) ORDER BY l.ticket_id, l.line_no",
            )
            .await?;
        let lines = rows.iter().map(line_fact).collect::<Result<Vec<_>>>()?;
        Ok(SalesFacts { tickets, lines })
    }

    /// Up to `limit` returns with id above `after_id`, in id order.
    pub async fn fact_returns(
        &self,
        scope: &Scope,
        company: CompanyId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<ReturnFact>> {
        Self::require_whole_company(scope, company)?;
        let sql = format!("{RETURN_SELECT} WHERE r.company_id = $1 AND r.id > $2 ORDER BY r.id LIMIT $3");
        let native = self
            .native_read(|db| {
                let mut returns = Vec::new();
                db.prepare(&sql)?.run(params![company.0, after_id, limit], |r| {
                    returns.push(ReturnFact {
                        id: r.int(0),
                        ticket: TicketId(r.int(1)),
                        member: r.opt_int(2).map(MemberId),
                        sold_at: r.int(3),
                        product: ProductId(r.int(4)),
                        amount: r.int(5),
                        cost: r.int(6),
                    });
                    Ok(())
                })?;
                Ok(returns)
            })
            .await?;
        if let Some(returns) = native {
            return Ok(returns);
        }
        let rows =
            sqlx::query(AssertSqlSafe(sql)).bind(company.0).bind(after_id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(return_fact).collect()
    }

    pub async fn fact_returns_of_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        members: &[MemberId],
    ) -> Result<Vec<ReturnFact>> {
        let rows = self
            .rows_of_members(
                scope,
                company,
                members,
                &format!("{RETURN_SELECT} WHERE r.company_id = {{company}} AND t.member_id IN ({{keys}})"),
            )
            .await?;
        rows.iter().map(return_fact).collect()
    }

    /// Up to `limit` health checks with id above `after_id`, in id order.
    pub async fn fact_health_checks(
        &self,
        scope: &Scope,
        company: CompanyId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<HealthCheckFact>> {
        Self::require_whole_company(scope, company)?;
        let sql =
            format!("SELECT {CHECK_COLS} FROM health_checks WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let native = self
            .native_read(|db| {
                let mut checks = Vec::new();
                db.prepare(&sql)?.run(params![company.0, after_id, limit], |r| {
                    checks.push(HealthCheckFact {
                        id: r.int(0),
                        member: MemberId(r.int(1)),
                        checked_at: r.int(2),
                        kind: HealthKind::parse(&r.opt_text(3)?.unwrap_or_default()),
                        abnormal: r.int(4) != 0,
                    });
                    Ok(())
                })?;
                Ok(checks)
            })
            .await?;
        if let Some(checks) = native {
            return Ok(checks);
        }
        let rows =
            sqlx::query(AssertSqlSafe(sql)).bind(company.0).bind(after_id).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(check_fact).collect()
    }

    pub async fn fact_health_checks_of_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        members: &[MemberId],
    ) -> Result<Vec<HealthCheckFact>> {
        let rows = self
            .rows_of_members(
                scope,
                company,
                members,
                &format!(
                    "SELECT {CHECK_COLS} FROM health_checks WHERE company_id = {{company}} AND member_id IN ({{keys}})"
                ),
            )
            .await?;
        rows.iter().map(check_fact).collect()
    }
    /// The last points ledger entry and tier change ids: where a first full read of loyalty state
    /// starts the watermarks (read them before the state, so nothing written meanwhile is missed).
    pub async fn fact_loyalty_marks(&self, scope: &Scope, company: CompanyId) -> Result<(i64, i64)> {
        Self::require_whole_company(scope, company)?;
        let ledger: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM points_ledger WHERE company_id = $1")
            .bind(company.0)
            .fetch_one(&self.pool)
            .await?;
        let tier: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM tier_history WHERE company_id = $1")
            .bind(company.0)
            .fetch_one(&self.pool)
            .await?;
        Ok((ledger, tier))
    }

    /// Up to `limit` members with any loyalty state (a points account or a tier), in id order after
    /// `after_id`: a first full read of loyalty state goes through these pages.
    pub async fn fact_loyalty_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<MemberId>> {
        Self::require_whole_company(scope, company)?;
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT member_id FROM (\
               SELECT member_id FROM points_accounts WHERE company_id = $1 AND member_id > $2 \
               UNION SELECT member_id FROM member_tiers WHERE company_id = $1 AND member_id > $2\
             ) m ORDER BY member_id LIMIT $3",
        )
        .bind(company.0)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(MemberId).collect())
    }

    /// Members whose points or tier changed after the watermarks: every change of a balance or a
    /// lot writes a ledger entry, every tier change a history row, and both take their ids from the
    /// company's counter inside the writing transaction, so ids become visible in order.
    pub async fn fact_loyalty_changes(
        &self,
        scope: &Scope,
        company: CompanyId,
        after_ledger: i64,
        after_tier: i64,
    ) -> Result<LoyaltyChanges> {
        let (ledger_id, tier_id) = self.fact_loyalty_marks(scope, company).await?;
        let mut members: Vec<i64> = Vec::new();
        if ledger_id > after_ledger {
            members.extend(
                sqlx::query_scalar::<_, i64>(
                    "SELECT DISTINCT member_id FROM points_ledger WHERE company_id = $1 AND id > $2 AND id <= $3",
                )
                .bind(company.0)
                .bind(after_ledger)
                .bind(ledger_id)
                .fetch_all(&self.pool)
                .await?,
            );
        }
        if tier_id > after_tier {
            members.extend(
                sqlx::query_scalar::<_, i64>(
                    "SELECT DISTINCT member_id FROM tier_history WHERE company_id = $1 AND id > $2 AND id <= $3",
                )
                .bind(company.0)
                .bind(after_tier)
                .bind(tier_id)
                .fetch_all(&self.pool)
                .await?,
            );
        }
        members.sort_unstable();
        members.dedup();
        Ok(LoyaltyChanges {
            members: members.into_iter().map(MemberId).collect(),
            ledger_id: ledger_id.max(after_ledger),
            tier_id: tier_id.max(after_tier),
        })
    }

    /// The loyalty state of these members now (one fact per member asked for, in the order asked;
    /// a member without any is a zero balance with no tier).
    pub async fn fact_loyalty_of_members(
        &self,
        scope: &Scope,
        company: CompanyId,
        members: &[MemberId],
    ) -> Result<Vec<LoyaltyFact>> {
        const ACCOUNTS: &str =
            "SELECT member_id, balance FROM points_accounts WHERE company_id = {company} AND member_id IN ({keys})";
        // Lots by member: on SQLite without statistics the planner took the company's lots index
        // and read every lot of the company for each chunk of members.
        const LOTS: &str = "SELECT member_id, expires_on, remaining FROM points_ledger WHERE company_id = {company} \
                 AND member_id IN ({keys}) AND remaining >= 1 AND expires_on IS NOT NULL";
        const TIERS: &str =
            "SELECT member_id, tier FROM member_tiers WHERE company_id = {company} AND member_id IN ({keys})";
        Self::require_whole_company(scope, company)?;
        let mut facts: Vec<LoyaltyFact> =
            members.iter().map(|m| LoyaltyFact { member: *m, balance: 0, expiring: Vec::new(), tier: None }).collect();
        let at: std::collections::HashMap<i64, usize> = members.iter().enumerate().map(|(i, m)| (m.0, i)).collect();
        let slot = |id: i64| at.get(&id).copied();
        let expiry = |expires: &str| {
            crate::points::parse_date(expires)
                .ok_or_else(|| StoreError::Invalid(format!("points lot with a bad expiry date {expires:?}")))
        };
        let ids: Vec<i64> = members.iter().map(|m| m.0).collect();
        let native = self
            .native_read(|db| {
                native_select_in(db, ACCOUNTS, company.0, &ids, |r| {
                    if let Some(i) = slot(r.int(0)) {
                        facts[i].balance = r.int(1);
                    }
                    Ok(())
                })?;
                native_select_in(db, LOTS, company.0, &ids, |r| {
                    let day = expiry(&r.opt_text(1)?.unwrap_or_default())?;
                    if let Some(i) = slot(r.int(0)) {
                        facts[i].expiring.push((day, r.int(2)));
                    }
                    Ok(())
                })?;
                native_select_in(db, TIERS, company.0, &ids, |r| {
                    if let Some(i) = slot(r.int(0)) {
                        facts[i].tier = r.opt_text(1)?;
                    }
                    Ok(())
                })
            })
            .await?;
        if native.is_none() {
            for r in &self.rows_of_members(scope, company, members, ACCOUNTS).await? {
                if let Some(i) = slot(r.try_get("member_id")?) {
                    facts[i].balance = r.try_get("balance")?;
                }
            }
            for r in &self.rows_of_members(scope, company, members, LOTS).await? {
                let day = expiry(&r.try_get::<String, _>("expires_on")?)?;
                if let Some(i) = slot(r.try_get("member_id")?) {
                    facts[i].expiring.push((day, r.try_get("remaining")?));
                }
            }
            for r in &self.rows_of_members(scope, company, members, TIERS).await? {
                if let Some(i) = slot(r.try_get("member_id")?) {
                    facts[i].tier = Some(r.try_get("tier")?);
                }
            }
        }
        for f in &mut facts {
            f.expiring.sort_unstable();
        }
        Ok(facts)
    }

    /// The tier levels of the company's rules, lowest first.
    pub async fn fact_tier_levels(&self, scope: &Scope, company: CompanyId) -> Result<Vec<TierLevelFact>> {
        Self::require_whole_company(scope, company)?;
        let rules = self.loyalty_rules(scope, company).await?;
        Ok(rules.tiers.levels.into_iter().map(|l| TierLevelFact { code: l.code, name: l.name }).collect())
    }
}

/// [`crate::db::select_in`] on the native fact reader: `template` (with `{company}` and `{keys}`)
/// over `keys` in chunks of 1000, each row handed to `row`.
fn native_select_in(
    db: &Db<'_>,
    template: &str,
    company: i64,
    keys: &[i64],
    mut row: impl FnMut(&NativeRow<'_>) -> Result<()>,
) -> Result<()> {
    for chunk in keys.chunks(1000) {
        let sql = template
            .replace("{company}", "$1")
            .replace("{keys}", &crate::db::list_placeholders(crate::db::Backend::Postgres, 2, chunk.len()));
        let params: Vec<Param<'_>> = std::iter::once(company).chain(chunk.iter().copied()).map(Param::Int).collect();
        db.prepare(&sql)?.run(&params, &mut row)?;
    }
    Ok(())
}

fn member_fact(r: &AnyRow) -> Result<MemberFact> {
    let birthday: Option<String> = r.try_get("birthday")?;
    let chronic: Option<String> = r.try_get("chronic_conditions")?;
    let source: String = r.try_get("source")?;
    Ok(MemberFact {
        id: MemberId(r.try_get("id")?),
        card_no: r.try_get("card_no")?,
        gender: Gender::parse(&r.try_get::<String, _>("gender")?),
        birthday: birthday.and_then(|b| b.parse().ok()),
        store: r.try_get::<Option<i64>, _>("store_id")?.map(StoreId),
        registered_at: r.try_get("registered_at")?,
        clerk_code: r.try_get("clerk_code")?,
        source: RegistrationSource::parse(&source).unwrap_or_default(),
        referred: r.try_get::<Option<String>, _>("referrer_card_no")?.is_some(),
        has_allergies: r.try_get::<Option<Vec<u8>>, _>("allergies_enc")?.is_some(),
        chronic_conditions: chronic
            .map(|c| c.split(';').filter(|s| !s.is_empty()).map(str::to_string).collect())
            .unwrap_or_default(),
        sms_opt_in: flag(r, "sms_opt_in")?,
        health_consent: flag(r, "health_consent")?,
        status: MemberStatus::parse(&r.try_get::<String, _>("status")?),
        updated_at: r.try_get("updated_at")?,
    })
}

fn ticket_fact(r: &AnyRow) -> Result<TicketFact> {
    Ok(TicketFact {
        id: TicketId(r.try_get("id")?),
        member: r.try_get::<Option<i64>, _>("member_id")?.map(MemberId),
        store: StoreId(r.try_get("store_id")?),
        sold_at: r.try_get("sold_at")?,
        line_count: r.try_get("line_count")?,
        amount: r.try_get("amount")?,
        discount: r.try_get("discount")?,
        cost: r.try_get("cost")?,
    })
}

fn line_fact(r: &AnyRow) -> Result<LineFact> {
    Ok(LineFact {
        ticket: TicketId(r.try_get("ticket_id")?),
        member: MemberId(r.try_get("member_id")?),
        sold_at: r.try_get("sold_at")?,
        product: ProductId(r.try_get("product_id")?),
        amount: r.try_get("amount")?,
    })
}

fn return_fact(r: &AnyRow) -> Result<ReturnFact> {
    Ok(ReturnFact {
        id: r.try_get("id")?,
        ticket: TicketId(r.try_get("ticket_id")?),
        member: r.try_get::<Option<i64>, _>("member_id")?.map(MemberId),
        sold_at: r.try_get("sold_at")?,
        product: ProductId(r.try_get("product_id")?),
        amount: r.try_get("amount")?,
        cost: r.try_get("cost")?,
    })
}

fn check_fact(r: &AnyRow) -> Result<HealthCheckFact> {
    Ok(HealthCheckFact {
        id: r.try_get("id")?,
        member: MemberId(r.try_get("member_id")?),
        checked_at: r.try_get("checked_at")?,
        kind: HealthKind::parse(&r.try_get::<String, _>("kind")?),
        abnormal: flag(r, "abnormal")?,
    })
}
