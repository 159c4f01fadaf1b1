//! Sales tickets (小票) with lines, and returns (退货).
//!
//! Import rules (DATA.md "sales"): a line is identified by `(ticket_no, line_no)`. A line stored with
//! the same content is unchanged; with other content it is updated and its ticket's totals are
//! recomputed. Lines of one ticket must agree on the ticket's store, time and card. A card the company
//! does not know yet is kept on the ticket and linked when the member is imported. Each batch is one
//! transaction, so an import killed midway and run again ends as one clean run.

use crate::outcome::{Issue, RowOutcome, RowResult};
use crate::products::ProductRef;
use crate::{Result, Store, StoreError, counters, db::list_placeholders, db::values_placeholders, rowhash};
use rxmember_core::org::Scope;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, Fen, StoreId, TicketId};
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{HashMap, HashSet};

/// What a sales import resolves codes against; loaded once per import.
pub struct SalesContext {
    pub company: CompanyId,
    pub stores: HashMap<String, StoreId>,
    pub products: HashMap<String, ProductRef>,
    /// Card number → member, as known when the import started. Cards never move to another member,
    /// so a hit is reliable; a miss is checked against the database (the member may be newer).
    pub cards: HashMap<String, i64>,
}

pub(crate) fn line_hash(l: &SaleLineInput, line_no: i64) -> Vec<u8> {
    let o = |v: &Option<Fen>| v.map(|f| f.0.to_string()).unwrap_or_default();
    rowhash::of(&[
        &l.ticket_no,
        &line_no.to_string(),
        &l.sold_at.to_string(),
        &l.store_code,
        rowhash::opt(&l.card_no),
        rowhash::opt(&l.clerk_code),
        &l.product_code,
        &l.quantity_milli.to_string(),
        &o(&l.unit_price),
        &l.amount.0.to_string(),
        &l.discount.0.to_string(),
        &o(&l.cost),
    ])
}

/// A ticket as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub company_id: CompanyId,
    pub id: TicketId,
    pub ticket_no: String,
    pub store_id: StoreId,
    pub member_id: Option<i64>,
    pub card_no: Option<String>,
    pub clerk_code: Option<String>,
    pub sold_at: i64,
    pub line_count: i64,
    pub amount: Fen,
    pub discount: Fen,
    pub cost: Fen,
    pub lines: Vec<TicketLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TicketLine {
    pub line_no: i64,
    pub product_id: i64,
    pub product_code: String,
    pub product_name: String,
    pub quantity_milli: i64,
    pub unit_price: Option<Fen>,
    pub amount: Fen,
    pub discount: Fen,
    pub cost: Fen,
    pub returned_quantity_milli: i64,
}

struct Header {
    store_id: i64,
    sold_at: i64,
    card_no: Option<String>,
    clerk_code: Option<String>,
}

struct NewLine {
    ticket_id: i64,
    line_no: i64,
    product_id: i64,
    quantity_milli: i64,
    unit_price: Option<i64>,
    amount: i64,
    discount: i64,
    cost: i64,
    hash: Vec<u8>,
}

const LINE_COLS: usize = 10;
const TICKET_COLS: usize = 13;

impl Store {
    /// Loads what a sales import needs to resolve codes.
    pub async fn sales_context(&self, scope: &Scope, company: CompanyId) -> Result<SalesContext> {
        scope.require_company_admin(company)?;
        let cards: Vec<(String, i64)> =
            sqlx::query_as("SELECT card_no, member_id FROM member_cards WHERE company_id = $1")
                .bind(company.0)
                .fetch_all(&self.pool)
                .await?;
        Ok(SalesContext {
            company,
            stores: self.store_codes(scope, company).await?,
            products: self.product_refs(scope, company).await?,
            cards: cards.into_iter().collect(),
        })
    }

