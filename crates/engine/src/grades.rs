//! RFM grades (会员分级) and activity levels (活跃度).
//!
//! RFM (seed 002): effective members are those who bought in the last 12 months; each of R (days
//! since the last purchase), F (tickets in 12 months) and M (net spend in 12 months) is high when
//! strictly better than its threshold — by default the median over the company's effective members.
//! The eight cells map to the industry's six grades, M deciding importance:
//!
//! | M | F | R | grade |
//! |---|---|---|---|
//! | high | high | high (recent) | 重要保持 keep |
//! | high | low | high | 重要发展 develop |
//! | high | any | low | 重要挽留 win back |
//! | low | high | any | 一般重要 ordinary important |
//! | low | low | high | 一般 ordinary |
//! | low | low | low | 无价值 no value |

use crate::features::Features;
use crate::settings::{ActivitySettings, RfmSettings};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum RfmGrade {
    NotEffective = 0,
    ImportantKeep = 1,
    ImportantDevelop = 2,
    ImportantWinBack = 3,
    OrdinaryImportant = 4,
    Ordinary = 5,
    NoValue = 6,
}

impl RfmGrade {
    pub const ALL: [RfmGrade; 7] = [
        RfmGrade::ImportantKeep,
        RfmGrade::ImportantDevelop,
        RfmGrade::ImportantWinBack,
        RfmGrade::OrdinaryImportant,
        RfmGrade::Ordinary,
        RfmGrade::NoValue,
        RfmGrade::NotEffective,
    ];

    pub fn of(r_high: bool, f_high: bool, m_high: bool) -> RfmGrade {
        match (m_high, f_high, r_high) {
            (true, true, true) => RfmGrade::ImportantKeep,
            (true, false, true) => RfmGrade::ImportantDevelop,
            (true, _, false) => RfmGrade::ImportantWinBack,
            (false, true, _) => RfmGrade::OrdinaryImportant,
            (false, false, true) => RfmGrade::Ordinary,
            (false, false, false) => RfmGrade::NoValue,
        }
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            RfmGrade::NotEffective => "无效会员",
            RfmGrade::ImportantKeep => "重要保持",
            RfmGrade::ImportantDevelop => "重要发展",
            RfmGrade::ImportantWinBack => "重要挽留",
            RfmGrade::OrdinaryImportant => "一般重要",
            RfmGrade::Ordinary => "一般",
            RfmGrade::NoValue => "无价值",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            RfmGrade::NotEffective => "not_effective",
            RfmGrade::ImportantKeep => "important_keep",
            RfmGrade::ImportantDevelop => "important_develop",
            RfmGrade::ImportantWinBack => "important_win_back",
            RfmGrade::OrdinaryImportant => "ordinary_important",
            RfmGrade::Ordinary => "ordinary",
            RfmGrade::NoValue => "no_value",
        }
    }

    /// Accepts the Chinese label (with or without a trailing 会员) or the English code.
    pub fn parse(s: &str) -> Option<RfmGrade> {
        let s = s.trim();
        let s = s.strip_suffix("会员").filter(|x| !x.is_empty() && *x != "无效").unwrap_or(s);
        RfmGrade::ALL.into_iter().find(|g| g.label_zh() == s || g.code().eq_ignore_ascii_case(s))
    }
}

/// The thresholds in force: each as the value a member must beat.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RfmThresholds {
    pub r_days: i64,
    pub f_tickets: i64,
    /// Fen.
    pub m_fen: i64,
}

