//! Facts by key and day (posting lists): purchases by product and day, health checks by kind and
//! day. A `bought(category = …, within = …)` or `checked(kind = …, within = …)` question reads only
//! the postings of its products or kind inside its window, days ascending, instead of every
//! candidate member's whole history. Kept in step with the members' runs at every seal
//! ([`crate::data::CompanyData::seal`]), so they are never persisted; a restore builds them again.

use crate::data::{Check, Day, Fen32, Purchase, Runs};
use rxmember_core::health::HealthKind;

/// One purchase as seen from its product and day (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Posting {
    pub member: u32,
    pub store: u32,
    /// Net of returns, fen.
    pub amount: Fen32,
}

/// Postings of one key on one day, in no particular order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket<'a, T> {
    pub(crate) postings: &'a [T],
    /// Postings with a negative amount (a return without its purchase): while there are none, a
    /// day with any positive posting is a day with a positive net.
    pub(crate) negative: u32,
}

/// A bucket's place in the arena: its postings are `items[start..start + len]`, with room up to
/// `cap`.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    start: usize,
    len: u32,
    cap: u32,
    negative: u32,
}

/// Buckets per key and day: `keys[k][day - first_day]` (a key's days may end early), their
/// postings in one arena, as the members' runs are ([`Runs`]): a bucket is a slot with room after
/// it, and a bucket that outgrows its slot moves to the arena's end (its old slot is garbage until
/// the arena is compacted). A build lays the slots out key after key, day after day, and fills
/// them by key and then by day ([`ByDay::fill`]).
#[derive(Debug, Clone)]
pub(crate) struct ByDay<T> {
    first_day: Day,
    keys: Vec<Vec<Slot>>,
    items: Vec<T>,
    /// Arena entries in slots given up.
    garbage: usize,
}

impl<T> Default for ByDay<T> {
    fn default() -> Self {
        ByDay { first_day: Day::MAX, keys: Vec::new(), items: Vec::new(), garbage: 0 }
    }
}

/// Garbage below this is never compacted away.
const GARBAGE_FLOOR: usize = 1 << 16;

impl<T: Copy + Default + PartialEq + Send + Sync> ByDay<T> {
    /// How many keys there are.
    pub(crate) fn keys(&self) -> usize {
        self.keys.len()
    }

    pub(crate) fn grow(&mut self, keys: usize) {
        if self.keys.len() < keys {
            self.keys.resize_with(keys, Vec::new);
        }
    }

    /// Bulk build from (key, day, posting) triples whose days all lie in `first..=last`: counted
    /// first, so each slot is laid out once, for `room(n)` postings when it gets `n`.
    pub(crate) fn build_within(
        first: Day,
        last: Day,
        keys: usize,
        facts: impl Fn(&mut dyn FnMut(usize, Day, T)) + Sync,
        negative: impl Fn(&T) -> bool + Sync,
        room: impl Fn(usize) -> usize,
        threads: usize,
    ) -> Self {
        if first > last {
            let mut by = ByDay::default();
            by.grow(keys);
            return by;
        }
        let span = (last - first + 1) as usize;
        let mut counts = vec![0u32; keys * span];
        facts(&mut |k, d, _| counts[k * span + (d - first) as usize] += 1);
        let mut by = ByDay::with_counts(first, span, &counts, room);
        by.fill(facts, negative, threads);
        by
    }

    /// Empty slots for days `first..first + span` of `counts.len() / span` keys, each with room
    /// for `room(count)` postings (`counts[key * span + day - first]`), laid out key after key and
    /// day after day; a key's days end at its last day with a count. The arena is written through
    /// once here, in order: its first touches come in one sweep, not scattered over the fill.
    pub(crate) fn with_counts(first: Day, span: usize, counts: &[u32], room: impl Fn(usize) -> usize) -> Self {
        let mut at = 0usize;
        let keys: Vec<Vec<Slot>> = counts
            .chunks(span.max(1))
            .map(|c| {
                let end = c.iter().rposition(|&x| x > 0).map_or(0, |i| i + 1);
                c[..end]
                    .iter()
                    .map(|&x| {
                        let cap = room(x as usize);
                        let slot = Slot { start: at, len: 0, cap: slot_size(cap), negative: 0 };
                        at += cap;
                        slot
                    })
                    .collect()
            })
            .collect();
        let mut items = crate::pages::with_capacity(at);
        items.resize(at, T::default());
        ByDay { first_day: first, keys, items, garbage: 0 }
    }

