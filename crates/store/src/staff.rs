//! Staff accounts: role, data scope, password (Argon2id). Login turns an account into a [`Scope`].

use crate::{Result, Store, StoreError, counters};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use rxmember_core::org::{DataScope, Role, Scope};
use rxmember_core::time::now_ms;
use rxmember_core::{CompanyId, StaffId, StoreId};
use serde::Serialize;
use sqlx::Row;

/// What is needed to create an account.
#[derive(Debug, Clone)]
pub struct NewStaff {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub company: Option<CompanyId>,
    /// For store managers: the stores they manage. For clerks: their store (first element).
    pub stores: Vec<StoreId>,
    /// The clerk's code in the ERP (sales and member rows name it).
    pub clerk_code: Option<String>,
    pub is_pharmacist: bool,
    pub password: String,
}

/// An account as shown to administrators (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffAccount {
    pub id: StaffId,
    pub company_id: Option<CompanyId>,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub is_pharmacist: bool,
    pub clerk_code: Option<String>,
    pub stores: Vec<StoreId>,
    pub disabled: bool,
}

impl StaffAccount {
    /// The data scope this account works under.
    pub fn scope(&self) -> Scope {
        let data = match (self.role, self.company_id) {
            (Role::GroupAdmin, _) => DataScope::All,
            (_, None) => DataScope::Stores { company: CompanyId(-1), stores: vec![] },
            (Role::CompanyAdmin, Some(c)) => DataScope::Company { company: c },
            (Role::StoreManager, Some(c)) => DataScope::Stores { company: c, stores: self.stores.clone() },
            (Role::Clerk, Some(c)) => DataScope::OwnMembers {
                company: c,
                staff: self.id,
                clerk_code: self.clerk_code.clone().unwrap_or_default(),
            },
        };
        Scope { staff: Some(self.id), role: self.role, data, actor: format!("staff:{}", self.username) }
    }
}

/// Hashes a password with Argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| StoreError::Crypto(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

impl Store {
    /// Creates an account. Group admins create any; company admins create accounts of their own
    /// company below their own role.
    pub async fn create_staff(&self, scope: &Scope, new: &NewStaff) -> Result<StaffAccount> {
        match (scope.role, new.role) {
            (Role::GroupAdmin, _) if scope.data.company().is_none() => {}
            (Role::CompanyAdmin, Role::StoreManager | Role::Clerk | Role::CompanyAdmin)
                if new.company.is_some_and(|c| scope.data.covers_company(c)) => {}
            _ => return Err(StoreError::AccessDenied),
        }
        if new.role != Role::GroupAdmin && new.company.is_none() {
            return Err(StoreError::Invalid("a company account needs a company".into()));
        }
        if new.password.chars().count() < 8 {
            return Err(StoreError::Invalid("密码至少8位 (password must have at least 8 characters)".into()));
        }
        let hash = hash_password(&new.password)?;
        let mut tx = self.begin_write().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT id FROM staff WHERE username = $1")
            .bind(new.username.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict { what: format!("username {}", new.username) });
        }
        let id = counters::allocate(&mut tx, 0, "staff", 1).await?;
        let scope_kind = match new.role {
            Role::GroupAdmin => "all",
            Role::CompanyAdmin => "company",
            Role::StoreManager => "stores",
            Role::Clerk => "own_members",
        };
        sqlx::query(
            "INSERT INTO staff (id, company_id, username, display_name, role, is_pharmacist, scope_kind, clerk_code, store_id, password_hash, disabled, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(id)
        .bind(new.company.map(|c| c.0))
        .bind(new.username.as_str())
        .bind(new.display_name.as_str())
        .bind(new.role.as_str())
        .bind(new.is_pharmacist)
        .bind(scope_kind)
        .bind(new.clerk_code.as_deref())
        .bind(new.stores.first().map(|s| s.0))
        .bind(hash)
        .bind(false)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        if let Some(c) = new.company {
            for s in &new.stores {
                sqlx::query("INSERT INTO staff_stores (company_id, staff_id, store_id) VALUES ($1, $2, $3)")
                    .bind(c.0)
                    .bind(id)
                    .bind(s.0)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.audit(scope, new.company, "staff.create", Some(&new.username), Some(new.role.as_str())).await?;
        self.staff_by_id(StaffId(id)).await?.ok_or_else(|| StoreError::NotFound { what: "staff".into() })
    }

    /// Checks a username and password. `None` for unknown users, wrong passwords and disabled
    /// accounts alike, in the same time, so a caller cannot tell which.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Option<StaffAccount>> {
        let row = sqlx::query("SELECT id, password_hash, disabled FROM staff WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        // A fixed dummy hash keeps the timing of unknown users equal to that of wrong passwords.
        const DUMMY: &str =
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2MnUTH7nNFvbsBGBRQzhcqn3SrBD2Eme4OY5RRkdT8Y";
        let Some(row) = row else {
            let _ = verify_password(password, DUMMY);
            return Ok(None);
        };
        let phc: String = row.try_get("password_hash")?;
        let ok = verify_password(password, &phc);
        let disabled: bool = crate::db::flag(&row, "disabled")?;
        if !ok || disabled {
            return Ok(None);
        }
        self.staff_by_id(StaffId(row.try_get("id")?)).await
    }

    /// An account by id (for sessions).
    pub async fn staff_by_id(&self, id: StaffId) -> Result<Option<StaffAccount>> {
        let Some(r) = sqlx::query("SELECT * FROM staff WHERE id = $1").bind(id.0).fetch_optional(&self.pool).await?
        else {
            return Ok(None);
        };
        let company_id: Option<i64> = r.try_get("company_id")?;
        let stores: Vec<i64> = match company_id {
            Some(c) => {
                sqlx::query_scalar(
                    "SELECT store_id FROM staff_stores WHERE company_id = $1 AND staff_id = $2 ORDER BY store_id",
                )
                .bind(c)
                .bind(id.0)
                .fetch_all(&self.pool)
                .await?
            }
            None => vec![],
        };
        let role: String = r.try_get("role")?;
        Ok(Some(StaffAccount {
            id,
            company_id: company_id.map(CompanyId),
            username: r.try_get("username")?,
            display_name: r.try_get("display_name")?,
            role: Role::parse(&role).ok_or_else(|| StoreError::Invalid(format!("unknown role {role}")))?,
            is_pharmacist: crate::db::flag(&r, "is_pharmacist")?,
            clerk_code: r.try_get("clerk_code")?,
            stores: stores.into_iter().map(StoreId).collect(),
            disabled: crate::db::flag(&r, "disabled")?,
        }))
    }

    /// The accounts the caller may see.
    pub async fn staff_list(&self, scope: &Scope) -> Result<Vec<StaffAccount>> {
        let ids: Vec<i64> = match scope.data.company() {
            None => sqlx::query_scalar("SELECT id FROM staff ORDER BY id").fetch_all(&self.pool).await?,
            Some(c) => {
                sqlx::query_scalar("SELECT id FROM staff WHERE company_id = $1 ORDER BY id")
                    .bind(c.0)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = self.staff_by_id(StaffId(id)).await? {
                out.push(a);
            }
        }
        Ok(out)
    }
}
