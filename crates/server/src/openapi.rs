//! The OpenAPI document, generated from the handlers' annotations.

use crate::AppState;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "rxmember API",
        description = "Member marketing and service platform for retail pharmacy chains. \
        Console users authenticate with a session cookie from /api/v1/login; ERP/POS systems with \
        `Authorization: Bearer <company API token>` (create one with `rxmember token create`). \
        Errors are `{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        crate::api::health,
        crate::api::login,
        crate::api::logout,
        crate::api::me,
        crate::api::companies,
        crate::api::stores,
        crate::api::products,
        crate::api::members,
        crate::api::member,
        crate::api::tickets,
        crate::api::ticket,
        crate::api::import,
        crate::audiences::count,
        crate::audiences::members,
        crate::audiences::export,
        crate::audiences::tags,
        crate::audiences::save_tag,
        crate::audiences::delete_tag,
        crate::audiences::grades,
        crate::audiences::rebuild,
        crate::pos::identify,
        crate::pos::quote_basket,
        crate::pos::commit_sale,
        crate::pos::commit_return,
        crate::loyalty::rules,
        crate::loyalty::set_rules,
        crate::loyalty::member,
        crate::loyalty::ledger,
        crate::loyalty::adjust,
        crate::loyalty::exchange,
        crate::loyalty::templates,
        crate::loyalty::create_template,
        crate::loyalty::template,
        crate::loyalty::update_template,
        crate::loyalty::delete_template,
        crate::loyalty::enable,
        crate::loyalty::disable,
        crate::loyalty::issue,
        crate::loyalty::redeem,
        crate::loyalty::share,
        crate::loyalty::resolve_share,
        crate::loyalty::run_job,
    ),
    tags(
        (name = "pos", description = "At the till (ERP/POS with a company API token): identify a member,         quote a basket, commit a sale or a return. Money in fen. Typical flow: GET /api/v1/pos/members?card_no=… →         POST /api/v1/pos/quote → POST /api/v1/pos/sales with the same body plus ticket_no."),
        (name = "loyalty", description = "Points, tiers, member days and coupons for operators."),
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail))
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
