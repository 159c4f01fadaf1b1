//! Members' most recent days per category and per kind of health check, for windows that end at
//! the last fact: `bought(category = "降压药", within = 90d, times >= 2)` is "members whose second
//! most recent day with a positive net in 降压药 is within 90 days", so it reads only the members
//! listed under that category's level 2 on the window's days — about as many entries as the answer
//! has members — instead of every purchase in the window (millions at 10M members).
//!
//! Level `k` (1..=[`LEVELS`]) of a key lists each member under the day of its k-th most recent
//! counted day: for purchases, the days with a positive net over the category's products (the
//! same days `bought(...)` counts); for checks, every check (the same count `checked(...)` makes).
//! A member has at least k counted days on or after `from` exactly when its level-k day is on or
//! after `from`, provided nothing of the key happened after the window's end; hence the index
//! answers only windows ending on or after the key's last day ([`RecentDays::levels`] and
//! [`RecentDays::passing`] say `None` otherwise and the caller reads the postings).
//!
//! Kept in step with the members' runs at every seal ([`crate::data::CompanyData::seal`]). A new
//! purchase only moves a member's levels to later days; then the entry under the earlier day is
//! left where it is (stale): a stale entry on or after `from` implies the current one is too, so
//! answers stay exact. A return that nets a day away moves levels earlier: then every entry of the
//! member's between the new day and the old one is removed (they can only sit on days of the
//! member's own purchases of the key). Once stale entries outnumber live ones, or a member's history
//! is read again whole, or a product changes category, the index is built afresh.

use crate::data::{Check, Day, FastMap, NONE_U32, Purchase, Runs};
use crate::postings::{ByDay, kind_index};
use roaring::RoaringBitmap;
use rxmember_core::facts::ProductFact;

/// Recent days kept per member and key: `times` conditions deciding at counts up to this are
/// answered here.
pub const LEVELS: usize = 8;

/// Check keys: per kind (and one for every kind), any check / abnormal ones / normal ones.
const CHECK_KINDS: usize = 9;
const CHECK_KEYS: u32 = (CHECK_KINDS * 3) as u32;

/// The key of checks of a kind (`None`: every kind), counting all, abnormal or normal ones.
pub fn check_key(kind: Option<u32>, abnormal: Option<bool>) -> u32 {
    let k = kind.unwrap_or(CHECK_KINDS as u32 - 1);
    k * 3 + abnormal.map_or(0, |a| if a { 1 } else { 2 })
}

/// One side (purchases or checks) of the index.
#[derive(Debug, Clone, Default)]
struct Levels {
    /// Bucket `key * LEVELS + (k - 1)`: the members whose k-th most recent counted day it is.
    by: ByDay<u32>,
    /// The last day with any fact of each key (never lowered): later windows are not answered.
    last: Vec<Day>,
    /// Entries in the buckets, and how many of them are current (the rest are stale).
    entries: usize,
    live: usize,
    /// Entries to add at the end of the seal (bucket, day, member): added in bucket and day order,
    /// a bucket at a time, instead of one scattered push per entry.
    pending: Vec<(u32, Day, u32)>,
    /// [`Levels::flush`]'s sort keys and one bucket's members, kept from seal to seal.
    keyed: Vec<u64>,
    members: Vec<u32>,
}

impl Levels {
    /// Built from every member's facts (`of`), all on days `first..=last`: each member's levels
    /// are worked out once, on two threads (a half of the members each), as (bucket, day) slots
    /// with a count per member, and counts per bucket and day; the buckets are then laid out and
    /// filled ([`ByDay::fill`]), on two threads (a half of the buckets each). Where a bucket and a
    /// day do not fit in 32 bits, levels are worked out twice instead (counted, then added).
    fn build(keys: usize, n: usize, (first, last): (Day, Day), of: impl Fn(usize, &mut Scratch) + Sync) -> Levels {
        let buckets = keys * LEVELS;
        let span = if first > last { 0 } else { (last as i64 - first as i64 + 1) as usize };
        let by = if span > 0 && (buckets as u64) << day_bits(span) <= 1 << 32 {
            Self::build_once(buckets, n, first, span, &of)
        } else {
            Self::build_twice(buckets, n, (first, last), &of)
        };
        // A key's last counted day: its members' most recent days, the level-1 buckets.
        let mut last = vec![Day::MIN; keys];
        let mut entries = 0;
        for (key, last) in last.iter_mut().enumerate() {
            for level in 0..LEVELS {
                for (d, b) in by.each(&[(key * LEVELS + level) as u32], Day::MIN, Day::MAX) {
                    entries += b.postings.len();
                    if level == 0 && !b.postings.is_empty() {
                        *last = d;
                    }
                }
            }
        }
        Levels { by, last, entries, live: entries, ..Levels::default() }
    }

    /// [`Levels::build`]'s buckets when a bucket and a day (in [`day_bits`]) fit in 32 bits.
    fn build_once(
        buckets: usize,
        n: usize,
        first: Day,
        span: usize,
        of: &(impl Fn(usize, &mut Scratch) + Sync),
    ) -> ByDay<u32> {
        // Each member's entries as (bucket, day) slots — the bucket above the day's bits, so that
        // the fill takes them apart without a division — member after member, and how many each
        // member has: 4 bytes an entry (and 4 a member) where (slot, member) pairs took 8 — at 10M
        // members 1.4 GB of temporary halved, each byte of it touched for the first time.
        let shift = day_bits(span);
        let levels_of = |members: std::ops::Range<usize>| {
            let mut s = Scratch::default();
            let mut slots: Vec<u32> = Vec::new();
            let mut entries = Vec::with_capacity(members.len());
            let mut counts = vec![0u32; buckets * span];
            for o in members {
                of(o, &mut s);
                for &(key, level, d) in &s.levels {
                    let (bucket, day) = (key as usize * LEVELS + level as usize, (d - first) as usize);
                    counts[bucket * span + day] += 1;
                    slots.push(((bucket << shift) | day) as u32);
                }
                entries.push(s.levels.len() as u32);
            }
            (slots, entries, counts)
        };
        let mid = n / 2;
        let ((low, low_entries, mut counts), (high, high_entries, more)) = std::thread::scope(|s| {
            let high = s.spawn(|| levels_of(mid..n));
            (levels_of(0..mid), high.join().expect("working out levels does not panic"))
        });
        counts.iter_mut().zip(more).for_each(|(c, m)| *c += m);
        // Updates add entries under earlier days as members' levels move down: room for them, so
        // that the first update after a build does not move most buckets it touches.
        let mut by = ByDay::with_counts(first, span, &counts, crate::data::room);
        let each_entry = |f: &mut dyn FnMut(usize, Day, u32)| {
            for (slots, entries, first_member) in [(&low, &low_entries, 0), (&high, &high_entries, mid)] {
                let mut at = 0;
                for (i, &k) in entries.iter().enumerate() {
                    let o = (first_member + i) as u32;
                    for &slot in &slots[at..at + k as usize] {
                        f((slot >> shift) as usize, first + (slot & ((1 << shift) - 1)) as Day, o);
                    }
                    at += k as usize;
                }
            }
        };
        by.fill(each_entry, |_| false, 2);
        by
    }