    /// Fills the slots [`ByDay::with_counts`] laid out with the facts it counted (in any order; a
    /// bucket's postings keep the order given): first each key's postings into the front of the
    /// key's stretch of the arena, with their days beside (a few hundred write
    /// streams, where writing each posting straight into its bucket kept one per key and day, each
    /// a cache and a TLB miss), then each key's postings, copied aside, into its days' slots.
    /// On `threads` threads (at most 2), a part of the keys each.
    pub(crate) fn fill(
        &mut self,
        facts: impl Fn(&mut dyn FnMut(usize, Day, T)) + Sync,
        negative: impl Fn(&T) -> bool + Sync,
        threads: usize,
    ) {
        let first = self.first_day;
        let span = self.keys.iter().map(Vec::len).max().unwrap_or(0);
        // Keys below `split` on this thread, the others on a second one: about half the arena.
        let half = self.items.len() / 2;
        let split = if threads > 1 {
            self.keys.iter().position(|days| days.first().is_some_and(|s| s.start >= half)).unwrap_or(self.keys.len())
        } else {
            self.keys.len()
        };
        let cut = self.keys[split..].iter().find_map(|days| days.first()).map_or(self.items.len(), |s| s.start);
        let (low_keys, high_keys) = self.keys.split_at_mut(split);
        let (low_items, high_items) = self.items.split_at_mut(cut);
        let (facts, negative) = (&facts, &negative);
        std::thread::scope(|s| {
            if !high_keys.is_empty() {
                s.spawn(move || fill_part(high_keys, high_items, split, cut, first, span, facts, negative));
            }
            fill_part(low_keys, low_items, 0, 0, first, span, facts, negative);
        });
    }

    /// Where key `k`'s day `d` is in `keys[k]`, its slot (and earlier days') made if missing.
    fn place(&mut self, k: usize, d: Day) -> usize {
        if d < self.first_day {
            if self.first_day != Day::MAX {
                let shift = (self.first_day - d) as usize;
                for days in &mut self.keys {
                    if !days.is_empty() {
                        days.splice(0..0, (0..shift).map(|_| Slot::default()));
                    }
                }
            }
            self.first_day = d;
        }
        let days = &mut self.keys[k];
        let i = (d - self.first_day) as usize;
        if days.len() <= i {
            days.resize_with(i + 1, Slot::default);
        }
        i
    }

    /// Bytes held: the slots and the arena.
    pub(crate) fn bytes(&self) -> usize {
        self.keys.iter().map(|days| days.capacity() * std::mem::size_of::<Slot>()).sum::<usize>()
            + self.items.capacity() * std::mem::size_of::<T>()
    }

    pub(crate) fn add(&mut self, k: usize, d: Day, t: T, negative: bool) {
        self.extend(k, d, &[t], negative as u32);
    }

    /// Adds `postings` (`negative` of them negative) to key `k`'s day `d` at once: the bucket
    /// moves at most once, where adding them one by one moved a new day's bucket a logarithmic
    /// number of times, each move copying it and touching fresh memory.
    pub(crate) fn extend(&mut self, k: usize, d: Day, postings: &[T], negative: u32) {
        if postings.is_empty() {
            return;
        }
        let i = self.place(k, d);
        let mut s = self.keys[k][i];
        let len = s.len as usize;
        let want = len + postings.len();
        if want > s.cap as usize {
            // Moved to the arena's end: an empty bucket (a new day's, filled here at once) with
            // room as a build gives, a growing one with room for as many again (and a few). The
            // arena grows by an eighth, not by doubling: it is most of the index's memory.
            let cap = if len == 0 { crate::data::room(want) } else { (want * 2).max(4) };
            let end = self.items.len();
            if self.items.capacity() - end < cap {
                let more = cap.max(self.items.capacity() / 8);
                crate::pages::reserve_exact(&mut self.items, more);
            }
            self.items.extend_from_within(s.start..s.start + len);
            self.items.resize(end + cap, T::default());
            self.garbage += s.cap as usize;
            s.start = end;
            s.cap = slot_size(cap);
        }
        self.items[s.start + len..s.start + want].copy_from_slice(postings);
        s.len = slot_size(want);
        s.negative += negative;
        self.keys[k][i] = s;
        if self.garbage > GARBAGE_FLOOR.max(self.items.len() / 3) {
            self.compact();
        }
    }

