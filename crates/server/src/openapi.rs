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
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail))
)]
pub struct ApiDoc;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { Json(ApiDoc::openapi()) }))
}
