//! rxmember-core: the domain of a pharmacy chain's member platform — organisation and access scope,
//! members, products, sales, health checks, the category taxonomy, and the cleaning rules that turn
//! ERP exports into trustworthy values.
//!
//! This crate is pure: no I/O, no async, no SQL, no web framework. Everything here can be unit tested
//! with plain values, and every other crate builds on it.

pub mod checkout;
pub mod clean;
pub mod coupons;
pub mod facts;
pub mod health;
pub mod ids;
pub mod loyalty;
pub mod mask;
pub mod member;
pub mod member_days;
pub mod money;
pub mod org;
pub mod points;
pub mod product;
pub mod sale;
pub mod taxonomy;
pub mod tiers;
pub mod time;

pub use ids::{CompanyId, MemberId, ProductId, StaffId, StoreId, TicketId};
pub use money::Fen;