    /// Writes a batch of sales lines, each with its final line number. The caller keeps the lines of a
    /// ticket together in one batch where it can; lines of a ticket split across batches still end
    /// right, their ticket totals recomputed.
    pub async fn write_sales(
        &self,
        scope: &Scope,
        ctx: &SalesContext,
        rows: &[(i64, &SaleLineInput)],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(ctx.company)?;
        let c = ctx.company.0;
        let mut out: Vec<Option<RowResult>> = vec![None; rows.len()];

        // 1. Validate what needs no database.
        let mut headers: HashMap<&str, Header> = HashMap::new();
        let mut seen_lines: HashSet<(&str, i64)> = HashSet::new();
        let mut valid: Vec<usize> = Vec::with_capacity(rows.len());
        for (i, (line_no, l)) in rows.iter().enumerate() {
            let reject = |field: &str, value: String, code: &'static str, msg: String| {
                Some(RowResult::rejected(Issue::new(field, &value, code, msg)))
            };
            let Some(store_id) = ctx.stores.get(&l.store_code) else {
                out[i] = reject(
                    "store_code",
                    l.store_code.clone(),
                    "unknown_store",
                    format!("门店编码“{}”不存在，请先导入门店", l.store_code),
                );
                continue;
            };
            if !ctx.products.contains_key(&l.product_code) {
                out[i] = reject(
                    "product_code",
                    l.product_code.clone(),
                    "unknown_product",
                    format!("商品编码“{}”不存在，请先导入商品", l.product_code),
                );
                continue;
            }
            if l.quantity_milli <= 0 {
                out[i] = reject(
                    "quantity",
                    format!("{}", l.quantity_milli as f64 / 1000.0),
                    "non_positive_quantity",
                    "销售数量必须大于0；负数量只能出现在退货文件中".into(),
                );
                continue;
            }
            if l.amount.0 < 0 {
                out[i] = reject(
                    "amount",
                    l.amount.to_string(),
                    "negative_amount",
                    "销售金额不能为负；退货请用退货文件".into(),
                );
                continue;
            }
            if !seen_lines.insert((l.ticket_no.as_str(), *line_no)) {
                out[i] = reject(
                    "line_no",
                    line_no.to_string(),
                    "duplicate_line",
                    format!("小票“{}”的第{}行重复出现", l.ticket_no, line_no),
                );
                continue;
            }
            match headers.get(l.ticket_no.as_str()) {
                Some(h) if h.store_id != store_id.0 || h.sold_at != l.sold_at || h.card_no != l.card_no => {
                    out[i] = reject(
                        "ticket_no",
                        l.ticket_no.clone(),
                        "ticket_conflict",
                        format!("小票“{}”的各行门店、销售时间或会员卡号不一致", l.ticket_no),
                    );
                    continue;
                }
                Some(_) => {}
                None => {
                    headers.insert(
                        &l.ticket_no,
                        Header {
                            store_id: store_id.0,
                            sold_at: l.sold_at,
                            card_no: l.card_no.clone(),
                            clerk_code: l.clerk_code.clone(),
                        },
                    );
                }
            }
            valid.push(i);
        }

        let mut tx = self.begin_write().await?;
        // 2. Existing tickets, their lines, and the members behind the cards.
        let ticket_nos: Vec<&str> = headers.keys().copied().collect();
        let mut existing: HashMap<String, (i64, i64, i64, Option<String>)> = HashMap::new();
        let ticket_keys: Vec<_> = ticket_nos.iter().map(|t| t.to_string()).collect();
        for r in crate::db::select_in(&mut tx, self.backend, "SELECT ticket_no, id, store_id, sold_at, card_no FROM tickets WHERE company_id = {company} AND ticket_no IN ({keys})", c, &ticket_keys).await? {
                existing.insert(
                    r.try_get("ticket_no")?,
                    (r.try_get("id")?, r.try_get("store_id")?, r.try_get("sold_at")?, r.try_get("card_no")?),
                );
        }
        let mut existing_lines: HashMap<(i64, i64), Vec<u8>> = HashMap::new();
        let ids: Vec<i64> = existing.values().map(|e| e.0).collect();
        for r in crate::db::select_in(&mut tx, self.backend, "SELECT ticket_id, line_no, line_hash FROM ticket_lines WHERE company_id = {company} AND ticket_id IN ({keys})", c, &ids).await? {
                existing_lines.insert((r.try_get("ticket_id")?, r.try_get("line_no")?), r.try_get("line_hash")?);
        }
        // Members behind the cards: from the context's map, the rest from the database.
        let mut members: HashMap<String, i64> = HashMap::new();
        let mut cards: Vec<&str> = Vec::new();
        for card in headers.values().filter_map(|h| h.card_no.as_deref()) {
            match ctx.cards.get(card) {
                Some(m) => {
                    members.insert(card.to_string(), *m);
                }
                None if !cards.contains(&card) => cards.push(card),
                None => {}
            }
        }
        let unknown_cards: Vec<_> = cards.iter().map(|t| t.to_string()).collect();
        for r in crate::db::select_in(
            &mut tx,
            self.backend,
            "SELECT card_no, member_id FROM member_cards WHERE company_id = {company} AND card_no IN ({keys})",
            c,
            &unknown_cards,
        )
        .await?
        {
            members.insert(r.try_get("card_no")?, r.try_get("member_id")?);
        }

