//! The loyalty API for operators (`/api/v1/loyalty/...`): a company's rules (points, tiers, member
//! days) as JSON or TOML, a member's points, tier and coupons, adjustments, coupon templates with
//! statistics, issuing (to cards or to an audience), verification by code, sharing, and the daily
//! jobs on demand.

use crate::AppState;
use crate::api::require_company;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::time::{local_date, now_ms};
use rxmember_core::{CompanyId, MemberId};
use rxmember_store::coupons::{CouponTemplateInput, IssueReport};
use rxmember_store::points::LedgerQuery;
use rxmember_store::pos::MemberKey;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/loyalty/rules", get(rules).put(set_rules))
        .route("/api/v1/loyalty/members/{company_id}/{member_id}", get(member))
        .route("/api/v1/loyalty/members/{company_id}/{member_id}/ledger", get(ledger))
        .route("/api/v1/loyalty/members/{company_id}/{member_id}/adjust", post(adjust))
        .route("/api/v1/loyalty/members/{company_id}/{member_id}/exchange", post(exchange))
        .route("/api/v1/loyalty/coupons", get(templates).post(create_template))
        .route("/api/v1/loyalty/coupons/{code}", get(template).put(update_template).delete(delete_template))
        .route("/api/v1/loyalty/coupons/{code}/enable", post(enable))
        .route("/api/v1/loyalty/coupons/{code}/disable", post(disable))
        .route("/api/v1/loyalty/coupons/{code}/issue", post(issue))
        .route("/api/v1/loyalty/redeem", post(redeem))
        .route("/api/v1/loyalty/shares", post(share))
        .route("/api/v1/loyalty/shares/{id}", post(resolve_share))
        .route("/api/v1/loyalty/jobs/{job}", post(run_job))
}

#[derive(Deserialize, IntoParams)]
pub struct CompanyQuery {
    /// Company code; optional for callers limited to one company.
    company: Option<String>,
}

async fn today(s: &AppState, scope: &Scope, company: CompanyId) -> Result<NaiveDate, ApiError> {
    Ok(local_date(now_ms(), s.store.company(scope, company).await?.utc_offset_minutes))
}

/// The company's loyalty rules, as JSON and as the TOML document operators keep.
#[utoipa::path(get, path = "/api/v1/loyalty/rules", params(CompanyQuery), tag = "loyalty",
    responses((status = 200, description = "{rules: {...}, toml: \"...\"}")))]
pub async fn rules(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(q): Query<CompanyQuery>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    let r = s.store.loyalty_rules(&scope, company).await?;
    Ok(Json(json!({ "rules": r, "toml": r.to_toml() })))
}

#[derive(Deserialize, ToSchema)]
pub struct RulesBody {
    company: Option<String>,
    /// The rules as JSON (the shape `GET` returns) …
    #[schema(value_type = Object)]
    rules: Option<LoyaltyRules>,
    /// … or as TOML text.
    toml: Option<String>,
}

/// Replaces the company's rules (company admins). Unknown fields and impossible values are refused
/// with the field named.
#[utoipa::path(put, path = "/api/v1/loyalty/rules", request_body = RulesBody, tag = "loyalty",
    responses((status = 200, description = "the saved rules"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn set_rules(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(b): Json<RulesBody>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    let r = match (b.rules, b.toml) {
        (Some(r), None) => r,
        (None, Some(t)) => LoyaltyRules::from_toml(&t).map_err(|e| ApiError::BadRequest(e.0))?,
        _ => return Err(ApiError::BadRequest("give either `rules` (JSON) or `toml`".into())),
    };
    r.validate().map_err(|e| ApiError::BadRequest(e.0))?;
    s.store.set_loyalty_rules(&scope, company, &r).await?;
    Ok(Json(json!({ "rules": r, "toml": r.to_toml() })))
}

/// A member's points (balance, debt, expiring in 30 days), ledger (newest 100), tier with history,
/// and coupons.
#[utoipa::path(get, path = "/api/v1/loyalty/members/{company_id}/{member_id}", tag = "loyalty",
    params(("company_id" = i64, Path), ("member_id" = i64, Path)),
    responses((status = 200, description = "{points, ledger, tier, tier_name, tier_history, coupons}"), (status = 404, body = ErrorBody)))]
