//! Tiers (会员等级): levels with entry conditions, immediate upgrade, a yearly review with a
//! retention rule, and the benefits each level gives.
//!
//! Seed 001: silver from 500 yuan a year; gold from 3,000 yuan a year *or* “连续6个月月均消费超200元”;
//! diamond from 10,000 yuan; benefits are discounts (8–9.5折), birthday double points and services.
//! Seed 003: levels by accumulated points (5,000 / 10,000 / 20,000 / 40,000 with 8.8/8.5/8/… 折).

use crate::money::Fen;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

/// A company's tier rules. `levels` run from the lowest (the level every member starts at) upwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierRules {
    pub levels: Vec<TierLevel>,
    /// The day of the yearly review (`"01-01"`): each member keeps a level only if its retention
    /// rule held over the 12 months before the review; otherwise they move to the highest level whose
    /// retention rule they meet.
    pub review_on: String,
}

impl Default for TierRules {
    fn default() -> Self {
        let level = |code: &str, name: &str, entry: Option<i64>, discount: u32, points: u32| TierLevel {
            code: code.into(),
            name: name.into(),
            entry: entry.map(|y| vec![Condition::AnnualSpend { yuan: y }]).unwrap_or_default(),
            retain: Vec::new(),
            benefits: Benefits { discount_percent: discount, points_percent: points, ..Default::default() },
        };
        let mut gold = level("gold", "金卡", Some(3_000), 90, 150);
        gold.entry.push(Condition::MonthlyAverage { months: 6, yuan: 200 });
        TierRules {
            levels: vec![
                level("normal", "普通", None, 100, 100),
                level("silver", "银卡", Some(500), 95, 120),
                gold,
                level("diamond", "钻石", Some(10_000), 85, 200),
            ],
            review_on: "01-01".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct TierLevel {
    pub code: String,
    pub name: String,
    /// Any one of these lets a member in (empty: everyone; only the lowest level should be empty).
    pub entry: Vec<Condition>,
    /// Any one of these keeps a member in at the yearly review (empty: the entry conditions).
    pub retain: Vec<Condition>,
    pub benefits: Benefits,
}

/// What a level gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Benefits {
    /// Price paid in percent (95 = 9.5折, 100 = no discount).
    pub discount_percent: u32,
    /// Points multiplier in percent (150 = 1.5×).
    pub points_percent: u32,
    /// Coupon template issued on the member's birthday.
    pub birthday_coupon: Option<String>,
    /// Extra discount on member days, in percent of the price (98 = a further 2% off).
    pub member_day_extra_percent: u32,
}

impl Default for Benefits {
    fn default() -> Self {
        Benefits { discount_percent: 100, points_percent: 100, birthday_coupon: None, member_day_extra_percent: 100 }
    }
}

/// One way into (or to stay in) a level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Net spend over the last 12 months (returns netted out) of at least this many yuan.
    AnnualSpend { yuan: i64 },
    /// Points earned over the last 12 months.
    AnnualPoints { points: i64 },
    /// The `months` calendar months ending with the current one, averaging at least `yuan` a month
    /// and with a purchase in each of them (“连续6个月月均消费超200元”).
    MonthlyAverage { months: u32, yuan: i64 },
}

/// What the conditions look at, for one member on one day.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TierStats {
    /// Net spend over the 12 months up to the day.
    pub annual_spend: Fen,
    pub annual_points: i64,
    /// Net spend per calendar month, the current month first (index 0), up to 12 months back.
    pub monthly_spend: Vec<Fen>,
}

impl Condition {
    pub fn holds(&self, s: &TierStats) -> bool {
        match *self {
            Condition::AnnualSpend { yuan } => s.annual_spend >= Fen::yuan(yuan),
            Condition::AnnualPoints { points } => s.annual_points >= points,
            Condition::MonthlyAverage { months, yuan } => {
                let n = months as usize;
                if n == 0 || s.monthly_spend.len() < n {
                    return false;
                }
                let window = &s.monthly_spend[..n];
                window.iter().all(|m| m.0 > 0) && window.iter().map(|m| m.0).sum::<i64>() >= yuan * 100 * n as i64
            }
        }
    }

    /// Chinese description for reasons and the console.
    pub fn describe(&self) -> String {
        match *self {
            Condition::AnnualSpend { yuan } => format!("近12个月消费满{yuan}元"),
            Condition::AnnualPoints { points } => format!("近12个月积分满{points}分"),
            Condition::MonthlyAverage { months, yuan } => format!("连续{months}个月月均消费满{yuan}元"),
        }
    }
}

/// A tier change and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TierChange {
    pub from: Option<String>,
    pub to: String,
    pub reason: String,
}

impl TierRules {
    pub fn level(&self, code: &str) -> Option<&TierLevel> {
        self.levels.iter().find(|l| l.code == code)
    }

    fn rank(&self, code: Option<&str>) -> usize {
        code.and_then(|c| self.levels.iter().position(|l| l.code == c)).unwrap_or(0)
    }

    /// The lowest level, where every member starts.
    pub fn base(&self) -> Option<&TierLevel> {
        self.levels.first()
    }