        // 3. Classify lines.
        let new_tickets: Vec<&str> = ticket_nos.iter().copied().filter(|t| !existing.contains_key(*t)).collect();
        let mut next_id = counters::allocate(&mut tx, c, "ticket", (new_tickets.len() as i64).max(1)).await?;
        let mut ticket_ids: HashMap<&str, i64> = HashMap::new();
        for t in &new_tickets {
            ticket_ids.insert(t, next_id);
            next_id += 1;
        }
        let mut inserts: Vec<NewLine> = Vec::new();
        let mut updates: Vec<NewLine> = Vec::new();
        let mut touched: HashSet<i64> = HashSet::new();
        let mut header_changed: HashSet<i64> = HashSet::new();
        let mut totals: HashMap<i64, (i64, i64, i64, i64)> = HashMap::new();
        for &i in &valid {
            let (line_no, l) = &rows[i];
            let mut warnings = Vec::new();
            if let Some(card) = &l.card_no
                && !members.contains_key(card)
            {
                warnings.push(Issue::new(
                    "card_no",
                    card,
                    "unknown_card",
                    format!("会员卡号“{card}”尚未导入，小票暂按非会员保存，导入该会员后自动关联"),
                ));
            }
            let product = ctx.products[&l.product_code];
            let cost =
                l.cost.or_else(|| product.cost_price.map(|p| p.times_milli(l.quantity_milli))).unwrap_or_default();
            let h = line_hash(l, *line_no);
            let (ticket_id, is_new_ticket) = match existing.get(&l.ticket_no) {
                Some(e) => {
                    let hdr = &headers[l.ticket_no.as_str()];
                    if e.1 != hdr.store_id || e.2 != hdr.sold_at || e.3 != hdr.card_no {
                        header_changed.insert(e.0);
                    }
                    (e.0, false)
                }
                None => (ticket_ids[l.ticket_no.as_str()], true),
            };
            let line = NewLine {
                ticket_id,
                line_no: *line_no,
                product_id: product.id.0,
                quantity_milli: l.quantity_milli,
                unit_price: l.unit_price.map(|f| f.0),
                amount: l.amount.0,
                discount: l.discount.0,
                cost: cost.0,
                hash: h.clone(),
            };
            let outcome = match existing_lines.get(&(ticket_id, *line_no)) {
                Some(old) if *old == h => RowOutcome::Unchanged,
                Some(_) => {
                    touched.insert(ticket_id);
                    updates.push(line);
                    RowOutcome::Updated
                }
                None => {
                    if is_new_ticket {
                        let t = totals.entry(ticket_id).or_default();
                        t.0 += 1;
                        t.1 += l.amount.0;
                        t.2 += l.discount.0;
                        t.3 += cost.0;
                    } else {
                        touched.insert(ticket_id);
                    }
                    inserts.push(line);
                    RowOutcome::Inserted
                }
            };
            out[i] = Some(RowResult { outcome, warnings });
        }

