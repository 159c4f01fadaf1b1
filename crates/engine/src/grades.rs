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
use roaring::RoaringBitmap;
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

/// `pass` over members `0..n` in two halves, one thread each: the passes here are plain scans of
/// columns, and the machine's other core is idle while grades are computed.
fn in_halves<T: Send>(n: usize, pass: impl Fn(std::ops::Range<usize>) -> T + Sync) -> [T; 2] {
    std::thread::scope(|s| {
        let second = s.spawn(|| pass(n / 2..n));
        [pass(0..n / 2), second.join().expect("a scan does not panic")]
    })
}

/// For each of the `K` values `value` gives for members `0..n` (members it gives none are left
/// out): the value at position `count / 2` in sorted order — the median, the upper one of an even
/// count — and 0 when there are none. Found in three passes over the members, without sorting or
/// collecting every value: each value's range is cut into at most 2¹⁶ equal parts and counted, and
/// only the values of the part holding the median are collected. Small ranges (days, ticket
/// counts) are counted value by value and need no third pass.
fn medians<const K: usize>(n: usize, value: impl Fn(usize) -> Option<[i64; K]> + Sync) -> [i64; K] {
    let ranges = in_halves(n, |members| {
        let (mut count, mut min, mut max) = (0usize, [i64::MAX; K], [i64::MIN; K]);
        for o in members {
            if let Some(v) = value(o) {
                count += 1;
                for k in 0..K {
                    min[k] = min[k].min(v[k]);
                    max[k] = max[k].max(v[k]);
                }
            }
        }
        (count, min, max)
    });
    let count = ranges[0].0 + ranges[1].0;
    if count == 0 {
        return [0; K];
    }
    let min: [i64; K] = std::array::from_fn(|k| ranges[0].1[k].min(ranges[1].1[k]));
    let max: [i64; K] = std::array::from_fn(|k| ranges[0].2[k].max(ranges[1].2[k]));
    let shift: [u32; K] =
        std::array::from_fn(|k| (u64::BITS - max[k].abs_diff(min[k]).leading_zeros()).saturating_sub(16));
    let part = |k: usize, v: i64| (v.abs_diff(min[k]) >> shift[k]) as usize;
    let [mut counts, more] = in_halves(n, |members| {
        let mut counts: [Vec<u32>; K] = std::array::from_fn(|k| vec![0u32; part(k, max[k]) + 1]);
        for o in members {
            if let Some(v) = value(o) {
                for k in 0..K {
                    counts[k][part(k, v[k])] += 1;
                }
            }
        }
        counts
    });
    for (c, m) in counts.iter_mut().zip(more) {
        c.iter_mut().zip(m).for_each(|(c, m)| *c += m);
    }
    // The part holding position count / 2, and the position within it.
    let mut at = [0usize; K];
    let mut rank = [count / 2; K];
    for k in 0..K {
        while rank[k] >= counts[k][at[k]] as usize {
            rank[k] -= counts[k][at[k]] as usize;
            at[k] += 1;
        }
    }
    let mut inside: [Vec<i64>; K] = std::array::from_fn(|_| Vec::new());
    if shift.iter().any(|&s| s > 0) {
        let halves = in_halves(n, |members| {
            let mut inside: [Vec<i64>; K] = std::array::from_fn(|_| Vec::new());
            for o in members {
                if let Some(v) = value(o) {
                    for k in 0..K {
                        if shift[k] > 0 && part(k, v[k]) == at[k] {
                            inside[k].push(v[k]);
                        }
                    }
                }
            }
            inside
        });
        for half in halves {
            for (i, h) in inside.iter_mut().zip(half) {
                i.extend(h);
            }
        }
    }
    std::array::from_fn(
        |k| if shift[k] == 0 { min[k] + at[k] as i64 } else { *inside[k].select_nth_unstable(rank[k]).1 },
    )
}

/// A member's (R, F, M) if effective: days since the last purchase, tickets and net spend (fen) in
/// 12 months.
pub fn rfm_value(f: &Features, o: usize) -> Option<[i64; 3]> {
    (f.frequency_12m[o] > 0).then(|| [f.recency(o).unwrap_or(0) as i64, f.frequency_12m[o] as i64, f.monetary_12m[o]])
}

