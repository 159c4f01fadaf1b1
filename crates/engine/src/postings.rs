//! Facts by key and day (posting lists): purchases by product and day, health checks by kind and
//! day. A `bought(category = …, within = …)` or `checked(kind = …, within = …)` question reads only
//! the postings of its products or kind inside its window, days ascending, instead of every
//! candidate member's whole history. Kept in step with the members' runs at every seal
//! ([`crate::data::CompanyData::seal`]), so they are never persisted; a restore builds them again.

use crate::data::{Check, Day, Fen32, Purchase, Runs};
use rxmember_core::health::HealthKind;

/// One purchase as seen from its product and day (12 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub member: u32,
    pub store: u32,
    /// Net of returns, fen.
    pub amount: Fen32,
}

/// Postings of one key on one day, in no particular order.
#[derive(Debug, Clone, Default)]
pub(crate) struct Bucket<T> {
    pub(crate) postings: Vec<T>,
    /// Postings with a negative amount (a return without its purchase): while there are none, a
    /// day with any positive posting is a day with a positive net.
    negative: u32,
}

/// One key's buckets, by day from the first.
pub(crate) type Days<T> = Vec<Bucket<T>>;

/// Buckets per key and day: `keys[k][day - first_day]` (a key's days may end early).
#[derive(Debug, Clone)]
pub(crate) struct ByDay<T> {
    first_day: Day,
    keys: Vec<Vec<Bucket<T>>>,
}

impl<T> Default for ByDay<T> {
    fn default() -> Self {
        ByDay { first_day: Day::MAX, keys: Vec::new() }
    }
}

impl<T: Copy + PartialEq> ByDay<T> {
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
    /// first, so each bucket is allocated once, for `room(n)` postings when it gets `n`.
    pub(crate) fn build_within(
        first: Day,
        last: Day,
        keys: usize,
        facts: impl Fn(&mut dyn FnMut(usize, Day, T)),
        negative: impl Fn(&T) -> bool,
        room: impl Fn(usize) -> usize,
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
        facts(&mut |k, d, t| {
            let b = &mut by.keys[k][(d - first) as usize];
            b.negative += negative(&t) as u32;
            b.postings.push(t);
        });
        by
    }

    /// Empty buckets for days `first..first + span` of `counts.len() / span` keys, each with room
    /// for `room(count)` postings (`counts[key * span + day - first]`); a key's days end at its
    /// last day with a count.
    pub(crate) fn with_counts(first: Day, span: usize, counts: &[u32], room: impl Fn(usize) -> usize) -> Self {
        let keys = counts
            .chunks(span.max(1))
            .map(|c| {
                let end = c.iter().rposition(|&x| x > 0).map_or(0, |i| i + 1);
                c[..end]
                    .iter()
                    .map(|&x| Bucket { postings: Vec::with_capacity(room(x as usize)), negative: 0 })
                    .collect()
            })
            .collect();
        ByDay { first_day: first, keys }
    }

    fn bucket_mut(&mut self, k: usize, d: Day) -> &mut Bucket<T> {
        if d < self.first_day {
            if self.first_day != Day::MAX {
                let shift = (self.first_day - d) as usize;
                for days in &mut self.keys {
                    if !days.is_empty() {
                        days.splice(0..0, (0..shift).map(|_| Bucket { postings: Vec::new(), negative: 0 }));
                    }
                }
            }
            self.first_day = d;
        }
        let days = &mut self.keys[k];
        let i = (d - self.first_day) as usize;
        if days.len() <= i {
            days.resize_with(i + 1, || Bucket { postings: Vec::new(), negative: 0 });
        }
        &mut days[i]
    }

    /// The buckets of keys below `k` and of the others (theirs numbered from `k`), and the first
    /// day: for adding postings on two threads with [`ByDay::push_within`].
    pub(crate) fn split_at_mut(&mut self, k: usize) -> (&mut [Days<T>], &mut [Days<T>], Day) {
        let (low, high) = self.keys.split_at_mut(k);
        (low, high, self.first_day)
    }

    /// [`ByDay::add`] of a posting (not negative) on a day no earlier than `first_day` into one
    /// part of [`ByDay::split_at_mut`].
    pub(crate) fn push_within(keys: &mut [Days<T>], first_day: Day, k: usize, d: Day, t: T) {
        let days = &mut keys[k];
        let i = (d - first_day) as usize;
        if days.len() <= i {
            days.resize_with(i + 1, || Bucket { postings: Vec::new(), negative: 0 });
        }
        days[i].postings.push(t);
    }

    /// Bytes held: the buckets and the room of their postings.
    pub(crate) fn bytes(&self) -> usize {
        self.keys
            .iter()
            .map(|days| {
                days.capacity() * std::mem::size_of::<Bucket<T>>()
                    + days.iter().map(|b| b.postings.capacity() * std::mem::size_of::<T>()).sum::<usize>()
            })
            .sum()
    }

    /// The first day held (`Day::MAX` when none).
    pub(crate) fn first_day(&self) -> Day {
        self.first_day
    }

    pub(crate) fn add(&mut self, k: usize, d: Day, t: T, negative: bool) {
        let b = self.bucket_mut(k, d);
        b.negative += negative as u32;
        b.postings.push(t);
    }

    /// Removes one posting equal to `t` from key `k`'s day `d`; whether there was one.
    pub(crate) fn remove(&mut self, k: usize, d: Day, t: T, negative: bool) -> bool {
        let b = self.bucket_mut(k, d);
        match b.postings.iter().position(|x| *x == t) {
            Some(i) => {
                b.postings.swap_remove(i);
                b.negative -= negative as u32;
                true
            }
            None => false,
        }
    }

    /// The buckets of `keys` on days `from..=to`, days ascending (keys in the given order per day).
    pub(crate) fn each<'a>(
        &'a self,
        keys: &'a [u32],
        from: Day,
        to: Day,
    ) -> impl Iterator<Item = (Day, &'a Bucket<T>)> + 'a {
        let from = from.max(self.first_day);
        let last = self.first_day.saturating_add(self.keys.iter().map(Vec::len).max().unwrap_or(0) as Day - 1);
        let to = to.min(last);
        (from..=to).flat_map(move |d| {
            let i = (d - self.first_day) as usize;
            keys.iter()
                .filter_map(move |&k| self.keys.get(k as usize).and_then(|days| days.get(i)))
                .map(move |b| (d, b))
        })
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
            for p in &b.postings {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
