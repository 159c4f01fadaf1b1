//! The JSON API under `/api/v1`, and the console page.

use crate::AppState;
use crate::auth::{Caller, clear_cookie, session_cookie, session_token};
use crate::error::{ApiError, ErrorBody};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use rxmember_core::org::Scope;
use rxmember_core::{CompanyId, MemberId, TicketId};
use rxmember_import::{Kind, Source};
use rxmember_store::members::MemberQuery;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::{IntoParams, ToSchema};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/health", get(health))
        .route("/api/v1/login", post(login))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/me", get(me))
        .route("/api/v1/companies", get(companies))
        .route("/api/v1/stores", get(stores))
        .route("/api/v1/products", get(products))
        .route("/api/v1/members", get(members))
        .route("/api/v1/members/{company_id}/{member_id}", get(member))
        .route("/api/v1/tickets", get(tickets))
        .route("/api/v1/tickets/{company_id}/{ticket_id}", get(ticket))
        .route("/api/v1/import/{kind}", post(import))
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    database: bool,
    version: &'static str,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn health(State(s): State<AppState>) -> Response {
    let db = s.store.ping().await;
    let body = Health { status: if db { "ok" } else { "degraded" }, database: db, version: env!("CARGO_PKG_VERSION") };
    let status = if db { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

#[derive(Deserialize, ToSchema)]
pub struct LoginRequest {
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct Me {
    username: Option<String>,
    display_name: Option<String>,
    role: String,
    role_label: String,
    company_id: Option<i64>,
    is_pharmacist: bool,
    sees_personal_data: bool,
}

/// Logs in with a username and password; sets the session cookie (HttpOnly, SameSite=Lax).
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest,
    responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn login(State(s): State<AppState>, Json(req): Json<LoginRequest>) -> Result<Response, ApiError> {
    let Some(staff) = s.store.authenticate(&req.username, &req.password).await? else {
        tracing::info!(username = %req.username, "login failed");
        return Err(ApiError::Unauthenticated);
    };
    let token = s.store.create_session(staff.id, crate::auth::SESSION_TTL_MS).await?;
    let scope = staff.scope();
    s.store.audit(&scope, staff.company_id, "login", Some(&staff.username), None).await?;
    let me = Me {
        username: Some(staff.username.clone()),
        display_name: Some(staff.display_name.clone()),
        role: staff.role.as_str().into(),
        role_label: staff.role.label_zh().into(),
        company_id: staff.company_id.map(|c| c.0),
        is_pharmacist: staff.is_pharmacist,
        sees_personal_data: staff.role.sees_personal_data(),
    };
    Ok(([(SET_COOKIE, session_cookie(&token, s.secure_cookies))], Json(me)).into_response())
}

/// Ends the session.
#[utoipa::path(post, path = "/api/v1/logout", responses((status = 204)))]
pub async fn logout(State(s): State<AppState>, req: axum::extract::Request) -> Result<Response, ApiError> {
    let (parts, _) = req.into_parts();
    if let Some(t) = session_token(&parts) {
        s.store.delete_session(&t).await?;
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, clear_cookie())]).into_response())
}

/// The caller: role and scope.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = Me), (status = 401, body = ErrorBody)))]
pub async fn me(State(s): State<AppState>, Caller(scope): Caller) -> Result<Json<Me>, ApiError> {
    let staff = match scope.staff {
        Some(id) => s.store.staff_by_id(id).await?,
        None => None,
    };
    Ok(Json(Me {
        username: staff.as_ref().map(|s| s.username.clone()),
        display_name: staff.as_ref().map(|s| s.display_name.clone()),
        role: scope.role.as_str().into(),
        role_label: scope.role.label_zh().into(),
        company_id: scope.data.company().map(|c| c.0),
        is_pharmacist: staff.as_ref().is_some_and(|s| s.is_pharmacist),
        sees_personal_data: scope.role.sees_personal_data(),
    }))
}