    /// [`Levels::build`]'s buckets, each member's levels worked out twice (counted, then added).
    fn build_twice(
        buckets: usize,
        n: usize,
        (first, last): (Day, Day),
        of: &(impl Fn(usize, &mut Scratch) + Sync),
    ) -> ByDay<u32> {
        ByDay::build_within(
            first,
            last,
            buckets,
            |f| {
                let mut s = Scratch::default();
                for o in 0..n {
                    of(o, &mut s);
                    for &(key, level, d) in &s.levels {
                        f(key as usize * LEVELS + level as usize, d, o as u32);
                    }
                }
            },
            |_| false,
            crate::data::room,
            1,
        )
    }

    /// Member `o`'s levels (of some keys) were `old.levels`, from facts `old.facts`, and are now
    /// `new.levels`.
    fn replace(&mut self, o: u32, old: &Scratch, new: &Scratch) {
        for &(key, d, _, _) in &new.facts {
            let k = key as usize;
            if self.last.len() <= k {
                self.last.resize(k + 1, Day::MIN);
            }
            self.last[k] = self.last[k].max(d);
        }
        self.by.grow(self.last.len() * LEVELS);
        self.live = self.live + new.levels.len() - old.levels.len();
        let (mut i, mut j) = (0, 0);
        while i < old.levels.len() || j < new.levels.len() {
            let a = old.levels.get(i).map(|&(k, l, d)| ((k, l), d));
            let b = new.levels.get(j).map(|&(k, l, d)| ((k, l), d));
            match (a, b) {
                (Some((ka, da)), Some((kb, db))) if ka == kb => {
                    i += 1;
                    j += 1;
                    if db > da {
                        self.add(o, kb, db);
                    } else if db < da {
                        self.remove_after(o, ka, db, da, old);
                        self.add(o, kb, db);
                    }
                }
                (Some((ka, da)), b) if b.is_none_or(|(kb, _)| ka < kb) => {
                    i += 1;
                    self.remove_after(o, ka, Day::MIN, da, old);
                }
                (_, Some((kb, db))) => {
                    j += 1;
                    self.add(o, kb, db);
                }
                (_, None) => unreachable!("one side has a level left"),
            }
        }
    }

    fn add(&mut self, o: u32, (key, level): (u32, u8), d: Day) {
        self.pending.push(((key as usize * LEVELS + level as usize) as u32, d, o));
        self.entries += 1;
    }

    /// Adds the pending entries (sorted on two threads from `parallel` of them), a bucket's day
    /// at a time ([`ByDay::extend`]). The buffers keep their room for the next seal: grown entry
    /// by entry and given back each time, they were fresh memory every update (at 10M members an
    /// update's two million entries, tens of megabytes of pages faulted in and cleared).
    fn flush(&mut self, parallel: usize) {
        let mut pending = std::mem::take(&mut self.pending);
        let mut members = std::mem::take(&mut self.members);
        let (first, last) = pending.iter().fold((Day::MAX, Day::MIN), |(f, l), e| (f.min(e.1), l.max(e.1)));
        let span = (last as i64 - first as i64 + 1).max(1) as u64;
        // Sorted as plain integers — (bucket, day) above the member — when that fits in 64 bits
        // (at 10M members, an update's two million entries sort several times faster so).
        if (self.by.keys() as u64).checked_mul(span).is_some_and(|x| x <= u32::MAX as u64) {
            let mut keyed = std::mem::take(&mut self.keyed);
            keyed.clear();
            keyed.extend(pending.iter().map(|&(b, d, o)| ((b as u64 * span + (d - first) as u64) << 32) | o as u64));
            if keyed.len() < parallel.max(1) {
                keyed.sort_unstable();
            } else {
                // Two halves, every key of the first below every key of the second, sorted on
                // two threads.
                let mid = keyed.len() / 2;
                keyed.select_nth_unstable(mid);
                let (low, high) = keyed.split_at_mut(mid);
                std::thread::scope(|s| {
                    s.spawn(|| high.sort_unstable());
                    low.sort_unstable();
                });
            }
            for run in keyed.chunk_by(|a, b| a >> 32 == b >> 32) {
                let slot = run[0] >> 32;
                members.clear();
                members.extend(run.iter().map(|&k| k as u32));
                self.by.extend((slot / span) as usize, first + (slot % span) as Day, &members, 0);
            }
            self.keyed = keyed;
        } else {
            pending.sort_unstable_by_key(|&(b, d, _)| (b, d));
            for run in pending.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                members.clear();
                members.extend(run.iter().map(|e| e.2));
                self.by.extend(run[0].0 as usize, run[0].1, &members, 0);
            }
        }
        pending.clear();
        self.pending = pending;
        self.members = members;
    }

    /// Removes member `o`'s entries of one level on days after `from` up to `to`: they can only sit
    /// on days of the member's own facts of the key.
    fn remove_after(&mut self, o: u32, (key, level): (u32, u8), from: Day, to: Day, old: &Scratch) {
        let mut days: Vec<Day> =
            old.facts.iter().filter(|f| f.0 == key && f.1 > from && f.1 <= to).map(|f| f.1).collect();
        days.dedup();
        for d in days {
            while self.by.remove(key as usize * LEVELS + level as usize, d, o, false) {
                self.entries -= 1;
            }
        }
    }

    /// Members by level 1..=cap on days `from..` (`None` if the key has facts after `to`).
    fn select(&self, key: u32, cap: usize, from: Day, to: Day, n: usize) -> Option<Vec<Vec<u64>>> {
        self.select_levels(key, &vec![true; cap], from, to, n)
    }

    /// [`Levels::select`] of the levels `needed` marks (`needed[l]` for level l + 1); the planes of
    /// the others are left empty.
    fn select_levels(&self, key: u32, needed: &[bool], from: Day, to: Day, n: usize) -> Option<Vec<Vec<u64>>> {
        let cap = needed.len();
        if cap > LEVELS || self.last.get(key as usize).copied().unwrap_or(Day::MIN) > to {
            return None;
        }
        // Each level's entries on the window's days.
        let buckets: Vec<u32> = (0..cap as u32).map(|l| key * LEVELS as u32 + l).collect();
        let mut lists: Vec<(usize, &[u32])> = Vec::new();
        for l in (0..cap).filter(|&l| needed[l]) {
            lists.extend(self.by.each(&buckets[l..=l], from, Day::MAX).map(|(_, b)| (l, b.postings)));
        }
        Some(planes_of(&lists, cap, n, PLANE_BLOCK))
    }
}

