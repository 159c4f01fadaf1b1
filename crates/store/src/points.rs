//! The points ledger (积分流水) and balances. Every change runs in one write transaction: lock the
//! member's account row, check the cause has not been applied, apply the rules of
//! `rxmember_core::points` to the account, append the entries, update the lots they drew from and the
//! balance. The unique key `(company, kind, cause)` makes a cause apply at most once even when two
//! requests race (the loser's insert fails and its transaction rolls back).
//!
//! Tickets and returns imported from the ERP earn and take back points through [`Store::accrue_points`],
//! which walks them in id order from a per-company watermark; POS sales earn at commit with the same
//! cause, so a ticket committed at the till and later imported earns once.

use crate::{Backend, Result, Store, StoreError, counters};
use chrono::{Datelike, NaiveDate};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::points::{Account, EarnLine, Earning, Entry, EntryKind, Lot, take_back};
use rxmember_core::time::{local_date, now_ms};
use rxmember_core::{CompanyId, Fen, MemberId};
use serde::Serialize;
use sqlx::{Any, Row, Transaction};

/// A ledger entry as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerEntry {
    pub id: i64,
    pub kind: String,
    pub kind_label: String,
    pub points: i64,
    pub cause: String,
    pub at: i64,
    pub on_date: String,
    pub expires_on: Option<String>,
    pub remaining: i64,
    pub detail: Option<String>,
    pub actor: String,
}

/// Which ledger entries to list: a page older than `before_id`, of one kind, within dates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerQuery {
    pub before_id: Option<i64>,
    /// An entry kind (`earn`, `redeem`, `expire`, `adjust`, `reverse`, `opening`, …).
    pub kind: Option<String>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub limit: i64,
}

impl LedgerQuery {
    /// The newest `limit` entries.
    pub fn latest(limit: i64) -> LedgerQuery {
        LedgerQuery { before_id: None, kind: None, from: None, to: None, limit }
    }
}

/// A member's points summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PointsSummary {
    pub balance: i64,
    pub debt: i64,
    /// Points that expire within the next 30 days, and the earliest expiry date.
    pub expiring_30d: i64,
    pub next_expiry: Option<String>,
}

impl PointsSummary {
    /// The summary from unexpired lots summed per expiry day (`YYYY-MM-DD`, points), as the till's
    /// first read gives them: the same figures as `Store::points_summary`'s own statement.
    pub(crate) fn of_lots(balance: i64, debt: i64, lots: &[(String, i64)], today: NaiveDate) -> PointsSummary {
        let until = date_str(today + chrono::Days::new(30));
        PointsSummary {
            balance,
            debt,
            expiring_30d: lots.iter().filter(|(day, _)| *day <= until).map(|(_, p)| p).sum(),
            next_expiry: lots.iter().map(|(day, _)| day.clone()).min(),
        }
    }
}

/// What applying a cause did. As JSON: `{"status": "done", "points", "balance"}` or
/// `{"status": "already_applied"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Applied {
    /// Entries appended; the new balance.
    Done { points: i64, balance: i64 },
    /// The cause was applied before: nothing changed.
    AlreadyApplied,
}

/// Who, when and why, for one change.
pub(crate) struct Cause<'a> {
    pub kind: EntryKind,
    pub key: &'a str,
    pub at: i64,
    pub on: NaiveDate,
    pub detail: Option<String>,
}

fn date_str(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Locks (PostgreSQL) or — under SQLite's `BEGIN IMMEDIATE` — simply reads the member's account and
/// live lots.
pub(crate) async fn load_account(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    company: i64,
    member: i64,
) -> Result<Account> {
    sqlx::query(
        "INSERT INTO points_accounts (company_id, member_id, balance, debt, updated_at) VALUES ($1, $2, 0, 0, $3) \
         ON CONFLICT (company_id, member_id) DO NOTHING",
    )
    .bind(company)
    .bind(member)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    let lock = if backend == Backend::Postgres { " FOR UPDATE" } else { "" };
    let (balance, debt): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT balance, debt FROM points_accounts WHERE company_id = $1 AND member_id = $2{lock}"
    )))
    .bind(company)
    .bind(member)
    .fetch_one(&mut **tx)
    .await?;
    let rows = sqlx::query(
        "SELECT id, on_date, expires_on, remaining FROM points_ledger \
         WHERE company_id = $1 AND member_id = $2 AND remaining > 0",
    )
    .bind(company)
    .bind(member)
    .fetch_all(&mut **tx)
    .await?;
    let mut lots = Vec::with_capacity(rows.len());
    for r in rows {
        let earned: String = r.try_get("on_date")?;
        let expires: Option<String> = r.try_get("expires_on")?;
        lots.push(Lot {
            entry: r.try_get("id")?,
            earned_on: parse_date(&earned).unwrap_or_default(),
            expires_on: expires.as_deref().and_then(parse_date),
            remaining: r.try_get("remaining")?,
        });
    }
    let mut a = Account { balance, debt, lots };
    a.lots.sort_by_key(|l| (l.expires_on.is_none(), l.expires_on, l.earned_on, l.entry));
    Ok(a)
}

