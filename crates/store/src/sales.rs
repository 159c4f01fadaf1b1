//! Sales tickets (小票) with lines, and returns (退货).
//!
//! Import rules (DATA.md "sales"): a line is identified by `(ticket_no, line_no)`. A line stored with
//! the same content is unchanged; with other content it is updated and its ticket's totals are
//! recomputed. Lines of one ticket must agree on the ticket's store, time and card. A card the company
//! does not know yet is kept on the ticket and linked when the member is imported. Each batch is one
//! transaction, so an import killed midway and run again ends as one clean run.
//!
//! A batch is checked, looked up, classified and written. Checking and classifying are the same on
//! both backends; on SQLite the lookups and writes go through the import's own native connection
//! ([`crate::sqlite_native`]), one prepared statement stepped per row; on PostgreSQL through the pool,
//! with `IN (...)` lookups and multi-row inserts.

use crate::outcome::{Issue, RowOutcome, RowResult};
use crate::products::ProductRef;
use crate::rowhash::{self, RowHasher};
use crate::sqlite_native::{Db, NativeSqlite, params};
use crate::{Result, Store, StoreError, counters, db::list_placeholders, db::values_placeholders};
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
    pub stores: FastMap<String, StoreId>,
    pub products: FastMap<String, ProductRef>,
    /// Card number → member, as known when the import started. Cards never move to another member,
    /// so a hit is reliable; a miss is checked against the database (the member may be newer).
    pub cards: FastMap<String, i64>,
    /// On SQLite: the import's own connection for the native bulk path, opened with the context.
    native: Option<tokio::sync::Mutex<NativeSqlite>>,
}

/// The content hash of a sales line: equal hash, nothing to change. 16 bytes of SHA-256.
pub type LineHash = [u8; 16];

/// The hash a sales line is stored with. Pure, so the importer computes it on its reader thread,
/// off the database writer's critical path.
pub fn line_hash(l: &SaleLineInput, line_no: i64) -> LineHash {
    let mut h = RowHasher::default();
    h.text(&l.ticket_no);
    h.int(line_no);
    h.int(l.sold_at);
    h.text(&l.store_code);
    h.text(rowhash::opt(&l.card_no));
    h.text(rowhash::opt(&l.clerk_code));
    h.text(&l.product_code);
    h.int(l.quantity_milli);
    match l.unit_price {
        Some(f) => h.int(f.0),
        None => h.text(""),
    }
    h.int(l.amount.0);
    h.int(l.discount.0);
    match l.cost {
        Some(f) => h.int(f.0),
        None => h.text(""),
    }
    h.finish()
}

/// A stored hash as a [`LineHash`]; one of another length (never written) matches nothing.
fn stored_hash(b: &[u8]) -> LineHash {
    b.try_into().unwrap_or([0xff; 16])
}

/// One sales line ready to write: its final line number and its [`line_hash`].
#[derive(Debug, Clone, Copy)]
pub struct SaleRow<'a> {
    pub line_no: i64,
    pub line: &'a SaleLineInput,
    pub hash: LineHash,
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

/// Maps looked up for every line of a batch: foldhash instead of the DoS-resistant default hasher,
/// which was a tenth of the writer's time (the keys come from the company's own files).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// What the lines of one ticket in a batch must agree on.
struct Header<'a> {
    store_id: i64,
    sold_at: i64,
    card_no: Option<&'a str>,
    clerk_code: Option<&'a str>,
}

/// A ticket of a batch, with its lines' totals as if they were all new.
struct BatchTicket<'a> {
    ticket_no: &'a str,
    header: Header<'a>,
    line_count: i64,
    amount: i64,
    discount: i64,
    cost: i64,
}

/// A row that passed the checks: its position in the batch, its ticket's index in
/// [`Checked::tickets`], its product and cost.
struct ValidRow {
    row: usize,
    ticket: usize,
    product_id: i64,
    cost: i64,
}

/// A batch after the checks that need no database.
struct Checked<'a> {
    /// The batch's tickets in the order first seen (new tickets get their ids in this order).
    tickets: Vec<BatchTicket<'a>>,
    /// Ticket number → index in `tickets`.
    index: FastMap<&'a str, usize>,
    valid: Vec<ValidRow>,
}

