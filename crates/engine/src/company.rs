//! One company's engine: its facts, settings and saved tags, and what is derived for the current
//! as-of day. Queries take the caller's data scope and only ever see the members inside it.

use crate::audience::{self, AudienceError};
use crate::data::{CompanyData, Day, NONE_U32, date_of_day};
use crate::derived::{Derived, SavedTag};
use crate::features::NONE_I32;
use crate::lang::{self, Expr};
use crate::settings::Settings;
use roaring::RoaringBitmap;
use rxmember_core::org::{AccessDenied, DataScope};
use rxmember_core::taxonomy::Taxonomy;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;

/// Bumped whenever [`CompanyData`]'s layout changes: an older snapshot is ignored and rebuilt.
pub const SNAPSHOT_VERSION: u32 = 8;

pub struct CompanyEngine {
    pub data: CompanyData,
    pub taxonomy: Taxonomy,
    pub settings: Settings,
    pub saved_tags: Vec<SavedTag>,
    current: Arc<Derived>,
}

/// The columns an audience can be listed or exported with: key, Chinese header, whether numeric.
pub const COLUMNS: &[(&str, &str, bool)] = &[
    ("member_id", "会员ID", true),
    ("card_no", "会员卡号", false),
    ("store", "所属门店", false),
    ("store_code", "门店编码", false),
    ("clerk_code", "所属店员", false),
    ("gender", "性别", false),
    ("age", "年龄", true),
    ("birthday", "生日", false),
    ("registered_on", "入会日期", false),
    ("source", "注册来源", false),
    ("grade", "RFM等级", false),
    ("activity", "活跃度", false),
    ("recency_days", "最近消费距今天数", true),
    ("frequency_12m", "近12月消费次数", true),
    ("monetary_12m", "近12月消费金额", true),
    ("avg_ticket", "客单价", true),
    ("items_per_ticket", "客品数", true),
    ("margin_rate", "毛利率%", true),
    ("discount_share", "折扣占比%", true),
    ("first_purchase", "首次消费日期", false),
    ("last_purchase", "最近消费日期", false),
    ("tickets_total", "累计消费次数", true),
    ("spend_total", "累计消费金额", true),
    ("preferred_store", "偏好门店", false),
    ("returns_12m", "近12月退货笔数", true),
    ("checks_12m", "近12月检测次数", true),
    ("sms_opt_in", "接收短信", false),
    ("tier", "会员等级", false),
    ("points_balance", "积分余额", true),
    ("points_expiring_30d", "30天内到期积分", true),
];

pub const DEFAULT_COLUMNS: &[&str] =
    &["card_no", "store", "gender", "age", "grade", "activity", "recency_days", "frequency_12m", "monetary_12m"];