    /// Removes one posting equal to `t` from key `k`'s day `d`; whether there was one.
    pub(crate) fn remove(&mut self, k: usize, d: Day, t: T, negative: bool) -> bool {
        let Some(i) = d.checked_sub(self.first_day).and_then(|i| usize::try_from(i).ok()) else {
            return false;
        };
        let Some(&s) = self.keys.get(k).and_then(|days| days.get(i)) else {
            return false;
        };
        let postings = &mut self.items[s.start..s.start + s.len as usize];
        let Some(at) = postings.iter().position(|x| *x == t) else {
            return false;
        };
        postings[at] = postings[postings.len() - 1];
        let slot = &mut self.keys[k][i];
        slot.len -= 1;
        slot.negative -= negative as u32;
        true
    }

    /// Writes every bucket again, key after key, day after day, each with room for an eighth more
    /// and two (as a build's runs have), and drops the garbage.
    fn compact(&mut self) {
        let held: usize = self.keys.iter().flatten().map(|s| crate::data::room(s.len as usize)).sum();
        let mut items: Vec<T> = crate::pages::with_capacity(held);
        for s in self.keys.iter_mut().flatten() {
            let from = items.len();
            items.extend_from_slice(&self.items[s.start..s.start + s.len as usize]);
            let cap = crate::data::room(s.len as usize);
            items.resize(from + cap, T::default());
            s.start = from;
            s.cap = slot_size(cap);
        }
        self.items = items;
        self.garbage = 0;
    }

    /// The buckets of `keys` on days `from..=to`, days ascending (keys in the given order per day).
    pub(crate) fn each<'a>(
        &'a self,
        keys: &'a [u32],
        from: Day,
        to: Day,
    ) -> impl Iterator<Item = (Day, Bucket<'a, T>)> + 'a {
        let from = from.max(self.first_day);
        let last = self.first_day.saturating_add(self.keys.iter().map(Vec::len).max().unwrap_or(0) as Day - 1);
        let to = to.min(last);
        (from..=to).flat_map(move |d| {
            let i = (d - self.first_day) as usize;
            keys.iter().filter_map(move |&k| self.keys.get(k as usize).and_then(|days| days.get(i))).map(move |s| {
                (d, Bucket { postings: &self.items[s.start..s.start + s.len as usize], negative: s.negative })
            })
        })
    }
}

/// A slot's size as stored (a bucket beyond 2^32 postings is not a bucket this index can hold).
fn slot_size(cap: usize) -> u32 {
    u32::try_from(cap).expect("a bucket holds fewer than 2^32 postings")
}