        // 4. Write: new tickets with their totals, new lines, changed lines, recomputed totals.
        let now = now_ms();
        let new_rows: Vec<(&str, i64)> =
            new_tickets.iter().filter_map(|t| totals.get(&ticket_ids[t]).map(|_| (*t, ticket_ids[t]))).collect();
        for chunk in new_rows.chunks(self.backend.rows_per_insert(TICKET_COLS)) {
            let sql = format!(
                "INSERT INTO tickets (company_id, id, ticket_no, store_id, member_id, card_no, clerk_code, sold_at, line_count, amount, discount, cost, created_at) VALUES {}",
                values_placeholders(self.backend, chunk.len(), TICKET_COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (t, id) in chunk {
                let h = &headers[t];
                let tot = totals[id];
                q = q
                    .bind(c)
                    .bind(*id)
                    .bind(*t)
                    .bind(h.store_id)
                    .bind(h.card_no.as_ref().and_then(|card| members.get(card).copied()))
                    .bind(h.card_no.clone())
                    .bind(h.clerk_code.clone())
                    .bind(h.sold_at)
                    .bind(tot.0)
                    .bind(tot.1)
                    .bind(tot.2)
                    .bind(tot.3)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in inserts.chunks(self.backend.rows_per_insert(LINE_COLS)) {
            let sql = format!(
                "INSERT INTO ticket_lines (company_id, ticket_id, line_no, product_id, quantity_milli, unit_price, amount, discount, cost, line_hash) VALUES {}",
                values_placeholders(self.backend, chunk.len(), LINE_COLS)
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for l in chunk {
                q = q
                    .bind(c)
                    .bind(l.ticket_id)
                    .bind(l.line_no)
                    .bind(l.product_id)
                    .bind(l.quantity_milli)
                    .bind(l.unit_price)
                    .bind(l.amount)
                    .bind(l.discount)
                    .bind(l.cost)
                    .bind(l.hash.clone());
            }
            q.execute(&mut *tx).await?;
        }
        for l in &updates {
            sqlx::query(
                "UPDATE ticket_lines SET product_id = $4, quantity_milli = $5, unit_price = $6, amount = $7, discount = $8, cost = $9, line_hash = $10 \
                 WHERE company_id = $1 AND ticket_id = $2 AND line_no = $3",
            )
            .bind(c)
            .bind(l.ticket_id)
            .bind(l.line_no)
            .bind(l.product_id)
            .bind(l.quantity_milli)
            .bind(l.unit_price)
            .bind(l.amount)
            .bind(l.discount)
            .bind(l.cost)
            .bind(l.hash.clone())
            .execute(&mut *tx)
            .await?;
        }
        for (t, e) in &existing {
            if !header_changed.contains(&e.0) {
                continue;
            }
            let h = &headers[t.as_str()];
            sqlx::query("UPDATE tickets SET store_id = $3, sold_at = $4, card_no = $5, member_id = $6, clerk_code = $7 WHERE company_id = $1 AND id = $2")
                .bind(c)
                .bind(e.0)
                .bind(h.store_id)
                .bind(h.sold_at)
                .bind(h.card_no.clone())
                .bind(h.card_no.as_ref().and_then(|card| members.get(card).copied()))
                .bind(h.clerk_code.clone())
                .execute(&mut *tx)
                .await?;
        }
        let touched: Vec<i64> = touched.into_iter().collect();
        for chunk in touched.chunks(1000) {
            let sql = format!(
                "UPDATE tickets SET \
                 line_count = (SELECT COUNT(*) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
                 amount = (SELECT CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
                 discount = (SELECT CAST(COALESCE(SUM(l.discount), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
                 cost = (SELECT CAST(COALESCE(SUM(l.cost), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id) \
                 WHERE company_id = {} AND id IN ({})",
                crate::db::placeholder(self.backend, 1),
                list_placeholders(self.backend, 2, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).bind(c);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(out.into_iter().map(|o| o.expect("every row classified")).collect())
    }

    /// Writes a batch of returned lines. A return must name a stored ticket and a product on it, and
    /// may not return more than was sold (counting earlier returns).
    pub async fn write_returns(
        &self,
        scope: &Scope,
        company: CompanyId,
        products: &HashMap<String, ProductRef>,
        rows: &[ReturnInput],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(company)?;
        let c = company.0;
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let reject = |field: &str, value: &str, code: &'static str, msg: String| {
                RowResult::rejected(Issue::new(field, value, code, msg))
            };
            let Some(product) = products.get(&r.product_code) else {
                out.push(reject(
                    "product_code",
                    &r.product_code,
                    "unknown_product",
                    format!("商品编码“{}”不存在", r.product_code),
                ));
                continue;
            };
            let ticket: Option<i64> =
                sqlx::query_scalar("SELECT id FROM tickets WHERE company_id = $1 AND ticket_no = $2")
                    .bind(c)
                    .bind(r.ticket_no.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(ticket_id) = ticket else {
                out.push(reject(
                    "ticket_no",
                    &r.ticket_no,
                    "unknown_ticket",
                    format!("原小票“{}”不存在，请先导入销售", r.ticket_no),
                ));
                continue;
            };
            let sold: (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(quantity_milli), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ticket_lines WHERE company_id = $1 AND ticket_id = $2 AND product_id = $3",
            )
            .bind(c)
            .bind(ticket_id)
            .bind(product.id.0)
            .fetch_one(&mut *tx)
            .await?;
            if sold.0 == 0 {
                out.push(reject(
                    "product_code",
                    &r.product_code,
                    "not_on_ticket",
                    format!("商品“{}”不在原小票“{}”上", r.product_code, r.ticket_no),
                ));
                continue;
            }
            let h = rowhash::of(&[
                &r.return_no,
                &r.ticket_no,
                &r.product_code,
                &r.returned_at.to_string(),
                &r.quantity_milli.to_string(),
                &r.amount.0.to_string(),
            ]);
            let prior: Option<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT id, row_hash FROM returns WHERE company_id = $1 AND return_no = $2 AND ticket_id = $3 AND product_id = $4",
            )
            .bind(c)
            .bind(r.return_no.as_str())
            .bind(ticket_id)
            .bind(product.id.0)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((_, old)) = &prior
                && *old == h
            {
                out.push(RowResult::of(RowOutcome::Unchanged));
                continue;
            }
            let other_returns: (i64, i64) = sqlx::query_as(
                "SELECT CAST(COALESCE(SUM(quantity_milli), 0) AS BIGINT), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM returns \
                 WHERE company_id = $1 AND ticket_id = $2 AND product_id = $3 AND return_no <> $4",
            )
            .bind(c)
            .bind(ticket_id)
            .bind(product.id.0)
            .bind(r.return_no.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if r.quantity_milli <= 0 {
                out.push(reject(
                    "quantity",
                    &r.quantity_milli.to_string(),
                    "non_positive_quantity",
                    "退货数量不能为0".into(),
                ));
                continue;
            }
            if other_returns.0 + r.quantity_milli > sold.0 {
                out.push(reject(
                    "quantity",
                    &format!("{}", r.quantity_milli as f64 / 1000.0),
                    "over_return",
                    format!(
                        "退货数量超过原小票可退数量（已售{}，已退{}）",
                        sold.0 as f64 / 1000.0,
                        other_returns.0 as f64 / 1000.0
                    ),
                ));
                continue;
            }
            if other_returns.1 + r.amount.0 > sold.1 {
                out.push(reject(
                    "amount",
                    &r.amount.to_string(),
                    "over_return",
                    format!("退货金额超过原小票实收金额（{}元）", Fen(sold.1)),
                ));
                continue;
            }
            match prior {
                Some((id, _)) => {
                    sqlx::query("UPDATE returns SET returned_at = $3, quantity_milli = $4, amount = $5, row_hash = $6 WHERE company_id = $1 AND id = $2")
                        .bind(c)
                        .bind(id)
                        .bind(r.returned_at)
                        .bind(r.quantity_milli)
                        .bind(r.amount.0)
                        .bind(h)
                        .execute(&mut *tx)
                        .await?;
                    out.push(RowResult::of(RowOutcome::Updated));
                }
                None => {
                    let id = counters::allocate(&mut tx, c, "return", 1).await?;
                    sqlx::query(
                        "INSERT INTO returns (company_id, id, return_no, ticket_id, product_id, returned_at, quantity_milli, amount, row_hash, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(c)
                    .bind(id)
                    .bind(r.return_no.as_str())
                    .bind(ticket_id)
                    .bind(product.id.0)
                    .bind(r.returned_at)
                    .bind(r.quantity_milli)
                    .bind(r.amount.0)
                    .bind(h)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    out.push(RowResult::of(RowOutcome::Inserted));
                }
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Tickets of a company in the caller's scope, newest first; optionally of one member.
    pub async fn tickets(
        &self,
        scope: &Scope,
        company: CompanyId,
        member: Option<i64>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Ticket>> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let (store_filter, stores) = store_scope(scope, 5);
        let sql = format!(
            "SELECT id FROM tickets WHERE company_id = $1 AND ($2 IS NULL OR member_id = $2) {store_filter} ORDER BY sold_at DESC, id DESC LIMIT $3 OFFSET $4"
        );
        let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
            .bind(company.0)
            .bind(member)
            .bind(limit.clamp(1, 500))
            .bind(offset.max(0));
        for s in stores {
            q = q.bind(s);
        }
        let ids = q.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.ticket(scope, company, TicketId(id)).await?);
        }
        Ok(out)
    }

    /// One ticket with its lines and what has been returned of each.
    pub async fn ticket(&self, scope: &Scope, company: CompanyId, id: TicketId) -> Result<Ticket> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let (store_filter, stores) = store_scope(scope, 3);
        let sql = format!("SELECT * FROM tickets WHERE company_id = $1 AND id = $2 {store_filter}");
        let mut q = sqlx::query(AssertSqlSafe(sql)).bind(company.0).bind(id.0);
        for s in stores {
            q = q.bind(s);
        }
        let r =
            q.fetch_optional(&self.pool).await?.ok_or_else(|| StoreError::NotFound { what: format!("ticket {id}") })?;
        let lines = sqlx::query(
            "SELECT l.*, p.code AS product_code, p.name AS product_name, \
             (SELECT CAST(COALESCE(SUM(x.quantity_milli), 0) AS BIGINT) FROM returns x WHERE x.company_id = l.company_id AND x.ticket_id = l.ticket_id AND x.product_id = l.product_id) AS returned \
             FROM ticket_lines l JOIN products p ON p.company_id = l.company_id AND p.id = l.product_id \
             WHERE l.company_id = $1 AND l.ticket_id = $2 ORDER BY l.line_no",
        )
        .bind(company.0)
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(Ticket {
            company_id: company,
            id,
            ticket_no: r.try_get("ticket_no")?,
            store_id: StoreId(r.try_get("store_id")?),
            member_id: r.try_get("member_id")?,
            card_no: r.try_get("card_no")?,
            clerk_code: r.try_get("clerk_code")?,
            sold_at: r.try_get("sold_at")?,
            line_count: r.try_get("line_count")?,
            amount: Fen(r.try_get("amount")?),
            discount: Fen(r.try_get("discount")?),
            cost: Fen(r.try_get("cost")?),
            lines: lines
                .iter()
                .map(|l| {
                    Ok(TicketLine {
                        line_no: l.try_get("line_no")?,
                        product_id: l.try_get("product_id")?,
                        product_code: l.try_get("product_code")?,
                        product_name: l.try_get("product_name")?,
                        quantity_milli: l.try_get("quantity_milli")?,
                        unit_price: l.try_get::<Option<i64>, _>("unit_price")?.map(Fen),
                        amount: Fen(l.try_get("amount")?),
                        discount: Fen(l.try_get("discount")?),
                        cost: Fen(l.try_get("cost")?),
                        returned_quantity_milli: l.try_get("returned")?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// Sales totals of a company: (tickets, lines, amount, member tickets). For reports and tests.
    pub async fn sales_totals(&self, scope: &Scope, company: CompanyId) -> Result<(i64, i64, Fen, i64)> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let r = sqlx::query(
            "SELECT COUNT(*) AS tickets, CAST(COALESCE(SUM(line_count), 0) AS BIGINT) AS lines, CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS amount, \
             COUNT(member_id) AS member_tickets FROM tickets WHERE company_id = $1",
        )
        .bind(company.0)
        .fetch_one(&self.pool)
        .await?;
        Ok((r.try_get("tickets")?, r.try_get("lines")?, Fen(r.try_get("amount")?), r.try_get("member_tickets")?))
    }
}

/// Ticket visibility by store for store-scoped callers: a SQL fragment with placeholders from `$from`
/// (after the fixed ones) and its values. Clerks see the tickets of their own members only through
/// member pages, so here they are limited like store managers to their stores (none: nothing).
fn store_scope(scope: &Scope, from: usize) -> (String, Vec<i64>) {
    use rxmember_core::org::DataScope;
    match &scope.data {
        DataScope::Stores { stores, .. } if !stores.is_empty() => {
            let list: Vec<String> = (0..stores.len()).map(|i| format!("${}", i + from)).collect();
            (format!("AND store_id IN ({})", list.join(",")), stores.iter().map(|s| s.0).collect())
        }
        DataScope::Stores { .. } | DataScope::OwnMembers { .. } => ("AND 1 = 0".into(), vec![]),
        _ => (String::new(), vec![]),
    }
}