/// Bits that hold a day of a span of `span` days (0 for a single day).
fn day_bits(span: usize) -> u32 {
    usize::BITS - (span.max(1) - 1).leading_zeros()
}

/// Members per block of [`planes_of`]: 32 KB of each plane, which stays in the processor's
/// nearest caches while the block's bits are set.
const PLANE_BLOCK: usize = 1 << 18;

/// The level planes (bit words over `n` members) of lists of entries by level. A bucket's entries
/// ascend by member but for the runs that updates append, so the bits are set a block of members
/// at a time, every list's cursor moving on while its entries fall in the block: at 10M members a
/// plane is 1.25 MB and setting a million bits across it, list after list, missed the caches on
/// nearly every bit. An entry out of order is set in a later block, never lost.
fn planes_of(lists: &[(usize, &[u32])], cap: usize, n: usize, block: usize) -> Vec<Vec<u64>> {
    let mut planes = vec![vec![0u64; n.div_ceil(64)]; cap];
    let mut at = vec![0usize; lists.len()];
    let mut end = 0usize;
    loop {
        end = end.saturating_add(block.max(1));
        let last = end >= n;
        for (&(l, members), at) in lists.iter().zip(at.iter_mut()) {
            let plane = &mut planes[l];
            let mut j = *at;
            while j < members.len() && (last || (members[j] as usize) < end) {
                let o = members[j];
                plane[(o >> 6) as usize] |= 1u64 << (o & 63);
                j += 1;
            }
            *at = j;
        }
        if last {
            return planes;
        }
    }
}

/// A member's facts by key and its levels, worked out from its run.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    /// (key, day, amount, whether it was appended — see [`Scratch::old_of`]), sorted by key,
    /// then day descending.
    facts: Vec<(u32, Day, i64, bool)>,
    /// (key, level 0-based, day), sorted by key and level.
    levels: Vec<(u32, u8, Day)>,
    /// The facts as [`packed`] integers, sorted before they are unpacked into `facts`.
    packed: Vec<u64>,
    /// Per key, while a run in day order is read backwards ([`Scratch::levels_of_ordered`]).
    open: Vec<Open>,
    /// Keys with an open day.
    opened: Vec<u32>,
}

/// A key's most recent day not yet counted (when `active`), its net or count so far, and the
/// levels the key has.
#[derive(Debug, Default, Clone, Copy)]
struct Open {
    day: Day,
    net: i64,
    level: u8,
    active: bool,
}

/// Bits of a [`packed`] fact's key, day and place in its run.
const KEY_BITS: u32 = 24;
const DAY_BITS: u32 = 20;
const PLACE_BITS: u32 = 20;

/// A fact as one integer that sorts as [`Scratch::facts`] must — key ascending, then day
/// descending — with its place in the run below (for its amount and whether it was appended): a
/// member's facts sort several times faster so than as tuples by a comparison (8-byte integers
/// sort by a branchless network, the full build sorts every member's facts). `None` when a part
/// does not fit — a key from 2^24 on, a day before the calendar's start or from year 2871 on, a
/// run of 2^20 facts or more — and the facts are sorted as tuples instead.
fn packed(key: u32, day: Day, place: usize) -> Option<u64> {
    let day = u32::try_from(day).ok().filter(|&d| d < 1 << DAY_BITS)?;
    (key < 1 << KEY_BITS && place < 1 << PLACE_BITS).then(|| {
        ((key as u64) << (DAY_BITS + PLACE_BITS)) | (((1u64 << DAY_BITS) - 1 - day as u64) << PLACE_BITS) | place as u64
    })
}

/// A [`packed`] fact's key, day and place.
fn unpacked(x: u64) -> (u32, Day, usize) {
    let key = (x >> (DAY_BITS + PLACE_BITS)) as u32;
    let day = ((1u64 << DAY_BITS) - 1 - ((x >> PLACE_BITS) & ((1 << DAY_BITS) - 1))) as Day;
    (key, day, (x & ((1 << PLACE_BITS) - 1)) as usize)
}

impl Scratch {
    /// Levels from `facts`: counted days are the days with a positive net (`distinct`) or every
    /// fact.
    fn settle(&mut self, distinct: bool) {
        self.facts.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        self.levels_of_sorted(distinct);
    }

    /// The levels alone (in no particular order; `facts` is left empty) of a run of `len` facts
    /// that come in day order — a full build's runs, written from a log read day after day — read
    /// backwards, each key's days counted as they end: no sort. `fact(i)` gives the day, keys
    /// ([`NONE_U32`] for none) and amount of the run's fact `i`; keys are below `keys`. False
    /// (nothing done) when the run is not in day order.
    fn levels_of_ordered<const K: usize>(
        &mut self,
        len: usize,
        keys: usize,
        fact: impl Fn(usize) -> (Day, [u32; K], i64),
        distinct: bool,
    ) -> bool {
        if !(1..len).all(|i| fact(i - 1).0 <= fact(i).0) {
            return false;
        }
        self.facts.clear();
        self.levels.clear();
        if self.open.len() < keys {
            self.open.resize(keys, Open::default());
        }
        let (open, opened, levels) = (&mut self.open, &mut self.opened, &mut self.levels);
        // A key's open day ends: counted once if its net is positive (`distinct`), else once per fact.
        let close = |k: u32, o: &mut Open, levels: &mut Vec<(u32, u8, Day)>| {
            let times = if distinct { (o.net > 0) as i64 } else { o.net };
            for _ in 0..times {
                if (o.level as usize) < LEVELS {
                    levels.push((k, o.level, o.day));
                    o.level += 1;
                }
            }
        };
        for i in (0..len).rev() {
            let (d, ks, amount) = fact(i);
            for k in ks {
                let Some(o) = open.get_mut(k as usize) else { continue };
                if !o.active {
                    *o = Open { day: d, net: amount, level: 0, active: true };
                    opened.push(k);
                } else if o.day == d {
                    o.net += amount;
                } else if (o.level as usize) < LEVELS {
                    close(k, o, levels);
                    o.day = d;
                    o.net = amount;
                }
            }
        }
        for k in opened.drain(..) {
            let o = &mut open[k as usize];
            close(k, o, levels);
            *o = Open::default();
        }
        true
    }

