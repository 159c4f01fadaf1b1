//! Organisation and access: group → companies (tenants) → stores; staff accounts with a role and a
//! data scope. A [`Scope`] is what every repository function takes: it says which companies, stores and
//! members the caller may touch. There is no unscoped access to tenant data.

use crate::ids::{CompanyId, StaffId, StoreId};
use serde::{Deserialize, Serialize};

/// What an account may do. Ordered from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// 集团管理员: all companies.
    GroupAdmin,
    /// 公司管理员: one company.
    CompanyAdmin,
    /// 店长: chosen stores of one company.
    StoreManager,
    /// 店员: own store, own members.
    Clerk,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::GroupAdmin => "group_admin",
            Role::CompanyAdmin => "company_admin",
            Role::StoreManager => "store_manager",
            Role::Clerk => "clerk",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "group_admin" => Role::GroupAdmin,
            "company_admin" => Role::CompanyAdmin,
            "store_manager" => Role::StoreManager,
            "clerk" => Role::Clerk,
            _ => return None,
        })
    }

    /// Chinese label for the UI.
    pub fn label_zh(self) -> &'static str {
        match self {
            Role::GroupAdmin => "集团管理员",
            Role::CompanyAdmin => "公司管理员",
            Role::StoreManager => "店长",
            Role::Clerk => "店员",
        }
    }

    /// Whether the role sees members' phone numbers and names unmasked. Each reveal is audited.
    pub fn sees_personal_data(self) -> bool {
        matches!(self, Role::GroupAdmin | Role::CompanyAdmin)
    }

    /// Whether the role may import data and manage the company's configuration.
    pub fn manages_company(self) -> bool {
        matches!(self, Role::GroupAdmin | Role::CompanyAdmin)
    }
}

/// Which tenant data an account or token may touch (数据权限).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataScope {
    /// Every company of the group.
    All,
    /// One whole company.
    Company { company: CompanyId },
    /// Chosen stores of one company (账号权限设置：选择可管理的门店).
    Stores { company: CompanyId, stores: Vec<StoreId> },
    /// The members a clerk developed or was assigned, in one company.
    OwnMembers { company: CompanyId, staff: StaffId, clerk_code: String },
}

impl DataScope {
    pub fn kind_str(&self) -> &'static str {
        match self {
            DataScope::All => "all",
            DataScope::Company { .. } => "company",
            DataScope::Stores { .. } => "stores",
            DataScope::OwnMembers { .. } => "own_members",
        }
    }

    /// The single company this scope is limited to, if any.
    pub fn company(&self) -> Option<CompanyId> {
        match self {
            DataScope::All => None,
            DataScope::Company { company }
            | DataScope::Stores { company, .. }
            | DataScope::OwnMembers { company, .. } => Some(*company),
        }
    }

    /// Whether the scope includes the whole of `company`.
    pub fn covers_company(&self, company: CompanyId) -> bool {
        match self {
            DataScope::All => true,
            DataScope::Company { company: c } => *c == company,
            _ => false,
        }
    }

    /// Whether the scope may see anything of `company` at all.
    pub fn touches_company(&self, company: CompanyId) -> bool {
        match self.company() {
            None => true,
            Some(c) => c == company,
        }
    }
}

/// Who is asking, and what they may touch. Built once per request (session or API token) or per CLI run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `None` for the CLI operator and ERP API tokens.
    pub staff: Option<StaffId>,
    pub role: Role,
    pub data: DataScope,
    /// For the audit log: `staff:zhang`, `token:3/erp`, `cli`.
    pub actor: String,
}

impl Scope {
    /// The operator at the command line on the server itself: full access, audited as `cli`.
    pub fn cli() -> Scope {
        Scope { staff: None, role: Role::GroupAdmin, data: DataScope::All, actor: "cli".into() }
    }

    /// An ERP/POS API token of one company.
    pub fn company_token(company: CompanyId, token_name: &str) -> Scope {
        Scope {
            staff: None,
            role: Role::CompanyAdmin,
            data: DataScope::Company { company },
            actor: format!("token:{}/{}", company.0, token_name),
        }
    }

    /// Checks that the caller may write (import, configure) the whole of `company`.
    pub fn require_company_admin(&self, company: CompanyId) -> Result<(), AccessDenied> {
        if self.role.manages_company() && self.data.covers_company(company) { Ok(()) } else { Err(AccessDenied) }
    }
}

/// The caller's scope does not include what was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("access denied: outside the caller's data scope")]
pub struct AccessDenied;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn company_scope_covers_only_its_company() {
        let s = DataScope::Company { company: CompanyId(1) };
        assert!(s.covers_company(CompanyId(1)));
        assert!(!s.covers_company(CompanyId(2)));
        assert!(!s.touches_company(CompanyId(2)));
        assert!(DataScope::All.covers_company(CompanyId(9)));
        let stores = DataScope::Stores { company: CompanyId(1), stores: vec![StoreId(3)] };
        assert!(!stores.covers_company(CompanyId(1)));
        assert!(stores.touches_company(CompanyId(1)));
    }

    #[test]
    fn store_manager_cannot_import() {
        let s = Scope {
            staff: Some(StaffId(5)),
            role: Role::StoreManager,
            data: DataScope::Stores { company: CompanyId(1), stores: vec![] },
            actor: "staff:m".into(),
        };
        assert_eq!(s.require_company_admin(CompanyId(1)), Err(AccessDenied));
        assert!(Scope::company_token(CompanyId(1), "erp").require_company_admin(CompanyId(1)).is_ok());
        assert!(Scope::company_token(CompanyId(1), "erp").require_company_admin(CompanyId(2)).is_err());
    }

    #[test]
    fn role_round_trips() {
        for r in [Role::GroupAdmin, Role::CompanyAdmin, Role::StoreManager, Role::Clerk] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
    }
}

/// A store as a cleaned import row (DATA.md "stores").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoreInput {
    pub code: String,
    pub name: String,
    pub city: Option<String>,
    pub address: Option<String>,
    pub opened_on: Option<chrono::NaiveDate>,
}
