//! Members' loyalty state: points balance, the unspent points that will expire and when, and the
//! tier. Unlike sales these are the store's current state, not history: an audience asked as of an
//! earlier day still sees today's balances and tiers, while `points_expiring(within = …)` counts its
//! window from the as-of day (`docs/audience-language.md`).

use crate::data::{Day, day_of_date};
use roaring::RoaringBitmap;
use rxmember_core::facts::TierLevelFact;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Unspent points of one member that stop being valid after `day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Lot {
    pub day: Day,
    pub member: u32,
    pub points: i64,
}

/// One member's state, already resolved to the member's ordinal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberLoyalty {
    pub ordinal: u32,
    pub balance: i64,
    pub expiring: Vec<(chrono::NaiveDate, i64)>,
    pub tier: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loyalty {
    /// The rules' tier levels, lowest first, then any code a member holds that the rules no longer
    /// define (named by its code).
    pub levels: Vec<TierLevelFact>,
    /// Per member: 1 + the index of the member's level in `levels`; 0 for none recorded (the member
    /// is at the base level, as at the till).
    pub tier: Vec<u16>,
    /// Per member: the points balance.
    pub balance: Vec<i64>,
    /// Lots with an expiry day, in (day, member) order: a window of days is one slice.
    lots: Vec<Lot>,
}

impl Loyalty {
    /// Columns for `n` members (new members have no points and no tier).
    pub fn grow(&mut self, n: usize) {
        self.tier.resize(n, 0);
        self.balance.resize(n, 0);
    }

    /// Takes the rules' levels. Members keep their level (by code) whatever the new order; a code
    /// no longer defined stays as a level of its own. Returns whether anything changed.
    pub fn set_levels(&mut self, levels: Vec<TierLevelFact>) -> bool {
        self.set_levels_noting(levels, |_| {})
    }

    /// [`Loyalty::set_levels`], calling `moved` with each member whose level number changed.
    pub(crate) fn set_levels_noting(&mut self, levels: Vec<TierLevelFact>, mut moved: impl FnMut(u32)) -> bool {
        let old = std::mem::take(&mut self.levels);
        self.levels = levels;
        let remap: Vec<u16> = old.iter().map(|l| self.level_of(&l.code, Some(&l.name))).collect();
        for (o, t) in self.tier.iter_mut().enumerate().filter(|(_, t)| **t != 0) {
            let now = remap[*t as usize - 1];
            if now != *t {
                *t = now;
                moved(o as u32);
            }
        }
        self.levels != old
    }

    /// The level number (1-based) of a tier code, added (named by its code or `name`) if unknown.
    fn level_of(&mut self, code: &str, name: Option<&str>) -> u16 {
        match self.levels.iter().position(|l| l.code == code) {
            Some(i) => i as u16 + 1,
            None => {
                let name = name.unwrap_or(code).to_string();
                self.levels.push(TierLevelFact { code: code.to_string(), name });
                self.levels.len() as u16
            }
        }
    }

    /// Member `o`'s level (index into `levels`): the recorded one, else the base (lowest) level.
    pub fn level(&self, o: usize) -> Option<usize> {
        match self.tier[o] {
            0 => (!self.levels.is_empty()).then_some(0),
            t => Some(t as usize - 1),
        }
    }

    /// The level index (0-based) a name or code refers to.
    pub fn level_named(&self, v: &str) -> Option<usize> {
        let v = v.trim();
        self.levels.iter().position(|l| l.name == v).or_else(|| self.levels.iter().position(|l| l.code == v))
    }

    /// Replaces these members' state (each member at most once).
    pub fn apply(&mut self, states: Vec<MemberLoyalty>) {
        if states.is_empty() {
            return;
        }
        let replaced: RoaringBitmap = states.iter().map(|s| s.ordinal).collect();
        let mut fresh: Vec<Lot> = Vec::new();
        for s in states {
            let o = s.ordinal as usize;
            self.balance[o] = s.balance;
            self.tier[o] = s.tier.as_deref().map_or(0, |code| self.level_of(code, None));
            fresh.extend(s.expiring.iter().filter(|(_, p)| *p > 0).map(|(d, p)| Lot {
                day: day_of_date(*d),
                member: s.ordinal,
                points: *p,
            }));
        }
        fresh.sort_unstable();
        // Keep the order by merging the kept lots with the new ones: linear in the lots held.
        let kept = std::mem::take(&mut self.lots).into_iter().filter(|l| !replaced.contains(l.member));
        let mut merged = Vec::with_capacity(kept.size_hint().1.unwrap_or(0) + fresh.len());
        let mut fresh = fresh.into_iter().peekable();
        for lot in kept {
            while let Some(f) = fresh.next_if(|f| *f < lot) {
                merged.push(f);
            }
            merged.push(lot);
        }
        merged.extend(fresh);
        self.lots = merged;
    }

    /// The lots whose last valid day is within `from..=to`.
    pub fn lots_between(&self, from: Day, to: Day) -> &[Lot] {
        let start = self.lots.partition_point(|l| l.day < from);
        let end = self.lots.partition_point(|l| l.day <= to);
        &self.lots[start..end.max(start)]
    }

    /// Points per member expiring within `from..=to` (members with none are absent).
    pub fn expiring_between(&self, from: Day, to: Day) -> HashMap<u32, i64> {
        let mut by_member: HashMap<u32, i64> = HashMap::new();
        for l in self.lots_between(from, to) {
            *by_member.entry(l.member).or_default() += l.points;
        }
        by_member
    }

    /// Every lot held, in (day, member) order.
    pub fn lots(&self) -> &[Lot] {
        &self.lots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn date(m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2027, m, d).unwrap()
    }

    fn level(code: &str, name: &str) -> TierLevelFact {
        TierLevelFact { code: code.into(), name: name.into() }
    }

    fn state(o: u32, balance: i64, expiring: &[(NaiveDate, i64)], tier: Option<&str>) -> MemberLoyalty {
        MemberLoyalty { ordinal: o, balance, expiring: expiring.to_vec(), tier: tier.map(str::to_string) }
    }

    #[test]
    fn applying_a_member_again_replaces_its_lots_and_keeps_the_order() {
        let mut l = Loyalty::default();
        l.grow(3);
        l.apply(vec![
            state(0, 300, &[(date(3, 31), 200), (date(1, 10), 100)], None),
            state(2, 50, &[(date(2, 1), 50)], None),
        ]);
        assert_eq!(l.lots().iter().map(|x| (x.member, x.points)).collect::<Vec<_>>(), [(0, 100), (2, 50), (0, 200)]);
        // Member 0 spent the January lot; member 1 earned.
        l.apply(vec![state(0, 200, &[(date(3, 31), 200)], None), state(1, 80, &[(date(1, 20), 80)], None)]);
        assert_eq!(l.lots().iter().map(|x| (x.member, x.points)).collect::<Vec<_>>(), [(1, 80), (2, 50), (0, 200)]);
        assert_eq!(l.balance, [200, 80, 50]);
        let jan = l.expiring_between(day_of_date(date(1, 1)), day_of_date(date(1, 31)));
        assert_eq!(jan, HashMap::from([(1, 80)]));
        let q1 = l.expiring_between(day_of_date(date(1, 1)), day_of_date(date(3, 31)));
        assert_eq!(q1, HashMap::from([(0, 200), (1, 80), (2, 50)]));
        assert!(l.lots_between(day_of_date(date(4, 1)), day_of_date(date(3, 1))).is_empty());
    }

    #[test]
    fn members_keep_their_level_when_the_rules_reorder_or_drop_it() {
        let mut l = Loyalty::default();
        l.grow(3);
        l.set_levels(vec![level("normal", "普通"), level("silver", "银卡"), level("gold", "金卡")]);
        l.apply(vec![state(0, 0, &[], Some("gold")), state(1, 0, &[], Some("silver")), state(2, 0, &[], None)]);
        assert_eq!(l.tier, [3, 2, 0]);
        assert_eq!((l.level(0), l.level(2)), (Some(2), Some(0)));
        assert!(l.set_levels(vec![level("gold", "金卡"), level("normal", "普通")]));
        assert_eq!(l.levels.iter().map(|x| x.code.as_str()).collect::<Vec<_>>(), ["gold", "normal", "silver"]);
        assert_eq!(l.tier, [1, 3, 0]);
        assert_eq!(l.level_named("银卡"), Some(2));
        assert_eq!(l.level_named("gold"), Some(0));
        assert_eq!(l.level_named("铜卡"), None);
        assert!(!l.set_levels(l.levels.clone()));
    }
}