    /// [`Scratch::settle`] on facts already in order.
    fn levels_of_sorted(&mut self, distinct: bool) {
        self.levels.clear();
        let mut i = 0;
        let mut level = 0u8;
        let mut key = NONE_U32;
        while i < self.facts.len() {
            let (k, d, _, _) = self.facts[i];
            if k != key {
                key = k;
                level = 0;
            }
            let mut j = i;
            let mut net = 0;
            let mut counted = 0;
            while j < self.facts.len() && self.facts[j].0 == k && self.facts[j].1 == d {
                net += self.facts[j].2;
                counted += 1;
                j += 1;
            }
            let times = if distinct { (net > 0) as usize } else { counted };
            for _ in 0..times {
                if (level as usize) < LEVELS {
                    self.levels.push((k, level, d));
                    level += 1;
                }
            }
            i = j;
        }
    }

    /// The purchase facts of keys that `keep` keeps, and their levels; facts from position
    /// `appended` on are marked appended.
    fn of_purchases(
        &mut self,
        run: &[Purchase],
        appended: usize,
        product_keys: &[[u32; 2]],
        keep: impl Fn(u32) -> bool,
    ) {
        self.facts.clear();
        if self.pack(run.len(), |i| purchase_keys(product_keys, &run[i]).map(|k| (k, run[i].day)), &keep) {
            let facts = self
                .packed
                .iter()
                .map(|&x| unpacked(x))
                .map(|(k, d, i)| (k, d, i64::from(run[i].amount), i >= appended));
            self.facts.extend(facts);
            self.levels_of_sorted(true);
            return;
        }
        for (i, p) in run.iter().enumerate() {
            for k in purchase_keys(product_keys, p) {
                if k != NONE_U32 && keep(k) {
                    self.facts.push((k, p.day, i64::from(p.amount), i >= appended));
                }
            }
        }
        self.settle(true);
    }

    /// Packs and sorts the facts of a run of `len` whose keys (and days) `keys_of` gives (keys
    /// [`NONE_U32`] and those `keep` refuses are left out); false if one does not pack (see
    /// [`packed`]).
    fn pack<const K: usize>(
        &mut self,
        len: usize,
        keys_of: impl Fn(usize) -> [(u32, Day); K],
        keep: impl Fn(u32) -> bool,
    ) -> bool {
        self.packed.clear();
        for i in 0..len {
            for (k, d) in keys_of(i) {
                if k != NONE_U32 && keep(k) {
                    match packed(k, d, i) {
                        Some(x) => self.packed.push(x),
                        None => return false,
                    }
                }
            }
        }
        self.packed.sort_unstable();
        true
    }

    fn of_checks(&mut self, run: &[Check], appended: usize, keep: impl Fn(u32) -> bool) {
        self.facts.clear();
        if self.pack(run.len(), |i| check_keys(&run[i]).map(|k| (k, run[i].day)), &keep) {
            let facts = self.packed.iter().map(|&x| unpacked(x)).map(|(k, d, i)| (k, d, 1, i >= appended));
            self.facts.extend(facts);
            self.levels_of_sorted(false);
            return;
        }
        for (i, c) in run.iter().enumerate() {
            for k in check_keys(c) {
                if keep(k) {
                    self.facts.push((k, c.day, 1, i >= appended));
                }
            }
        }
        self.settle(false);
    }

    /// What `new` was before its appended facts: the same scratch as reading the run's prefix
    /// again, without reading it.
    fn old_of(&mut self, new: &Scratch, distinct: bool) {
        self.facts.clear();
        self.facts.extend(new.facts.iter().filter(|f| !f.3));
        self.levels_of_sorted(distinct);
    }
}

/// A purchase's keys ([`NONE_U32`] where there is none).
fn purchase_keys(product_keys: &[[u32; 2]], p: &Purchase) -> [u32; 2] {
    product_keys.get(p.product as usize).copied().unwrap_or([NONE_U32; 2])
}

/// A check's keys: its kind and every kind, each counting all checks and those of its flag.
fn check_keys(c: &Check) -> [u32; 4] {
    let kind = kind_index(c.kind);
    [
        check_key(Some(kind), None),
        check_key(Some(kind), Some(c.abnormal)),
        check_key(None, None),
        check_key(None, Some(c.abnormal)),
    ]
}

/// Touched members' runs before and after a seal, handed to [`RecentDays::replace_all`] in batches
/// (on a thread of its own, while the seal goes on writing runs): a run whose old facts are its
/// prefix is kept once, old facts then the appended ones.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// Member, then for purchases and checks: where the old run starts in its buffer, its length,
    /// where the new run starts, its length.
    members: Vec<(u32, [u32; 4], [u32; 4])>,
    purchases: Vec<Purchase>,
    checks: Vec<Check>,
}

impl Changes {
    /// Members held.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// Member `o`'s runs were `old` and are now `new` (nothing is kept when neither changed).
    pub(crate) fn push(&mut self, o: u32, old: (&[Purchase], &[Check]), new: (&[Purchase], &[Check])) {
        if old == new {
            return;
        }
        let p = spans(&mut self.purchases, old.0, new.0);
        let c = spans(&mut self.checks, old.1, new.1);
        self.members.push((o, p, c));
    }
}

/// Keeps `old` and `new` in `buf` (`new` as `old`'s continuation when `old` is its prefix).
fn spans<T: Copy + PartialEq>(buf: &mut Vec<T>, old: &[T], new: &[T]) -> [u32; 4] {
    let start = buf.len() as u32;
    buf.extend_from_slice(old);
    if new.starts_with(old) {
        buf.extend_from_slice(&new[old.len()..]);
        [start, old.len() as u32, start, new.len() as u32]
    } else {
        let new_start = buf.len() as u32;
        buf.extend_from_slice(new);
        [start, old.len() as u32, new_start, new.len() as u32]
    }
}

fn span<T>(buf: &[T], start: u32, len: u32) -> &[T] {
    &buf[start as usize..(start + len) as usize]
}