/// Values up to which R, F and M are counted one by one: a year's days, tickets, and spend up to
/// about 21,000 yuan (8 MB of counts); a median beyond is found by [`medians`]' passes instead.
const DENSE: [usize; 3] = [1 << 12, 1 << 12, 1 << 21];

/// The effective members counted by each value of R, F and M (values below 0 or beyond [`DENSE`]
/// only counted as such): the medians come from the counts without reading the members, and an
/// update changes the counts for the touched members alone.
#[derive(Debug, Clone, Default)]
pub struct RfmCounts {
    effective: u64,
    dense: [Vec<u32>; 3],
    below: [u64; 3],
    above: [u64; 3],
}

impl RfmCounts {
    /// Counted over every member, in two halves.
    pub fn of(f: &Features) -> RfmCounts {
        let [mut a, b] = in_halves(f.frequency_12m.len(), |members| {
            let mut c = RfmCounts::default();
            for o in members {
                if let Some(v) = rfm_value(f, o) {
                    c.add(v, true);
                }
            }
            c
        });
        a.effective += b.effective;
        for k in 0..3 {
            a.below[k] += b.below[k];
            a.above[k] += b.above[k];
            if a.dense[k].len() < b.dense[k].len() {
                a.dense[k].resize(b.dense[k].len(), 0);
            }
            a.dense[k].iter_mut().zip(&b.dense[k]).for_each(|(x, y)| *x += y);
        }
        a
    }

    /// Counts (`add`) or uncounts one member's values.
    fn add(&mut self, v: [i64; 3], add: bool) {
        let step = |c: &mut u64| if add { *c += 1 } else { *c -= 1 };
        step(&mut self.effective);
        for k in 0..3 {
            if v[k] < 0 {
                step(&mut self.below[k]);
            } else if v[k] as u64 >= DENSE[k] as u64 {
                step(&mut self.above[k]);
            } else {
                let i = v[k] as usize;
                if self.dense[k].len() <= i {
                    self.dense[k].resize((i + 1).next_power_of_two().min(DENSE[k]), 0);
                }
                if add {
                    self.dense[k][i] += 1;
                } else {
                    self.dense[k][i] -= 1;
                }
            }
        }
    }

    /// The touched members' values were `old` (member, values if effective then) and are now
    /// those of `f`.
    pub fn update(&mut self, old: &[(u32, Option<[i64; 3]>)], f: &Features) {
        for &(o, v) in old {
            if let Some(v) = v {
                self.add(v, false);
            }
            if let Some(v) = rfm_value(f, o as usize) {
                self.add(v, true);
            }
        }
    }

    /// The medians as [`medians`] gives them, or `None` for one outside the counted values.
    fn medians(&self) -> Option<[i64; 3]> {
        if self.effective == 0 {
            return Some([0; 3]);
        }
        let median = |k: usize| {
            let mut rank = (self.effective / 2).checked_sub(self.below[k])?;
            for (v, &c) in self.dense[k].iter().enumerate() {
                if rank < c as u64 {
                    return Some(v as i64);
                }
                rank -= c as u64;
            }
            None
        };
        Some([median(0)?, median(1)?, median(2)?])
    }
}

/// The thresholds in force: the company's own, else the medians over the effective members (from
/// `counts` when they hold them).
pub fn rfm_thresholds(f: &Features, counts: &RfmCounts, s: &RfmSettings) -> RfmThresholds {
    let [r, tickets, m] = counts.medians().unwrap_or_else(|| medians(f.frequency_12m.len(), |o| rfm_value(f, o)));
    RfmThresholds {
        r_days: s.r_days.unwrap_or(r),
        f_tickets: s.f_tickets.unwrap_or(tickets),
        m_fen: s.m_yuan.map(|y| (y * 100.0).round() as i64).unwrap_or(m),
    }
}

/// Member `o`'s grade under thresholds `t`.
fn rfm_grade(f: &Features, o: usize, t: &RfmThresholds) -> RfmGrade {
    if f.frequency_12m[o] == 0 {
        return RfmGrade::NotEffective;
    }
    let r_high = (f.recency(o).unwrap_or(i32::MAX) as i64) < t.r_days;
    let f_high = f.frequency_12m[o] as i64 > t.f_tickets;
    let m_high = f.monetary_12m[o] > t.m_fen;
    RfmGrade::of(r_high, f_high, m_high)
}

