//! The till (POS): identifying a member, loading what a quote needs, and committing a sale or a
//! return in one transaction — the ticket and its lines, coupons redeemed, points spent and earned,
//! the tier re-evaluated, and the answer recorded under the ticket number so a retry gets the same
//! answer and a different request under the same number is refused.

use crate::coupons::HeldCouponRow;
use crate::db::Backend;
use crate::members::{Bind, apply, scope_filter};
use crate::points::{Applied, Cause, TicketForPoints};
use crate::{Result, Store, StoreError, counters};
use chrono::{NaiveDate, NaiveDateTime};
use rxmember_core::checkout::{BasketLine, MemberAtTill, Quote};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::points::{EarnLine, EntryKind};
use rxmember_core::sale::SaleLineInput;
use rxmember_core::time::{local_date, local_to_epoch_ms, now_ms};
use rxmember_core::{CompanyId, Fen, MemberId, StoreId};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, Row};
use std::collections::HashMap;

/// How the cashier names the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKey {
    Card(String),
    Phone(String),
    /// The rotating code of the member's e-card (QR), see [`Store::ecard_code`].
    ECard(String),
}

/// The member as the till sees them: no unmasked personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PosMember {
    pub member_id: i64,
    pub card_no: String,
    pub name_masked: Option<String>,
    pub tier: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub points_balance: i64,
    pub status: String,
    /// Recorded allergies (for warnings at the till).
    #[serde(skip)]
    pub allergies: Vec<String>,
}

impl PosMember {
    pub fn at_till(&self) -> MemberAtTill {
        MemberAtTill { tier: self.tier.clone(), birthday: self.birthday, points_balance: self.points_balance }
    }
}

/// A product as the till needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosProduct {
    pub id: i64,
    pub code: String,
    pub name: String,
    pub generic_name: Option<String>,
    pub categories: Vec<String>,
    pub retail_price: Option<Fen>,
    pub cost_price: Option<Fen>,
    pub points_excluded: bool,
    pub ingredients: Vec<String>,
}

/// Everything a quote needs, loaded once.
pub struct PosContext {
    pub company: CompanyId,
    pub offset_minutes: i32,
    /// When the sale happens (epoch milliseconds).
    pub at_ms: i64,
    pub store: StoreId,
    pub day: NaiveDate,
    pub rules: LoyaltyRules,
    pub member: Option<PosMember>,
    pub products: Vec<PosProduct>,
    pub basket: Vec<BasketLine>,
    pub held: Vec<HeldCouponRow>,
    /// “过敏提醒”: the member's recorded allergies that a product's name, generic name or ingredients
    /// mention.
    pub allergy_warnings: Vec<String>,
}

/// What a till call asks [`Store::pos_head`] to read besides the company, its offset and rules.
#[derive(Default)]
struct HeadReads<'a> {
    /// The store, by code.
    store_code: Option<&'a str>,
    /// The member.
    key: Option<&'a MemberKey>,
    /// The basket's product codes.
    codes: &'a [&'a str],
    /// The member's coupons held (usable at `store_code`, any store without one).
    coupons: bool,
    /// The member's debt and unexpired points per expiry day.
    points: bool,
}

/// What [`Store::pos_head`] reads in one statement.
struct PosHead {
    offset: i32,
    rules: LoyaltyRules,
    store: Option<i64>,
    member: Option<PosMember>,
    /// The products asked for, by code (those that exist).
    products: HashMap<String, PosProduct>,
    /// The member's coupons in status issued of enabled templates, usable at the store (any store
    /// when none was given) — not yet filtered by day: see [`HeldJson::usable_on`].
    held: Vec<HeldJson>,
    /// With `points`: the member's debt and unexpired lots as (expiry day, points) per day.
    lots: Option<(i64, Vec<(String, i64)>)>,
}

/// A member as identified at the till, with what the cashier sees.
pub struct PosLookup {
    pub member: PosMember,
    pub points: crate::points::PointsSummary,
    pub coupons: Vec<HeldCouponRow>,
    pub rules: LoyaltyRules,
}

/// A basket line as the POS sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosLineInput {
    pub product_code: String,
    pub quantity_milli: i64,
    /// `None`: the product's retail price.
    pub unit_price: Option<Fen>,
}

/// The answer to a committed sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SaleReceipt {
    pub ticket_no: String,
    pub total: Fen,
    pub member_discount: Fen,
    pub coupon_discount: Fen,
    pub points_deduction: Fen,
    pub points_used: i64,
    pub points_earned: i64,
    pub points_balance: Option<i64>,
    pub coupons_redeemed: Vec<String>,
    pub tier: Option<String>,
    pub tier_changed_to: Option<String>,
}

