//! Login sessions: a random 32-byte token in a cookie; only its SHA-256 is stored.

use crate::{Result, Store};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rxmember_core::StaffId;
use rxmember_core::time::now_ms;
use sha2::{Digest, Sha256};

pub(crate) fn random_token() -> String {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).expect("the OS random source is available");
    B64URL.encode(b)
}

pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

impl Store {
    /// Opens a session for `staff`, valid for `ttl_ms`; returns the token for the cookie.
    pub async fn create_session(&self, staff: StaffId, ttl_ms: i64) -> Result<String> {
        let token = random_token();
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE expires_at < $1").bind(now).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO sessions (token_hash, staff_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(&token))
            .bind(staff.0)
            .bind(now)
            .bind(now + ttl_ms)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(token)
    }

    /// The staff behind a live session token.
    pub async fn session_staff(&self, token: &str) -> Result<Option<StaffId>> {
        let id: Option<i64> =
            sqlx::query_scalar("SELECT staff_id FROM sessions WHERE token_hash = $1 AND expires_at > $2")
                .bind(token_hash(token))
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await?;
        Ok(id.map(StaffId))
    }

    pub async fn delete_session(&self, token: &str) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
