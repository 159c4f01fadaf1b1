//! Who is calling: a session cookie (staff in the console) or a bearer API token (a company's ERP).
//! Either way the handler receives a [`Caller`] holding the data scope that the store enforces.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::request::Parts;
use rxmember_core::org::Scope;

pub const SESSION_COOKIE: &str = "rxm_session";
/// Sessions last 12 hours: a working day at the store.
pub const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The authenticated caller's scope.
pub struct Caller(pub Scope);

pub fn session_token(parts: &Parts) -> Option<String> {
    parts.headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == SESSION_COOKIE).then(|| v.to_string())
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        if let Some(bearer) =
            parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
        {
            return match state.store.api_token_scope(bearer.trim()).await? {
                Some(scope) => Ok(Caller(scope)),
                None => Err(ApiError::Unauthenticated),
            };
        }
        let token = session_token(parts).ok_or(ApiError::Unauthenticated)?;
        let staff_id = state.store.session_staff(&token).await?.ok_or(ApiError::Unauthenticated)?;
        let staff = state.store.staff_by_id(staff_id).await?.ok_or(ApiError::Unauthenticated)?;
        if staff.disabled {
            return Err(ApiError::Unauthenticated);
        }
        Ok(Caller(staff.scope()))
    }
}

pub fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        SESSION_TTL_MS / 1000,
        if secure { "; Secure" } else { "" }
    )
}

pub fn clear_cookie() -> String {
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}