/// The companies the caller may see.
#[utoipa::path(get, path = "/api/v1/companies", responses((status = 200, description = "[{id, code, name, brand, utc_offset_minutes}]")))]
pub async fn companies(State(s): State<AppState>, Caller(scope): Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "companies": s.store.companies(&scope).await? })))
}

#[derive(Deserialize, IntoParams)]
pub struct CompanyFilter {
    /// Company code; required for group-level callers on company data.
    company: Option<String>,
    /// Search text.
    q: Option<String>,
    /// 1-based page.
    page: Option<i64>,
    per_page: Option<i64>,
    /// Store id (members) or member id (tickets).
    store: Option<i64>,
    member: Option<i64>,
}

impl CompanyFilter {
    fn paging(&self) -> (i64, i64) {
        let per = self.per_page.unwrap_or(50).clamp(1, 500);
        (per, (self.page.unwrap_or(1).max(1) - 1) * per)
    }
}

async fn resolve_company(s: &AppState, scope: &Scope, code: Option<&str>) -> Result<Option<CompanyId>, ApiError> {
    match code {
        Some(c) => Ok(Some(s.store.company_by_code(scope, c).await?.id)),
        None => Ok(scope.data.company()),
    }
}

pub(crate) async fn require_company(s: &AppState, scope: &Scope, code: Option<&str>) -> Result<CompanyId, ApiError> {
    resolve_company(s, scope, code).await?.ok_or_else(|| ApiError::BadRequest("请指定公司 (add ?company=CODE)".into()))
}

/// Stores in the caller's scope.
#[utoipa::path(get, path = "/api/v1/stores", params(CompanyFilter), responses((status = 200, description = "{stores: [...]}")))]
pub async fn stores(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(f): Query<CompanyFilter>,
) -> Result<Json<Value>, ApiError> {
    let company = resolve_company(&s, &scope, f.company.as_deref()).await?;
    Ok(Json(json!({ "stores": s.store.stores(&scope, company).await? })))
}

/// The drug master of a company, searchable by code, name, generic name or manufacturer.
#[utoipa::path(get, path = "/api/v1/products", params(CompanyFilter), responses((status = 200, description = "{total, products: [...]}")))]
pub async fn products(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(f): Query<CompanyFilter>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, f.company.as_deref()).await?;
    let (limit, offset) = f.paging();
    let (total, products) = s.store.products(&scope, company, f.q.as_deref(), limit, offset).await?;
    Ok(Json(json!({ "total": total, "products": products })))
}

/// Members in the caller's scope; `q` finds a card number, a phone or an exact name. Phones and names
/// are masked unless the role may see them (and then the reveal is audited).
#[utoipa::path(get, path = "/api/v1/members", params(CompanyFilter), responses((status = 200, description = "{total, members: [...]}")))]
pub async fn members(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(f): Query<CompanyFilter>,
) -> Result<Json<Value>, ApiError> {
    let company = resolve_company(&s, &scope, f.company.as_deref()).await?;
    let (limit, offset) = f.paging();
    let page = s
        .store
        .search_members(
            &scope,
            &MemberQuery { company, q: f.q.clone(), store: f.store.map(rxmember_core::StoreId), limit, offset },
        )
        .await?;
    Ok(Json(json!(page)))
}

/// One member with all their cards.
#[utoipa::path(get, path = "/api/v1/members/{company_id}/{member_id}",
    params(("company_id" = i64, Path), ("member_id" = i64, Path)),
    responses((status = 200, description = "the member"), (status = 404, body = ErrorBody)))]
pub async fn member(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((c, m)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(s.store.member(&scope, CompanyId(c), MemberId(m)).await?)))
}

/// Tickets of a company, newest first; `member` limits to one member.
#[utoipa::path(get, path = "/api/v1/tickets", params(CompanyFilter), responses((status = 200, description = "{tickets: [...]}")))]
pub async fn tickets(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Query(f): Query<CompanyFilter>,
) -> Result<Json<Value>, ApiError> {
    let company = require_company(&s, &scope, f.company.as_deref()).await?;
    let (limit, offset) = f.paging();
    if let Some(m) = f.member {
        // Reading a member's tickets requires seeing the member.
        s.store.member(&scope, company, MemberId(m)).await?;
    }
    Ok(Json(json!({ "tickets": s.store.tickets(&scope, company, f.member, limit, offset).await? })))
}

