//! A company's loyalty rules in one document: points, tiers and member days. Operators keep them as
//! TOML (`rxmember loyalty export/import`), the console edits them as JSON; both are this type.

use crate::member_days::MemberDay;
use crate::points::{EarnContext, PointsRules};
use crate::tiers::TierRules;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoyaltyRules {
    pub points: PointsRules,
    pub tiers: TierRules,
    pub member_days: Vec<MemberDay>,
}

impl Default for LoyaltyRules {
    /// The defaults a new company starts with: 1 point per yuan, the four levels of seed 001, and
    /// no member day until the company sets one.
    fn default() -> Self {
        LoyaltyRules { points: PointsRules::default(), tiers: TierRules::default(), member_days: Vec::new() }
    }
}

/// Rules that do not parse or make no sense; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RulesError(pub String);

impl LoyaltyRules {
    /// Who earns on `date`: the member's tier (the base level when none is recorded), its points
    /// multiplier, and whether the date is a member day with its multiplier.
    pub fn earn_context(&self, date: NaiveDate, tier: Option<&str>, birthday: Option<NaiveDate>) -> EarnContext {
        let level = tier.and_then(|t| self.tiers.level(t)).or_else(|| self.tiers.base());
        let day = crate::member_days::member_day_on(&self.member_days, date);
        EarnContext {
            date,
            tier: level.map(|l| l.code.clone()),
            tier_percent: level.map_or(100, |l| l.benefits.points_percent),
            birthday,
            member_day: day.is_some(),
            member_day_percent: day.map_or(100, |d| d.points_percent.max(1)),
        }
    }

    pub fn from_toml(s: &str) -> Result<LoyaltyRules, RulesError> {
        let r: LoyaltyRules = toml::from_str(s).map_err(|e| RulesError(format!("规则文件有误: {e}")))?;
        r.validate()?;
        Ok(r)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    pub fn validate(&self) -> Result<(), RulesError> {
        self.tiers.validate().map_err(RulesError)?;
        for d in &self.member_days {
            d.validate().map_err(RulesError)?;
        }
        if let Some(md) = &self.points.expiry.year_end {
            crate::points::parse_month_day(md).map_err(|e| RulesError(format!("points.expiry.year_end: {}", e.0)))?;
        }
        for m in &self.points.multipliers {
            if m.percent == 0 || m.percent > 1000 {
                return Err(RulesError(format!("积分倍数“{}”应在 1–1000% 之间", m.name)));
            }
        }
        if let Some(d) = &self.points.redemption.deduction
            && (d.points_per_yuan == 0 || d.max_share_percent > 100)
        {
            return Err(RulesError("积分抵现: points_per_yuan 须大于0，max_share_percent 不超过100".into()));
        }
        for t in &self.points.redemption.coupon_tiers {
            if t.points <= 0 {
                return Err(RulesError(format!("积分兑券档位“{}”的积分须大于0", t.template)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_and_field_errors() {
        let r = LoyaltyRules::default();
        let text = r.to_toml();
        assert_eq!(LoyaltyRules::from_toml(&text).unwrap(), r);
        let custom = r#"
            [points]
            points_per_yuan = 1
            excluded_categories = ["PROMO"]
            [points.expiry]
            year_end = "03-31"
            rolling_months = 12
            [[points.multipliers]]
            name = "生日双倍"
            percent = 200
            birthday = "month"
            [[member_days]]
            name = "农历会员日"
            lunar_days = [8, 18, 28]
            discount_percent = 95
            points_percent = 100
        "#;
        let r = LoyaltyRules::from_toml(custom).unwrap();
        assert_eq!(r.member_days[0].lunar_days, vec![8, 18, 28]);
        assert_eq!(r.points.expiry.rolling_months, Some(12));
        let err = LoyaltyRules::from_toml("[points]\npoints_per_yaun = 1\n").unwrap_err();
        assert!(err.0.contains("points_per_yaun"), "{}", err.0);
        let err = LoyaltyRules::from_toml("[points.expiry]\nyear_end = \"02-30\"\n").unwrap_err();
        assert!(err.0.contains("year_end"), "{}", err.0);
    }
}
