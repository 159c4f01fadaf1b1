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
    /// An audience expression that does not parse or evaluate.
    Audience(rxmember_engine::audience::AudienceError),
    Engine(crate::intelligence::IntelligenceError),
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
    /// For `bad_expression`: the character offset (from 0) the error points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// For `bad_expression`: the message in English.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_en: Option<String>,
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

impl From<rxmember_engine::audience::AudienceError> for ApiError {
    fn from(e: rxmember_engine::audience::AudienceError) -> Self {
        ApiError::Audience(e)
    }
}

impl From<crate::intelligence::IntelligenceError> for ApiError {
    fn from(e: crate::intelligence::IntelligenceError) -> Self {
        match e {
            crate::intelligence::IntelligenceError::Store(s) => ApiError::Store(s),
            other => ApiError::Engine(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            ApiError::Unauthenticated => {
                (StatusCode::UNAUTHORIZED, "unauthenticated", "请先登录 (login required)".to_string())
            }
            ApiError::Forbidden => {
                (StatusCode::FORBIDDEN, "forbidden", "无权访问：超出您的数据范围，或您的角色不能执行此操作 (forbidden: outside your data scope, or your role may not do this)".to_string())
            }
            ApiError::NotFound(what) => (StatusCode::NOT_FOUND, "not_found", format!("{what} 不存在 (not found)")),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
            ApiError::Store(e) => match e {
                StoreError::AccessDenied => {
                    (StatusCode::FORBIDDEN, "forbidden", "无权访问：超出您的数据范围，或您的角色不能执行此操作 (forbidden: outside your data scope, or your role may not do this)".into())
                }
                StoreError::NotFound { what } => {
                    (StatusCode::NOT_FOUND, "not_found", format!("{what} 不存在 (not found)"))
                }
                StoreError::Invalid(m) => (StatusCode::BAD_REQUEST, "bad_request", m),
                StoreError::Conflict { what } => (StatusCode::CONFLICT, "conflict", format!("冲突: {what} (conflict)")),
                other => {
                    tracing::error!(error = %other, "store error");
                    (StatusCode::INTERNAL_SERVER_ERROR, "internal", "服务器内部错误 (internal error)".into())
                }
            },
            ApiError::Audience(e) => {
                let detail = ErrorDetail {
                    code: "bad_expression",
                    message: e.to_string(),
                    offset: Some(e.offset()),
                    message_en: Some(e.message_en()),
                };
                return (StatusCode::BAD_REQUEST, Json(ErrorBody { error: detail })).into_response();
            }
            ApiError::Engine(e) => {
                tracing::error!(error = %e, "engine error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", format!("会员引擎错误 (engine error): {e}"))
            }
            ApiError::Import(e) => match e {
                ImportError::Store(inner) => return ApiError::Store(inner).into_response(),
                other => (StatusCode::UNPROCESSABLE_ENTITY, "bad_file", other.to_string()),
            },
        };
        (status, Json(ErrorBody { error: ErrorDetail { code, message, offset: None, message_en: None } }))
            .into_response()
    }
}