/// Whether `(kind, cause)` is already in the ledger.
pub(crate) async fn applied(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    kind: EntryKind,
    cause: &str,
) -> Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM points_ledger WHERE company_id = $1 AND kind = $2 AND cause = $3")
            .bind(company)
            .bind(kind.as_str())
            .bind(cause)
            .fetch_one(&mut **tx)
            .await?;
    Ok(n > 0)
}

/// Appends `entries` (the first with id `first_id` when it is a lot) and writes the account back.
/// Entries after the first get their cause prefixed by `debt:` (a debt paid from an earning).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn persist(
    tx: &mut Transaction<'static, Any>,
    company: i64,
    member: i64,
    account: &Account,
    entries: &[Entry],
    first_id: Option<i64>,
    cause: &Cause<'_>,
    actor: &str,
) -> Result<()> {
    let now = now_ms();
    // Lots created here are inserted with what the account kept of them; later entries of the same
    // change that drew from them are already accounted for.
    let mut created: Vec<i64> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let id = match (i, first_id) {
            (0, Some(id)) => id,
            _ => counters::allocate(tx, company, "points_entry", 1).await?,
        };
        let key = if i == 0 { cause.key.to_string() } else { format!("debt:{}", cause.key) };
        // The lot's remaining is what the account kept of it (a credit may have filled a hole).
        let remaining =
            if e.points > 0 { account.lots.iter().find(|l| l.entry == id).map_or(0, |l| l.remaining) } else { 0 };
        sqlx::query(
            "INSERT INTO points_ledger (company_id, id, member_id, kind, points, cause, at, on_date, expires_on, remaining, detail, actor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(company)
        .bind(id)
        .bind(member)
        .bind(e.kind.as_str())
        .bind(e.points)
        .bind(key)
        .bind(cause.at)
        .bind(date_str(cause.on))
        .bind(e.expires_on.map(date_str))
        .bind(remaining)
        .bind(if i == 0 { cause.detail.clone() } else { None })
        .bind(actor)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(|e| crate::conflict_on_unique(e, || format!("积分来源 {}", cause.key)))?;
        if e.points > 0 {
            created.push(id);
        }
        for (lot, n) in e.consumed.iter().filter(|(lot, _)| !created.contains(lot)) {
            sqlx::query("UPDATE points_ledger SET remaining = remaining - $3 WHERE company_id = $1 AND id = $2")
                .bind(company)
                .bind(*lot)
                .bind(*n)
                .execute(&mut **tx)
                .await?;
        }
    }
    sqlx::query(
        "UPDATE points_accounts SET balance = $3, debt = $4, updated_at = $5 WHERE company_id = $1 AND member_id = $2",
    )
    .bind(company)
    .bind(member)
    .bind(account.balance)
    .bind(account.debt)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Credits `points` to a member under `cause` (earn, opening, positive adjustment) in `tx`.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn credit_in(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    company: i64,
    member: i64,
    points: i64,
    expires_on: Option<NaiveDate>,
    cause: &Cause<'_>,
    actor: &str,
) -> Result<Applied> {
    let mut account = load_account(tx, backend, company, member).await?;
    if applied(tx, company, cause.kind, cause.key).await? {
        return Ok(Applied::AlreadyApplied);
    }
    let id = counters::allocate(tx, company, "points_entry", 1).await?;
    let entries = account.credit(cause.kind, id, points, cause.on, expires_on);
    if entries.is_empty() {
        return Ok(Applied::Done { points: 0, balance: account.balance });
    }
    persist(tx, company, member, &account, &entries, Some(id), cause, actor).await?;
    Ok(Applied::Done { points, balance: account.balance })
}

/// Spends `points` under `cause` in `tx`; fails with `Invalid` if the balance is short.
pub(crate) async fn redeem_in(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    company: i64,
    member: i64,
    points: i64,
    cause: &Cause<'_>,
    actor: &str,
) -> Result<Applied> {
    let mut account = load_account(tx, backend, company, member).await?;
    if applied(tx, company, EntryKind::Redeem, cause.key).await? {
        return Ok(Applied::AlreadyApplied);
    }
    let e = account.redeem(points).map_err(|e| StoreError::Invalid(e.to_string()))?;
    persist(tx, company, member, &account, &[e], None, cause, actor).await?;
    Ok(Applied::Done { points: -points, balance: account.balance })
}

/// A ledger row to insert: id, member, kind, points, cause, at, on, expires_on, detail.
type NewEntry = (i64, i64, &'static str, i64, String, i64, NaiveDate, Option<NaiveDate>, Option<String>);

/// A ticket's earning as the accrual and the POS compute it.
pub(crate) struct TicketForPoints {
    pub member: i64,
    pub ticket_no: String,
    pub sold_at: i64,
    pub lines: Vec<EarnLine>,
}

impl Store {
    /// Earns the points of one ticket in `tx` (idempotent by the ticket number).
    pub(crate) async fn earn_ticket_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        company: CompanyId,
        offset_minutes: i32,
        rules: &LoyaltyRules,
        t: &TicketForPoints,
        actor: &str,
    ) -> Result<(Applied, Earning)> {
        let on = local_date(t.sold_at, offset_minutes);
        let (tier, birthday): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT (SELECT tier FROM member_tiers WHERE company_id = m.company_id AND member_id = m.id), m.birthday \
             FROM members m WHERE m.company_id = $1 AND m.id = $2",
        )
        .bind(company.0)
        .bind(t.member)
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or((None, None));
        let cx = rules.earn_context(on, tier.as_deref(), birthday.as_deref().and_then(parse_date));
        let earning = rules.points.earn(&t.lines, &cx);
        let key = format!("ticket:{}", t.ticket_no);
        let cause = Cause {
            kind: EntryKind::Earn,
            key: &key,
            at: t.sold_at,
            on,
            detail: Some(serde_json::to_string(&earning).unwrap_or_default()),
        };
        let expires = rules.points.expiry.last_valid_day(on).map_err(|e| StoreError::Invalid(e.0))?;
        if earning.points <= 0 {
            return Ok((Applied::Done { points: 0, balance: 0 }, earning));
        }
        let applied = credit_in(tx, self.backend, company.0, t.member, earning.points, expires, &cause, actor).await?;
        Ok((applied, earning))
    }

    /// Takes back the points of one returned line (`returns` row `return_id`) in `tx`.
    pub(crate) async fn take_back_return_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        company: CompanyId,
        offset_minutes: i32,
        rules: &LoyaltyRules,
        return_id: i64,
        actor: &str,
    ) -> Result<Applied> {
        let c = company.0;
        let row = sqlx::query(
            "SELECT r.ticket_id, r.returned_at, r.amount, p.code AS product_code, t.ticket_no, t.member_id \
             FROM returns r JOIN tickets t ON t.company_id = r.company_id AND t.id = r.ticket_id \
             JOIN products p ON p.company_id = r.company_id AND p.id = r.product_id \
             WHERE r.company_id = $1 AND r.id = $2",
        )
        .bind(c)
        .bind(return_id)
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else { return Ok(Applied::AlreadyApplied) };
        let Some(member): Option<i64> = row.try_get("member_id")? else {
            return Ok(Applied::AlreadyApplied);
        };
        let ticket_no: String = row.try_get("ticket_no")?;
        let ticket_id: i64 = row.try_get("ticket_id")?;
        let earn: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT id, detail FROM points_ledger WHERE company_id = $1 AND kind = 'earn' AND cause = $2",
        )
        .bind(c)
        .bind(format!("ticket:{ticket_no}"))
        .fetch_optional(&mut **tx)
        .await?;
        let lot = earn.as_ref().map(|e| e.0);
        let Some(earning) = earn.and_then(|(_, d)| d).and_then(|d| serde_json::from_str::<Earning>(&d).ok()) else {
            return Ok(Applied::AlreadyApplied); // the ticket earned nothing
        };
        // Earlier returns of the same ticket (already taken back, in id order).
        let earlier = sqlx::query(
            "SELECT r.amount, p.code AS product_code FROM returns r \
             JOIN products p ON p.company_id = r.company_id AND p.id = r.product_id \
             WHERE r.company_id = $1 AND r.ticket_id = $2 AND r.id < $3",
        )
        .bind(c)
        .bind(ticket_id)
        .bind(return_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut before = Vec::new();
        for r in &earlier {
            before.push((r.try_get::<String, _>("product_code")?, Fen(r.try_get("amount")?)));
        }
        let (_, before_weight) = take_back(&earning, 0, &before);
        let this = vec![(row.try_get::<String, _>("product_code")?, Fen(row.try_get("amount")?))];
        let (points, _) = take_back(&earning, before_weight, &this);
        let key = format!("return:{return_id}");
        let at: i64 = row.try_get("returned_at")?;
        let mut account = load_account(tx, self.backend, c, member).await?;
        if applied(tx, c, EntryKind::Reverse, &key).await? {
            return Ok(Applied::AlreadyApplied);
        }
        let entries = account.take_back(points, rules.points.return_policy, lot);
        let detail = format!("{{\"ticket_no\":{},\"return_id\":{return_id}}}", serde_json::Value::String(ticket_no));
        let cause =
            Cause { kind: EntryKind::Reverse, key: &key, at, on: local_date(at, offset_minutes), detail: Some(detail) };
        // Nothing to take now (a zero share, or the clawback policy with an empty balance: the points
        // become debt): a zero entry still records that this return was handled, so it never is again.
        let entries = if entries.is_empty() {
            vec![Entry { kind: EntryKind::Reverse, points: 0, expires_on: None, consumed: Vec::new() }]
        } else {
            entries
        };
        persist(tx, c, member, &account, &entries, None, &cause, actor).await?;
        let taken: i64 = entries.iter().map(|e| e.points).sum();
        Ok(Applied::Done { points: taken, balance: account.balance })
    }

    /// Earns points for imported tickets and takes them back for imported returns that the ledger has
    /// not seen yet (in id order from the company's watermark, in batches). Returns (tickets earned,
    /// returns taken back). Safe to run at any time and to kill: every cause applies once.
    pub async fn accrue_points(&self, scope: &Scope, company: CompanyId) -> Result<(u64, u64)> {
        scope.require_company_admin(company)?;
        let rules = self.loyalty_rules(scope, company).await?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let actor = scope.actor.clone();
        let c = company.0;
        let (mut earned, mut taken) = (0u64, 0u64);
        loop {
            let mut tx = self.begin_write().await?;
            let (last_ticket, last_return): (i64, i64) =
                sqlx::query_as("SELECT last_ticket_id, last_return_id FROM loyalty_progress WHERE company_id = $1")
                    .bind(c)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or((0, 0));
            // By primary key, members' and others' tickets alike: filtering on member_id in SQL lets
            // SQLite pick the partial member index and sort, which rescans every member ticket per batch.
            let batch: Vec<(i64, String, Option<i64>, i64)> = sqlx::query_as(
                "SELECT id, ticket_no, member_id, sold_at FROM tickets WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT 500",
            )
            .bind(c)
            .bind(last_ticket)
            .fetch_all(&mut *tx)
            .await?;
            let new_ticket = batch.last().map_or(last_ticket, |t| t.0);
            let tickets_done = batch.len() < 500;
            let tickets: Vec<(i64, String, i64, i64)> =
                batch.into_iter().filter_map(|(id, no, m, at)| m.map(|m| (id, no, m, at))).collect();
            earned += self.earn_batch_in(&mut tx, company, offset, &rules, &tickets, &actor).await?;
            // A return is taken back only after its ticket earned: returns wait for the ticket
            // watermark (all of them can go once the tickets are exhausted).
            let returns: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, ticket_id FROM returns WHERE company_id = $1 AND id > $2 ORDER BY id LIMIT 500",
            )
            .bind(c)
            .bind(last_return)
            .fetch_all(&mut *tx)
            .await?;
            let mut new_return = last_return;
            let mut returns_seen = 0;
            for (id, ticket_id) in &returns {
                if !tickets_done && *ticket_id > new_ticket {
                    break;
                }
                if let Applied::Done { points, .. } =
                    self.take_back_return_in(&mut tx, company, offset, &rules, *id, &actor).await?
                    && points != 0
                {
                    taken += 1;
                }
                new_return = *id;
                returns_seen += 1;
            }
            sqlx::query(
                "INSERT INTO loyalty_progress (company_id, last_ticket_id, last_return_id) VALUES ($1, $2, $3) \
                 ON CONFLICT (company_id) DO UPDATE SET last_ticket_id = excluded.last_ticket_id, last_return_id = excluded.last_return_id",
            )
            .bind(c)
            .bind(new_ticket)
            .bind(new_return)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            if tickets_done && new_ticket == last_ticket && returns_seen == 0 {
                break;
            }
        }
        Ok((earned, taken))
    }

    /// Earns the points of a batch of tickets (id order) in `tx` with a fixed number of queries: the
    /// same rules and the same result as [`Store::earn_ticket_in`] plus the tier upgrade after each
    /// ticket, one ticket after another, but reading and writing in bulk. Returns the tickets that
    /// earned.
    async fn earn_batch_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        company: CompanyId,
        offset: i32,
        rules: &LoyaltyRules,
        tickets: &[(i64, String, i64, i64)],
        actor: &str,
    ) -> Result<u64> {
        use crate::db::select_in;
        use std::collections::{HashMap, HashSet};
        if tickets.is_empty() {
            return Ok(0);
        }
        let c = company.0;
        let b = self.backend;
        let causes: Vec<String> = tickets.iter().map(|t| format!("ticket:{}", t.1)).collect();
        let done: HashSet<String> = select_in(
            &mut *tx,
            b,
            "SELECT cause FROM points_ledger WHERE company_id = {company} AND kind = 'earn' AND cause IN ({keys})",
            c,
            &causes,
        )
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("cause"))
        .collect::<std::result::Result<_, _>>()?;
        let todo: Vec<&(i64, String, i64, i64)> =
            tickets.iter().filter(|t| !done.contains(&format!("ticket:{}", t.1))).collect();
        if todo.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = todo.iter().map(|t| t.0).collect();
        let mut lines: HashMap<i64, Vec<EarnLine>> = HashMap::new();
        for r in select_in(
            &mut *tx,
            b,
            "SELECT l.ticket_id, p.code, p.category_code, c.major_code, p.points_excluded, l.amount FROM ticket_lines l \
             JOIN products p ON p.company_id = l.company_id AND p.id = l.product_id \
             LEFT JOIN categories c ON c.company_id = p.company_id AND c.code = p.category_code \
             WHERE l.company_id = {company} AND l.ticket_id IN ({keys}) ORDER BY l.ticket_id, l.line_no",
            c,
            &ids,
        )
        .await?
        {
            lines.entry(r.try_get("ticket_id")?).or_default().push(EarnLine {
                product_code: r.try_get("code")?,
                categories: categories_of(&r)?,
                excluded: crate::db::flag(&r, "points_excluded")?,
                paid: Fen(r.try_get("amount")?),
            });
        }
        let mut members: Vec<i64> = todo.iter().map(|t| t.2).collect();
        members.sort_unstable();
        members.dedup();
        // Tier and birthday.
        let mut tier: HashMap<i64, Option<String>> = HashMap::new();
        let mut birthday: HashMap<i64, Option<NaiveDate>> = HashMap::new();
        for r in select_in(
            &mut *tx,
            b,
            "SELECT m.id, m.birthday, t.tier FROM members m LEFT JOIN member_tiers t ON t.company_id = m.company_id AND t.member_id = m.id \
             WHERE m.company_id = {company} AND m.id IN ({keys})",
            c,
            &members,
        )
        .await?
        {
            let id: i64 = r.try_get("id")?;
            tier.insert(id, r.try_get("tier")?);
            birthday.insert(id, r.try_get::<Option<String>, _>("birthday")?.as_deref().and_then(parse_date));
        }
        // Accounts (locked on PostgreSQL) and live lots.
        let now = now_ms();
        for chunk in members.chunks(500) {
            let sql = format!(
                "INSERT INTO points_accounts (company_id, member_id, balance, debt, updated_at) VALUES {} \
                 ON CONFLICT (company_id, member_id) DO NOTHING",
                crate::db::values_placeholders(b, chunk.len(), 5)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in chunk {
                q = q.bind(c).bind(*m).bind(0i64).bind(0i64).bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        let lock = if b == Backend::Postgres { " FOR UPDATE" } else { "" };
        let mut accounts: HashMap<i64, Account> = HashMap::new();
        for r in select_in(
            &mut *tx,
            b,
            &format!(
                "SELECT member_id, balance, debt FROM points_accounts WHERE company_id = {{company}} AND member_id IN ({{keys}}){lock}"
            ),
            c,
            &members,
        )
        .await?
        {
            accounts.insert(
                r.try_get("member_id")?,
                Account { balance: r.try_get("balance")?, debt: r.try_get("debt")?, lots: Vec::new() },
            );
        }
        // An earning only adds a lot, unless it pays a debt from the lots: load lots for those only.
        let in_debt: Vec<i64> = accounts.iter().filter(|(_, a)| a.debt > 0).map(|(m, _)| *m).collect();
        for r in select_in(
            &mut *tx,
            b,
            "SELECT member_id, id, on_date, expires_on, remaining FROM points_ledger \
             WHERE company_id = {company} AND member_id IN ({keys}) AND remaining > 0",
            c,
            &in_debt,
        )
        .await?
        {
            let m: i64 = r.try_get("member_id")?;
            let earned: String = r.try_get("on_date")?;
            let expires: Option<String> = r.try_get("expires_on")?;
            if let Some(a) = accounts.get_mut(&m) {
                a.lots.push(Lot {
                    entry: r.try_get("id")?,
                    earned_on: parse_date(&earned).unwrap_or_default(),
                    expires_on: expires.as_deref().and_then(parse_date),
                    remaining: r.try_get("remaining")?,
                });
            }
        }
        for a in accounts.values_mut() {
            a.lots.sort_by_key(|l| (l.expires_on.is_none(), l.expires_on, l.earned_on, l.entry));
        }
        // One ticket after another, in memory.
        let mut next_id = counters::allocate(tx, c, "points_entry", 2 * todo.len() as i64).await?;
        let mut rows: Vec<NewEntry> = Vec::new();
        let mut consumed_old: Vec<(i64, i64)> = Vec::new();
        let mut created: HashSet<i64> = HashSet::new();
        let mut last_of: HashMap<i64, (String, i64)> = HashMap::new();
        let mut touched: HashSet<i64> = HashSet::new();
        let mut earned = 0u64;
        for (tid, ticket_no, member, sold_at) in &todo {
            let on = local_date(*sold_at, offset);
            let level = tier.get(member).cloned().flatten();
            let cx = rules.earn_context(on, level.as_deref(), birthday.get(member).cloned().flatten());
            let earning = rules.points.earn(lines.get(tid).map_or(&[][..], |v| v.as_slice()), &cx);
            if earning.points <= 0 {
                continue;
            }
            let expires = rules.points.expiry.last_valid_day(on).map_err(|e| StoreError::Invalid(e.0))?;
            let Some(account) = accounts.get_mut(member) else { continue };
            let lot_id = next_id;
            let entries = account.credit(EntryKind::Earn, lot_id, earning.points, on, expires);
            let key = format!("ticket:{ticket_no}");
            for (i, e) in entries.iter().enumerate() {
                let id = next_id;
                next_id += 1;
                if e.points > 0 {
                    created.insert(id);
                }
                for (lot, n) in &e.consumed {
                    if !created.contains(lot) {
                        consumed_old.push((*lot, *n));
                    }
                }
                let (cause, detail) = if i == 0 {
                    (key.clone(), Some(serde_json::to_string(&earning).unwrap_or_default()))
                } else {
                    (format!("debt:{key}"), None)
                };
                rows.push((id, *member, e.kind.as_str(), e.points, cause, *sold_at, on, e.expires_on, detail));
            }
            touched.insert(*member);
            earned += 1;
            last_of.insert(*member, (key.clone(), *sold_at));
        }
        // Writes in bulk.
        for chunk in rows.chunks(300) {
            let sql = format!(
                "INSERT INTO points_ledger (company_id, id, member_id, kind, points, cause, at, on_date, expires_on, remaining, detail, actor, created_at) VALUES {}",
                crate::db::values_placeholders(b, chunk.len(), 13)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, member, kind, points, cause, at, on, expires, detail) in chunk {
                let remaining = if *points > 0 {
                    accounts.get(member).and_then(|a| a.lots.iter().find(|l| l.entry == *id)).map_or(0, |l| l.remaining)
                } else {
                    0
                };
                q = q
                    .bind(c)
                    .bind(*id)
                    .bind(*member)
                    .bind(*kind)
                    .bind(*points)
                    .bind(cause.clone())
                    .bind(*at)
                    .bind(date_str(*on))
                    .bind(expires.map(date_str))
                    .bind(remaining)
                    .bind(detail.clone())
                    .bind(actor)
                    .bind(now);
            }
            q.execute(&mut **tx).await?;
        }
        for (lot, n) in consumed_old {
            sqlx::query("UPDATE points_ledger SET remaining = remaining - $3 WHERE company_id = $1 AND id = $2")
                .bind(c)
                .bind(lot)
                .bind(n)
                .execute(&mut **tx)
                .await?;
        }
        for m in &touched {
            let a = &accounts[m];
            sqlx::query("UPDATE points_accounts SET balance = $3, debt = $4, updated_at = $5 WHERE company_id = $1 AND member_id = $2")
                .bind(c)
                .bind(*m)
                .bind(a.balance)
                .bind(a.debt)
                .bind(now)
                .execute(&mut **tx)
                .await?;
        }
        // Tiers: raised after the batch, for each member who earned, on the 12 months up to the
        // batch's last day (the till raises a tier after each sale; an import after each batch).
        // Members already at the top level cannot rise.
        let top = rules.tiers.levels.last().map(|l| l.code.as_str());
        let evaluated: Vec<i64> = touched
            .iter()
            .copied()
            .filter(|m| tier.get(m).cloned().flatten().as_deref() != top || top.is_none())
            .collect();
        if let Some(last_at) = todo.iter().map(|t| t.3).max()
            && !evaluated.is_empty()
        {
            let day = local_date(last_at, offset);
            let points = rules.tiers.uses_points();
            for (m, stats) in tier_stats_of(tx, b, c, &evaluated, day, offset, points).await? {
                let current = tier.get(&m).cloned().flatten();
                let effective = current.clone().or_else(|| rules.tiers.base().map(|l| l.code.clone()));
                if let Some(mut change) = rules.tiers.upgrade(effective.as_deref(), &stats)
                    && let Some((cause, at)) = last_of.get(&m)
                {
                    change.from = current;
                    crate::tiers::apply_change_in(tx, c, m, &change, cause, *at, actor).await?;
                }
            }
        }
        Ok(earned)
    }

    /// Credits every card's opening balance from the ERP (member_cards.legacy_points) once.
    pub async fn open_points_balances(&self, scope: &Scope, company: CompanyId) -> Result<u64> {
        scope.require_company_admin(company)?;
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT card_no, member_id, legacy_points FROM member_cards WHERE company_id = $1 AND legacy_points > 0 ORDER BY card_no",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        let now = now_ms();
        let mut n = 0;
        for chunk in rows.chunks(500) {
            let mut tx = self.begin_write().await?;
            for (card, member, points) in chunk {
                let key = format!("card:{card}");
                let cause =
                    Cause { kind: EntryKind::Opening, key: &key, at: now, on: local_date(now, offset), detail: None };
                if let Applied::Done { .. } =
                    credit_in(&mut tx, self.backend, company.0, *member, *points, None, &cause, &scope.actor).await?
                {
                    n += 1;
                }
            }
            tx.commit().await?;
        }
        Ok(n)
    }

    /// An operator's adjustment (人工调整), idempotent by `request_id`.
    pub async fn adjust_points(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
        points: i64,
        reason: &str,
        request_id: &str,
    ) -> Result<Applied> {
        scope.require_company_admin(company)?;
        self.require_member(scope, company, member).await?;
        if points == 0 || reason.trim().is_empty() {
            return Err(StoreError::Invalid("调整积分不能为0，且必须填写原因".into()));
        }
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let rules = self.loyalty_rules(scope, company).await?;
        let now = now_ms();
        let on = local_date(now, offset);
        let key = format!("adjust:{request_id}");
        let detail = serde_json::json!({ "reason": reason }).to_string();
        let cause = Cause { kind: EntryKind::Adjust, key: &key, at: now, on, detail: Some(detail) };
        let mut tx = self.begin_write().await?;
        let out = if points > 0 {
            let expires = rules.points.expiry.last_valid_day(on).map_err(|e| StoreError::Invalid(e.0))?;
            credit_in(&mut tx, self.backend, company.0, member.0, points, expires, &cause, &scope.actor).await?
        } else {
            let mut account = load_account(&mut tx, self.backend, company.0, member.0).await?;
            if applied(&mut tx, company.0, EntryKind::Adjust, &key).await? {
                Applied::AlreadyApplied
            } else {
                let e = account.debit(-points).expect("negative adjustment");
                persist(&mut tx, company.0, member.0, &account, &[e], None, &cause, &scope.actor).await?;
                Applied::Done { points, balance: account.balance }
            }
        };
        tx.commit().await?;
        self.audit(
            scope,
            Some(company),
            "points.adjust",
            Some(&member.to_string()),
            Some(&format!("{points} {reason}")),
        )
        .await?;
        Ok(out)
    }

    /// Expires every lot whose last valid day is before `today` (the daily job). Returns (lots, points).
    pub async fn expire_points(&self, scope: &Scope, company: CompanyId, today: NaiveDate) -> Result<(u64, i64)> {
        scope.require_company_admin(company)?;
        let c = company.0;
        let (mut lots, mut points) = (0u64, 0i64);
        loop {
            let due: Vec<(i64, i64)> = sqlx::query_as(
                "SELECT id, member_id FROM points_ledger WHERE company_id = $1 AND remaining > 0 \
                 AND expires_on IS NOT NULL AND expires_on < $2 ORDER BY id LIMIT 500",
            )
            .bind(c)
            .bind(date_str(today))
            .fetch_all(&self.pool)
            .await?;
            if due.is_empty() {
                break;
            }
            let mut tx = self.begin_write().await?;
            let now = now_ms();
            for (lot, member) in &due {
                let mut account = load_account(&mut tx, self.backend, c, *member).await?;
                let key = format!("lot:{lot}");
                if applied(&mut tx, c, EntryKind::Expire, &key).await? {
                    continue;
                }
                if let Some(e) = account.expire(*lot) {
                    points += -e.points;
                    lots += 1;
                    let cause = Cause { kind: EntryKind::Expire, key: &key, at: now, on: today, detail: None };
                    persist(&mut tx, c, *member, &account, &[e], None, &cause, &scope.actor).await?;
                }
            }
            tx.commit().await?;
        }
        Ok((lots, points))
    }

    /// A member's balance and what expires soon.
    pub async fn points_summary(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
        today: NaiveDate,
    ) -> Result<PointsSummary> {
        self.require_member(scope, company, member).await?;
        self.points_summary_unchecked(company, member, today).await
    }

    pub(crate) async fn points_summary_unchecked(
        &self,
        company: CompanyId,
        member: MemberId,
        today: NaiveDate,
    ) -> Result<PointsSummary> {
        let (balance, debt): (i64, i64) =
            sqlx::query_as("SELECT balance, debt FROM points_accounts WHERE company_id = $1 AND member_id = $2")
                .bind(company.0)
                .bind(member.0)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or((0, 0));
        let until = today + chrono::Days::new(30);
        let (expiring, next): (Option<i64>, Option<String>) = sqlx::query_as(
            "SELECT CAST(SUM(CASE WHEN expires_on <= $3 THEN remaining ELSE 0 END) AS BIGINT), MIN(expires_on) FROM points_ledger \
             WHERE company_id = $1 AND member_id = $2 AND remaining > 0 AND expires_on IS NOT NULL",
        )
        .bind(company.0)
        .bind(member.0)
        .bind(date_str(until))
        .fetch_one(&self.pool)
        .await?;
        Ok(PointsSummary { balance, debt, expiring_30d: expiring.unwrap_or(0), next_expiry: next })
    }

    /// A member's ledger, newest first: one page of `q.limit` entries (at most 1,000) older than
    /// `q.before_id`, optionally only of one kind and within dates (by the entry's local day).
    pub async fn points_ledger(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: MemberId,
        q: &LedgerQuery,
    ) -> Result<Vec<LedgerEntry>> {
        self.require_member(scope, company, member).await?;
        if let Some(k) = &q.kind
            && EntryKind::parse(k).is_none()
        {
            return Err(StoreError::Invalid(format!("未知的积分类型“{k}”")));
        }
        let rows = sqlx::query(
            "SELECT id, kind, points, cause, at, on_date, expires_on, remaining, detail, actor FROM points_ledger \
             WHERE company_id = $1 AND member_id = $2 AND id < $3 AND ($4 = '' OR kind = $4) \
             AND on_date >= $5 AND on_date <= $6 ORDER BY id DESC LIMIT $7",
        )
        .bind(company.0)
        .bind(member.0)
        .bind(q.before_id.unwrap_or(i64::MAX))
        .bind(q.kind.clone().unwrap_or_default())
        .bind(q.from.map_or_else(|| "0000-01-01".to_string(), date_str))
        .bind(q.to.map_or_else(|| "9999-12-31".to_string(), date_str))
        .bind(q.limit.clamp(1, 1_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get("kind")?;
                Ok(LedgerEntry {
                    id: r.try_get("id")?,
                    kind_label: EntryKind::parse(&kind).map_or("", |k| k.label_zh()).to_string(),
                    kind,
                    points: r.try_get("points")?,
                    cause: r.try_get("cause")?,
                    at: r.try_get("at")?,
                    on_date: r.try_get("on_date")?,
                    expires_on: r.try_get("expires_on")?,
                    remaining: r.try_get("remaining")?,
                    detail: r.try_get("detail")?,
                    actor: r.try_get("actor")?,
                })
            })
            .collect()
    }

    /// Checks every account of a company: balance = sum of its ledger, lots = positive balance.
    /// Returns the members that disagree (empty when consistent). For tests and `rxmember jobs run
    /// check-points`.
    pub async fn check_points(&self, scope: &Scope, company: CompanyId) -> Result<Vec<i64>> {
        scope.require_company_admin(company)?;
        let bad: Vec<(i64,)> = sqlx::query_as(
            "SELECT a.member_id FROM points_accounts a \
             LEFT JOIN (SELECT member_id, CAST(SUM(points) AS BIGINT) AS total, CAST(SUM(remaining) AS BIGINT) AS lots FROM points_ledger \
                        WHERE company_id = $1 GROUP BY member_id) l ON l.member_id = a.member_id \
             WHERE a.company_id = $1 AND (a.balance <> COALESCE(l.total, 0) \
                OR COALESCE(l.lots, 0) <> CASE WHEN a.balance > 0 THEN a.balance ELSE 0 END) ORDER BY a.member_id",
        )
        .bind(company.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(bad.into_iter().map(|(m,)| m).collect())
    }
}

/// Tier statistics of many members on one day, aggregated in SQL: net spend over the 12 months up to
/// `day`, per calendar month (the current month first), and points earned net of take-backs.
pub(crate) async fn tier_stats_of(
    tx: &mut Transaction<'static, Any>,
    b: Backend,
    company: i64,
    members: &[i64],
    day: NaiveDate,
    offset: i32,
    with_points: bool,
) -> Result<Vec<(i64, rxmember_core::tiers::TierStats)>> {
    use crate::db::select_in;
    use rxmember_core::time::local_to_epoch_ms;
    use std::collections::HashMap;
    let ms = |d: NaiveDate| local_to_epoch_ms(d.and_hms_opt(0, 0, 0).unwrap_or_default(), offset);
    let start = day.checked_sub_months(chrono::Months::new(12)).unwrap_or(day) + chrono::Days::new(1);
    let (from, to) = (ms(start), ms(day + chrono::Days::new(1)));
    let first_of_month = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day);
    // Month k back starts at starts[k]; it ends where month k-1 starts (month 0 ends at `to`).
    let starts: Vec<i64> = (0..12)
        .map(|k| ms(first_of_month.checked_sub_months(chrono::Months::new(k)).unwrap_or(first_of_month)))
        .collect();
    let buckets = |col: &str| -> String {
        (0..12)
            .map(|k| {
                let end = if k == 0 { to } else { starts[k - 1] };
                format!(
                    "CAST(SUM(CASE WHEN {col} >= {} AND {col} < {end} THEN amount ELSE 0 END) AS BIGINT) AS m{k}",
                    starts[k]
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out: HashMap<i64, (i64, [i64; 12], i64)> = members.iter().map(|m| (*m, (0, [0; 12], 0))).collect();
    let sales = format!(
        "SELECT member_id, CAST(SUM(amount) AS BIGINT) AS total, {} FROM tickets \
         WHERE company_id = {{company}} AND member_id IN ({{keys}}) AND sold_at >= {from} AND sold_at < {to} GROUP BY member_id",
        buckets("sold_at")
    );
    let returns = format!(
        "SELECT t.member_id, CAST(SUM(r.amount) AS BIGINT) AS total, {} FROM returns r \
         JOIN tickets t ON t.company_id = r.company_id AND t.id = r.ticket_id \
         WHERE r.company_id = {{company}} AND t.member_id IN ({{keys}}) AND r.returned_at >= {from} AND r.returned_at < {to} \
         GROUP BY t.member_id",
        buckets("r.returned_at").replace("THEN amount", "THEN r.amount")
    );
    for (sql, sign) in [(sales, 1i64), (returns, -1i64)] {
        for r in select_in(&mut *tx, b, &sql, company, members).await? {
            let m: i64 = r.try_get("member_id")?;
            let e = out.entry(m).or_insert((0, [0; 12], 0));
            e.0 += sign * r.try_get::<Option<i64>, _>("total")?.unwrap_or(0);
            for k in 0..12 {
                e.1[k] += sign * r.try_get::<Option<i64>, _>(format!("m{k}").as_str())?.unwrap_or(0);
            }
        }
    }
    let points = format!(
        "SELECT member_id, CAST(SUM(points) AS BIGINT) AS total FROM points_ledger WHERE company_id = {{company}} \
         AND member_id IN ({{keys}}) AND kind IN ('earn', 'reverse') AND on_date >= '{}' GROUP BY member_id",
        date_str(start)
    );
    // Points earned over the year, only when a tier condition asks (the costliest of the three).
    if with_points {
        for r in select_in(&mut *tx, b, &points, company, members).await? {
            let m: i64 = r.try_get("member_id")?;
            out.entry(m).or_insert((0, [0; 12], 0)).2 = r.try_get::<Option<i64>, _>("total")?.unwrap_or(0);
        }
    }
    let mut v: Vec<(i64, rxmember_core::tiers::TierStats)> = out
        .into_iter()
        .map(|(m, (annual, monthly, points))| {
            (
                m,
                rxmember_core::tiers::TierStats {
                    annual_spend: Fen(annual),
                    annual_points: points,
                    monthly_spend: monthly.iter().map(|x| Fen(*x)).collect(),
                },
            )
        })
        .collect();
    v.sort_by_key(|(m, _)| *m);
    Ok(v)
}

/// A product's minor category and its major category, from a row with `category_code` and
/// `major_code` (products joined to categories): what category rules match against.
pub(crate) fn categories_of(r: &sqlx::any::AnyRow) -> Result<Vec<String>> {
    Ok(product_categories(r.try_get("category_code")?, r.try_get("major_code")?))
}

/// A product's categories for rules: its own (minor) category, then its major category if different.
pub(crate) fn product_categories(category: Option<String>, major: Option<String>) -> Vec<String> {
    let mut categories = Vec::with_capacity(2);
    categories.extend(category);
    if let Some(m) = major
        && !categories.contains(&m)
    {
        categories.push(m);
    }
    categories
}
