//! rxmember-demo: a deterministic synthetic pharmacy group with the shape of a real one — companies,
//! stores, clerks, a drug master over the category taxonomy, members with realistic demographics, and
//! a year or more of sales: Pareto spend, ~40% non-member tickets, chronic patients refilling on their
//! pack cycle, winter colds and flu, member-day spikes, ~1% returns, health checks for chronic members.
//!
//! The same seed gives the same group. The data is either written through the store's batch writers
//! (`load`) or as DATA.md files (`export`) so the import path can be exercised on realistic data.

mod catalogue;
mod export;
mod facts;
mod generate;
pub mod intelligence;
mod load;
pub mod loyalty;
mod names;

pub use export::export;
pub use facts::{FactStream, facts};
pub use generate::{CompanyPlan, DEMO_END, Options, Sink, Size, generate};
pub use load::{DEMO_GROUP, DEMO_PASSWORD, ensure_demo_logins, load};

/// What a demo run produced.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub companies: usize,
    pub stores: usize,
    pub products: usize,
    pub members: usize,
    pub tickets: u64,
    pub lines: u64,
    pub member_lines: u64,
    pub returns: usize,
    pub health_checks: usize,
    pub elapsed_ms: u128,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "演示数据: {} 家公司, {} 家门店, {} 个商品, {} 名会员, {} 张小票 / {} 行销售 (会员行 {:.0}%), {} 笔退货, {} 条健康检测, 用时 {:.1}s",
            self.companies,
            self.stores,
            self.products,
            self.members,
            self.tickets,
            self.lines,
            if self.lines > 0 { self.member_lines as f64 * 100.0 / self.lines as f64 } else { 0.0 },
            self.returns,
            self.health_checks,
            self.elapsed_ms as f64 / 1000.0
        )
    }
}