/// An audience's size and breakdowns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub count: u64,
    /// Members in the caller's scope: the audience's share is `count / scope_total`.
    pub scope_total: u64,
    pub as_of: chrono::NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bucket {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Breakdowns {
    pub by_store: Vec<Bucket>,
    pub by_grade: Vec<Bucket>,
    pub by_gender: Vec<Bucket>,
    pub by_age_band: Vec<Bucket>,
}

/// One grade's members and 12-month sales (seed 002: who the valuable members are).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradeSummary {
    pub grade: String,
    pub members: u64,
    pub member_share: f64,
    pub sales_fen: i64,
    pub sales_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogueValue {
    pub name: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogueDimension {
    pub key: String,
    pub name: String,
    pub primary: crate::catalogue::Primary,
    pub primary_name: String,
    pub values: Vec<CatalogueValue>,
}

impl CompanyEngine {
    pub fn new(
        data: CompanyData,
        taxonomy: Taxonomy,
        settings: Settings,
        saved_tags: Vec<SavedTag>,
        as_of: Day,
    ) -> Self {
        let mut data = data;
        data.take_touched();
        let current = Arc::new(Derived::compute(&data, &taxonomy, &settings, &saved_tags, as_of));
        data.settle();
        CompanyEngine { data, taxonomy, settings, saved_tags, current }
    }

    /// Recomputes everything derived, for `as_of` (after a refresh, or when the day changes).
    pub fn rederive(&mut self, as_of: Day) {
        self.data.take_touched();
        self.current = Arc::new(Derived::compute(&self.data, &self.taxonomy, &self.settings, &self.saved_tags, as_of));
        self.data.settle();
    }

    /// Brings what is derived up to date after new facts: incrementally (only the members whose facts
    /// changed) when the day is the same, in full otherwise. Settings, taxonomy or saved-tag changes
    /// need [`CompanyEngine::rederive`].
    pub fn update(&mut self, as_of: Day) {
        let touched = self.data.take_touched();
        if as_of != self.current.as_of {
            self.rederive(as_of);
        } else if !touched.all.is_empty() {
            // Reuse the current columns when no reader holds them, else work on a copy.
            let prev = match Arc::get_mut(&mut self.current) {
                Some(d) => std::mem::take(d),
                None => (*self.current).clone(),
            };
            // The recent days' upkeep of the seal finishes beside the recompute, which does not
            // read them (saved tags may, and wait for them).
            self.current =
                Arc::new(Derived::update(prev, &self.data, &self.taxonomy, &self.settings, &self.saved_tags, &touched));
        }
        self.data.settle();
    }

    pub fn current(&self) -> Arc<Derived> {
        self.current.clone()
    }

    /// What is derived for `as_of`: the current state, or computed for that day.
    pub fn derived_for(&self, as_of: Day) -> Arc<Derived> {
        if as_of == self.current.as_of {
            self.current.clone()
        } else {
            Arc::new(Derived::compute(&self.data, &self.taxonomy, &self.settings, &self.saved_tags, as_of))
        }
    }

    /// The members a data scope may see: all of the company, the members of chosen stores (home store),
    /// or a clerk's own members.
    pub fn scope_mask(&self, d: &Derived, scope: &DataScope) -> Result<RoaringBitmap, AccessDenied> {
        if !scope.touches_company(self.data.company) {
            return Err(AccessDenied);
        }
        Ok(match scope {
            DataScope::All | DataScope::Company { .. } => d.universe.clone(),
            DataScope::Stores { stores, .. } => {
                let idx: HashSet<u32> = stores.iter().map(|s| self.data.store_index(s.0)).collect();
                d.universe.iter().filter(|&o| idx.contains(&self.data.home_store[o as usize])).collect()
            }
            DataScope::OwnMembers { clerk_code, .. } => d
                .universe
                .iter()
                .filter(|&o| self.data.members.get(o as usize).clerk_code() == Some(clerk_code.as_str()))
                .collect(),
        })
    }

    /// The members an expression selects within `mask`.
    pub fn select(&self, d: &Derived, expr: &Expr, mask: &RoaringBitmap) -> Result<RoaringBitmap, AudienceError> {
        Ok(audience::evaluate(&self.data, &self.taxonomy, d, expr, mask)?)
    }

    pub fn select_text(&self, d: &Derived, text: &str, mask: &RoaringBitmap) -> Result<RoaringBitmap, AudienceError> {
        let expr = lang::parse(text)?;
        self.select(d, &expr, mask)
    }

    pub fn count(&self, d: &Derived, members: &RoaringBitmap, mask: &RoaringBitmap) -> Count {
        Count { count: members.len(), scope_total: mask.len(), as_of: date_of_day(d.as_of) }
    }

    pub fn breakdowns(&self, d: &Derived, members: &RoaringBitmap) -> Breakdowns {
        let dim = |key: &str| -> Vec<Bucket> {
            d.catalogue
                .iter()
                .find(|x| x.key == key)
                .map(|x| {
                    x.values
                        .iter()
                        .map(|v| Bucket { name: v.name.clone(), count: v.members.intersection_len(members) })
                        .filter(|b| b.count > 0 || key != "home_store")
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut by_store = dim("home_store");
        by_store.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
        let no_store = members.iter().filter(|&o| self.data.home_store[o as usize] == NONE_U32).count() as u64;
        if no_store > 0 {
            by_store.push(Bucket { name: "无门店".into(), count: no_store });
        }
        Breakdowns { by_store, by_grade: dim("grade"), by_gender: dim("gender"), by_age_band: dim("age_band") }
    }

    /// Members and 12-month net sales per RFM grade, within `mask`.
    pub fn grade_summary(&self, d: &Derived, mask: &RoaringBitmap) -> Vec<GradeSummary> {
        let grade_dim = d.catalogue.iter().find(|x| x.key == "grade").expect("grade dimension");
        let total_members = mask.len().max(1) as f64;
        let total_sales: i64 = mask.iter().map(|o| d.features.monetary_12m[o as usize]).sum();
        grade_dim
            .values
            .iter()
            .map(|v| {
                let m = &*v.members & mask;
                let sales: i64 = m.iter().map(|o| d.features.monetary_12m[o as usize]).sum();
                GradeSummary {
                    grade: v.name.clone(),
                    members: m.len(),
                    member_share: m.len() as f64 / total_members,
                    sales_fen: sales,
                    sales_share: if total_sales > 0 { sales as f64 / total_sales as f64 } else { 0.0 },
                }
            })
            .collect()
    }

    /// The tag catalogue with member counts within `mask`.
    pub fn catalogue(&self, d: &Derived, mask: &RoaringBitmap) -> Vec<CatalogueDimension> {
        let mut out: Vec<CatalogueDimension> = d
            .catalogue
            .iter()
            .map(|dim| CatalogueDimension {
                key: dim.key.to_string(),
                name: dim.name.to_string(),
                primary: dim.primary,
                primary_name: dim.primary.label_zh().to_string(),
                values: dim
                    .values
                    .iter()
                    .map(|v| CatalogueValue { name: v.name.clone(), count: v.members.intersection_len(mask) })
                    .collect(),
            })
            .collect();
        out.push(CatalogueDimension {
            key: "saved".into(),
            name: "已保存标签".into(),
            primary: crate::catalogue::Primary::Member,
            primary_name: crate::catalogue::Primary::Member.label_zh().into(),
            values: d
                .saved
                .iter()
                .map(|(name, r)| CatalogueValue {
                    name: name.clone(),
                    count: r.as_ref().map(|b| b.intersection_len(mask)).unwrap_or(0),
                })
                .collect(),
        });
        out
    }

    /// Checks column keys; unknown ones are named in the error.
    pub fn check_columns(columns: &[String]) -> Result<(), String> {
        let unknown: Vec<&str> =
            columns.iter().map(String::as_str).filter(|c| !COLUMNS.iter().any(|(k, _, _)| k == c)).collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            let known: Vec<&str> = COLUMNS.iter().map(|(k, _, _)| *k).collect();
            Err(format!("unknown column(s) {}; known: {}", unknown.join(", "), known.join(", ")))
        }
    }

    /// One member's value for a column, as shown in lists and exports (money in yuan).
    pub fn value(&self, d: &Derived, o: u32, column: &str) -> String {
        let o = o as usize;
        let m = self.data.members.get(o);
        let f = &d.features;
        let yuan = |fen: i64| format!("{:.2}", fen as f64 / 100.0);
        let day = |x: Day| if x == NONE_I32 { String::new() } else { date_of_day(x).to_string() };
        let opt = |x: Option<f64>, digits: usize| x.map(|v| format!("{v:.digits$}")).unwrap_or_default();
        let store = |i: u32, code: bool| {
            if i == NONE_U32 {
                String::new()
            } else {
                let s = &self.data.stores[i as usize];
                if code { s.code.clone() } else { s.name.clone() }
            }
        };
        match column {
            "member_id" => m.id().0.to_string(),
            "card_no" => m.card_no().to_string(),
            "store" => store(self.data.home_store[o], false),
            "store_code" => store(self.data.home_store[o], true),
            "clerk_code" => m.clerk_code().unwrap_or_default().to_string(),
            "gender" => m.gender().label_zh().to_string(),
            "age" => {
                if f.age[o] == NONE_I32 {
                    String::new()
                } else {
                    f.age[o].to_string()
                }
            }
            "birthday" => m.birthday().map(|b| b.to_string()).unwrap_or_default(),
            "registered_on" => day(f.registered_day[o]),
            "source" => m.source().as_str().to_string(),
            "grade" => d.grades[o].label_zh().to_string(),
            "activity" => d.activity[o].label_zh().to_string(),
            "recency_days" => f.recency(o).map(|r| r.to_string()).unwrap_or_default(),
            "frequency_12m" => f.frequency_12m[o].to_string(),
            "monetary_12m" => yuan(f.monetary_12m[o]),
            "avg_ticket" => opt(f.avg_ticket(o).map(|a| a / 100.0), 2),
            "items_per_ticket" => opt(f.items_per_ticket(o), 2),
            "margin_rate" => opt(f.margin_rate(o), 1),
            "discount_share" => opt(f.discount_share(o), 1),
            "first_purchase" => day(f.first_day[o]),
            "last_purchase" => day(f.last_day[o]),
            "tickets_total" => f.tickets_total[o].to_string(),
            "spend_total" => yuan(f.spend_total[o]),
            "preferred_store" => store(f.preferred_store[o], false),
            "returns_12m" => f.returns_12m[o].to_string(),
            "checks_12m" => f.checks_12m[o].to_string(),
            "sms_opt_in" => if m.sms_opt_in() { "是" } else { "否" }.to_string(),
            "tier" => self.data.loyalty.level(o).map(|l| self.data.loyalty.levels[l].name.clone()).unwrap_or_default(),
            "points_balance" => self.data.loyalty.balance[o].to_string(),
            "points_expiring_30d" => d.expiring_30d.get(&(o as u32)).copied().unwrap_or(0).to_string(),
            _ => String::new(),
        }
    }

    /// A page of members (in ordinal order) with the chosen columns.
    pub fn rows(
        &self,
        d: &Derived,
        members: &RoaringBitmap,
        columns: &[String],
        offset: u64,
        limit: u64,
    ) -> Vec<Vec<String>> {
        members
            .iter()
            .skip(offset as usize)
            .take(limit as usize)
            .map(|o| columns.iter().map(|c| self.value(d, o, c)).collect())
            .collect()
    }

    /// Writes the facts for a fast restart, as they are serialised (no copy of them is held).
    pub fn write_snapshot<W: std::io::Write>(data: &CompanyData, mut w: W) -> std::io::Result<W> {
        w.write_all(&SNAPSHOT_VERSION.to_le_bytes())?;
        postcard::to_io(data, w).map_err(std::io::Error::other)
    }

    /// Reads a snapshot; `None` if it was written by another layout version or is damaged.
    pub fn restore(bytes: &[u8]) -> Option<CompanyData> {
        let (version, rest) = bytes.split_first_chunk::<4>()?;
        if u32::from_le_bytes(*version) != SNAPSHOT_VERSION {
            return None;
        }
        let mut data: CompanyData = postcard::from_bytes(rest).ok()?;
        // Every run and loyalty column covers every member, or the snapshot is damaged.
        if !data.covers_every_member() {
            return None;
        }
        data.reindex();
        Some(data)
    }
}

/// Headers (Chinese) and numeric flags of known columns, in the given order.
pub fn column_headers(columns: &[String]) -> (Vec<&'static str>, Vec<bool>) {
    columns.iter().filter_map(|c| COLUMNS.iter().find(|(k, _, _)| k == c)).map(|(_, h, n)| (*h, *n)).unzip()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rxmember_core::facts::{LoyaltyFact, TierLevelFact};
    use rxmember_core::{CompanyId, MemberId};

    fn level(code: &str, name: &str) -> TierLevelFact {
        TierLevelFact { code: code.into(), name: name.into() }
    }

    fn tier_members(d: &Derived, name: &str) -> Vec<u32> {
        let dim = d.catalogue.iter().find(|x| x.key == "tier").expect("a tier dimension");
        dim.value(name).map_or(Vec::new(), |v| v.members.iter().collect())
    }

    /// Rules that give a level's name to another code move members to another value under the same
    /// names: the update places them again as a full build would.
    #[test]
    fn renamed_tier_levels_move_members_in_an_update() {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.apply_member(&crate::test_support::member(1));
        data.apply_member(&crate::test_support::member(2));
        data.set_tier_levels(vec![level("a", "银卡"), level("b", "金卡")]);
        let fact = |m: i64, tier: &str| LoyaltyFact {
            member: MemberId(m),
            balance: 0,
            expiring: vec![],
            tier: Some(tier.into()),
        };
        data.apply_loyalty(vec![fact(1, "a"), fact(2, "b")]);
        let mut engine = CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), vec![], 1000);
        assert_eq!(tier_members(&engine.current(), "银卡"), [0]);
        assert!(engine.data.set_tier_levels(vec![level("b", "银卡"), level("a", "金卡")]));
        engine.update(1000);
        let (updated, full) =
            (engine.current(), Derived::compute(&engine.data, &engine.taxonomy, &engine.settings, &[], 1000));
        assert_eq!(tier_members(&updated, "银卡"), [1]);
        assert_eq!(tier_members(&updated, "金卡"), [0]);
        assert_eq!(tier_members(&full, "金卡"), [0]);
    }
}