/// [`ByDay::fill`] on one thread, for keys from `first_key` whose slots lie in `items` (the arena
/// from entry `base`).
#[allow(clippy::too_many_arguments)]
fn fill_part<T: Copy>(
    keys: &mut [Vec<Slot>],
    items: &mut [T],
    first_key: usize,
    base: usize,
    first: Day,
    span: usize,
    facts: &(impl Fn(&mut dyn FnMut(usize, Day, T)) + Sync),
    negative: &(impl Fn(&T) -> bool + Sync),
) {
    let range = first_key..first_key + keys.len();
    if span > 1 << 16 {
        // Days do not fit beside the postings in 2 bytes: straight into the slots.
        facts(&mut |k, d, t| {
            if range.contains(&k) {
                let s = &mut keys[k - first_key][(d - first) as usize];
                items[s.start - base + s.len as usize] = t;
                s.len += 1;
                s.negative += negative(&t) as u32;
            }
        });
        return;
    }
    // Each key's postings to the front of its stretch, in the order given, days beside.
    let starts: Vec<usize> = keys.iter().map(|days| days.first().map_or(0, |s| s.start - base)).collect();
    let mut ends = starts.clone();
    let mut days = vec![0u16; items.len()];
    facts(&mut |k, d, t| {
        if range.contains(&k) {
            let at = &mut ends[k - first_key];
            items[*at] = t;
            days[*at] = (d - first) as u16;
            *at += 1;
        }
    });
    // Then each key's into its days' slots, in the same order.
    let mut aside: Vec<(u16, T)> = Vec::new();
    for (k, days_of_key) in keys.iter_mut().enumerate() {
        let (from, to) = (starts[k], ends[k]);
        aside.clear();
        aside.extend(days[from..to].iter().copied().zip(items[from..to].iter().copied()));
        for &(d, t) in &aside {
            let s = &mut days_of_key[d as usize];
            items[s.start - base + s.len as usize] = t;
            s.len += 1;
            s.negative += negative(&t) as u32;
        }
    }
}

/// Purchases by product and day.
#[derive(Debug, Clone, Default)]
pub struct ProductDays(ByDay<Posting>);

impl ProductDays {
    /// Built from the runs, whose purchases' days all lie in `first..=last`.
    pub fn build(products: usize, runs: &Runs<Purchase>, (first, last): (Day, Day)) -> ProductDays {
        ProductDays(ByDay::build_within(
            first,
            last,
            products,
            |f| {
                for (o, run) in runs.iter().enumerate() {
                    for p in run {
                        f(p.product as usize, p.day, Posting { member: o as u32, store: p.store, amount: p.amount });
                    }
                }
            },
            |p| p.amount < 0,
            |n| n,
            1,
        ))
    }

    pub(crate) fn grow(&mut self, products: usize) {
        self.0.grow(products);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// Member `o`'s purchases were `old` and are now `new` (the same order, `new` possibly longer).
    pub(crate) fn replace(&mut self, o: u32, old: &[Purchase], new: &[Purchase]) {
        let posting = |p: &Purchase| Posting { member: o, store: p.store, amount: p.amount };
        for i in 0..old.len().max(new.len()) {
            let (a, b) = (old.get(i), new.get(i));
            if a == b {
                continue;
            }
            if let Some(a) = a {
                self.0.remove(a.product as usize, a.day, posting(a), a.amount < 0);
            }
            if let Some(b) = b {
                self.0.add(b.product as usize, b.day, posting(b), b.amount < 0);
            }
        }
    }

    /// Calls `f` with each posting of `products` on days `from..=to`, days ascending: a member's
    /// postings therefore come day by day.
    pub fn each(&self, products: &[u32], from: Day, to: Day, mut f: impl FnMut(Day, &Posting)) {
        for (d, b) in self.0.each(products, from, to) {
            for p in b.postings {
                f(d, p);
            }
        }
    }

    /// The first day with any posting (`Day::MAX` when there is none).
    pub fn first_day(&self) -> Day {
        self.0.first_day
    }

    /// How many postings [`ProductDays::each`] would visit, and whether any has a negative amount.
    pub fn size(&self, products: &[u32], from: Day, to: Day) -> (usize, bool) {
        self.0
            .each(products, from, to)
            .fold((0, false), |(n, neg), (_, b)| (n + b.postings.len(), neg || b.negative > 0))
    }
}

/// A health check as seen from its kind and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CheckPosting {
    pub member: u32,
    pub abnormal: bool,
}

/// Index of a health kind among the check postings' keys.
pub fn kind_index(k: HealthKind) -> u32 {
    match k {
        HealthKind::BloodPressure => 0,
        HealthKind::BloodGlucose => 1,
        HealthKind::BloodLipids => 2,
        HealthKind::UricAcid => 3,
        HealthKind::Weight => 4,
        HealthKind::Bmi => 5,
        HealthKind::BoneDensity => 6,
        HealthKind::Other => 7,
    }
}