/// What the database already holds for a batch.
struct Stored {
    /// Per ticket of the batch (same index), the stored ticket if there is one.
    tickets: Vec<Option<StoredTicket>>,
    /// (ticket id, line number) → hash, for the stored tickets.
    lines: FastMap<(i64, i64), LineHash>,
    /// Members behind the batch's cards that the context did not know.
    members: FastMap<String, i64>,
}

impl Stored {
    fn new(tickets: usize) -> Stored {
        Stored {
            tickets: std::iter::repeat_with(|| None).take(tickets).collect(),
            lines: FastMap::default(),
            members: FastMap::default(),
        }
    }

    fn new_ticket_count(&self) -> i64 {
        self.tickets.iter().filter(|t| t.is_none()).count() as i64
    }
}

struct StoredTicket {
    id: i64,
    store_id: i64,
    sold_at: i64,
    card_no: Option<String>,
}

/// The writes a batch needs.
struct Plan<'c> {
    new_tickets: Vec<NewTicket<'c>>,
    inserts: Vec<NewLine>,
    updates: Vec<NewLine>,
    /// Stored tickets whose store, time or card changed: (id, header, member).
    changed_headers: Vec<(i64, &'c Header<'c>, Option<i64>)>,
    /// Stored tickets whose lines changed: their totals are recomputed.
    touched: Vec<i64>,
}

struct NewTicket<'c> {
    id: i64,
    ticket: &'c BatchTicket<'c>,
    member_id: Option<i64>,
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
    hash: LineHash,
}

const LINE_COLS: usize = 10;
const TICKET_COLS: usize = 13;

// Statements both backends run as they are: parameters numbered in the order they appear.
const UPDATE_LINE: &str = "UPDATE ticket_lines SET product_id = $1, quantity_milli = $2, unit_price = $3, amount = $4, \
     discount = $5, cost = $6, line_hash = $7 WHERE company_id = $8 AND ticket_id = $9 AND line_no = $10";
const UPDATE_HEADER: &str = "UPDATE tickets SET store_id = $1, sold_at = $2, card_no = $3, member_id = $4, clerk_code = $5 \
     WHERE company_id = $6 AND id = $7";