    /// Immediate upgrade (after a sale): the highest level above the current one whose entry
    /// conditions now hold. Never downgrades.
    pub fn upgrade(&self, current: Option<&str>, s: &TierStats) -> Option<TierChange> {
        let rank = self.rank(current);
        let (level, cond) = self.levels.iter().skip(rank + 1).rev().find_map(|l| {
            let c = l.entry.iter().find(|c| c.holds(s))?;
            Some((l, c))
        })?;
        Some(TierChange {
            from: current.map(String::from),
            to: level.code.clone(),
            reason: format!("升级为{}：{}", level.name, cond.describe()),
        })
    }

    /// The yearly review: keep the level if one of its retention conditions held, else move to the
    /// highest level whose retention (or entry) conditions hold — which may also be higher.
    pub fn review(&self, current: Option<&str>, s: &TierStats) -> Option<TierChange> {
        let rank = self.rank(current);
        let holds = |l: &TierLevel| {
            let conds = if l.retain.is_empty() { &l.entry } else { &l.retain };
            conds.is_empty() || conds.iter().any(|c| c.holds(s))
        };
        // Above the current level only the entry conditions count; at or below it, retention too.
        let best = self.levels.iter().enumerate().rev().find(|(i, l)| {
            l.entry.iter().any(|c| c.holds(s)) || (*i <= rank && current.is_some() && holds(l)) || l.entry.is_empty()
        });
        let (i, level) = best.or_else(|| self.levels.first().map(|l| (0, l)))?;
        if current.is_some() && i == rank {
            return None;
        }
        let reason = if current.is_some() && i < rank {
            let cur = &self.levels[rank];
            let conds = if cur.retain.is_empty() { &cur.entry } else { &cur.retain };
            let what: Vec<String> = conds.iter().map(Condition::describe).collect();
            format!("年度复评降为{}：未达到保级条件（{}）", level.name, what.join(" 或 "))
        } else {
            format!("年度复评定为{}", level.name)
        };
        Some(TierChange { from: current.map(String::from), to: level.code.clone(), reason })
    }

    /// Whether any level's conditions look at points earned (so statistics must include them).
    pub fn uses_points(&self) -> bool {
        self.levels
            .iter()
            .flat_map(|l| l.entry.iter().chain(&l.retain))
            .any(|c| matches!(c, Condition::AnnualPoints { .. }))
    }

    /// Whether `date` is the review day.
    pub fn is_review_day(&self, date: NaiveDate) -> bool {
        crate::points::parse_month_day(&self.review_on).is_ok_and(|(m, d)| date.month() == m && date.day() == d)
    }

    /// Checks the rules make sense: unique codes, a base level, known conditions.
    pub fn validate(&self) -> Result<(), String> {
        if self.levels.is_empty() {
            return Err("至少需要一个会员等级".into());
        }
        let mut seen = std::collections::HashSet::new();
        for l in &self.levels {
            if l.code.trim().is_empty() || !seen.insert(&l.code) {
                return Err(format!("等级编码为空或重复: “{}”", l.code));
            }
            if l.benefits.discount_percent == 0 || l.benefits.discount_percent > 100 {
                return Err(format!("等级“{}”的折扣应在 1–100 之间", l.name));
            }
        }
        crate::points::parse_month_day(&self.review_on).map_err(|e| e.0)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(annual: i64, monthly: &[i64]) -> TierStats {
        TierStats {
            annual_spend: Fen::yuan(annual),
            annual_points: annual,
            monthly_spend: monthly.iter().map(|y| Fen::yuan(*y)).collect(),
        }
    }

    #[test]
    fn seed_001_levels_by_spend_or_six_months_average() {
        let r = TierRules::default();
        assert_eq!(r.upgrade(Some("normal"), &stats(499, &[])), None);
        assert_eq!(r.upgrade(Some("normal"), &stats(500, &[])).unwrap().to, "silver");
        // 6 months of 210 yuan: 1,260 a year, not 3,000, yet gold by the alternative condition.
        let c = r.upgrade(Some("silver"), &stats(1_260, &[210; 6])).unwrap();
        assert_eq!(c.to, "gold");
        assert!(c.reason.contains("连续6个月"), "{}", c.reason);
        // One month without a purchase breaks the run.
        assert_eq!(r.upgrade(Some("silver"), &stats(1_260, &[300, 300, 0, 300, 300, 300])), None);
        // Straight to diamond; never down at a sale.
        assert_eq!(r.upgrade(Some("normal"), &stats(12_000, &[])).unwrap().to, "diamond");
        assert_eq!(r.upgrade(Some("diamond"), &stats(0, &[])), None);
    }

    #[test]
    fn yearly_review_keeps_downgrades_and_explains() {
        let mut r = TierRules::default();
        // Gold is kept with 2,000 a year (retention below the entry bar).
        r.levels[2].retain = vec![Condition::AnnualSpend { yuan: 2_000 }];
        assert_eq!(r.review(Some("gold"), &stats(2_100, &[])), None);
        let c = r.review(Some("gold"), &stats(800, &[])).unwrap();
        assert_eq!(c.to, "silver");
        assert!(c.reason.contains("未达到保级条件"), "{}", c.reason);
        assert_eq!(r.review(Some("silver"), &stats(10, &[])).unwrap().to, "normal");
        assert_eq!(r.review(None, &stats(0, &[])).unwrap().to, "normal");
        assert!(r.is_review_day(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
    }

    #[test]
    fn validation_catches_duplicate_codes() {
        let mut r = TierRules::default();
        assert!(r.validate().is_ok());
        r.levels[1].code = "normal".into();
        assert!(r.validate().is_err());
    }
}