/// Grades every member; also returns the thresholds used and the counts behind the medians.
pub fn rfm_grades(f: &Features, s: &RfmSettings) -> (Vec<RfmGrade>, RfmThresholds, RfmCounts) {
    let counts = RfmCounts::of(f);
    let t = rfm_thresholds(f, &counts, s);
    ((0..f.frequency_12m.len()).map(|o| rfm_grade(f, o, &t)).collect(), t, counts)
}

/// Brings `grades` (given under thresholds `before`) and `counts` up to date, in place, after the
/// features changed only for `touched` members (new members are always touched), whose values were
/// `old` (see [`RfmCounts::update`]), as of the same day and under the same settings: the touched
/// members are graded again, and when the thresholds moved, every member with a value between a
/// threshold's old and new place. Returns the thresholds and the untouched members whose grade
/// changed.
pub fn update_rfm_grades(
    grades: &mut Vec<RfmGrade>,
    before: RfmThresholds,
    counts: &mut RfmCounts,
    old: &[(u32, Option<[i64; 3]>)],
    f: &Features,
    s: &RfmSettings,
    touched: &RoaringBitmap,
) -> (RfmThresholds, RoaringBitmap) {
    counts.update(old, f);
    let t = rfm_thresholds(f, counts, s);
    grades.resize(f.frequency_12m.len(), RfmGrade::NotEffective);
    for o in touched {
        grades[o as usize] = rfm_grade(f, o as usize, &t);
    }
    let mut moved = RoaringBitmap::new();
    if t != before {
        // A member's grade moves only with one of its high/low flags: the members with a value
        // between a moved threshold's old and new place, found by a plain scan of the columns
        // (two halves, one thread each), are graded again.
        let (dr, df, dm) = (t.r_days != before.r_days, t.f_tickets != before.f_tickets, t.m_fen != before.m_fen);
        let span = |a: i64, b: i64| (a.min(b), a.max(b));
        let ((rlo, rhi), (flo, fhi), (mlo, mhi)) =
            (span(before.r_days, t.r_days), span(before.f_tickets, t.f_tickets), span(before.m_fen, t.m_fen));
        let as_of = f.as_of as i64;
        let candidates = |members: std::ops::Range<usize>| -> Vec<u32> {
            let first = members.start;
            let (x, m, last) =
                (&f.frequency_12m[members.clone()], &f.monetary_12m[members.clone()], &f.last_day[members]);
            let mut out = Vec::new();
            for i in 0..x.len() {
                let (x, m) = (x[i] as i64, m[i]);
                // high when m > threshold, x > threshold, r < threshold: each flips between the
                // two places. An effective member has a last day.
                let r = as_of - last[i] as i64;
                let flips =
                    (dm & (m > mlo) & (m <= mhi)) | (df & (x > flo) & (x <= fhi)) | (dr & (r >= rlo) & (r < rhi));
                if (x > 0) & flips {
                    out.push((first + i) as u32);
                }
            }
            out
        };
        let [low, high] = in_halves(grades.len(), candidates);
        let mut changed = Vec::new();
        for o in low.into_iter().chain(high) {
            let now = rfm_grade(f, o as usize, &t);
            // (A touched member is graded under `t` already: it never differs here.)
            if grades[o as usize] != now {
                grades[o as usize] = now;
                changed.push(o);
            }
        }
        moved = RoaringBitmap::from_sorted_iter(changed).expect("ordinals ascend");
    }
    (t, moved)
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
    (0..f.frequency_12m.len()).map(|o| activity_level(f, o, s)).collect()
}

fn activity_level(f: &Features, o: usize, s: &ActivitySettings) -> ActivityLevel {
    ActivityLevel::of(f.recency(o), f.first_purchase_days(o), f.frequency_12m[o], s)
}