/// The answer to a committed return.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReturnReceipt {
    pub return_no: String,
    pub ticket_no: String,
    pub refund: Fen,
    pub points_taken_back: i64,
    pub points_balance: Option<i64>,
}

/// The hash of a request body: a retry must send the same body.
pub fn request_hash(body: &[u8]) -> Vec<u8> {
    Sha256::digest(body).to_vec()
}

const ECARD_WINDOW_MS: i64 = 60_000;
const ECARD_ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn base32(mut v: u128, chars: usize) -> String {
    let mut s = vec![b'0'; chars];
    for c in s.iter_mut().rev() {
        *c = ECARD_ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8(s).unwrap_or_default()
}

impl Store {
    /// The code shown on a member's e-card at `at_ms`: `E` + member id + a MAC over the member and the
    /// minute, so a screenshot stops working within two minutes and a code cannot be forged.
    pub fn ecard_code(&self, company: CompanyId, member: MemberId, at_ms: i64) -> String {
        let window = at_ms.div_euclid(ECARD_WINDOW_MS);
        let mac = self.crypto.blind_index(company, "ecard", &format!("{}:{window}", member.0));
        let mut v: u128 = 0;
        for b in &mac[..8] {
            v = (v << 8) | *b as u128;
        }
        format!("E{}{}", member.0, base32(v >> 24, 8))
    }

    fn ecard_member(&self, company: CompanyId, code: &str, now: i64) -> Option<MemberId> {
        let code = code.trim().to_ascii_uppercase();
        let rest = code.strip_prefix('E')?;
        if rest.len() <= 8 {
            return None;
        }
        let member: i64 = rest[..rest.len() - 8].parse().ok()?;
        [now, now - ECARD_WINDOW_MS]
            .into_iter()
            .any(|t| {
                let want = self.ecard_code(company, MemberId(member), t);
                subtle::ConstantTimeEq::ct_eq(want.as_bytes(), code.as_bytes()).into()
            })
            .then_some(MemberId(member))
    }

    /// Finds the member at the till by card, phone or e-card code (one statement, which also tells
    /// whether the member is in the caller's data scope).
    pub async fn pos_identify(&self, scope: &Scope, company: CompanyId, key: &MemberKey) -> Result<PosMember> {
        let head = self.pos_head(scope, company, HeadReads { key: Some(key), ..Default::default() }).await?;
        head.member.ok_or_else(|| StoreError::NotFound { what: "会员".into() })
    }

    /// One statement for what every till call starts with: the company's offset and rules text, and
    /// what `reads` asks for — the store, the member with whether it is in the caller's scope, its
    /// coupons and points lots, the basket's products (coupons, lots and products as JSON arrays, so
    /// none costs a round trip of its own). An unknown or out-of-scope member is `NotFound`; an
    /// unknown store `Invalid`; unknown products are simply absent.
    async fn pos_head(&self, scope: &Scope, company: CompanyId, reads: HeadReads<'_>) -> Result<PosHead> {
        let HeadReads { store_code, key, codes, coupons, points } = reads;
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let (agg, arr) = match self.backend {
            Backend::Postgres => ("json_agg", "json_build_array"),
            Backend::Sqlite => ("json_group_array", "json_array"),
        };
        let mut binds = vec![Bind::I(company.0)];
        let mut columns = String::from("c.utc_offset_minutes, r.rules");
        let mut joins = String::from("LEFT JOIN loyalty_rules r ON r.company_id = c.id");
        if let Some(code) = store_code {
            binds.push(Bind::S(code.to_string()));
            columns.push_str(", s.id AS store_id");
            joins.push_str(&format!(" LEFT JOIN stores s ON s.company_id = c.id AND s.code = ${}", binds.len()));
        }
        if let Some(key) = key {
            let n = binds.len() + 1;
            let (cond, bind) = match key {
                MemberKey::Card(card) => (
                    format!("m.id = (SELECT member_id FROM member_cards WHERE company_id = $1 AND card_no = ${n})"),
                    Bind::S(card.trim().to_string()),
                ),
                MemberKey::Phone(p) => {
                    let phone = rxmember_core::clean::phone(p).map_err(|e| StoreError::Invalid(e.to_string()))?;
                    (
                        format!("m.phone_hash = ${n} AND m.status = 'active'"),
                        Bind::B(self.crypto.blind_index(company, "phone", &phone)),
                    )
                }
                MemberKey::ECard(code) => {
                    let member = self
                        .ecard_member(company, code, now_ms())
                        .ok_or_else(|| StoreError::Invalid("电子会员码无效或已过期，请会员刷新后重新出示".into()))?;
                    (format!("m.id = ${n}"), Bind::I(member.0))
                }
            };
            binds.push(bind);
            let in_scope = scope_filter(scope, Some(company), &mut binds)?;
            columns.push_str(&format!(
                ", m.id AS member_id, m.card_no, m.name_enc, m.birthday, m.status, m.allergies_enc, \
                 (SELECT tier FROM member_tiers t WHERE t.company_id = m.company_id AND t.member_id = m.id) AS tier, \
                 (SELECT balance FROM points_accounts a WHERE a.company_id = m.company_id AND a.member_id = m.id) AS balance, \
                 CAST(CASE WHEN {in_scope} THEN 1 ELSE 0 END AS BIGINT) AS in_scope"
            ));
            if coupons {
                // The coupons held, as one JSON array (see `HeldJson`): the store's applicability is
                // decided here, the day in Rust once the company's offset is known.
                let all_stores = if self.backend == Backend::Postgres { "t.all_stores" } else { "t.all_stores <> 0" };
                let store_ok = if store_code.is_some() {
                    format!(
                        "CASE WHEN {all_stores} OR EXISTS (SELECT 1 FROM coupon_template_stores x WHERE x.company_id = k.company_id \
                         AND x.template_id = k.template_id AND x.store_id = s.id) THEN 1 ELSE 0 END"
                    )
                } else {
                    "1".to_string()
                };
                columns.push_str(&format!(
                    ", (SELECT CAST({agg}({arr}(k.id, k.code, k.valid_from, k.valid_to, t.code, t.name, t.kind, t.face_value, \
                     t.percent, t.gift_product, t.min_spend, t.products, t.categories, t.stackable, {store_ok})) AS TEXT) \
                     FROM coupons k JOIN coupon_templates t ON t.company_id = k.company_id AND t.id = k.template_id \
                     WHERE k.company_id = m.company_id AND k.member_id = m.id AND k.status = 'issued' AND t.status = 'enabled') AS held"
                ));
            }
            if points {
                columns.push_str(&format!(
                    ", (SELECT debt FROM points_accounts a WHERE a.company_id = m.company_id AND a.member_id = m.id) AS debt, \
                     (SELECT CAST({agg}({arr}(e.expires_on, e.points)) AS TEXT) FROM (SELECT expires_on, \
                     CAST(SUM(remaining) AS BIGINT) AS points FROM points_ledger l WHERE l.company_id = m.company_id \
                     AND l.member_id = m.id AND l.remaining > 0 AND l.expires_on IS NOT NULL GROUP BY expires_on) e) AS lots"
                ));
            }
            joins.push_str(&format!(" LEFT JOIN members m ON m.company_id = c.id AND {cond}"));
        }
        let mut codes = codes.to_vec();
        codes.sort_unstable();
        codes.dedup();
        // Padded to a multiple of 8 codes (repeating the last): a handful of statement texts, each
        // prepared and planned once per connection, rather than one per basket size.
        if let Some(&last) = codes.last() {
            codes.resize(codes.len().div_ceil(8) * 8, last);
        }
        if !codes.is_empty() {
            let list: Vec<String> = codes
                .iter()
                .map(|code| {
                    binds.push(Bind::S(code.to_string()));
                    format!("${}", binds.len())
                })
                .collect();
            columns.push_str(&format!(
                ", (SELECT CAST({agg}({arr}(p.id, p.code, p.name, p.generic_name, p.category_code, g.major_code, \
                 p.retail_price, p.cost_price, p.points_excluded, p.ingredients)) AS TEXT) FROM products p \
                 LEFT JOIN categories g ON g.company_id = p.company_id AND g.code = p.category_code \
                 WHERE p.company_id = c.id AND p.code IN ({})) AS products",
                list.join(",")
            ));
        }
        // A phone may name several members (refused below); a card or an e-card names at most one,
        // and without a sort the plan has two nodes fewer to start on every call.
        let order = if matches!(key, Some(MemberKey::Phone(_))) { " ORDER BY m.id LIMIT 2" } else { "" };
        let sql = format!("SELECT {columns} FROM companies c {joins} WHERE c.id = $1{order}");
        let rows = apply(sqlx::query(AssertSqlSafe(sql)), &binds).fetch_all(&self.pool).await?;
        let row = match rows.as_slice() {
            [] => return Err(StoreError::NotFound { what: format!("company {company}") }),
            [one] => one,
            _ => return Err(StoreError::Invalid("该手机号对应多个会员，请用卡号识别".into())),
        };
        let store = match store_code {
            Some(code) => Some(
                row.try_get::<Option<i64>, _>("store_id")?
                    .ok_or_else(|| StoreError::Invalid(format!("门店编码“{code}”不存在")))?,
            ),
            None => None,
        };
        let (member, held) = match key {
            Some(_) => {
                // Outside the caller's stores (or own members) is the same answer as no such member.
                if row.try_get::<Option<i64>, _>("member_id")?.is_none() || row.try_get::<i64, _>("in_scope")? == 0 {
                    return Err(StoreError::NotFound { what: "会员".into() });
                }
                let held = if coupons { held_of(row.try_get("held")?)? } else { Vec::new() };
                (Some(self.pos_member(company, row)?), held)
            }
            None => (None, Vec::new()),
        };
        let lots = if points && key.is_some() {
            let debt = row.try_get::<Option<i64>, _>("debt")?.unwrap_or(0);
            let lots: Option<String> = row.try_get("lots")?;
            let lots: Vec<(String, i64)> = match lots {
                Some(j) => serde_json::from_str(&j).map_err(|e| StoreError::Invalid(format!("points lots: {e}")))?,
                None => Vec::new(),
            };
            Some((debt, lots))
        } else {
            None
        };
        let products = if codes.is_empty() { HashMap::new() } else { products_of(row.try_get("products")?)? };
        Ok(PosHead {
            offset: row.try_get::<i64, _>("utc_offset_minutes")? as i32,
            rules: self.rules_from_text(company, row.try_get("rules")?)?,
            store,
            member,
            products,
            held,
            lots,
        })
    }

    fn pos_member(&self, company: CompanyId, row: &sqlx::any::AnyRow) -> Result<PosMember> {
        let dec = |col: &str| -> Result<Option<String>> {
            let v: Option<Vec<u8>> = row.try_get(col)?;
            v.map(|b| self.crypto.decrypt(company, col.trim_end_matches("_enc"), &b)).transpose()
        };
        let name = dec("name_enc")?;
        let allergies = dec("allergies_enc")?;
        let birthday: Option<String> = row.try_get("birthday")?;
        Ok(PosMember {
            member_id: row.try_get("member_id")?,
            card_no: row.try_get("card_no")?,
            name_masked: name.as_deref().map(rxmember_core::mask::name),
            tier: row.try_get("tier")?,
            birthday: birthday.as_deref().and_then(|b| NaiveDate::parse_from_str(b, "%Y-%m-%d").ok()),
            points_balance: row.try_get::<Option<i64>, _>("balance")?.unwrap_or(0),
            status: row.try_get("status")?,
            allergies: allergies
                .map(|a| {
                    a.split([';', '；', ',', '，']).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
                })
                .unwrap_or_default(),
        })
    }

    /// What the till shows when a member is identified: the member, the points summary, the
    /// coupons usable today (at some store), and the company's rules and local day — with the scope
    /// checked once.
    pub async fn pos_lookup(&self, scope: &Scope, company: CompanyId, key: &MemberKey) -> Result<PosLookup> {
        let PosHead { offset, rules, member, held, lots, .. } = self
            .pos_head(scope, company, HeadReads { key: Some(key), coupons: true, points: true, ..Default::default() })
            .await?;
        let member = member.ok_or_else(|| StoreError::NotFound { what: "会员".into() })?;
        let day = local_date(now_ms(), offset);
        let (debt, lots) = lots.unwrap_or_default();
        let points = crate::points::PointsSummary::of_lots(member.points_balance, debt, &lots, day);
        let coupons = HeldJson::usable_on(held, day);
        Ok(PosLookup { member, points, coupons, rules })
    }

    /// Loads what a quote of `lines` at `store_code` needs, for a sale at `sold_at` (the company's
    /// local time; now when `None`) by the member `key` names (none: a non-member sale), in one
    /// statement: the company, store, rules, member, products and the member's coupons.
    pub async fn pos_context(
        &self,
        scope: &Scope,
        company: CompanyId,
        store_code: &str,
        key: Option<&MemberKey>,
        lines: &[PosLineInput],
        sold_at: Option<NaiveDateTime>,
    ) -> Result<PosContext> {
        let codes: Vec<&str> = lines.iter().map(|l| l.product_code.as_str()).collect();
        let PosHead { offset, rules, store, member, products: found, held, .. } = self
            .pos_head(
                scope,
                company,
                HeadReads { store_code: Some(store_code), key, codes: &codes, coupons: true, points: false },
            )
            .await?;
        let Some(store) = store else {
            return Err(StoreError::Invalid(format!("门店编码“{store_code}”不存在")));
        };
        let at_ms = sold_at.map_or_else(now_ms, |t| local_to_epoch_ms(t, offset));
        let day = local_date(at_ms, offset);
        let held = HeldJson::usable_on(held, day);
        let mut basket = Vec::with_capacity(lines.len());
        let mut products = Vec::with_capacity(lines.len());
        for (i, l) in lines.iter().enumerate() {
            let p = found
                .get(&l.product_code)
                .ok_or_else(|| StoreError::Invalid(format!("第{}行: 商品编码“{}”不存在", i + 1, l.product_code)))?;
            let price = l.unit_price.or(p.retail_price).ok_or_else(|| {
                StoreError::Invalid(format!("第{}行: 商品“{}”没有零售价，请传入单价 unit_price", i + 1, p.code))
            })?;
            basket.push(BasketLine {
                product_code: p.code.clone(),
                categories: p.categories.clone(),
                quantity_milli: l.quantity_milli,
                unit_price: price,
                points_excluded: p.points_excluded,
            });
            products.push(p.clone());
        }
        let mut warnings = Vec::new();
        if let Some(m) = &member {
            for a in &m.allergies {
                for p in &products {
                    let hay = [Some(p.name.as_str()), p.generic_name.as_deref()]
                        .into_iter()
                        .flatten()
                        .chain(p.ingredients.iter().map(String::as_str));
                    let hit =
                        hay.into_iter().any(|h| h.contains(a.as_str()) || (h.chars().count() >= 2 && a.contains(h)));
                    if hit {
                        let w = format!(
                            "过敏提醒: 会员登记对“{a}”过敏，商品“{}”({}) 可能含有该成分，请药师确认",
                            p.name, p.code
                        );
                        if !warnings.contains(&w) {
                            warnings.push(w);
                        }
                    }
                }
            }
        }
        Ok(PosContext {
            company,
            offset_minutes: offset,
            at_ms,
            store: StoreId(store),
            day,
            rules,
            member,
            products,
            basket,
            held,
            allergy_warnings: warnings,
        })
    }

    /// The recorded answer for a committed ticket or return number, with the request hash.
    pub async fn pos_committed(
        &self,
        company: CompanyId,
        kind: &str,
        number: &str,
    ) -> Result<Option<(Vec<u8>, String)>> {
        Ok(sqlx::query_as(
            "SELECT request_hash, response FROM pos_commits WHERE company_id = $1 AND kind = $2 AND number = $3",
        )
        .bind(company.0)
        .bind(kind)
        .bind(number)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Commits a quoted sale. Everything in one transaction: a retry (same `hash`) returns the
    /// recorded receipt; another request under the same ticket number is a conflict; a coupon used
    /// meanwhile or points spent meanwhile roll everything back.
    #[allow(clippy::too_many_arguments)]
    pub async fn pos_commit_sale(
        &self,
        scope: &Scope,
        ctx: &PosContext,
        ticket_no: &str,
        sold_at: i64,
        clerk_code: Option<&str>,
        quote: &Quote,
        hash: &[u8],
    ) -> Result<SaleReceipt> {
        if !scope.data.touches_company(ctx.company) {
            return Err(StoreError::AccessDenied);
        }
        let c = ctx.company.0;
        let actor = scope.actor.as_str();
        if ticket_no.trim().is_empty() {
            return Err(StoreError::Invalid("ticket_no 不能为空".into()));
        }
        let _turn = self.pos_commit_turn().await;
        let mut tx = self.begin_write().await?;
        let prior: Option<(Vec<u8>, String)> = sqlx::query_as(
            "SELECT request_hash, response FROM pos_commits WHERE company_id = $1 AND kind = 'sale' AND number = $2",
        )
        .bind(c)
        .bind(ticket_no)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some((h, resp)) = prior {
            return if h == hash {
                serde_json::from_str(&resp).map_err(|e| StoreError::Invalid(e.to_string()))
            } else {
                Err(StoreError::Conflict { what: format!("小票号 {ticket_no}（已用不同内容提交）") })
            };
        }
        let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tickets WHERE company_id = $1 AND ticket_no = $2")
            .bind(c)
            .bind(ticket_no)
            .fetch_one(&mut *tx)
            .await?;
        if exists > 0 {
            return Err(StoreError::Conflict { what: format!("小票号 {ticket_no}") });
        }
        // 1. The ticket and its lines.
        let id = counters::allocate(&mut tx, c, "ticket", 1).await?;
        let card_no = ctx.member.as_ref().map(|m| m.card_no.clone());
        let mut cost_total = 0i64;
        let store_code: String = sqlx::query_scalar("SELECT code FROM stores WHERE company_id = $1 AND id = $2")
            .bind(c)
            .bind(ctx.store.0)
            .fetch_one(&mut *tx)
            .await?;
        for (i, (q, p)) in quote.lines.iter().zip(&ctx.products).enumerate() {
            let line_no = i as i64 + 1;
            let cost = p.cost_price.map_or(Fen::ZERO, |cp| cp.times_milli(q.quantity_milli));
            cost_total += cost.0;
            let input = SaleLineInput {
                ticket_no: ticket_no.to_string(),
                line_no: Some(line_no),
                sold_at,
                store_code: store_code.clone(),
                card_no: card_no.clone(),
                clerk_code: clerk_code.map(String::from),
                product_code: p.code.clone(),
                quantity_milli: q.quantity_milli,
                unit_price: Some(ctx.basket[i].unit_price),
                amount: q.amount,
                discount: Fen(q.list_amount.0 - q.amount.0),
                cost: Some(cost),
            };
            sqlx::query(
                "INSERT INTO ticket_lines (company_id, ticket_id, line_no, product_id, quantity_milli, unit_price, amount, discount, cost, line_hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(c)
            .bind(id)
            .bind(line_no)
            .bind(p.id)
            .bind(q.quantity_milli)
            .bind(ctx.basket[i].unit_price.0)
            .bind(q.amount.0)
            .bind(q.list_amount.0 - q.amount.0)
            .bind(cost.0)
            .bind(crate::sales::line_hash(&input, line_no).to_vec())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "INSERT INTO tickets (company_id, id, ticket_no, store_id, member_id, card_no, clerk_code, sold_at, line_count, amount, discount, cost, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(c)
        .bind(id)
        .bind(ticket_no)
        .bind(ctx.store.0)
        .bind(ctx.member.as_ref().map(|m| m.member_id))
        .bind(card_no)
        .bind(clerk_code)
        .bind(sold_at)
        .bind(quote.lines.len() as i64)
        .bind(quote.total.0)
        .bind(quote.list_total.0 - quote.total.0)
        .bind(cost_total)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::conflict_on_unique(e, || format!("小票号 {ticket_no}")))?;

        let mut receipt = SaleReceipt {
            ticket_no: ticket_no.to_string(),
            total: quote.total,
            member_discount: quote.member_discount,
            coupon_discount: quote.coupon_discount,
            points_deduction: quote.points_deduction,
            points_used: quote.points_used,
            points_earned: 0,
            points_balance: None,
            coupons_redeemed: quote.coupons_applied.clone(),
            tier: quote.tier.clone(),
            tier_changed_to: None,
        };
        if let Some(m) = &ctx.member {
            // 2. Coupons, exactly once each.
            for (code, discount) in quote.coupons_applied.iter().zip(&quote.coupon_discounts) {
                let held = ctx
                    .held
                    .iter()
                    .find(|h| &h.code == code)
                    .ok_or_else(|| StoreError::Invalid(format!("优惠券 {code} 不可用")))?;
                crate::coupons::redeem_in(&mut tx, c, held.id, ticket_no, ctx.store.0, *discount).await?;
            }
            // 3. Points spent at the till.
            let key = format!("ticket:{ticket_no}");
            if quote.points_used > 0 {
                let cause = Cause { kind: EntryKind::Redeem, key: &key, at: sold_at, on: ctx.day, detail: None };
                crate::points::redeem_in(&mut tx, self.backend, c, m.member_id, quote.points_used, &cause, actor)
                    .await?;
            }
            // 4. Points earned on what was paid.
            let lines: Vec<EarnLine> = quote
                .lines
                .iter()
                .zip(&ctx.basket)
                .map(|(q, b)| EarnLine {
                    product_code: b.product_code.clone(),
                    categories: b.categories.clone(),
                    excluded: b.points_excluded,
                    paid: q.amount,
                })
                .collect();
            let t = TicketForPoints { member: m.member_id, ticket_no: ticket_no.to_string(), sold_at, lines };
            let (applied, _) =
                self.earn_ticket_in(&mut tx, ctx.company, ctx.offset_minutes, &ctx.rules, &t, actor).await?;
            if let Applied::Done { points, .. } = applied {
                receipt.points_earned = points;
            }
            // 5. Tier.
            if let Some(change) = crate::tiers::upgrade_after_sale_in(
                &mut tx,
                self.backend,
                c,
                m.member_id,
                &ctx.rules,
                sold_at,
                ctx.offset_minutes,
                ticket_no,
                actor,
            )
            .await?
            {
                receipt.tier_changed_to = Some(change.to.clone());
                receipt.tier = Some(change.to);
            }
            let balance: i64 =
                sqlx::query_scalar("SELECT balance FROM points_accounts WHERE company_id = $1 AND member_id = $2")
                    .bind(c)
                    .bind(m.member_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .unwrap_or(0);
            receipt.points_balance = Some(balance);
        }
        let response = serde_json::to_string(&receipt).unwrap_or_default();
        sqlx::query(
            "INSERT INTO pos_commits (company_id, kind, number, request_hash, response, created_at) VALUES ($1, 'sale', $2, $3, $4, $5)",
        )
        .bind(c)
        .bind(ticket_no)
        .bind(hash.to_vec())
        .bind(&response)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::conflict_on_unique(e, || format!("小票号 {ticket_no}")))?;
        tx.commit().await?;
        Ok(receipt)
    }

    /// Commits a return at the till: the returned lines are recorded (as an imported return would
    /// be) and their points taken back, under the return number; idempotent like a sale.
    #[allow(clippy::too_many_arguments)]
    pub async fn pos_commit_return(
        &self,
        scope: &Scope,
        company: CompanyId,
        return_no: &str,
        ticket_no: &str,
        lines: &[(String, i64)],
        returned_at: i64,
        hash: &[u8],
    ) -> Result<ReturnReceipt> {
        if !scope.data.touches_company(company) {
            return Err(StoreError::AccessDenied);
        }
        let c = company.0;
        if let Some((h, resp)) = self.pos_committed(company, "return", return_no).await? {
            return if h == hash {
                serde_json::from_str(&resp).map_err(|e| StoreError::Invalid(e.to_string()))
            } else {
                Err(StoreError::Conflict { what: format!("退货单号 {return_no}（已用不同内容提交）") })
            };
        }
        let offset = self.company(scope, company).await?.utc_offset_minutes;
        let rules = self.loyalty_rules(scope, company).await?;
        let _turn = self.pos_commit_turn().await;
        let mut tx = self.begin_write().await?;
        let ticket: Option<(i64, Option<i64>)> =
            sqlx::query_as("SELECT id, member_id FROM tickets WHERE company_id = $1 AND ticket_no = $2")
                .bind(c)
                .bind(ticket_no)
                .fetch_optional(&mut *tx)
                .await?;
        let (ticket_id, member) = ticket.ok_or_else(|| StoreError::Invalid(format!("原小票“{ticket_no}”不存在")))?;
        let mut refund = 0i64;
        let mut taken = 0i64;
        for (i, (code, qty)) in lines.iter().enumerate() {
            let row = sqlx::query(
                "SELECT l.product_id, l.quantity_milli, l.amount, \
                 (SELECT CAST(COALESCE(SUM(r.quantity_milli), 0) AS BIGINT) FROM returns r WHERE r.company_id = l.company_id AND r.ticket_id = l.ticket_id AND r.product_id = l.product_id) AS returned \
                 FROM ticket_lines l JOIN products p ON p.company_id = l.company_id AND p.id = l.product_id \
                 WHERE l.company_id = $1 AND l.ticket_id = $2 AND p.code = $3 ORDER BY l.line_no LIMIT 1",
            )
            .bind(c)
            .bind(ticket_id)
            .bind(code)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Invalid(format!("第{}行: 原小票中没有商品“{code}”", i + 1)))?;
            let sold: i64 = row.try_get("quantity_milli")?;
            let returned: i64 = row.try_get("returned")?;
            if *qty <= 0 || returned + qty > sold {
                return Err(StoreError::Invalid(format!(
                    "第{}行: 退货数量 {} 超过可退数量 {}",
                    i + 1,
                    *qty as f64 / 1000.0,
                    (sold - returned) as f64 / 1000.0
                )));
            }
            let amount: i64 = row.try_get("amount")?;
            let line_refund = (amount as i128 * *qty as i128 / sold as i128) as i64;
            refund += line_refund;
            let id = counters::allocate(&mut tx, c, "return", 1).await?;
            sqlx::query(
                "INSERT INTO returns (company_id, id, return_no, ticket_id, product_id, returned_at, quantity_milli, amount, row_hash, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(c)
            .bind(id)
            .bind(return_no)
            .bind(ticket_id)
            .bind(row.try_get::<i64, _>("product_id")?)
            .bind(returned_at)
            .bind(*qty)
            .bind(line_refund)
            .bind(request_hash(format!("{return_no}|{ticket_no}|{code}|{qty}|{line_refund}").as_bytes()))
            .bind(now_ms())
            .execute(&mut *tx)
            .await
            .map_err(|e| crate::conflict_on_unique(e, || format!("退货单 {return_no} 的商品 {code}")))?;
            if let Applied::Done { points, .. } =
                self.take_back_return_in(&mut tx, company, offset, &rules, id, &scope.actor).await?
            {
                taken += -points;
            }
        }
        let balance = match member {
            Some(m) => {
                sqlx::query_scalar("SELECT balance FROM points_accounts WHERE company_id = $1 AND member_id = $2")
                    .bind(c)
                    .bind(m)
                    .fetch_optional(&mut *tx)
                    .await?
            }
            None => None,
        };
        let receipt = ReturnReceipt {
            return_no: return_no.to_string(),
            ticket_no: ticket_no.to_string(),
            refund: Fen(refund),
            points_taken_back: taken,
            points_balance: balance,
        };
        sqlx::query(
            "INSERT INTO pos_commits (company_id, kind, number, request_hash, response, created_at) VALUES ($1, 'return', $2, $3, $4, $5)",
        )
        .bind(c)
        .bind(return_no)
        .bind(hash.to_vec())
        .bind(serde_json::to_string(&receipt).unwrap_or_default())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| crate::conflict_on_unique(e, || format!("退货单号 {return_no}")))?;
        tx.commit().await?;
        Ok(receipt)
    }
}

/// The products of the head statement's JSON array: `[id, code, name, generic_name, category_code,
/// major_code, retail_price, cost_price, points_excluded, ingredients]` per product (PostgreSQL's
/// `json_agg` gives null for no rows, SQLite's `json_group_array` an empty array; a flag is a
/// boolean in one and 0/1 in the other).
fn products_of(json: Option<String>) -> Result<HashMap<String, PosProduct>> {
    type Row = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<i64>,
        serde_json::Value,
        Option<String>,
    );
    let Some(json) = json else { return Ok(HashMap::new()) };
    let rows: Vec<Row> =
        serde_json::from_str(&json).map_err(|e| StoreError::Invalid(format!("products of the basket: {e}")))?;
    Ok(rows
        .into_iter()
        .map(|(id, code, name, generic_name, category, major, retail, cost, excluded, ingredients)| {
            let product = PosProduct {
                id,
                code: code.clone(),
                name,
                generic_name,
                categories: crate::points::product_categories(category, major),
                retail_price: retail.map(Fen),
                cost_price: cost.map(Fen),
                points_excluded: json_flag(&excluded),
                ingredients: ingredients
                    .map(|s| {
                        s.split([';', ',', '；', '，'])
                            .map(|x| x.trim().to_string())
                            .filter(|x| !x.is_empty())
                            .collect()
                    })
                    .unwrap_or_default(),
            };
            (code, product)
        })
        .collect())
}

/// A coupon as the head statement's JSON array gives it: `[id, code, valid_from, valid_to,
/// template code, name, kind, face_value, percent, gift_product, min_spend, products (JSON text),
/// categories (JSON text), stackable, usable at the store (1/0)]`. Only coupons in status issued of
/// enabled templates are in the array — the same rule as `Store::member_coupons_unchecked`, whose
/// SQL also checks the day, which the till checks here once it knows the company's local day.
struct HeldJson {
    id: i64,
    code: String,
    valid_from: String,
    valid_to: String,
    template_code: String,
    name: String,
    rules: rxmember_core::coupons::CouponRules,
    at_store: bool,
}

impl HeldJson {
    /// The coupons usable on `day` at the store, soonest-expiring first.
    fn usable_on(held: Vec<HeldJson>, day: NaiveDate) -> Vec<HeldCouponRow> {
        let day = day.format("%Y-%m-%d").to_string();
        let mut out: Vec<HeldCouponRow> = held
            .into_iter()
            .filter(|h| h.at_store && h.valid_from <= day && day <= h.valid_to)
            .map(|h| HeldCouponRow {
                id: h.id,
                display_code: rxmember_core::coupons::display_code(&h.code),
                code: h.code,
                template_code: h.template_code,
                name: h.name,
                status: "issued".into(),
                valid_from: h.valid_from,
                valid_to: h.valid_to,
                rules: h.rules,
            })
            .collect();
        out.sort_by(|a, b| (&a.valid_to, a.id).cmp(&(&b.valid_to, b.id)));
        out
    }
}

/// A 0/1 or boolean JSON value (SQLite stores flags as integers, PostgreSQL as booleans).
fn json_flag(v: &serde_json::Value) -> bool {
    v.as_bool().unwrap_or_else(|| v.as_i64().is_some_and(|x| x != 0))
}

fn held_of(json: Option<String>) -> Result<Vec<HeldJson>> {
    use serde_json::Value;
    type Row = (
        i64,
        String,
        String,
        String,
        String,
        String,
        String,
        i64,
        i64,
        Option<String>,
        i64,
        String,
        String,
        Value,
        Value,
    );
    let Some(json) = json else { return Ok(Vec::new()) };
    let rows: Vec<Row> = serde_json::from_str(&json).map_err(|e| StoreError::Invalid(format!("coupons held: {e}")))?;
    let list = |s: &str| -> Vec<String> { serde_json::from_str(s).unwrap_or_default() };
    Ok(rows
        .into_iter()
        .map(|(id, code, from, to, template, name, kind, face, percent, gift, min, products, categories, stack, ok)| {
            HeldJson {
                id,
                code,
                valid_from: from,
                valid_to: to,
                template_code: template,
                name,
                rules: rxmember_core::coupons::CouponRules {
                    kind: rxmember_core::coupons::CouponKind::parse(&kind)
                        .unwrap_or(rxmember_core::coupons::CouponKind::Cash),
                    face_value: Fen(face),
                    percent: percent as u32,
                    gift_product: gift,
                    min_spend: Fen(min),
                    products: list(&products),
                    categories: list(&categories),
                    stackable: json_flag(&stack),
                },
                at_store: json_flag(&ok),
            }
        })
        .collect())
}