pub async fn member(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((company_id, member_id)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    let (company, m) = (CompanyId(company_id), MemberId(member_id));
    let day = today(&s, &scope, company).await?;
    let points = s.store.points_summary(&scope, company, m, day).await?;
    let ledger = s.store.points_ledger(&scope, company, m, &LedgerQuery::latest(100)).await?;
    let (tier, history) = s.store.member_tier(&scope, company, m).await?;
    let rules = s.store.loyalty_rules(&scope, company).await?;
    let tier = tier.or_else(|| rules.tiers.base().map(|l| l.code.clone()));
    let tier_name = tier.as_deref().and_then(|t| rules.tiers.level(t)).map(|l| l.name.clone());
    let coupons = s.store.member_coupons(&scope, company, m, None).await?;
    Ok(Json(json!({
        "points": points, "ledger": ledger, "tier": tier, "tier_name": tier_name,
        "tier_history": history, "coupons": coupons,
    })))
}

#[derive(Deserialize, IntoParams)]
pub struct LedgerParams {
    /// Entries older than this entry id (the last id of the previous page).
    before_id: Option<i64>,
    /// One kind: opening, earn, redeem, expire, adjust, reverse.
    kind: Option<String>,
    /// From this day (the entry's local day), inclusive.
    from: Option<NaiveDate>,
    /// To this day, inclusive.
    to: Option<NaiveDate>,
    /// Page size, 1–500 (default 100).
    limit: Option<i64>,
}

/// A member's points ledger, newest first, a page at a time (`before_id` = the last id shown),
/// optionally of one kind and within dates.
#[utoipa::path(get, path = "/api/v1/loyalty/members/{company_id}/{member_id}/ledger", tag = "loyalty",
    params(("company_id" = i64, Path), ("member_id" = i64, Path), LedgerParams),
    responses((status = 200, description = "{entries: [...], more}"), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn ledger(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((company_id, member_id)): Path<(i64, i64)>,
    Query(p): Query<LedgerParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = p.limit.unwrap_or(100).clamp(1, 500);
    // One more than asked tells whether another page follows.
    let q = LedgerQuery { before_id: p.before_id, kind: p.kind, from: p.from, to: p.to, limit: limit + 1 };
    let mut entries = s.store.points_ledger(&scope, CompanyId(company_id), MemberId(member_id), &q).await?;
    let more = entries.len() as i64 > limit;
    entries.truncate(limit as usize);
    Ok(Json(json!({ "entries": entries, "more": more })))
}

#[derive(Deserialize, ToSchema)]
pub struct AdjustBody {
    /// Positive adds, negative deducts.
    points: i64,
    reason: String,
    /// Idempotency key: the same request id applies once.
    request_id: String,
}

/// An operator's points adjustment (人工调整), audited, idempotent by `request_id`.
#[utoipa::path(post, path = "/api/v1/loyalty/members/{company_id}/{member_id}/adjust", request_body = AdjustBody, tag = "loyalty",
    params(("company_id" = i64, Path), ("member_id" = i64, Path)),
    responses((status = 200, description = "{applied, balance}"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn adjust(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((company_id, member_id)): Path<(i64, i64)>,
    Json(b): Json<AdjustBody>,
) -> Result<Json<Value>, ApiError> {
    let r = s
        .store
        .adjust_points(&scope, CompanyId(company_id), MemberId(member_id), b.points, &b.reason, &b.request_id)
        .await?;
    Ok(Json(json!({ "result": r })))
}

#[derive(Deserialize, ToSchema)]
pub struct ExchangeBody {
    /// A coupon template listed in the rules' `points.redemption.coupon_tiers`.
    template: String,
    /// Idempotency key.
    request_id: String,
}

/// Exchanges points for a discount coupon by the company's exchange tiers (积分兑换).
#[utoipa::path(post, path = "/api/v1/loyalty/members/{company_id}/{member_id}/exchange", request_body = ExchangeBody, tag = "loyalty",
    params(("company_id" = i64, Path), ("member_id" = i64, Path)),
    responses((status = 200, description = "{code, balance}"), (status = 400, body = ErrorBody)))]
pub async fn exchange(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((company_id, member_id)): Path<(i64, i64)>,
    Json(b): Json<ExchangeBody>,
) -> Result<Json<Value>, ApiError> {
    let (code, balance) =
        s.store.exchange_points(&scope, CompanyId(company_id), MemberId(member_id), &b.template, &b.request_id).await?;
    Ok(Json(json!({ "code": code, "balance": balance })))
}

/// Coupon templates with their statistics — the columns of seed 000's 优惠券统计: name, code, kind,
/// status, minimum spend, face value, stores, validity, issued, used, shared, share succeeded/failed.
#[utoipa::path(get, path = "/api/v1/loyalty/coupons", params(CompanyQuery), tag = "loyalty",
    responses((status = 200, description = "{templates: [...]}")))]