/// Brings `levels` up to date, in place, after the features changed only for `touched` members (new
/// members are always touched), as of the same day and under the same settings: a level depends
/// only on the member's own features.
pub fn update_activity_levels(
    levels: &mut Vec<ActivityLevel>,
    f: &Features,
    s: &ActivitySettings,
    touched: &RoaringBitmap,
) {
    levels.resize(f.frequency_12m.len(), ActivityLevel::NeverPurchased);
    for o in touched {
        levels[o as usize] = activity_level(f, o as usize, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn medians_are_the_sorted_values_middles(
            values in prop::collection::vec(prop::option::weighted(0.8, (
                prop_oneof![any::<i64>(), -400i64..400],
                0i64..400,
                prop_oneof![0i64..2_000_000, any::<i64>()],
            ).prop_map(|(a, b, c)| [a, b, c])), 0..3000),
        ) {
            let want: [i64; 3] = std::array::from_fn(|k| {
                let mut present: Vec<i64> = values.iter().flatten().map(|v| v[k]).collect();
                present.sort_unstable();
                if present.is_empty() { 0 } else { present[present.len() / 2] }
            });
            prop_assert_eq!(medians(values.len(), |o| values[o]), want);
        }
    }

    /// (days since the last purchase, tickets in 12 months, spend in fen) per member: some beyond the
    /// counted values, some not effective.
    fn rows() -> impl Strategy<Value = Vec<(Option<i32>, u32, i64)>> {
        prop::collection::vec(
            (
                prop::option::weighted(0.9, 0i32..400),
                prop_oneof![3 => 0u32..12, 1 => 4090u32..4100],
                prop_oneof![3 => 0i64..3000, 1 => -50i64..0, 1 => 2_097_100i64..2_097_200],
            ),
            0..300,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Kept up to date member by member, the counts give the medians a full pass gives, and the
        /// grades updated in place are those graded afresh.
        #[test]
        fn counted_medians_and_updated_grades_equal_a_full_pass(
            before in rows(),
            changes in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(0i32..400), 0u32..12, 0i64..3000), 0..40),
            added in rows(),
        ) {
            let f0 = features(&before);
            let (mut grades, t0, mut counts) = rfm_grades(&f0, &RfmSettings::default());
            let want = medians(before.len(), |o| rfm_value(&f0, o));
            if let Some(m) = counts.medians() {
                prop_assert_eq!(m, want);
            }
            prop_assert_eq!([t0.r_days, t0.f_tickets, t0.m_fen], want);
            let mut after = before.clone();
            let mut touched = RoaringBitmap::new();
            if !after.is_empty() {
                for (i, r, x, m) in changes {
                    let o = i.index(after.len());
                    after[o] = (r, x, m);
                    touched.insert(o as u32);
                }
            }
            touched.insert_range(after.len() as u32..(after.len() + added.len()) as u32);
            after.extend(added);
            let old: Vec<(u32, Option<[i64; 3]>)> =
                touched.iter().map(|o| (o, ((o as usize) < before.len()).then(|| rfm_value(&f0, o as usize)).flatten())).collect();
            let f1 = features(&after);
            let (t1, moved) = update_rfm_grades(&mut grades, t0, &mut counts, &old, &f1, &RfmSettings::default(), &touched);
            let (fresh, t, _) = rfm_grades(&f1, &RfmSettings::default());
            prop_assert_eq!(t1, t);
            prop_assert_eq!(&grades, &fresh);
            let want_moved: Vec<u32> = (0..before.len() as u32)
                .filter(|&o| !touched.contains(o) && rfm_grade(&f0, o as usize, &t0) != fresh[o as usize])
                .collect();
            prop_assert_eq!(moved.iter().collect::<Vec<_>>(), want_moved);
            if let Some(m) = counts.medians() {
                prop_assert_eq!(m, medians(after.len(), |o| rfm_value(&f1, o)));
            }
        }
    }

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
        let (g, t, _) = rfm_grades(&f, &RfmSettings::default());
        assert_eq!(t, RfmThresholds { r_days: 30, f_tickets: 3, m_fen: 70_000 });
        use RfmGrade::*;
        assert_eq!(
            g,
            vec![ImportantKeep, ImportantDevelop, OrdinaryImportant, NoValue, NoValue, NotEffective, NotEffective]
        );
        // Fixed thresholds from the company's settings replace the medians.
        let s = RfmSettings { r_days: Some(60), f_tickets: Some(1), m_yuan: Some(500.0) };
        let (g, _, _) = rfm_grades(&f, &s);
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