/// One ticket with its lines and returns.
#[utoipa::path(get, path = "/api/v1/tickets/{company_id}/{ticket_id}",
    params(("company_id" = i64, Path), ("ticket_id" = i64, Path)),
    responses((status = 200, description = "the ticket"), (status = 404, body = ErrorBody)))]
pub async fn ticket(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path((c, t)): Path<(i64, i64)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(s.store.ticket(&scope, CompanyId(c), TicketId(t)).await?)))
}

#[derive(Deserialize, IntoParams)]
pub struct ImportParams {
    /// Company code (only for console users; a token is bound to its company).
    company: Option<String>,
}

/// Imports ERP data: a JSON array of rows (fields as in DATA.md, English or Chinese names), or a
/// multipart upload with a `file` field (CSV in UTF-8/GBK, or XLSX). Authenticate with
/// `Authorization: Bearer <company API token>`. Same cleaning, idempotency and report as the CLI.
#[utoipa::path(post, path = "/api/v1/import/{kind}",
    params(("kind" = String, Path, description = "stores | members | products | sales | returns | health_checks"), ImportParams),
    responses((status = 200, description = "{summary, issues}"), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn import(
    State(s): State<AppState>,
    Caller(scope): Caller,
    Path(kind): Path<String>,
    Query(p): Query<ImportParams>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Json<Value>, ApiError> {
    let kind = Kind::parse(&kind).ok_or_else(|| ApiError::BadRequest(format!("unknown kind {kind}")))?;
    let company = require_company(&s, &scope, p.company.as_deref()).await?;
    scope.require_company_admin(company).map_err(|_| ApiError::Forbidden)?;
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // Uploaded files go to a temporary file so CSV is streamed like on the command line.
    let mut _tmp: Option<TempFile> = None;
    let source = if content_type.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(request, &s).await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let mut found = None;
        while let Some(mut field) = mp.next_field().await.map_err(|e| ApiError::BadRequest(e.to_string()))? {
            if field.name() != Some("file") {
                continue;
            }
            let name = field.file_name().unwrap_or("upload.csv").to_string();
            let ext = std::path::Path::new(&name).extension().and_then(|e| e.to_str()).unwrap_or("csv").to_lowercase();
            let tmp = TempFile::new(&ext);
            let mut out = tokio::fs::File::create(&tmp.0).await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
            while let Some(chunk) = field.chunk().await.map_err(|e| ApiError::BadRequest(e.to_string()))? {
                tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                    .await
                    .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            }
            tokio::io::AsyncWriteExt::flush(&mut out).await.map_err(|e| ApiError::BadRequest(e.to_string()))?;
            found = Some((Source::open(&tmp.0)?, name));
            _tmp = Some(tmp);
            break;
        }
        let (src, _) = found.ok_or_else(|| ApiError::BadRequest("multipart upload needs a `file` field".into()))?;
        src
    } else {
        let bytes = axum::body::to_bytes(request.into_body(), 1 << 30)
            .await
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let rows: Vec<serde_json::Map<String, Value>> = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::BadRequest(format!("body must be a JSON array of objects: {e}")))?;
        Source::json(format!("api:{}", scope.actor), &rows)
    };
    let report = rxmember_import::import(&s.store, &scope, company, kind, source, &mut |_, _| {}).await?;
    let issues: Vec<_> = report.lines.iter().take(1000).collect();
    Ok(Json(
        json!({ "summary": report.summary_json(), "issues": issues, "issues_total": report.lines.len() as u64 + report.lines_dropped }),
    ))
}

use axum::extract::FromRequest;

/// A temporary upload file, removed when the request ends.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(ext: &str) -> TempFile {
        let n: u64 = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        TempFile(std::env::temp_dir().join(format!("rxmember-upload-{}-{n}.{ext}", std::process::id())))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