fn median(mut v: Vec<i64>) -> i64 {
    if v.is_empty() {
        return 0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable(mid);
    *m
}

/// Grades every member; also returns the thresholds used.
pub fn rfm_grades(f: &Features, s: &RfmSettings) -> (Vec<RfmGrade>, RfmThresholds) {
    let n = f.frequency_12m.len();
    let effective: Vec<usize> = (0..n).filter(|&o| f.frequency_12m[o] > 0).collect();
    let t = RfmThresholds {
        r_days: s
            .r_days
            .unwrap_or_else(|| median(effective.iter().map(|&o| f.recency(o).unwrap_or(0) as i64).collect())),
        f_tickets: s
            .f_tickets
            .unwrap_or_else(|| median(effective.iter().map(|&o| f.frequency_12m[o] as i64).collect())),
        m_fen: s
            .m_yuan
            .map(|y| (y * 100.0).round() as i64)
            .unwrap_or_else(|| median(effective.iter().map(|&o| f.monetary_12m[o]).collect())),
    };
    let mut grades = vec![RfmGrade::NotEffective; n];
    for o in effective {
        let r_high = (f.recency(o).unwrap_or(i32::MAX) as i64) < t.r_days;
        let f_high = f.frequency_12m[o] as i64 > t.f_tickets;
        let m_high = f.monetary_12m[o] > t.m_fen;
        grades[o] = RfmGrade::of(r_high, f_high, m_high);
    }
    (grades, t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[repr(u8)]
pub enum ActivityLevel {
    New = 1,
    Active = 2,
    Core = 3,
    Sleeping = 4,
    Lost = 5,
    NeverPurchased = 6,
}

impl ActivityLevel {
    pub const ALL: [ActivityLevel; 6] = [
        ActivityLevel::New,
        ActivityLevel::Active,
        ActivityLevel::Core,
        ActivityLevel::Sleeping,
        ActivityLevel::Lost,
        ActivityLevel::NeverPurchased,
    ];

    pub fn label_zh(self) -> &'static str {
        match self {
            ActivityLevel::New => "新会员",
            ActivityLevel::Active => "活跃",
            ActivityLevel::Core => "核心",
            ActivityLevel::Sleeping => "沉睡",
            ActivityLevel::Lost => "流失",
            ActivityLevel::NeverPurchased => "未消费",
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            ActivityLevel::New => "new",
            ActivityLevel::Active => "active",
            ActivityLevel::Core => "core",
            ActivityLevel::Sleeping => "sleeping",
            ActivityLevel::Lost => "lost",
            ActivityLevel::NeverPurchased => "never_purchased",
        }
    }

    pub fn parse(s: &str) -> Option<ActivityLevel> {
        let s = s.trim();
        let s = s.strip_suffix("会员").filter(|x| !x.is_empty() && *x != "新").unwrap_or(s);
        ActivityLevel::ALL.into_iter().find(|a| a.label_zh() == s || a.code().eq_ignore_ascii_case(s))
    }

    /// The level of one member: `recency` and `first_purchase_days` are `None` for a member who never bought.
    pub fn of(
        recency: Option<i32>,
        first_purchase_days: Option<i32>,
        frequency_12m: u32,
        s: &ActivitySettings,
    ) -> ActivityLevel {
        let (Some(r), Some(first)) = (recency, first_purchase_days) else {
            return ActivityLevel::NeverPurchased;
        };
        let (r, first) = (r as i64, first as i64);
        if r >= s.lost_days {
            ActivityLevel::Lost
        } else if r >= s.sleeping_days {
            ActivityLevel::Sleeping
        } else if first < s.new_days {
            ActivityLevel::New
        } else if frequency_12m as i64 >= s.core_tickets {
            ActivityLevel::Core
        } else {
            ActivityLevel::Active
        }
    }
}

pub fn activity_levels(f: &Features, s: &ActivitySettings) -> Vec<ActivityLevel> {
    (0..f.frequency_12m.len())
        .map(|o| ActivityLevel::of(f.recency(o), f.first_purchase_days(o), f.frequency_12m[o], s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eight_cells_map_to_six_grades() {
        use RfmGrade::*;
        // (r, f, m)
        assert_eq!(RfmGrade::of(true, true, true), ImportantKeep);
        assert_eq!(RfmGrade::of(true, false, true), ImportantDevelop);
        assert_eq!(RfmGrade::of(false, true, true), ImportantWinBack);
        assert_eq!(RfmGrade::of(false, false, true), ImportantWinBack);
        assert_eq!(RfmGrade::of(true, true, false), OrdinaryImportant);
        assert_eq!(RfmGrade::of(false, true, false), OrdinaryImportant);
        assert_eq!(RfmGrade::of(true, false, false), Ordinary);
        assert_eq!(RfmGrade::of(false, false, false), NoValue);
    }

    #[test]
    fn grades_parse_in_both_languages() {
        assert_eq!(RfmGrade::parse("重要保持"), Some(RfmGrade::ImportantKeep));
        assert_eq!(RfmGrade::parse("重要保持会员"), Some(RfmGrade::ImportantKeep));
        assert_eq!(RfmGrade::parse("无效会员"), Some(RfmGrade::NotEffective));
        assert_eq!(RfmGrade::parse("no_value"), Some(RfmGrade::NoValue));
        assert_eq!(RfmGrade::parse("重要"), None);
        assert_eq!(ActivityLevel::parse("新会员"), Some(ActivityLevel::New));
        assert_eq!(ActivityLevel::parse("沉睡会员"), Some(ActivityLevel::Sleeping));
        assert_eq!(ActivityLevel::parse("core"), Some(ActivityLevel::Core));
    }

    #[test]
    fn activity_thresholds_apply_in_order() {
        let s = ActivitySettings::default();
        assert_eq!(ActivityLevel::of(None, None, 0, &s), ActivityLevel::NeverPurchased);
        assert_eq!(ActivityLevel::of(Some(365), Some(400), 0, &s), ActivityLevel::Lost);
        assert_eq!(ActivityLevel::of(Some(364), Some(400), 1, &s), ActivityLevel::Sleeping);
        assert_eq!(ActivityLevel::of(Some(180), Some(400), 1, &s), ActivityLevel::Sleeping);
        assert_eq!(ActivityLevel::of(Some(179), Some(400), 1, &s), ActivityLevel::Active);
        // A first purchase 89 days ago is new, even with many tickets since.
        assert_eq!(ActivityLevel::of(Some(1), Some(89), 10, &s), ActivityLevel::New);
        assert_eq!(ActivityLevel::of(Some(1), Some(90), 6, &s), ActivityLevel::Core);
        assert_eq!(ActivityLevel::of(Some(1), Some(90), 5, &s), ActivityLevel::Active);
    }

    fn features(rows: &[(Option<i32>, u32, i64)]) -> Features {
        let as_of = 1000;
        Features {
            as_of,
            last_day: rows.iter().map(|r| r.0.map_or(crate::features::NONE_I32, |d| as_of - d)).collect(),
            frequency_12m: rows.iter().map(|r| r.1).collect(),
            monetary_12m: rows.iter().map(|r| r.2).collect(),
            ..Features::default()
        }
    }

    #[test]
    fn medians_split_effective_members() {
        // recency, frequency, monetary (fen). Effective: the first five. Medians: R 30, F 3, M 70000;
        // a member at a median is not above it.
        let f = features(&[
            (Some(5), 10, 200_000), // recent, frequent, big: keep
            (Some(10), 1, 90_000),  // recent, rare, big: develop
            (Some(300), 8, 70_000), // long ago, frequent, M at the median (not above): ordinary important
            (Some(30), 3, 50_000),  // at every median: all low → no value
            (Some(40), 2, 1_000),   // old, rare, small → no value
            (Some(400), 0, 0),      // not effective
            (None, 0, 0),           // never bought
        ]);
        let (g, t) = rfm_grades(&f, &RfmSettings::default());
        assert_eq!(t, RfmThresholds { r_days: 30, f_tickets: 3, m_fen: 70_000 });
        use RfmGrade::*;
        assert_eq!(
            g,
            vec![ImportantKeep, ImportantDevelop, OrdinaryImportant, NoValue, NoValue, NotEffective, NotEffective]
        );
        // Fixed thresholds from the company's settings replace the medians.
        let s = RfmSettings { r_days: Some(60), f_tickets: Some(1), m_yuan: Some(500.0) };
        let (g, _) = rfm_grades(&f, &s);
        assert_eq!(
            g,
            vec![
                ImportantKeep,
                ImportantDevelop,
                ImportantWinBack,
                OrdinaryImportant,
                OrdinaryImportant,
                NotEffective,
                NotEffective
            ]
        );
    }
}