pub async fn templates(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(q): Query<CompanyQuery>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    let day = today(&s, &scope, company).await?;
    Ok(Json(json!({ "templates": s.store.coupon_templates(&scope, company, day).await? })))
}

#[derive(Deserialize, ToSchema)]
pub struct TemplateBody {
    company: Option<String>,
    /// code, name, kind (cash | percentage | gift), face_value (fen), percent, gift_product,
    /// min_spend (fen), validity ({kind: absolute, from, to} | {kind: days, days}), products,
    /// categories, stackable, per_member_limit, total_quantity, issue_event (registration |
    /// birthday | referral_success | points_redemption).
    #[schema(value_type = Object)]
    template: CouponTemplateInput,
}

/// Creates a coupon template (a draft until enabled).
#[utoipa::path(post, path = "/api/v1/loyalty/coupons", request_body = TemplateBody, tag = "loyalty",
    responses((status = 200, description = "{id}"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn create_template(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(b): Json<TemplateBody>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    Ok(Json(json!({ "id": s.store.create_coupon_template(&scope, company, &b.template).await? })))
}

/// One coupon template with its statistics.
#[utoipa::path(get, path = "/api/v1/loyalty/coupons/{code}", params(("code" = String, Path), CompanyQuery), tag = "loyalty",
    responses((status = 200, description = "the template, as one entry of GET /api/v1/loyalty/coupons"), (status = 404, body = ErrorBody)))]
pub async fn template(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Query(q): Query<CompanyQuery>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    let day = today(&s, &scope, company).await?;
    Ok(Json(json!(s.store.coupon_template(&scope, company, &code, day).await?)))
}

