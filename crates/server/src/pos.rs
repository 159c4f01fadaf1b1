//! The POS API (`/api/v1/pos/...`), called by the chain's ERP/POS at the till with the company's API
//! token: identify a member, quote a basket (changes nothing), commit a sale or a return (idempotent
//! by ticket or return number). Money is integer fen; quantities are numbers (fractions for split
//! packs, 拆零).

use crate::AppState;
use crate::api::require_company;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDateTime;
use rxmember_core::checkout::{HeldCoupon, Quote, QuoteRequest, quote};
use rxmember_core::coupons::normalize_code;
use rxmember_core::org::Scope;
use rxmember_core::time::{local_to_epoch_ms, now_ms};
use rxmember_core::{CompanyId, Fen};
use rxmember_store::pos::{
    MemberKey, PosContext, PosLineInput, PosLookup, PosMember, ReturnReceipt, SaleReceipt, request_hash,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/pos/members", get(identify))
        .route("/api/v1/pos/quote", post(quote_basket))
        .route("/api/v1/pos/sales", post(commit_sale))
        .route("/api/v1/pos/returns", post(commit_return))
}

#[derive(Deserialize, IntoParams)]
pub struct IdentifyParams {
    /// Company code; not needed with a company API token.
    company: Option<String>,
    /// 会员卡号 (a merged card finds its member too).
    card_no: Option<String>,
    /// 手机号.
    phone: Option<String>,
    /// The code shown by the member's e-card (QR / barcode); it rotates every minute.
    code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CouponBrief {
    code: String,
    display_code: String,
    name: String,
    /// cash, percentage or gift.
    kind: String,
    /// Fen.
    face_value: i64,
    percent: u32,
    /// Fen.
    min_spend: i64,
    stackable: bool,
    valid_to: String,
}

#[derive(Serialize, ToSchema)]
pub struct PosMemberResponse {
    member_id: i64,
    card_no: String,
    /// e.g. 王*.
    name_masked: Option<String>,
    tier: Option<String>,
    tier_name: Option<String>,
    points_balance: i64,
    points_expiring_30d: i64,
    /// active or cancelled.
    status: String,
    /// Coupons usable today (at any store; the quote checks the store).
    coupons: Vec<CouponBrief>,
}

async fn company_for(s: &AppState, scope: &Scope, code: Option<&str>) -> Result<CompanyId, ApiError> {
    let company = require_company(s, scope, code).await?;
    if !scope.data.touches_company(company) {
        return Err(ApiError::Forbidden);
    }
    Ok(company)
}

fn key_of(card_no: Option<&str>, phone: Option<&str>, code: Option<&str>) -> Result<Option<MemberKey>, ApiError> {
    let given = [card_no, phone, code].iter().filter(|v| v.is_some_and(|s| !s.trim().is_empty())).count();
    if given > 1 {
        return Err(ApiError::BadRequest("card_no、phone、code 只能给一个 (give one of card_no, phone, code)".into()));
    }
    Ok(match (card_no, phone, code) {
        (Some(c), _, _) if !c.trim().is_empty() => Some(MemberKey::Card(c.trim().into())),
        (_, Some(p), _) if !p.trim().is_empty() => Some(MemberKey::Phone(p.trim().into())),
        (_, _, Some(c)) if !c.trim().is_empty() => Some(MemberKey::ECard(c.trim().into())),
        _ => None,
    })
}

/// Identifies a member at the till by card number, phone or e-card code: tier, points and the
/// coupons they can use. Personal data stays masked.
#[utoipa::path(get, path = "/api/v1/pos/members", params(IdentifyParams), tag = "pos",
    responses((status = 200, body = PosMemberResponse), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn identify(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(p): Query<IdentifyParams>,
) -> Result<Json<PosMemberResponse>, ApiError> {
    let company = company_for(&s, &scope, p.company.as_deref()).await?;
    let key = key_of(p.card_no.as_deref(), p.phone.as_deref(), p.code.as_deref())?
        .ok_or_else(|| ApiError::BadRequest("请提供 card_no、phone 或 code".into()))?;
    let PosLookup { member: m, points: summary, coupons, rules } = s.store.pos_lookup(&scope, company, &key).await?;
    let tier = m.tier.clone().or_else(|| rules.tiers.base().map(|l| l.code.clone()));
    Ok(Json(PosMemberResponse {
        member_id: m.member_id,
        card_no: m.card_no,
        name_masked: m.name_masked,
        tier_name: tier.as_deref().and_then(|t| rules.tiers.level(t)).map(|l| l.name.clone()),
        tier,
        points_balance: summary.balance,
        points_expiring_30d: summary.expiring_30d,
        status: m.status,
        coupons: coupons
            .into_iter()
            .map(|c| CouponBrief {
                display_code: c.display_code,
                code: c.code,
                name: c.name,
                kind: c.rules.kind.as_str().into(),
                face_value: c.rules.face_value.0,
                percent: c.rules.percent,
                min_spend: c.rules.min_spend.0,
                stackable: c.rules.stackable,
                valid_to: c.valid_to,
            })
            .collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct BasketLineBody {
    product_code: String,
    /// Quantity; fractions for split packs (拆零), e.g. 0.5.
    quantity: f64,
    /// Unit price in fen; default the product's retail price.
    unit_price: Option<i64>,
}

/// A basket to quote or a sale to commit.
#[derive(Deserialize, ToSchema)]
pub struct BasketBody {
    /// Company code; not needed with a company API token.
    company: Option<String>,
    store_code: String,
    /// The member, by one of card_no, phone or code (e-card); none for a non-member sale.
    card_no: Option<String>,
    phone: Option<String>,
    code: Option<String>,
    lines: Vec<BasketLineBody>,
    /// Coupon codes to use (dashes and case do not matter).
    #[serde(default)]
    coupon_codes: Vec<String>,
    /// Points to deduct at the till (whole yuan's worth).
    #[serde(default)]
    use_points: i64,
    /// Local time of the sale (`2026-11-25T10:30:00`); default now.
    sold_at: Option<NaiveDateTime>,
    /// Commit only: the ticket number (小票号), unique in the company; the idempotency key.
    ticket_no: Option<String>,
    /// Commit only: the clerk's code.
    clerk_code: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct QuoteResponse {
    /// The member, if any.
    member: Option<PosMemberBrief>,
    /// Lines (list amount, member discount, coupon discount, points deduction, amount paid, points
    /// percent), totals in fen, tier, member day, coupons applied / applicable / not applicable with
    /// reasons, the suggested best coupons, points balance / usable / used / to earn.
    quote: Quote,
    /// Allergy warnings for the pharmacist (过敏提醒).
    warnings: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PosMemberBrief {
    member_id: i64,
    card_no: String,
    name_masked: Option<String>,
    tier: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SaleResponse {
    /// What was committed: amounts in fen, points used and earned, the balance after, the coupons
    /// redeemed, the tier (and the new tier if the sale raised it).
    receipt: SaleReceipt,
    warnings: Vec<String>,
}

struct Prepared {
    ctx: PosContext,
    quote: Quote,
}

fn quantity_milli(q: f64, line: usize) -> Result<i64, ApiError> {
    if !q.is_finite() || q <= 0.0 {
        return Err(ApiError::BadRequest(format!("第{line}行: 数量必须大于0 (quantity must be positive)")));
    }
    Ok((q * 1000.0).round() as i64)
}

async fn prepare(s: &AppState, scope: &Scope, body: &BasketBody) -> Result<Prepared, ApiError> {
    let company = company_for(s, scope, body.company.as_deref()).await?;
    let key = key_of(body.card_no.as_deref(), body.phone.as_deref(), body.code.as_deref())?;
    let mut lines = Vec::with_capacity(body.lines.len());
    for (i, l) in body.lines.iter().enumerate() {
        lines.push(PosLineInput {
            product_code: l.product_code.trim().to_string(),
            quantity_milli: quantity_milli(l.quantity, i + 1)?,
            unit_price: l.unit_price.map(Fen),
        });
    }
    if lines.is_empty() {
        return Err(ApiError::BadRequest("购物篮为空 (no lines)".into()));
    }
    let ctx = s.store.pos_context(scope, company, &body.store_code, key.as_ref(), &lines, body.sold_at).await?;
    if ctx.member.as_ref().is_some_and(|m| m.status != "active") {
        return Err(ApiError::BadRequest("该会员卡已注销 (the card is cancelled)".into()));
    }
    let held: Vec<HeldCoupon> = ctx
        .held
        .iter()
        .map(|h| HeldCoupon { code: h.code.clone(), name: h.name.clone(), rules: h.rules.clone() })
        .collect();
    let codes: Vec<String> = body.coupon_codes.iter().map(|c| normalize_code(c)).collect();
    let at_till = ctx.member.as_ref().map(|m| m.at_till());
    let req = QuoteRequest {
        date: ctx.day,
        member: at_till.as_ref(),
        lines: &ctx.basket,
        held: &held,
        use_coupons: &codes,
        use_points: body.use_points.max(0),
    };
    let q = quote(&ctx.rules, &req).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(Prepared { ctx, quote: q })
}

fn brief(m: &Option<PosMember>) -> Option<PosMemberBrief> {
    m.as_ref().map(|m| PosMemberBrief {
        member_id: m.member_id,
        card_no: m.card_no.clone(),
        name_masked: m.name_masked.clone(),
        tier: m.tier.clone(),
    })
}

/// Quotes a basket: member prices (tier and member-day discounts), coupons with the best choice
/// suggested, points usable and to earn, allergy warnings. Changes nothing.
#[utoipa::path(post, path = "/api/v1/pos/quote", request_body = BasketBody, tag = "pos",
    responses((status = 200, body = QuoteResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn quote_basket(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(body): Json<BasketBody>,
) -> Result<Json<QuoteResponse>, ApiError> {
    let p = prepare(&s, &scope, &body).await?;
    Ok(Json(QuoteResponse { member: brief(&p.ctx.member), warnings: p.ctx.allergy_warnings.clone(), quote: p.quote }))
}

/// Commits a sale: records the ticket, redeems the coupons (each exactly once), deducts and earns
/// points, re-evaluates the tier. Idempotent by `ticket_no`: retrying the same body returns the same
/// receipt; another body under a used number is 409.
#[utoipa::path(post, path = "/api/v1/pos/sales", request_body = BasketBody, tag = "pos",
    responses((status = 200, body = SaleResponse), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn commit_sale(
    State(s): State<AppState>,
    Caller(scope): Caller,
    raw: Bytes,
) -> Result<Json<SaleResponse>, ApiError> {
    let body: BasketBody =
        serde_json::from_slice(&raw).map_err(|e| ApiError::BadRequest(format!("请求体有误: {e}")))?;
    let ticket_no = body
        .ticket_no
        .clone()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("缺少 ticket_no".into()))?;
    let hash = request_hash(&raw);
    let company = company_for(&s, &scope, body.company.as_deref()).await?;
    // A retry after success must not depend on today's coupons or balance: answer from the record.
    if let Some((h, resp)) = s.store.pos_committed(company, "sale", &ticket_no).await? {
        if h != hash {
            return Err(rxmember_store::StoreError::Conflict {
                what: format!("小票号 {ticket_no}（已用不同内容提交）"),
            }
            .into());
        }
        let receipt: SaleReceipt = serde_json::from_str(&resp).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        return Ok(Json(SaleResponse { receipt, warnings: Vec::new() }));
    }
    let p = prepare(&s, &scope, &body).await?;
    let receipt = s
        .store
        .pos_commit_sale(&scope, &p.ctx, ticket_no.trim(), p.ctx.at_ms, body.clerk_code.as_deref(), &p.quote, &hash)
        .await?;
    Ok(Json(SaleResponse { receipt, warnings: p.ctx.allergy_warnings }))
}

#[derive(Deserialize, ToSchema)]
pub struct ReturnLineBody {
    product_code: String,
    quantity: f64,
}

#[derive(Deserialize, ToSchema)]
pub struct ReturnBody {
    company: Option<String>,
    /// 退货单号: the idempotency key.
    return_no: String,
    /// The original ticket.
    ticket_no: String,
    lines: Vec<ReturnLineBody>,
    /// Local time; default now.
    returned_at: Option<NaiveDateTime>,
}

/// Commits a return against a ticket: the refund of each line is its paid amount pro rata, and the
/// points it earned are taken back (company policy decides what happens if they were spent).
#[utoipa::path(post, path = "/api/v1/pos/returns", request_body = ReturnBody, tag = "pos",
    responses((status = 200, body = ReturnReceipt),
        (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn commit_return(
    State(s): State<AppState>,
    Caller(scope): Caller,
    raw: Bytes,
) -> Result<Json<ReturnReceipt>, ApiError> {
    let body: ReturnBody =
        serde_json::from_slice(&raw).map_err(|e| ApiError::BadRequest(format!("请求体有误: {e}")))?;
    let company = company_for(&s, &scope, body.company.as_deref()).await?;
    let offset = s.store.company(&scope, company).await?.utc_offset_minutes;
    let at = body.returned_at.map_or_else(now_ms, |t| local_to_epoch_ms(t, offset));
    let mut lines = Vec::new();
    for (i, l) in body.lines.iter().enumerate() {
        lines.push((l.product_code.trim().to_string(), quantity_milli(l.quantity, i + 1)?));
    }
    if lines.is_empty() || body.return_no.trim().is_empty() {
        return Err(ApiError::BadRequest("退货单号和退货行不能为空".into()));
    }
    let r = s
        .store
        .pos_commit_return(
            &scope,
            company,
            body.return_no.trim(),
            body.ticket_no.trim(),
            &lines,
            at,
            &request_hash(&raw),
        )
        .await?;
    Ok(Json(r))
}
