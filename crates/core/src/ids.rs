//! Identifier newtypes. Tenant data is identified by `(CompanyId, XxxId)`; the inner ids are unique
//! within a company only.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// A retail company: the tenant. Each operates independently inside the group's deployment.
    CompanyId
);
id_type!(
    /// A store, unique within its company.
    StoreId
);
id_type!(
    /// A member (one person; may hold several card numbers after merges), unique within its company.
    MemberId
);
id_type!(
    /// A product of a company's drug master.
    ProductId
);
id_type!(
    /// A staff account (operator, manager, clerk). Unique in the deployment.
    StaffId
);
id_type!(
    /// A sales ticket (小票), unique within its company.
    TicketId
);
