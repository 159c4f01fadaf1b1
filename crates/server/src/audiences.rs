//! The member-intelligence API: the tag catalogue and saved tags (`/api/v1/tags`), audiences
//! counted, listed and exported (`/api/v1/audiences/...`), RFM grades and engine rebuild
//! (`/api/v1/engine/...`). Every answer is limited to the caller's data scope.

use crate::AppState;
use crate::api::require_company;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::intelligence::CompanyHandle;
use crate::tables::{self, TableFormat};
use axum::extract::{Path, Query, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use roaring::RoaringBitmap;
use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_engine::company::{
    Breakdowns, CatalogueDimension, CompanyEngine, DEFAULT_COLUMNS, GradeSummary, column_headers,
};
use rxmember_engine::data::day_of_date;
use rxmember_engine::derived::Derived;
use rxmember_engine::grades::RfmThresholds;
use rxmember_engine::lang::Expr;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/tags", get(tags).post(save_tag))
        .route("/api/v1/tags/{name}", delete(delete_tag))
        .route("/api/v1/audiences/count", post(count))
        .route("/api/v1/audiences/members", post(members))
        .route("/api/v1/audiences/export", post(export))
        .route("/api/v1/engine/grades", get(grades))
        .route("/api/v1/engine/rebuild", post(rebuild))
}

#[derive(Deserialize, IntoParams)]
pub struct CompanyParam {
    /// Company code; optional for callers limited to one company.
    company: Option<String>,
    /// Evaluate as of this date (YYYY-MM-DD); default today in the company's time zone.
    as_of: Option<NaiveDate>,
}

/// An audience: the expression as text (docs/audience-language.md) or in its JSON form.
#[derive(Deserialize, ToSchema)]
pub struct AudienceRequest {
    /// Company code; optional for callers limited to one company.
    company: Option<String>,
    /// e.g. `grade in ("重要保持", "重要发展") and age between 50 and 70`.
    expression: Option<String>,
    /// The same in JSON form (`{"op": "and", "args": [...]}`), instead of `expression`.
    #[schema(value_type = Object)]
    expr: Option<Expr>,
    as_of: Option<NaiveDate>,
    /// Columns for `members` and `export` (default card_no, store, gender, age, grade, activity,
    /// recency_days, frequency_12m, monetary_12m).
    columns: Option<Vec<String>>,
    /// `members`: rows to skip and to return (default 0 and 50, at most 500).
    offset: Option<u64>,
    limit: Option<u64>,
    /// `export`: csv (default) or xlsx.
    format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct CountResponse {
    count: u64,
    /// Members in the caller's scope.
    scope_total: u64,
    as_of: NaiveDate,
    #[schema(value_type = Object)]
    breakdowns: Breakdowns,
    millis: f64,
}

async fn engine_of(
    s: &AppState,
    scope: &Scope,
    code: Option<&str>,
) -> Result<(CompanyId, Arc<CompanyHandle>), ApiError> {
    let company = require_company(s, scope, code).await?;
    if !scope.data.touches_company(company) {
        return Err(ApiError::Forbidden);
    }
    Ok((company, s.intelligence.company(company).await?))
}

fn derived_for(engine: &CompanyEngine, as_of: Option<NaiveDate>) -> Arc<Derived> {
    match as_of {
        Some(d) => engine.derived_for(day_of_date(d)),
        None => engine.current(),
    }
}

fn select(
    engine: &CompanyEngine,
    d: &Derived,
    scope: &Scope,
    req: &AudienceRequest,
) -> Result<(RoaringBitmap, RoaringBitmap), ApiError> {
    let mask = engine.scope_mask(d, &scope.data).map_err(|_| ApiError::Forbidden)?;
    let members = match (&req.expression, &req.expr) {
        (Some(text), None) => engine.select_text(d, text, &mask)?,
        (None, Some(expr)) => engine.select(d, expr, &mask)?,
        _ => return Err(ApiError::BadRequest("give either `expression` (text) or `expr` (JSON form)".into())),
    };
    Ok((members, mask))
}

/// How many members an audience has, with breakdowns by store, grade, gender and age band.
#[utoipa::path(post, path = "/api/v1/audiences/count", request_body = AudienceRequest,
    responses((status = 200, body = CountResponse), (status = 400, body = ErrorBody, description = "expression error with `offset`")))]