const RECOMPUTE_TOTALS: &str = "UPDATE tickets SET \
     line_count = (SELECT COUNT(*) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
     amount = (SELECT CAST(COALESCE(SUM(l.amount), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
     discount = (SELECT CAST(COALESCE(SUM(l.discount), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id), \
     cost = (SELECT CAST(COALESCE(SUM(l.cost), 0) AS BIGINT) FROM ticket_lines l WHERE l.company_id = tickets.company_id AND l.ticket_id = tickets.id)";
const INSERT_TICKET: &str = "INSERT INTO tickets (company_id, id, ticket_no, store_id, member_id, card_no, clerk_code, sold_at, line_count, amount, discount, cost, created_at) VALUES ";
const INSERT_LINE: &str = "INSERT INTO ticket_lines (company_id, ticket_id, line_no, product_id, quantity_milli, unit_price, amount, discount, cost, line_hash) VALUES ";

/// Checks what needs no database: known store and product, positive quantity, no negative amount,
/// no line twice, and the lines of a ticket agreeing on its header. Returns each row's fate so far
/// (`None`: not decided yet) and what passed.
fn check<'a>(ctx: &SalesContext, rows: &[SaleRow<'a>]) -> (Vec<Option<RowResult>>, Checked<'a>) {
    let mut out = vec![None; rows.len()];
    let mut c = Checked { tickets: Vec::new(), index: FastMap::default(), valid: Vec::with_capacity(rows.len()) };
    let mut seen_lines: FastSet<(usize, i64)> = FastSet::default();
    // Lines of a ticket come together and a store's tickets often do: remember the last of each.
    let mut last_store: Option<(&str, i64)> = None;
    let mut last_ticket: Option<(&str, usize)> = None;
    for (i, row) in rows.iter().enumerate() {
        let (line_no, l) = (row.line_no, row.line);
        let reject = |field: &str, value: String, code: &'static str, msg: String| {
            Some(RowResult::rejected(Issue::new(field, &value, code, msg)))
        };
        let store_id = match last_store {
            Some((code, id)) if code == l.store_code => id,
            _ => match ctx.stores.get(&l.store_code) {
                Some(id) => {
                    last_store = Some((&l.store_code, id.0));
                    id.0
                }
                None => {
                    out[i] = reject(
                        "store_code",
                        l.store_code.clone(),
                        "unknown_store",
                        format!("门店编码“{}”不存在，请先导入门店", l.store_code),
                    );
                    continue;
                }
            },
        };
        let Some(product) = ctx.products.get(&l.product_code) else {
            out[i] = reject(
                "product_code",
                l.product_code.clone(),
                "unknown_product",
                format!("商品编码“{}”不存在，请先导入商品", l.product_code),
            );
            continue;
        };
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
            out[i] =
                reject("amount", l.amount.to_string(), "negative_amount", "销售金额不能为负；退货请用退货文件".into());
            continue;
        }
        let known = match last_ticket {
            Some((no, t)) if no == l.ticket_no => Some(t),
            _ => c.index.get(l.ticket_no.as_str()).copied(),
        };
        if let Some(t) = known
            && !seen_lines.insert((t, line_no))
        {
            out[i] = reject(
                "line_no",
                line_no.to_string(),
                "duplicate_line",
                format!("小票“{}”的第{}行重复出现", l.ticket_no, line_no),
            );
            continue;
        }
        let t = match known {
            Some(t) => {
                let h = &c.tickets[t].header;
                if h.store_id != store_id || h.sold_at != l.sold_at || h.card_no != l.card_no.as_deref() {
                    out[i] = reject(
                        "ticket_no",
                        l.ticket_no.clone(),
                        "ticket_conflict",
                        format!("小票“{}”的各行门店、销售时间或会员卡号不一致", l.ticket_no),
                    );
                    continue;
                }
                t
            }
            None => {
                let t = c.tickets.len();
                c.index.insert(&l.ticket_no, t);
                seen_lines.insert((t, line_no));
                c.tickets.push(BatchTicket {
                    ticket_no: &l.ticket_no,
                    header: Header {
                        store_id,
                        sold_at: l.sold_at,
                        card_no: l.card_no.as_deref(),
                        clerk_code: l.clerk_code.as_deref(),
                    },
                    line_count: 0,
                    amount: 0,
                    discount: 0,
                    cost: 0,
                });
                t
            }
        };
        last_ticket = Some((&l.ticket_no, t));
        let cost = l.cost.or_else(|| product.cost_price.map(|p| p.times_milli(l.quantity_milli))).unwrap_or_default().0;
        let ticket = &mut c.tickets[t];
        ticket.line_count += 1;
        ticket.amount += l.amount.0;
        ticket.discount += l.discount.0;
        ticket.cost += cost;
        c.valid.push(ValidRow { row: i, ticket: t, product_id: product.id.0, cost });
    }
    (out, c)
}

impl Checked<'_> {
    /// The batch's cards the context does not know, each once: the database may know them.
    fn unknown_cards(&self, ctx: &SalesContext) -> Vec<&str> {
        let mut seen = FastSet::default();
        self.tickets
            .iter()
            .filter_map(|t| t.header.card_no)
            .filter(|card| !ctx.cards.contains_key(*card) && seen.insert(*card))
            .collect()
    }
}

