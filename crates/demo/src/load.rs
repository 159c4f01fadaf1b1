//! Loading the demo group through the store's batch writers — the same idempotent writers the
//! import uses — plus the demo logins.

use crate::generate::{CompanyPlan, Options, Sink, generate};
use rxmember_core::CompanyId;
use rxmember_core::health::HealthCheckInput;
use rxmember_core::member::MemberInput;
use rxmember_core::org::{Role, Scope, StoreInput};
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_store::products::ProductRef;
use rxmember_store::sales::SalesContext;
use rxmember_store::staff::NewStaff;
use rxmember_store::{Store, StoreError};
use std::collections::HashMap;

/// The name the demo gives its group; demo logins are only ever added to a database that has it.
pub const DEMO_GROUP: &str = "太极集团（演示）";

/// The password of every demo login. Printed by `serve --demo`; never use the demo in production.
pub const DEMO_PASSWORD: &str = "demo1234";

struct StoreSink<'a> {
    store: &'a Store,
    scope: Scope,
    company: Option<CompanyId>,
    stores: HashMap<String, rxmember_core::StoreId>,
    products: HashMap<String, ProductRef>,
    sales: Option<SalesContext>,
    /// Batches written, to refresh PostgreSQL's statistics as the tables grow.
    batches: u64,
    progress: &'a mut dyn FnMut(&str),
}

impl StoreSink<'_> {
    fn company_id(&self) -> CompanyId {
        self.company.expect("company() is called first")
    }
}

impl Sink for StoreSink<'_> {
    type Error = StoreError;

    async fn company(&mut self, plan: &CompanyPlan) -> Result<(), StoreError> {
        self.store.init_group(DEMO_GROUP).await?;
        let c = match self.store.company_by_code(&self.scope, plan.code).await {
            Ok(c) => c,
            Err(StoreError::NotFound { .. }) => {
                self.store.create_company(&self.scope, plan.code, plan.name, Some(plan.brand)).await?
            }
            Err(e) => return Err(e),
        };
        self.company = Some(c.id);
        Ok(())
    }

    async fn stores(&mut self, rows: &[StoreInput], _clerks: &[(String, String, String)]) -> Result<(), StoreError> {
        self.store.upsert_stores(&self.scope, self.company_id(), rows).await?;
        self.stores = self.store.store_codes(&self.scope, self.company_id()).await?;
        Ok(())
    }

    async fn products(&mut self, rows: &[ProductInput]) -> Result<(), StoreError> {
        self.store.upsert_products(&self.scope, self.company_id(), rows).await?;
        self.products = self.store.product_refs(&self.scope, self.company_id()).await?;
        self.sales = Some(self.store.sales_context(&self.scope, self.company_id()).await?);
        Ok(())
    }

    async fn members(&mut self, rows: &[MemberInput]) -> Result<(), StoreError> {
        self.store.upsert_members(&self.scope, self.company_id(), &self.stores, rows).await.map(|_| ())
    }

    async fn sales(&mut self, rows: &[(i64, SaleLineInput)]) -> Result<(), StoreError> {
        let ctx = self.sales.as_ref().expect("products() comes before sales()");
        let refs: Vec<(i64, &SaleLineInput)> = rows.iter().map(|(n, l)| (*n, l)).collect();
        self.store.write_sales(&self.scope, ctx, &refs).await?;
        self.batches += 1;
        if self.batches.is_power_of_two() {
            self.store.refresh_statistics(&["tickets", "ticket_lines", "member_cards", "members"]).await?;
        }
        Ok(())
    }

    async fn returns(&mut self, rows: &[ReturnInput]) -> Result<(), StoreError> {
        self.store.write_returns(&self.scope, self.company_id(), &self.products, rows).await.map(|_| ())
    }

    async fn health_checks(&mut self, rows: &[HealthCheckInput]) -> Result<(), StoreError> {
        self.store.write_health_checks(&self.scope, self.company_id(), &self.stores, rows).await.map(|_| ())
    }

    fn progress(&mut self, msg: &str) {
        (self.progress)(msg);
    }
}

/// Generates the demo group into the store. Idempotent: running it twice changes nothing.
pub async fn load(store: &Store, opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<crate::Summary, StoreError> {
    let mut sink = StoreSink {
        store,
        scope: Scope::cli(),
        company: None,
        stores: HashMap::new(),
        products: HashMap::new(),
        sales: None,
        batches: 0,
        progress,
    };
    let summary = generate(opts, &mut sink).await?;
    let end =
        chrono::NaiveDate::from_ymd_opt(crate::DEMO_END.0, crate::DEMO_END.1, crate::DEMO_END.2).expect("valid date");
    for c in store.companies(&Scope::cli()).await? {
        crate::loyalty::setup(store, c.id, end).await?;
        crate::intelligence::setup(store, c.id).await?;
    }
    (sink.progress)("积分规则、会员日与优惠券已设置 (loyalty rules, member days and coupons set up)");
    (sink.progress)("药品群组与标签“慢病关怀”已设置 (drug groups and the saved tag 慢病关怀 set up)");
    Ok(summary)
}

/// The demo logins (password [`DEMO_PASSWORD`]): `admin` (group), and for the first company a
/// company admin, a store manager and a clerk of its first store. Returns (username, role) pairs.
///
/// Refuses (`StoreError::Invalid`) on a database that is not the demo group's: a known password must
/// never reach real data.
pub async fn ensure_demo_logins(store: &Store) -> Result<Vec<(String, Role)>, StoreError> {
    if store.group_name().await?.as_deref() != Some(DEMO_GROUP) {
        return Err(StoreError::Invalid(
            "this database does not hold the demo group: --demo adds demo logins only to demo data".into(),
        ));
    }
    let scope = Scope::cli();
    let existing: Vec<String> = store.staff_list(&scope).await?.into_iter().map(|s| s.username).collect();
    let companies = store.companies(&scope).await?;
    let mut wanted = vec![NewStaff {
        username: "admin".into(),
        display_name: "集团管理员".into(),
        role: Role::GroupAdmin,
        company: None,
        stores: vec![],
        clerk_code: None,
        is_pharmacist: false,
        password: DEMO_PASSWORD.into(),
    }];
    if let Some(c) = companies.first() {
        let stores = store.stores(&scope, Some(c.id)).await?;
        let prefix = c.code.to_lowercase();
        wanted.push(NewStaff {
            username: format!("{prefix}-admin"),
            display_name: format!("{}运营", c.code),
            role: Role::CompanyAdmin,
            company: Some(c.id),
            stores: vec![],
            clerk_code: None,
            is_pharmacist: false,
            password: DEMO_PASSWORD.into(),
        });
        if let Some(s) = stores.first() {
            wanted.push(NewStaff {
                username: format!("{prefix}-manager"),
                display_name: format!("{}店长", s.name),
                role: Role::StoreManager,
                company: Some(c.id),
                stores: vec![s.id],
                clerk_code: None,
                is_pharmacist: false,
                password: DEMO_PASSWORD.into(),
            });
            wanted.push(NewStaff {
                username: format!("{prefix}-clerk"),
                display_name: "演示店员".into(),
                role: Role::Clerk,
                company: Some(c.id),
                stores: vec![s.id],
                clerk_code: Some(format!("{}-01", s.code)),
                is_pharmacist: true,
                password: DEMO_PASSWORD.into(),
            });
        }
    }
    let mut out = Vec::new();
    for w in wanted {
        if !existing.contains(&w.username) {
            store.create_staff(&scope, &w).await?;
        }
        out.push((w.username, w.role));
    }
    Ok(out)
}