/// Rewrites a draft template's terms (same body as creating it; the code cannot change). An
/// enabled or disabled template is 409: its coupons are redeemed under the terms they were issued
/// with.
#[utoipa::path(put, path = "/api/v1/loyalty/coupons/{code}", request_body = TemplateBody, tag = "loyalty",
    params(("code" = String, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn update_template(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Json(b): Json<TemplateBody>,
) -> Result<axum::http::StatusCode, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    s.store.update_coupon_template(&scope, company, &code, &b.template).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Deletes a draft template; one that was ever enabled can only be disabled (409).
#[utoipa::path(delete, path = "/api/v1/loyalty/coupons/{code}", params(("code" = String, Path), CompanyQuery), tag = "loyalty",
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn delete_template(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Query(q): Query<CompanyQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    s.store.delete_coupon_template(&scope, company, &code).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct EnableBody {
    company: Option<String>,
    /// Store codes; omitted: every store of the company.
    stores: Option<Vec<String>>,
}

/// Enables a template and chooses its stores (启用，选择适用门店).
#[utoipa::path(post, path = "/api/v1/loyalty/coupons/{code}/enable", request_body = EnableBody, tag = "loyalty",
    params(("code" = String, Path)), responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn enable(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Json(b): Json<EnableBody>,
) -> Result<axum::http::StatusCode, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    s.store.enable_coupon_template(&scope, company, &code, b.stores.as_deref()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Disables a template (停用): no more issuing or redeeming.
#[utoipa::path(post, path = "/api/v1/loyalty/coupons/{code}/disable", params(("code" = String, Path), CompanyQuery), tag = "loyalty",
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn disable(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Query(q): Query<CompanyQuery>,
) -> Result<axum::http::StatusCode, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    s.store.disable_coupon_template(&scope, company, &code).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
pub struct IssueBody {
    company: Option<String>,
    /// Issue to these cards …
    card_nos: Option<Vec<String>>,
    /// … or to every member of an audience (docs/audience-language.md), within the caller's scope.
    expression: Option<String>,
    /// Idempotency key: re-sending the same request issues nothing twice.
    request_id: String,
}

/// Issues a template's coupons to cards or to an audience. Per-member limits and the total quantity
/// hold; the report says how many were issued, already issued, over the limit or out of stock.
#[utoipa::path(post, path = "/api/v1/loyalty/coupons/{code}/issue", request_body = IssueBody, tag = "loyalty",
    params(("code" = String, Path)),
    responses((status = 200, description = "{issued, unchanged, over_limit, exhausted, codes}"), (status = 400, body = ErrorBody)))]
pub async fn issue(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(code): Path<String>,
    Json(b): Json<IssueBody>,
) -> Result<Json<IssueReport>, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    if b.request_id.trim().is_empty() {
        return Err(ApiError::BadRequest("request_id 不能为空".into()));
    }
    let members: Vec<MemberId> = match (&b.card_nos, &b.expression) {
        (Some(cards), None) => {
            let mut ids = Vec::with_capacity(cards.len());
            let mut unknown = Vec::new();
            for c in cards {
                match s.store.pos_identify(&scope, company, &MemberKey::Card(c.clone())).await {
                    Ok(m) => ids.push(MemberId(m.member_id)),
                    Err(rxmember_store::StoreError::NotFound { .. }) => unknown.push(c.clone()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !unknown.is_empty() {
                return Err(ApiError::BadRequest(format!("以下卡号不存在 (unknown cards): {}", unknown.join(", "))));
            }
            ids
        }
        (None, Some(text)) => {
            let h = s.intelligence.company(company).await?;
            let engine = h.engine.read().await;
            let d = engine.current();
            let mask = engine.scope_mask(&d, &scope.data).map_err(|_| ApiError::Forbidden)?;
            let selected = engine.select_text(&d, text, &mask)?;
            selected.iter().map(|o| engine.data.members.get(o as usize).id()).collect()
        }
        _ => return Err(ApiError::BadRequest("give either `card_nos` or `expression`".into())),
    };
    let day = today(&s, &scope, company).await?;
    let cause = format!("request:{}", b.request_id.trim());
    Ok(Json(s.store.issue_coupons(&scope, company, &code, &members, &cause, day).await?))
}

#[derive(Deserialize, ToSchema)]
pub struct RedeemBody {
    company: Option<String>,
    /// The coupon code as scanned or typed.
    code: String,
    store_code: String,
    /// What it was used for (a ticket number, a service), for the record.
    reference: String,
}

/// Verifies and redeems a coupon by its code outside a POS sale (手机核销), exactly once.
#[utoipa::path(post, path = "/api/v1/loyalty/redeem", request_body = RedeemBody, tag = "loyalty",
    responses((status = 200, description = "the coupon"), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn redeem(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(b): Json<RedeemBody>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    let store = *s
        .store
        .store_codes(&scope, company)
        .await?
        .get(&b.store_code)
        .ok_or_else(|| ApiError::BadRequest(format!("门店编码“{}”不存在", b.store_code)))?;
    let c = s.store.redeem_coupon(&scope, company, &b.code, store, &b.reference).await?;
    Ok(Json(json!({ "coupon": c })))
}

#[derive(Deserialize, ToSchema)]
pub struct ShareBody {
    company: Option<String>,
    /// The sharing member's card.
    card_no: String,
    code: String,
}

/// A member offers a coupon to a friend (分享); it is held aside until claimed or failed.
#[utoipa::path(post, path = "/api/v1/loyalty/shares", request_body = ShareBody, tag = "loyalty",
    responses((status = 200, description = "{share_id}"), (status = 400, body = ErrorBody)))]
pub async fn share(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(b): Json<ShareBody>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    let m = s.store.pos_identify(&scope, company, &MemberKey::Card(b.card_no.clone())).await?;
    Ok(Json(json!({ "share_id": s.store.share_coupon(&scope, company, MemberId(m.member_id), &b.code).await? })))
}

#[derive(Deserialize, ToSchema)]
pub struct ResolveBody {
    company: Option<String>,
    /// The friend's card: the share succeeded. Omitted: it failed (declined or expired).
    to_card_no: Option<String>,
}

/// Resolves a share: claimed by the friend (share succeeded) or failed (back to the sharer).
#[utoipa::path(post, path = "/api/v1/loyalty/shares/{id}", request_body = ResolveBody, tag = "loyalty",
    params(("id" = i64, Path)), responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn resolve_share(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(id): Path<i64>,
    Json(b): Json<ResolveBody>,
) -> Result<axum::http::StatusCode, ApiError> {
    let company = require_company(&s, &scope, b.company.as_deref()).await?;
    let to = match &b.to_card_no {
        Some(c) => Some(MemberId(s.store.pos_identify(&scope, company, &MemberKey::Card(c.clone())).await?.member_id)),
        None => None,
    };
    s.store.resolve_share(&scope, company, id, to).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
pub struct JobQuery {
    company: Option<String>,
    /// The day the job runs for (YYYY-MM-DD); default today.
    date: Option<NaiveDate>,
}

/// Runs a loyalty job now for one company (company admins): `accrue-points` (imported tickets and
/// returns), `expire-points`, `review-tiers`, `event-coupons` (birthdays, registrations,
/// referrals), `opening-balances` (ERP legacy points).
#[utoipa::path(post, path = "/api/v1/loyalty/jobs/{job}", params(("job" = String, Path), JobQuery), tag = "loyalty",
    responses((status = 200, description = "what the job did"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn run_job(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(job): Path<String>,
    Query(q): Query<JobQuery>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, q.company.as_deref()).await?;
    let day = match q.date {
        Some(d) => d,
        None => today(&s, &scope, company).await?,
    };
    let out = match job.as_str() {
        "accrue-points" => {
            let (t, r) = s.store.accrue_points(&scope, company).await?;
            json!({ "tickets_earned": t, "returns_taken_back": r })
        }
        "expire-points" => {
            let (lots, points) = s.store.expire_points(&scope, company, day).await?;
            json!({ "lots": lots, "points": points })
        }
        "review-tiers" => {
            let (reviewed, changed) = s.store.review_tiers(&scope, company, day).await?;
            json!({ "reviewed": reviewed, "changed": changed })
        }
        "event-coupons" => json!(s.store.issue_event_coupons(&scope, company, day).await?),
        "opening-balances" => json!({ "cards": s.store.open_points_balances(&scope, company).await? }),
        other => return Err(ApiError::BadRequest(format!("unknown job {other}"))),
    };
    Ok(Json(out))
}