/// Decides each valid row's fate against what is stored, and the writes that follow. New tickets take
/// ids from `first_id` on, in the order first seen; their totals are their lines' sums, since all
/// their lines are new.
fn classify<'c>(
    ctx: &SalesContext,
    rows: &[SaleRow<'_>],
    checked: &'c Checked<'_>,
    stored: &Stored,
    first_id: i64,
    out: &mut [Option<RowResult>],
) -> Plan<'c> {
    let mut plan = Plan {
        new_tickets: Vec::new(),
        inserts: Vec::with_capacity(checked.valid.len()),
        updates: Vec::new(),
        changed_headers: Vec::new(),
        touched: Vec::new(),
    };
    // Per ticket of the batch: its id, whether it is new, and its member.
    let mut ids: Vec<(i64, bool, Option<i64>)> = Vec::with_capacity(checked.tickets.len());
    let mut next_id = first_id;
    for (ticket, s) in checked.tickets.iter().zip(&stored.tickets) {
        let header = &ticket.header;
        let member_id =
            header.card_no.and_then(|card| ctx.cards.get(card).or_else(|| stored.members.get(card)).copied());
        match s {
            Some(s) => {
                if s.store_id != header.store_id
                    || s.sold_at != header.sold_at
                    || s.card_no.as_deref() != header.card_no
                {
                    plan.changed_headers.push((s.id, header, member_id));
                }
                ids.push((s.id, false, member_id));
            }
            None => {
                plan.new_tickets.push(NewTicket { id: next_id, ticket, member_id });
                ids.push((next_id, true, member_id));
                next_id += 1;
            }
        }
    }
    let mut touched: FastSet<i64> = FastSet::default();
    for v in &checked.valid {
        let SaleRow { line_no, line: l, hash } = rows[v.row];
        let (ticket_id, is_new, member_id) = ids[v.ticket];
        let mut warnings = Vec::new();
        if let Some(card) = &l.card_no
            && member_id.is_none()
        {
            warnings.push(Issue::new(
                "card_no",
                card,
                "unknown_card",
                format!("会员卡号“{card}”尚未导入，小票暂按非会员保存，导入该会员后自动关联"),
            ));
        }
        let line = NewLine {
            ticket_id,
            line_no,
            product_id: v.product_id,
            quantity_milli: l.quantity_milli,
            unit_price: l.unit_price.map(|f| f.0),
            amount: l.amount.0,
            discount: l.discount.0,
            cost: v.cost,
            hash,
        };
        let old = if is_new { None } else { stored.lines.get(&(ticket_id, line_no)) };
        let outcome = match old {
            Some(old) if *old == hash => RowOutcome::Unchanged,
            Some(_) => {
                touched.insert(ticket_id);
                plan.updates.push(line);
                RowOutcome::Updated
            }
            None => {
                if !is_new {
                    touched.insert(ticket_id);
                }
                plan.inserts.push(line);
                RowOutcome::Inserted
            }
        };
        out[v.row] = Some(RowResult { outcome, warnings });
    }
    plan.touched = touched.into_iter().collect();
    plan.touched.sort_unstable();
    plan
}

