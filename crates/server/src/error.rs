//! The one mapping from errors to HTTP: status + `{"error": {"code": "...", "message": "..."}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rxmember_import::ImportError;
use rxmember_store::StoreError;
use serde::Serialize;

#[derive(Debug)]
pub enum ApiError {
    Unauthenticated,
    Forbidden,
    NotFound(String),
    BadRequest(String),
    Store(StoreError),
    Import(ImportError),
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine code: unauthenticated, forbidden, not_found, bad_request, conflict, internal.
    pub code: &'static str,
    pub message: String,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Store(e)
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        ApiError::Import(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", "请先登录 (login required)".to_string())
            }
            ApiError::Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "无权访问 (outside your data scope)".to_string())
            }
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", format!("{what} 不存在 (not found)")),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Store(e) => match e {
                StoreError::AccessDenied => {
                    (StatusCode::FORBIDDEN, "forbidden", "无权访问 (outside your data scope)".into())
                }
                StoreError::NotFound { what } => {
                    (StatusCode::NOT_FOUND, "not_found", format!("{what} 不存在 (not found)"))
                }
                StoreError::Invalid(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
                StoreError::Conflict { what } => {
                    (StatusCode::CONFLICT, "conflict", format!("{what} 已存在 (already exists)"))
                }
                other => {
                    tracing::error!(error = %other, "store error");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误 (internal error)".into())
                }
            },
            ApiError::Import(e) => match e {
                ImportError::Store(inner) => return ApiError::Store(inner).into_response(),
                other => (StatusCode::UNPROCESSABLE_ENTITY, "bad_file", other.to_string()),
            },
        };
        (status, Json(ErrorBody { error: ErrorDetail { code, message } })).into_response()
    }
}