pub async fn count(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(req): Json<AudienceRequest>,
) -> Result<Json<CountResponse>, ApiError> {
    let (_, h) = engine_of(&s, &scope, req.company.as_deref()).await?;
    let started = std::time::Instant::now();
    let engine = h.engine.read().await;
    let d = derived_for(&engine, req.as_of);
    let (members, mask) = select(&engine, &d, &scope, &req)?;
    let c = engine.count(&d, &members, &mask);
    let breakdowns = engine.breakdowns(&d, &members);
    Ok(Json(CountResponse {
        count: c.count,
        scope_total: c.scope_total,
        as_of: c.as_of,
        breakdowns,
        millis: started.elapsed().as_secs_f64() * 1000.0,
    }))
}

fn columns_of(req: &AudienceRequest) -> Result<Vec<String>, ApiError> {
    let columns = req.columns.clone().unwrap_or_else(|| DEFAULT_COLUMNS.iter().map(|c| c.to_string()).collect());
    CompanyEngine::check_columns(&columns).map_err(ApiError::BadRequest)?;
    Ok(columns)
}

/// A page of an audience's members with the chosen columns (personal data is not among them).
#[utoipa::path(post, path = "/api/v1/audiences/members", request_body = AudienceRequest,
    responses((status = 200, description = "{total, columns, headers, rows}"), (status = 400, body = ErrorBody)))]
pub async fn members(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(req): Json<AudienceRequest>,
) -> Result<Json<Value>, ApiError> {
    let columns = columns_of(&req)?;
    let (_, h) = engine_of(&s, &scope, req.company.as_deref()).await?;
    let engine = h.engine.read().await;
    let d = derived_for(&engine, req.as_of);
    let (members, _) = select(&engine, &d, &scope, &req)?;
    let rows = engine.rows(&d, &members, &columns, req.offset.unwrap_or(0), req.limit.unwrap_or(50).clamp(1, 500));
    let (headers, _) = column_headers(&columns);
    Ok(Json(json!({ "total": members.len(), "columns": columns, "headers": headers, "rows": rows })))
}

/// The whole audience as a CSV (UTF-8 with BOM, opens in Excel) or XLSX file. Audited.
#[utoipa::path(post, path = "/api/v1/audiences/export", request_body = AudienceRequest,
    responses((status = 200, description = "the file"), (status = 400, body = ErrorBody)))]
pub async fn export(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(req): Json<AudienceRequest>,
) -> Result<Response, ApiError> {
    let columns = columns_of(&req)?;
    let format = match req.format.as_deref().unwrap_or("csv") {
        "csv" => TableFormat::Csv,
        "xlsx" => TableFormat::Xlsx,
        other => return Err(ApiError::BadRequest(format!("format must be csv or xlsx, not {other}"))),
    };
    let (company, h) = engine_of(&s, &scope, req.company.as_deref()).await?;
    let (rows, n) = {
        let engine = h.engine.read().await;
        let d = derived_for(&engine, req.as_of);
        let (members, _) = select(&engine, &d, &scope, &req)?;
        (engine.rows(&d, &members, &columns, 0, u64::MAX), members.len())
    };
    let (headers, numeric) = column_headers(&columns);
    let bytes = tables::write(format, "人群", &headers, &numeric, &rows).map_err(ApiError::BadRequest)?;
    let what = req.expression.clone().unwrap_or_else(|| req.expr.as_ref().map(|e| e.to_string()).unwrap_or_default());
    s.store.audit(&scope, Some(company), "audience.export", Some(&what), Some(&format!("{n} members"))).await?;
    let name = format!("attachment; filename=\"audience.{}\"", format.extension());
    Ok(([(CONTENT_TYPE, format.content_type().to_string()), (CONTENT_DISPOSITION, name)], bytes).into_response())
}

#[derive(Serialize, ToSchema)]
pub struct TagsResponse {
    #[schema(value_type = Vec<Object>)]
    dimensions: Vec<CatalogueDimension>,
}