impl Store {
    /// Loads what a sales import needs to resolve codes, and on SQLite opens the import's own
    /// connection for the native bulk path.
    pub async fn sales_context(&self, scope: &Scope, company: CompanyId) -> Result<SalesContext> {
        scope.require_company_admin(company)?;
        let cards: Vec<(String, i64)> =
            sqlx::query_as("SELECT card_no, member_id FROM member_cards WHERE company_id = $1")
                .bind(company.0)
                .fetch_all(&self.pool)
                .await?;
        let native = match &self.sqlite_url {
            Some(url) => Some(tokio::sync::Mutex::new(NativeSqlite::open(url).await?)),
            None => None,
        };
        Ok(SalesContext {
            company,
            stores: self.store_codes(scope, company).await?.into_iter().collect(),
            products: self.product_refs(scope, company).await?.into_iter().collect(),
            cards: cards.into_iter().collect(),
            native,
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
        let rows: Vec<SaleRow> =
            rows.iter().map(|&(line_no, line)| SaleRow { line_no, line, hash: line_hash(line, line_no) }).collect();
        self.write_sale_rows(scope, ctx, &rows).await
    }

    /// [`Store::write_sales`] for lines already hashed by the caller.
    pub async fn write_sale_rows(
        &self,
        scope: &Scope,
        ctx: &SalesContext,
        rows: &[SaleRow<'_>],
    ) -> Result<Vec<RowResult>> {
        scope.require_company_admin(ctx.company)?;
        let (mut out, checked) = check(ctx, rows);
        match &ctx.native {
            Some(native) => native.lock().await.write(|db| write_native(db, ctx, rows, &checked, &mut out)).await?,
            None => self.write_pooled(ctx, rows, &checked, &mut out).await?,
        }
        Ok(out.into_iter().map(|o| o.expect("every row classified")).collect())
    }

    /// The pooled path (PostgreSQL): lookups by `IN (...)` lists, multi-row inserts. It runs on SQLite
    /// too, through the `Any` driver, but a SQLite store always has its native path.
    async fn write_pooled(
        &self,
        ctx: &SalesContext,
        rows: &[SaleRow<'_>],
        checked: &Checked<'_>,
        out: &mut [Option<RowResult>],
    ) -> Result<()> {
        let c = ctx.company.0;
        let mut tx = self.begin_write().await?;
        let mut stored = Stored::new(checked.tickets.len());
        let keys: Vec<String> = checked.tickets.iter().map(|t| t.ticket_no.to_string()).collect();
        let sql = "SELECT ticket_no, id, store_id, sold_at, card_no FROM tickets WHERE company_id = {company} AND ticket_no IN ({keys})";
        for r in crate::db::select_in(&mut tx, self.backend, sql, c, &keys).await? {
            let t = StoredTicket {
                id: r.try_get("id")?,
                store_id: r.try_get("store_id")?,
                sold_at: r.try_get("sold_at")?,
                card_no: r.try_get("card_no")?,
            };
            let ticket_no: String = r.try_get("ticket_no")?;
            if let Some(&i) = checked.index.get(ticket_no.as_str()) {
                stored.tickets[i] = Some(t);
            }
        }
        let ids: Vec<i64> = stored.tickets.iter().flatten().map(|t| t.id).collect();
        let sql = "SELECT ticket_id, line_no, line_hash FROM ticket_lines WHERE company_id = {company} AND ticket_id IN ({keys})";
        for r in crate::db::select_in(&mut tx, self.backend, sql, c, &ids).await? {
            let hash: Vec<u8> = r.try_get("line_hash")?;
            stored.lines.insert((r.try_get("ticket_id")?, r.try_get("line_no")?), stored_hash(&hash));
        }
        let cards: Vec<String> = checked.unknown_cards(ctx).into_iter().map(String::from).collect();
        let sql = "SELECT card_no, member_id FROM member_cards WHERE company_id = {company} AND card_no IN ({keys})";
        for r in crate::db::select_in(&mut tx, self.backend, sql, c, &cards).await? {
            stored.members.insert(r.try_get("card_no")?, r.try_get("member_id")?);
        }
        let first_id = counters::allocate(&mut tx, c, "ticket", stored.new_ticket_count().max(1)).await?;
        let plan = classify(ctx, rows, checked, &stored, first_id, out);

        let now = now_ms();
        for chunk in plan.new_tickets.chunks(self.backend.rows_per_insert(TICKET_COLS)) {
            let sql = format!("{INSERT_TICKET}{}", values_placeholders(self.backend, chunk.len(), TICKET_COLS));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for NewTicket { id, ticket: t, member_id } in chunk {
                q = q
                    .bind(c)
                    .bind(*id)
                    .bind(t.ticket_no)
                    .bind(t.header.store_id)
                    .bind(*member_id)
                    .bind(t.header.card_no.map(String::from))
                    .bind(t.header.clerk_code.map(String::from))
                    .bind(t.header.sold_at)
                    .bind(t.line_count)
                    .bind(t.amount)
                    .bind(t.discount)
                    .bind(t.cost)
                    .bind(now);
            }
            q.execute(&mut *tx).await?;
        }
        for chunk in plan.inserts.chunks(self.backend.rows_per_insert(LINE_COLS)) {
            let sql = format!("{INSERT_LINE}{}", values_placeholders(self.backend, chunk.len(), LINE_COLS));
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
                    .bind(l.hash.to_vec());
            }
            q.execute(&mut *tx).await?;
        }
        for l in &plan.updates {
            sqlx::query(UPDATE_LINE)
                .bind(l.product_id)
                .bind(l.quantity_milli)
                .bind(l.unit_price)
                .bind(l.amount)
                .bind(l.discount)
                .bind(l.cost)
                .bind(l.hash.to_vec())
                .bind(c)
                .bind(l.ticket_id)
                .bind(l.line_no)
                .execute(&mut *tx)
                .await?;
        }
        for (id, h, member_id) in &plan.changed_headers {
            sqlx::query(UPDATE_HEADER)
                .bind(h.store_id)
                .bind(h.sold_at)
                .bind(h.card_no.map(String::from))
                .bind(*member_id)
                .bind(h.clerk_code.map(String::from))
                .bind(c)
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in plan.touched.chunks(1000) {
            let sql = format!(
                "{RECOMPUTE_TOTALS} WHERE company_id = {} AND id IN ({})",
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
        Ok(())
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

/// The native SQLite path: every lookup and write a prepared statement stepped once per key or row,
/// inside the transaction [`NativeSqlite::write`] holds.
fn write_native(
    db: &Db<'_>,
    ctx: &SalesContext,
    rows: &[SaleRow<'_>],
    checked: &Checked<'_>,
    out: &mut [Option<RowResult>],
) -> Result<()> {
    let c = ctx.company.0;
    let mut stored = Stored::new(checked.tickets.len());
    let mut find_ticket =
        db.prepare("SELECT id, store_id, sold_at, card_no FROM tickets WHERE company_id = $1 AND ticket_no = $2")?;
    let mut find_lines =
        db.prepare("SELECT line_no, line_hash FROM ticket_lines WHERE company_id = $1 AND ticket_id = $2")?;
    for (t, slot) in checked.tickets.iter().zip(&mut stored.tickets) {
        let mut found = None;
        find_ticket.run(params![c, t.ticket_no], |r| {
            found = Some(StoredTicket { id: r.int(0), store_id: r.int(1), sold_at: r.int(2), card_no: r.opt_text(3)? });
            Ok(())
        })?;
        if let Some(ticket) = found {
            find_lines.run(params![c, ticket.id], |r| {
                stored.lines.insert((ticket.id, r.int(0)), stored_hash(r.blob(1)));
                Ok(())
            })?;
            *slot = Some(ticket);
        }
    }
    let mut find_card = db.prepare("SELECT member_id FROM member_cards WHERE company_id = $1 AND card_no = $2")?;
    for card in checked.unknown_cards(ctx) {
        find_card.run(params![c, card], |r| {
            stored.members.insert(card.to_string(), r.int(0));
            Ok(())
        })?;
    }
    let new_tickets = stored.new_ticket_count();
    let first_id = if new_tickets > 0 { counters::allocate_native(db, c, "ticket", new_tickets)? } else { 0 };
    let plan = classify(ctx, rows, checked, &stored, first_id, out);

    let now = now_ms();
    if !plan.new_tickets.is_empty() {
        let mut insert =
            db.prepare(&format!("{INSERT_TICKET}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))?;
        for NewTicket { id, ticket: t, member_id } in &plan.new_tickets {
            let h = &t.header;
            insert.execute(params![
                c,
                *id,
                t.ticket_no,
                h.store_id,
                *member_id,
                h.card_no,
                h.clerk_code,
                h.sold_at,
                t.line_count,
                t.amount,
                t.discount,
                t.cost,
                now
            ])?;
        }
    }
    if !plan.inserts.is_empty() {
        let mut insert = db.prepare(&format!("{INSERT_LINE}($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"))?;
        for l in &plan.inserts {
            insert.execute(params![
                c,
                l.ticket_id,
                l.line_no,
                l.product_id,
                l.quantity_milli,
                l.unit_price,
                l.amount,
                l.discount,
                l.cost,
                &l.hash[..]
            ])?;
        }
    }
    if !plan.updates.is_empty() {
        let mut update = db.prepare(UPDATE_LINE)?;
        for l in &plan.updates {
            update.execute(params![
                l.product_id,
                l.quantity_milli,
                l.unit_price,
                l.amount,
                l.discount,
                l.cost,
                &l.hash[..],
                c,
                l.ticket_id,
                l.line_no
            ])?;
        }
    }
    if !plan.changed_headers.is_empty() {
        let mut update = db.prepare(UPDATE_HEADER)?;
        for (id, h, member_id) in &plan.changed_headers {
            update.execute(params![h.store_id, h.sold_at, h.card_no, *member_id, h.clerk_code, c, *id])?;
        }
    }
    if !plan.touched.is_empty() {
        let mut recompute = db.prepare(&format!("{RECOMPUTE_TOTALS} WHERE company_id = $1 AND id = $2"))?;
        for id in &plan.touched {
            recompute.execute(params![c, *id])?;
        }
    }
    Ok(())
}