/// The keys of the facts that differ between `old` and `new` (compared by position: a seal changes
/// facts in place — returns — or appends), sorted.
fn changed_keys<T: PartialEq, K: IntoIterator<Item = u32>>(old: &[T], new: &[T], keys: impl Fn(&T) -> K) -> Vec<u32> {
    let mut out = Vec::new();
    for i in 0..old.len().max(new.len()) {
        let (a, b) = (old.get(i), new.get(i));
        if a != b {
            for f in [a, b].into_iter().flatten() {
                out.extend(keys(f));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// The index: purchases by category (each product's own category code and its two-character
/// major category), checks by kind and abnormal flag.
#[derive(Debug, Clone)]
pub struct RecentDays {
    /// Category code → purchase key.
    keys: FastMap<String, u32>,
    /// Each product's keys (by product index; [`NONE_U32`] where none).
    product_keys: Vec<[u32; 2]>,
    purchases: Levels,
    checks: Levels,
    /// Set when the index no longer matches the runs: build again at the next seal.
    pub(crate) stale: bool,
    /// Stale entries are tolerated up to the live ones, and at least this many.
    pub(crate) stale_floor: usize,
    /// Pending entries from which a seal's flush works on two threads.
    pub(crate) parallel_floor: usize,
}

thread_local! {
    /// A member's old and new facts by key, reused from member to member.
    static SCRATCH: std::cell::RefCell<(Scratch, Scratch)> = std::cell::RefCell::new(Default::default());
}

/// Pending entries from which a flush sorts and adds on two threads.
const PARALLEL_FLUSH: usize = 1 << 15;

/// The default [`RecentDays::stale_floor`].
const STALE_FLOOR: usize = 1 << 16;

impl Default for RecentDays {
    fn default() -> Self {
        RecentDays {
            keys: FastMap::default(),
            product_keys: Vec::new(),
            purchases: Levels::default(),
            checks: Levels::default(),
            stale: false,
            stale_floor: STALE_FLOOR,
            parallel_floor: PARALLEL_FLUSH,
        }
    }
}

impl RecentDays {
    /// Bytes held by the levels' buckets (and the buffers an update's flush keeps).
    pub fn bytes(&self) -> usize {
        [&self.purchases, &self.checks]
            .iter()
            .map(|l| {
                l.by.bytes()
                    + l.pending.capacity() * std::mem::size_of::<(u32, Day, u32)>()
                    + l.keyed.capacity() * 8
                    + l.members.capacity() * 4
            })
            .sum()
    }

    /// The purchase key of a category code (`None` if no product is in it).
    pub fn category(&self, code: &str) -> Option<u32> {
        self.keys.get(code).copied()
    }

    /// Takes in new products and changed categories; a changed category marks the index stale.
    pub(crate) fn sync_products(&mut self, products: &[ProductFact]) {
        for (i, p) in products.iter().enumerate() {
            let mut keys = [NONE_U32; 2];
            if let Some(code) = p.category_code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                let mut key = |c: &str| match self.keys.get(c) {
                    Some(&k) => k,
                    None => {
                        let k = self.keys.len() as u32;
                        self.keys.insert(c.to_string(), k);
                        k
                    }
                };
                keys[0] = key(code);
                if code.len() > 2
                    && let Some(major) = code.get(..2)
                {
                    keys[1] = key(major);
                }
            }
            match self.product_keys.get(i) {
                Some(k) if *k != keys => {
                    self.stale = true;
                    self.product_keys[i] = keys;
                }
                Some(_) => {}
                None => self.product_keys.push(keys),
            }
        }
    }

    /// Builds the index from the runs, the days of whose purchases and of whose checks lie in `spans`.
    pub(crate) fn build(&mut self, purchases: &Runs<Purchase>, checks: &Runs<Check>, spans: [(Day, Day); 2]) {
        let pk = &self.product_keys;
        let keys = self.keys.len();
        self.purchases = Levels::build(keys, purchases.count(), spans[0], |o, s| {
            let run = purchases.of(o);
            let fact = |i: usize| (run[i].day, purchase_keys(pk, &run[i]), i64::from(run[i].amount));
            if !s.levels_of_ordered(run.len(), keys, fact, true) {
                s.of_purchases(run, usize::MAX, pk, |_| true)
            }
        });
        self.checks = Levels::build(CHECK_KEYS as usize, checks.count(), spans[1], |o, s| {
            let run = checks.of(o);
            if !s.levels_of_ordered(run.len(), CHECK_KEYS as usize, |i| (run[i].day, check_keys(&run[i]), 1), false) {
                s.of_checks(run, usize::MAX, |_| true)
            }
        });
        self.stale = false;
    }

    /// The products of a purchase key, ascending.
    pub fn products(&self, key: u32) -> Vec<u32> {
        (0..self.product_keys.len() as u32).filter(|&p| self.product_keys[p as usize].contains(&key)).collect()
    }

    /// Member `o`'s runs were `old_*` and are now `new_*`.
    pub(crate) fn replace(&mut self, o: u32, old: (&[Purchase], &[Check]), new: (&[Purchase], &[Check])) {
        if self.stale {
            return;
        }
        // Only the keys of changed facts can change levels. When the old run is the new one's
        // prefix (facts appended: an update's usual case), the new run is read once and the old
        // levels are the new ones' without the appended facts.
        let pk = &self.product_keys;
        let keys = changed_keys(old.0, new.0, |p| purchase_keys(pk, p));
        SCRATCH.with_borrow_mut(|(a, b)| {
            if !keys.is_empty() {
                b.of_purchases(new.0, old.0.len(), pk, |k| keys.contains(&k));
                if new.0.starts_with(old.0) {
                    a.old_of(b, true);
                } else {
                    a.of_purchases(old.0, old.0.len(), pk, |k| keys.contains(&k));
                }
                self.purchases.replace(o, a, b);
            }
            let keys = changed_keys(old.1, new.1, check_keys);
            if !keys.is_empty() {
                b.of_checks(new.1, old.1.len(), |k| keys.contains(&k));
                if new.1.starts_with(old.1) {
                    a.old_of(b, false);
                } else {
                    a.of_checks(old.1, old.1.len(), |k| keys.contains(&k));
                }
                self.checks.replace(o, a, b);
            }
        });
        let stale = |l: &Levels| l.entries > l.live + l.live.max(self.stale_floor);
        if stale(&self.purchases) || stale(&self.checks) {
            self.stale = true;
        }
    }

    /// [`RecentDays::replace`] for each member of a batch.
    pub(crate) fn replace_all(&mut self, c: &Changes) {
        for &(o, [ps, pl, pn, pnl], [cs, cl, cn, cnl]) in &c.members {
            self.replace(
                o,
                (span(&c.purchases, ps, pl), span(&c.checks, cs, cl)),
                (span(&c.purchases, pn, pnl), span(&c.checks, cn, cnl)),
            );
        }
    }

    /// Adds the entries the seal's replacements left pending (called once at the seal's end).
    pub(crate) fn flush(&mut self) {
        self.purchases.flush(self.parallel_floor);
        self.checks.flush(self.parallel_floor);
    }

    /// The levels of one side, `None` while stale entries are to be rebuilt.
    fn side(&self, side: Side) -> Option<&Levels> {
        (!self.stale).then_some(match side {
            Side::Purchases => &self.purchases,
            Side::Checks => &self.checks,
        })
    }

    /// For `bought(category = …)` (a category's key) or `checked(...)` (a [`check_key`]) over
    /// `from..=to` with counts deciding at `cap`: the members with at least 1, 2, … cap counted
    /// days, as bit words over `n` members; `None` when the index cannot answer (facts after `to`,
    /// or `cap` above [`LEVELS`]).
    pub fn levels(&self, side: Side, key: u32, cap: usize, from: Day, to: Day, n: usize) -> Option<Vec<Vec<u64>>> {
        self.side(side)?.select(key, cap, from, to, n)
    }

    /// The members whose count of days passes (`pass[c - 1]` for a count c of 1..=cap, cap meaning
    /// cap or more) and, when `seen`, the members with a day at all — as counting each member's
    /// levels from [`RecentDays::levels`] would, but reading only the levels where the answer turns
    /// (`times >= 3` reads level 3 alone); `None` as there.
    pub fn passing(
        &self,
        side: Side,
        key: u32,
        pass: &[bool],
        seen: bool,
        (from, to): (Day, Day),
        n: usize,
    ) -> Option<(RoaringBitmap, Option<RoaringBitmap>)> {
        passing_of(self.side(side)?, key, pass, seen, (from, to), n)
    }
}

/// Which facts' recent days: purchases by category, or health checks by [`check_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Purchases,
    Checks,
}

/// The members whose count passes (`pass[c - 1]`, see [`RecentDays::passing`]), from the
/// level planes where the answer turns: the members counted a..=b times are those of level a not in
/// level b + 1 (the levels nest: a member with a (k + 1)-th day in the window has a k-th one there).
fn passing_of(
    levels: &Levels,
    key: u32,
    pass: &[bool],
    seen: bool,
    (from, to): (Day, Day),
    n: usize,
) -> Option<(RoaringBitmap, Option<RoaringBitmap>)> {
    let cap = pass.len();
    if cap == 0 {
        return None;
    }
    // Runs of passing counts, as planes: (a, b) for counts a + 1..=b (b = cap: and more).
    let mut runs = Vec::new();
    let mut c = 0;
    while c < cap {
        if pass[c] {
            let a = c;
            while c < cap && pass[c] {
                c += 1;
            }
            runs.push((a, c));
        } else {
            c += 1;
        }
    }
    let mut needed = vec![false; cap];
    needed[0] |= seen;
    for &(a, b) in &runs {
        needed[a] = true;
        if b < cap {
            needed[b] = true;
        }
    }
    let planes = levels.select_levels(key, &needed, from, to, n)?;
    let words = n.div_ceil(64);
    let mut hit = Vec::with_capacity(words * 8);
    for w in 0..words {
        let x = runs.iter().fold(0u64, |x, &(a, b)| x | (planes[a][w] & !planes.get(b).map_or(0, |p| p[w])));
        hit.extend_from_slice(&x.to_le_bytes());
    }
    let seen = seen.then(|| {
        let bytes: Vec<u8> = planes[0].iter().flat_map(|w| w.to_le_bytes()).collect();
        RoaringBitmap::from_lsb0_bytes(0, &bytes)
    });
    Some((RoaringBitmap::from_lsb0_bytes(0, &hit), seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::CompanyData;
    use proptest::prelude::*;
    use rxmember_core::facts::{HealthCheckFact, ReturnFact, StoreFact};
    use rxmember_core::health::HealthKind;
    use rxmember_core::{CompanyId, MemberId, ProductId, StoreId, TicketId};

    const CODES: [&str; 3] = ["1401", "1402", "0901"];
    const KEYS: [&str; 5] = ["1401", "1402", "14", "0901", "09"];
    const KINDS: [HealthKind; 2] = [HealthKind::BloodGlucose, HealthKind::BloodPressure];

    /// A sale made in the test: ticket id, member, day, (product, amount) lines.
    type SaleMade = (i64, i64, i64, Vec<(usize, i64)>);

    #[derive(Debug, Clone)]
    enum Op {
        /// member, day, (product, amount) lines
        Sale(i64, i64, Vec<(usize, i64)>),
        /// the i-th sale so far (modulo), its j-th line (modulo), the share returned (of 4)
        Return(usize, usize, i64),
        /// member, day, kind, abnormal
        Check(i64, i64, usize, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1i64..5, 0i64..40, prop::collection::vec((0usize..3, 1i64..500), 1..4)).prop_map(|(m, d, l)| Op::Sale(m, d, l)),
            2 => (0usize..100, 0usize..4, 1i64..=4).prop_map(|(i, j, q)| Op::Return(i, j, q)),
            2 => (1i64..5, 0i64..40, 0usize..2, any::<bool>()).prop_map(|(m, d, k, a)| Op::Check(m, d, k, a)),
        ]
    }

    fn company() -> CompanyData {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.set_stores(vec![StoreFact { id: StoreId(1), code: "S1".into(), name: "一店".into() }]);
        data.set_products(
            CODES
                .iter()
                .enumerate()
                .map(|(i, c)| ProductFact {
                    id: ProductId(i as i64 + 1),
                    code: format!("P{i}"),
                    name: "药".into(),
                    category_code: Some(c.to_string()),
                    manufacturer: None,
                    brand: None,
                    is_prescription: false,
                })
                .collect(),
        );
        for m in 1..=4 {
            data.apply_member(&crate::test_support::member(m));
        }
        data
    }

    /// Naive level planes of a category from the runs: members with at least j days of positive
    /// net over the category's products on or after `from`.
    fn naive_purchases(data: &CompanyData, code: &str, from: Day, cap: usize) -> Vec<Vec<u32>> {
        let products = crate::classes::products_in_category(data, code);
        let mut planes = vec![Vec::new(); cap];
        for o in 0..data.len() {
            let mut days: Vec<(Day, i64)> = Vec::new();
            for p in data.purchases(o).iter().filter(|p| products.contains(&p.product) && p.day >= from) {
                match days.iter_mut().find(|(d, _)| *d == p.day) {
                    Some((_, a)) => *a += i64::from(p.amount),
                    None => days.push((p.day, i64::from(p.amount))),
                }
            }
            let n = days.iter().filter(|(_, a)| *a > 0).count();
            for (j, plane) in planes.iter_mut().enumerate() {
                if n > j {
                    plane.push(o as u32);
                }
            }
        }
        planes
    }

    fn naive_checks(
        data: &CompanyData,
        kind: Option<HealthKind>,
        abnormal: Option<bool>,
        from: Day,
        cap: usize,
    ) -> Vec<Vec<u32>> {
        let mut planes = vec![Vec::new(); cap];
        for o in 0..data.len() {
            let n = data
                .checks(o)
                .iter()
                .filter(|c| {
                    c.day >= from && kind.is_none_or(|k| c.kind == k) && abnormal.is_none_or(|a| c.abnormal == a)
                })
                .count();
            for (j, plane) in planes.iter_mut().enumerate() {
                if n > j {
                    plane.push(o as u32);
                }
            }
        }
        planes
    }

    fn members(words: &[u64]) -> Vec<u32> {
        (0..words.len() * 64).filter(|&o| words[o / 64] >> (o % 64) & 1 == 1).map(|o| o as u32).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Sealed step by step — new days earlier and later, returns netting days away, stale
        /// entries left behind and rebuilds once they pile up — the levels answer as a count of each
        /// member's own days does.
        #[test]
        fn levels_answer_as_each_members_days(steps in prop::collection::vec(prop::collection::vec(op(), 0..12), 1..7), floor in 1usize..40) {
            let mut data = company();
            data.recent.get_mut().stale_floor = floor;
            // Flushes on one thread and on two.
            data.recent.get_mut().parallel_floor = [1, 4, 64][floor % 3];
            // (ticket id, member, day, lines) of every sale so far.
            let mut sales: Vec<SaleMade> = Vec::new();
            let (mut ticket, mut ret, mut check) = (0i64, 0i64, 0i64);
            for step in steps {
                for op in step {
                    match op {
                        Op::Sale(m, d, lines) => {
                            ticket += 1;
                            let ids: Vec<(i64, i64)> = lines.iter().map(|&(p, a)| (p as i64 + 1, a)).collect();
                            crate::test_support::ticket(&mut data, ticket, m, 1, d * 86_400_000, &ids);
                            sales.push((ticket, m, d, lines));
                        }
                        Op::Return(i, j, q) => {
                            if sales.is_empty() {
                                continue;
                            }
                            let (t, m, d, lines) = &sales[i % sales.len()];
                            let (p, a) = lines[j % lines.len()];
                            ret += 1;
                            data.apply_return_member(&ReturnFact {
                                id: ret,
                                ticket: TicketId(*t),
                                member: Some(MemberId(*m)),
                                sold_at: d * 86_400_000,
                                product: ProductId(p as i64 + 1),
                                amount: a * q / 4,
                                cost: 0,
                            });
                        }
                        Op::Check(m, d, k, abnormal) => {
                            check += 1;
                            let c = HealthCheckFact {
                                id: check,
                                member: MemberId(m),
                                checked_at: d * 86_400_000,
                                kind: KINDS[k],
                                abnormal,
                            };
                            data.advance_checks(&c);
                            data.apply_check(&c);
                        }
                    }
                }
                data.seal();
                data.settle();
                let n = data.len();
                let recent = data.recent();
                let base = crate::data::day_of(0, 0);
                for from in [Day::MIN, base + 5, base + 20, base + 39, base + 40] {
                    for cap in 1..=LEVELS {
                        for code in KEYS {
                            let key = recent.category(code).unwrap();
                            let planes = recent.levels(Side::Purchases, key, cap, from, Day::MAX, n).expect("answers");
                            // Read from the turning levels only, every pattern of passing counts
                            // answers as all the levels do.
                            for bits in 0u32..(1 << cap).min(64) {
                                let pass: Vec<bool> = (0..cap).map(|c| bits >> c & 1 == 1).collect();
                                let seen = bits % 3 == 0;
                                let want = select(&planes, |c| pass[c as usize - 1], seen);
                                let got = recent.passing(Side::Purchases, key, &pass, seen, (from, Day::MAX), n).expect("answers");
                                prop_assert_eq!(got, want);
                            }
                            let got: Vec<Vec<u32>> = planes.iter().map(|p| members(p)).collect();
                            prop_assert_eq!(got, naive_purchases(&data, code, from, cap), "{} from {} cap {}", code, from, cap);
                        }
                        for kind in [None, Some(0), Some(1)] {
                            for abnormal in [None, Some(true), Some(false)] {
                                let key = check_key(kind.map(|k| kind_index(KINDS[k])), abnormal);
                                let planes = recent.levels(Side::Checks, key, cap, from, Day::MAX, n).expect("answers");
                                for bits in [1u32, 2, 5, (1 << cap) - 1, 1 << (cap - 1)] {
                                    let pass: Vec<bool> = (0..cap).map(|c| bits >> c & 1 == 1).collect();
                                    let want = select(&planes, |c| pass[c as usize - 1], bits == 1);
                                    let got = recent.passing(Side::Checks, key, &pass, bits == 1, (from, Day::MAX), n).expect("answers");
                                    prop_assert_eq!(got, want);
                                }
                                let got: Vec<Vec<u32>> = planes.iter().map(|p| members(p)).collect();
                                prop_assert_eq!(got, naive_checks(&data, kind.map(|k| KINDS[k]), abnormal, from, cap));
                            }
                        }
                    }
                }
                prop_assert!(recent.levels(Side::Purchases, recent.category("14").unwrap(), LEVELS + 1, Day::MIN, Day::MAX, n).is_none());
                built_once_as_twice(&data)?;
            }
        }
    }

    /// The members whose count (level planes 1..=cap, the last meaning "cap or more") passes `keep`,
    /// and, when `seen` is asked for, the members counted at all: from every level, the reference
    /// for [`RecentDays::passing`].
    fn select(planes: &[Vec<u64>], keep: impl Fn(u32) -> bool, seen: bool) -> (RoaringBitmap, Option<RoaringBitmap>) {
        let cap = planes.len();
        let pass: Vec<bool> = (1..=cap as u32).map(keep).collect();
        let words = planes.first().map_or(0, Vec::len);
        let mut hit = vec![0u8; words * 8];
        for w in 0..words {
            let x = crate::counts::passing(&pass, |c| planes[c][w]);
            hit[w * 8..(w + 1) * 8].copy_from_slice(&x.to_le_bytes());
        }
        let seen = seen.then(|| {
            let bytes: Vec<u8> = planes.first().into_iter().flatten().flat_map(|w| w.to_le_bytes()).collect();
            RoaringBitmap::from_lsb0_bytes(0, &bytes)
        });
        (RoaringBitmap::from_lsb0_bytes(0, &hit), seen)
    }

    proptest! {
        /// Bits set block by block are every list's members, in or out of order.
        #[test]
        fn planes_set_by_blocks_hold_every_entry(
            lists in prop::collection::vec((0usize..3, prop::collection::vec(0u32..300, 0..50)), 0..8),
            block in 1usize..400,
        ) {
            let lists: Vec<(usize, &[u32])> = lists.iter().map(|(l, m)| (*l, m.as_slice())).collect();
            let planes = planes_of(&lists, 3, 300, block);
            for (l, plane) in planes.iter().enumerate() {
                let mut want: Vec<u32> = lists.iter().filter(|x| x.0 == l).flat_map(|x| x.1.iter().copied()).collect();
                want.sort_unstable();
                want.dedup();
                prop_assert_eq!(members(plane), want);
            }
        }
    }

    /// Every bucket's members, sorted (their order in a bucket is no part of the index).
    fn contents(by: &ByDay<u32>) -> Vec<(u32, Day, Vec<u32>)> {
        let mut out = Vec::new();
        for b in 0..by.keys() as u32 {
            for (d, bucket) in by.each(&[b], Day::MIN, Day::MAX) {
                let mut members = bucket.postings.to_vec();
                members.sort_unstable();
                if !members.is_empty() {
                    out.push((b, d, members));
                }
            }
        }
        out
    }

    /// The levels worked out once per member (on two threads) equal those worked out twice.
    fn built_once_as_twice(data: &CompanyData) -> Result<(), TestCaseError> {
        let r = data.recent();
        let (purchases, checks) = data.runs();
        let span =
            |days: &mut dyn Iterator<Item = Day>| days.fold((Day::MAX, Day::MIN), |(f, l), d| (f.min(d), l.max(d)));
        let pk = &r.product_keys;
        let of = |o: usize, s: &mut Scratch| s.of_purchases(purchases.of(o), usize::MAX, pk, |_| true);
        let (first, last) = span(&mut purchases.iter().flatten().map(|p| p.day));
        if first <= last {
            let buckets = r.keys.len() * LEVELS;
            let once = Levels::build_once(buckets, purchases.count(), first, (last - first + 1) as usize, &of);
            let twice = Levels::build_twice(buckets, purchases.count(), (first, last), &of);
            prop_assert_eq!(contents(&once), contents(&twice));
        }
        let of = |o: usize, s: &mut Scratch| s.of_checks(checks.of(o), usize::MAX, |_| true);
        let (first, last) = span(&mut checks.iter().flatten().map(|c| c.day));
        if first <= last {
            let buckets = CHECK_KEYS as usize * LEVELS;
            let once = Levels::build_once(buckets, checks.count(), first, (last - first + 1) as usize, &of);
            let twice = Levels::build_twice(buckets, checks.count(), (first, last), &of);
            prop_assert_eq!(contents(&once), contents(&twice));
        }
        Ok(())
    }

    /// A run of purchases (day, product, amount) over [`PRODUCT_KEYS`].
    fn run_of(facts: &[(Day, u32, i32)]) -> Vec<Purchase> {
        facts.iter().map(|&(day, product, amount)| Purchase { visit: 0, day, product, store: 0, amount }).collect()
    }

    const PRODUCT_KEYS: [[u32; 2]; 4] = [[0, 3], [1, 3], [2, NONE_U32], [NONE_U32, NONE_U32]];

    /// The scratch's facts as the comparison sort left them (ties by day in any order: sorted
    /// whole here) and its levels.
    type FactsAndLevels = (Vec<(u32, Day, i64, bool)>, Vec<(u32, u8, Day)>);

    fn sorted_by_tuples(run: &[Purchase], appended: usize) -> FactsAndLevels {
        let mut s = Scratch::default();
        for (i, p) in run.iter().enumerate() {
            for k in purchase_keys(&PRODUCT_KEYS, p).into_iter().filter(|&k| k != NONE_U32) {
                s.facts.push((k, p.day, i64::from(p.amount), i >= appended));
            }
        }
        s.settle(true);
        s.facts.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
        (s.facts, s.levels)
    }

    proptest! {
        /// Facts sorted as packed integers come out as the comparison sort puts them, with their
        /// amounts and appended marks; days that do not pack take the comparison sort.
        #[test]
        fn packed_facts_sort_as_tuples(
            facts in prop::collection::vec((0i32..30, 0u32..4, -50i32..300), 0..60),
            appended in 0usize..70,
            far in any::<bool>(),
        ) {
            // Far days (from year 2871 on) do not pack.
            let shift = if far { 1 << DAY_BITS } else { 739_000 };
            let run = run_of(&facts.iter().map(|&(d, p, a)| (d + shift, p, a)).collect::<Vec<_>>());
            let mut s = Scratch::default();
            s.of_purchases(&run, appended, &PRODUCT_KEYS, |_| true);
            let mut got = s.facts.clone();
            got.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)).then(a.3.cmp(&b.3)));
            let (facts, levels) = sorted_by_tuples(&run, appended);
            // Same order by key and day descending before the tie-break above.
            prop_assert!(s.facts.windows(2).all(|w| w[0].0 < w[1].0 || (w[0].0 == w[1].0 && w[0].1 >= w[1].1)));
            prop_assert_eq!(got, facts);
            prop_assert_eq!(&s.levels, &levels);
        }

        /// A run in day order read backwards gives the levels the sort gives (purchases: days with
        /// a positive net; checks: every check); a run out of order is left to the sort.
        #[test]
        fn runs_in_day_order_give_the_sorted_levels(
            mut facts in prop::collection::vec((0i32..30, 0u32..4, -50i32..300), 0..60),
            kinds in prop::collection::vec((0i32..30, 0usize..2, any::<bool>()), 0..40),
            ordered in any::<bool>(),
        ) {
            if ordered {
                facts.sort_by_key(|f| f.0);
            }
            let in_order = facts.windows(2).all(|w| w[0].0 <= w[1].0);
            let run = run_of(&facts);
            let mut s = Scratch::default();
            let fact = |i: usize| (run[i].day, purchase_keys(&PRODUCT_KEYS, &run[i]), i64::from(run[i].amount));
            prop_assert_eq!(s.levels_of_ordered(run.len(), 4, fact, true), in_order);
            if in_order {
                let mut got = s.levels.clone();
                got.sort_unstable();
                prop_assert_eq!(got, sorted_by_tuples(&run, usize::MAX).1);
            }
            let mut checks: Vec<Check> =
                kinds.iter().map(|&(day, k, abnormal)| Check { day, kind: KINDS[k], abnormal }).collect();
            checks.sort_by_key(|c| c.day);
            prop_assert!(s.levels_of_ordered(checks.len(), CHECK_KEYS as usize, |i| (checks[i].day, check_keys(&checks[i]), 1), false));
            let mut got = s.levels.clone();
            got.sort_unstable();
            let mut sorted = Scratch::default();
            sorted.of_checks(&checks, usize::MAX, |_| true);
            prop_assert_eq!(got, sorted.levels);
        }
    }

    /// A window ending before a key's last day is not answered from the levels.
    #[test]
    fn windows_ending_before_the_last_day_are_left_to_the_postings() {
        let mut data = company();
        let t = crate::test_support::ticket(&mut data, 1, 1, 1, 10 * 86_400_000, &[(3, 100)]);
        data.seal();
        let day = crate::data::day_of(t.sold_at, 0);
        let key = data.recent().category("0901").unwrap();
        assert!(data.recent().levels(Side::Purchases, key, 1, day - 5, day - 1, data.len()).is_none());
        let planes = data.recent().levels(Side::Purchases, key, 1, day - 5, day, data.len()).unwrap();
        assert_eq!(members(&planes[0]), [0]);
        assert_eq!(data.recent().products(key), [2]);
        assert_eq!(data.recent().products(data.recent().category("09").unwrap()), [2]);
    }
}