/// The tag catalogue: 4 primary dimensions (消费/商品/健康/会员属性), their secondary dimensions and
/// values with member counts in the caller's scope, and the saved tags.
#[utoipa::path(get, path = "/api/v1/tags", params(CompanyParam), responses((status = 200, body = TagsResponse)))]
pub async fn tags(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(p): Query<CompanyParam>,
) -> Result<Json<TagsResponse>, ApiError> {
    let (_, h) = engine_of(&s, &scope, p.company.as_deref()).await?;
    let engine = h.engine.read().await;
    let d = derived_for(&engine, p.as_of);
    let mask = engine.scope_mask(&d, &scope.data).map_err(|_| ApiError::Forbidden)?;
    Ok(Json(TagsResponse { dimensions: engine.catalogue(&d, &mask) }))
}

#[derive(Deserialize, ToSchema)]
pub struct SaveTagRequest {
    company: Option<String>,
    name: String,
    /// An audience expression (text form).
    expression: Option<String>,
    /// Or: card numbers to tag by hand.
    cards: Option<Vec<String>>,
}

/// Saves a tag from an expression or a list of card numbers (company administrators).
#[utoipa::path(post, path = "/api/v1/tags", request_body = SaveTagRequest,
    responses((status = 200, description = "{name, count, unknown_cards}"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn save_tag(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Json(req): Json<SaveTagRequest>,
) -> Result<Json<Value>, ApiError> {
    let name = req.name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(ApiError::BadRequest("标签名称不能为空，也不能含 / (a tag name is needed, without /)".into()));
    }
    let (company, h) = engine_of(&s, &scope, req.company.as_deref()).await?;
    scope.require_company_admin(company).map_err(|_| ApiError::Forbidden)?;
    let unknown = match (&req.expression, &req.cards) {
        (Some(text), None) => {
            {
                let engine = h.engine.read().await;
                let d = engine.current();
                engine.select_text(&d, text, &d.universe)?;
            }
            s.store.save_expression_tag(&scope, company, name, text).await?;
            Vec::new()
        }
        (None, Some(cards)) => s.store.save_card_list_tag(&scope, company, name, cards).await?,
        _ => return Err(ApiError::BadRequest("give either `expression` or `cards`".into())),
    };
    let h = s.intelligence.company(company).await?;
    let engine = h.engine.read().await;
    let d = engine.current();
    let count = d.saved.iter().find(|(n, _)| n == name).and_then(|(_, r)| r.as_ref().ok()).map_or(0, |b| b.len());
    Ok(Json(json!({ "name": name, "count": count, "unknown_cards": unknown })))
}

/// Deletes a saved tag (company administrators).
#[utoipa::path(delete, path = "/api/v1/tags/{name}", params(("name" = String, Path), CompanyParam),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn delete_tag(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(name): Path<String>,
    Query(p): Query<CompanyParam>,
) -> Result<Response, ApiError> {
    let company = require_company(&s, &scope, p.company.as_deref()).await?;
    if !s.store.delete_tag(&scope, company, &name).await? {
        return Err(ApiError::NotFound(format!("标签 {name}")));
    }
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[derive(Serialize, ToSchema)]
pub struct GradesResponse {
    as_of: NaiveDate,
    #[schema(value_type = Object)]
    thresholds: RfmThresholds,
    #[schema(value_type = Vec<Object>)]
    grades: Vec<GradeSummary>,
}

/// Members and 12-month net sales per RFM grade in the caller's scope, with the thresholds in force.
#[utoipa::path(get, path = "/api/v1/engine/grades", params(CompanyParam), responses((status = 200, body = GradesResponse)))]
pub async fn grades(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(p): Query<CompanyParam>,
) -> Result<Json<GradesResponse>, ApiError> {
    let (_, h) = engine_of(&s, &scope, p.company.as_deref()).await?;
    let engine = h.engine.read().await;
    let d = derived_for(&engine, p.as_of);
    let mask = engine.scope_mask(&d, &scope.data).map_err(|_| ApiError::Forbidden)?;
    Ok(Json(GradesResponse {
        as_of: rxmember_engine::data::date_of_day(d.as_of),
        thresholds: d.thresholds,
        grades: engine.grade_summary(&d, &mask),
    }))
}

/// Rebuilds the company's engine from the store (company administrators).
#[utoipa::path(post, path = "/api/v1/engine/rebuild", params(CompanyParam), responses((status = 200, description = "what was read")))]
pub async fn rebuild(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(p): Query<CompanyParam>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, p.company.as_deref()).await?;
    scope.require_company_admin(company).map_err(|_| ApiError::Forbidden)?;
    let report = s.intelligence.rebuild(company).await?;
    Ok(Json(json!(report)))
}
