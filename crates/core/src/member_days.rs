//! Member days (会员日): recurring days on which members get a discount (and possibly extra points).
//! Days of the month (6/16/26), weekdays (every Sunday) or lunar-calendar days (农历 8/18/28, seed 003:
//! “逢每月(农历)8日、18日、28日为会员日可享受9.5折”). The lunar date comes from ICU4X's Chinese
//! calendar (`icu_calendar`, which follows the observatory tables); leap months count like any other.

use chrono::{Datelike, NaiveDate};
use icu_calendar::Date;
use icu_calendar::cal::ChineseTraditional;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct MemberDay {
    pub name: String,
    /// Days of the Gregorian month, 1–31.
    pub days_of_month: Vec<u32>,
    /// 1 = Monday … 7 = Sunday.
    pub weekdays: Vec<u32>,
    /// Days of the lunar month, 1–30.
    pub lunar_days: Vec<u32>,
    /// Price paid in percent on the day (95 = 9.5折); 100 = no discount.
    pub discount_percent: u32,
    /// Points multiplier in percent on the day; 100 = none.
    pub points_percent: u32,
    /// Categories (major or minor) and products that get no member-day discount (specials, promotions).
    pub excluded_categories: Vec<String>,
    pub excluded_products: Vec<String>,
}

/// A lunar date: month 1–12, day 1–30, whether the month is a leap month (闰月).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LunarDate {
    pub month: u8,
    pub day: u8,
    pub leap: bool,
}

/// The Chinese lunar date of a Gregorian date.
pub fn lunar(date: NaiveDate) -> LunarDate {
    let iso = Date::try_new_iso(date.year(), date.month() as u8, date.day() as u8)
        .expect("a chrono date is a valid ISO date");
    let c = iso.to_calendar(ChineseTraditional::new());
    let m = c.month();
    LunarDate {
        month: m.number(),
        day: c.day_of_month().0,
        leap: matches!(m.leap_status(), icu_calendar::types::LeapStatus::Leap),
    }
}

impl MemberDay {
    /// Whether `date` (the company's local date) is this member day.
    pub fn matches(&self, date: NaiveDate) -> bool {
        self.days_of_month.contains(&date.day())
            || self.weekdays.contains(&date.weekday().number_from_monday())
            || (!self.lunar_days.is_empty() && self.lunar_days.contains(&(lunar(date).day as u32)))
    }

    pub fn excludes(&self, product_code: &str, categories: &[String]) -> bool {
        self.excluded_products.iter().any(|p| p == product_code)
            || categories.iter().any(|c| self.excluded_categories.contains(c))
    }

    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: &str| Err(format!("会员日“{}”的{what}超出范围", self.name));
        if self.days_of_month.iter().any(|d| !(1..=31).contains(d)) {
            return bad("日期");
        }
        if self.weekdays.iter().any(|d| !(1..=7).contains(d)) {
            return bad("星期");
        }
        if self.lunar_days.iter().any(|d| !(1..=30).contains(d)) {
            return bad("农历日期");
        }
        if self.discount_percent == 0 || self.discount_percent > 100 {
            return bad("折扣");
        }
        Ok(())
    }
}

/// The first member day among `days` that `date` is, if any.
pub fn member_day_on(days: &[MemberDay], date: NaiveDate) -> Option<&MemberDay> {
    days.iter().find(|d| d.matches(date))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn lunar_dates_match_the_almanac() {
        // Spring Festival (正月初一) dates from the published almanac.
        assert_eq!(lunar(d(2024, 2, 10)), LunarDate { month: 1, day: 1, leap: false });
        assert_eq!(lunar(d(2025, 1, 29)), LunarDate { month: 1, day: 1, leap: false });
        assert_eq!(lunar(d(2026, 2, 17)), LunarDate { month: 1, day: 1, leap: false });
        // Mid-Autumn 2025 (八月十五) was 6 October.
        assert_eq!(lunar(d(2025, 10, 6)), LunarDate { month: 8, day: 15, leap: false });
        // 2025 had a leap sixth month (闰六月) starting 25 July.
        assert_eq!(lunar(d(2025, 7, 25)), LunarDate { month: 6, day: 1, leap: true });
        // 腊八 (十二月初八) 2026: 26 January.
        assert_eq!(lunar(d(2026, 1, 26)), LunarDate { month: 12, day: 8, leap: false });
    }

    #[test]
    fn seed_003_lunar_member_days() {
        let day = MemberDay {
            name: "农历会员日".into(),
            lunar_days: vec![8, 18, 28],
            discount_percent: 95,
            ..Default::default()
        };
        assert!(day.matches(d(2026, 1, 26))); // 腊月初八
        assert!(!day.matches(d(2026, 1, 27)));
        let fixed =
            MemberDay { days_of_month: vec![6, 16, 26], weekdays: vec![7], discount_percent: 95, ..Default::default() };
        assert!(fixed.matches(d(2026, 11, 16)));
        assert!(fixed.matches(d(2026, 11, 29))); // a Sunday
        assert!(!fixed.matches(d(2026, 11, 25)));
        assert!(MemberDay { lunar_days: vec![31], discount_percent: 95, ..Default::default() }.validate().is_err());
    }
}