/// Every key of [`kind_index`].
pub const ALL_KINDS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// Health checks by kind and day.
#[derive(Debug, Clone, Default)]
pub struct CheckDays(ByDay<CheckPosting>);

impl CheckDays {
    /// Built from the runs, whose checks' days all lie in `first..=last`.
    pub fn build(runs: &Runs<Check>, (first, last): (Day, Day)) -> CheckDays {
        CheckDays(ByDay::build_within(
            first,
            last,
            ALL_KINDS.len(),
            |f| {
                for (o, run) in runs.iter().enumerate() {
                    for c in run {
                        f(kind_index(c.kind) as usize, c.day, CheckPosting { member: o as u32, abnormal: c.abnormal });
                    }
                }
            },
            |_| false,
            |n| n,
            1,
        ))
    }

    pub(crate) fn replace(&mut self, o: u32, old: &[Check], new: &[Check]) {
        self.0.grow(ALL_KINDS.len());
        let posting = |c: &Check| CheckPosting { member: o, abnormal: c.abnormal };
        for i in 0..old.len().max(new.len()) {
            let (a, b) = (old.get(i), new.get(i));
            if a == b {
                continue;
            }
            if let Some(a) = a {
                self.0.remove(kind_index(a.kind) as usize, a.day, posting(a), false);
            }
            if let Some(b) = b {
                self.0.add(kind_index(b.kind) as usize, b.day, posting(b), false);
            }
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.0.bytes()
    }

    /// How many checks [`CheckDays::each`] would visit.
    pub fn size(&self, kinds: &[u32], from: Day, to: Day) -> usize {
        self.0.each(kinds, from, to).map(|(_, b)| b.postings.len()).sum()
    }

    /// Calls `f` with each check of `kinds` on days `from..=to`.
    pub fn each(&self, kinds: &[u32], from: Day, to: Day, mut f: impl FnMut(&CheckPosting)) {
        for (_, b) in self.0.each(kinds, from, to) {
            b.postings.iter().for_each(&mut f);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    /// A test posting: (member, amount; negative when below zero).
    type P = (u32, i32);
    /// Buckets by (key, day): their postings and negative count.
    type Contents = BTreeMap<(u32, Day), (Vec<P>, u32)>;

    /// Every bucket's postings in the index's order and its negative count, by (key, day); empty
    /// buckets left out.
    fn buckets(by: &ByDay<P>) -> Contents {
        let mut out = BTreeMap::new();
        for k in 0..by.keys() as u32 {
            for (d, b) in by.each(&[k], Day::MIN, Day::MAX) {
                if !b.postings.is_empty() || b.negative > 0 {
                    out.insert((k, d), (b.postings.to_vec(), b.negative));
                }
            }
        }
        out
    }

    /// The same, each bucket's postings sorted (after removals their order is no part of the index).
    fn sorted(mut b: Contents) -> Contents {
        b.values_mut().for_each(|(p, _)| p.sort_unstable());
        b
    }

    /// What a build must hold: each (key, day)'s facts in the order given.
    fn naive(facts: &[(usize, Day, P)]) -> Contents {
        let mut out = Contents::new();
        for &(k, d, t) in facts {
            let e = out.entry((k as u32, d)).or_default();
            e.0.push(t);
            e.1 += (t.1 < 0) as u32;
        }
        out
    }

    fn build(facts: &[(usize, Day, (u32, i32))], keys: usize, threads: usize) -> ByDay<(u32, i32)> {
        let first = facts.iter().map(|f| f.1).min().unwrap_or(1);
        let last = facts.iter().map(|f| f.1).max().unwrap_or(0);
        ByDay::build_within(
            first,
            last,
            keys,
            |f| facts.iter().for_each(|&(k, d, t)| f(k, d, t)),
            |t| t.1 < 0,
            crate::data::room,
            threads,
        )
    }

    fn facts(keys: usize, days: std::ops::Range<Day>) -> impl Strategy<Value = Vec<(usize, Day, (u32, i32))>> {
        prop::collection::vec((0..keys, days, (0u32..50, -3i32..20)), 0..300)
    }

    proptest! {
        /// A build by key and then by day holds each bucket's facts in the order given, on one
        /// thread or two, and with days too far apart for 2 bytes (straight into the slots).
        #[test]
        fn a_build_holds_each_buckets_facts_in_order(
            facts in facts(9, 0..40),
            far in prop::collection::vec((0usize..9, prop::sample::select(vec![-70_000, 70_000]), (0u32..50, -3i32..20)), 0..3),
            threads in 1usize..3,
        ) {
            let by = build(&facts, 9, threads);
            prop_assert_eq!(buckets(&by), naive(&facts));
            let mut all = facts.clone();
            all.extend(far);
            let by = build(&all, 9, threads);
            prop_assert_eq!(buckets(&by), naive(&all));
        }

        /// Adding (one by one or several at once) and removing postings after a build (buckets
        /// moved to the arena's end, days before the first, new keys, compaction) holds what a
        /// plain map of lists holds.
        #[test]
        fn adds_and_removes_hold_what_a_map_holds(
            facts in facts(6, 10..30),
            ops in prop::collection::vec((0usize..3, 0usize..8, 0i32..40, (0u32..50, -3i32..20)), 0..400),
            compact_at in 0usize..400,
        ) {
            let mut by = build(&facts, 6, 2);
            by.grow(8);
            let mut want = naive(&facts);
            for (i, &(op, k, d, t)) in ops.iter().enumerate() {
                if op > 0 {
                    // Op 2 adds a run of postings at once, as a seal's flush does.
                    let run: Vec<(u32, i32)> = if op == 1 {
                        vec![t]
                    } else {
                        (0..=t.0 % 7).map(|j| (t.0 + j, if j % 2 == 0 { t.1 } else { -t.1 })).collect()
                    };
                    let negative = run.iter().filter(|p| p.1 < 0).count() as u32;
                    if op == 1 {
                        by.add(k, d, t, t.1 < 0);
                    } else {
                        by.extend(k, d, &run, negative);
                    }
                    let e = want.entry((k as u32, d)).or_default();
                    e.0.extend(&run);
                    e.1 += negative;
                } else {
                    let had = want.get_mut(&(k as u32, d)).and_then(|e| {
                        let i = e.0.iter().position(|x| *x == t)?;
                        e.0.swap_remove(i);
                        e.1 -= (t.1 < 0) as u32;
                        Some(())
                    });
                    prop_assert_eq!(by.remove(k, d, t, t.1 < 0), had.is_some());
                }
                if i == compact_at {
                    by.compact();
                    prop_assert_eq!(by.garbage, 0);
                }
            }
            want.retain(|_, e| !e.0.is_empty() || e.1 > 0);
            prop_assert_eq!(sorted(buckets(&by)), sorted(want));
        }
    }

    /// A bucket grown one posting at a time far past its room moves to the arena's end each time
    /// it is full, and the garbage it leaves is compacted away once it is a third of the arena.
    #[test]
    fn a_growing_bucket_leaves_garbage_that_is_compacted() {
        let mut by = build(&[(0, 5, (1, 1)), (1, 5, (2, 2))], 2, 1);
        let n = 200_000u32;
        let mut compacted = false;
        for i in 0..n {
            let before = by.garbage;
            by.add(0, 7, (i, 1), false);
            compacted |= by.garbage < before;
            assert!(by.garbage <= GARBAGE_FLOOR.max(by.items.len() / 3));
        }
        assert!(compacted, "garbage of {} was never compacted", by.garbage);
        let mut got: Vec<u32> = by.each(&[0], 7, 7).flat_map(|(_, b)| b.postings.iter().map(|p| p.0)).collect();
        got.sort_unstable();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        let other: Vec<_> = by.each(&[0, 1], 5, 5).flat_map(|(_, b)| b.postings.to_vec()).collect();
        assert_eq!(other, vec![(1, 1), (2, 2)]);
    }
}
