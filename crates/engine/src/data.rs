//! The engine's copy of one company's facts, laid out for scanning: members get a dense ordinal
//! (0, 1, 2, ... in the order first seen), and each member's visits (tickets), purchases (ticket ×
//! product) and health checks sit in one contiguous run per member ([`Runs`]). Returns net out
//! against the purchase they return. This is the part persisted in a snapshot; everything derived
//! from it is recomputed.
//!
//! Facts are read one at a time (`apply_*`) into an append-only log and become visible to readers
//! when [`CompanyData::seal`] groups the log by member (a counting sort) and writes each touched
//! member's new run: a full build writes every run once, in member order (ranges of members on
//! threads of their own, each into its stretch of the arenas); a day's update copies only the
//! touched members' runs. Returns are netted at the seal, after the lines they return.

use crate::beside::Beside;
use crate::loyalty::{Loyalty, MemberLoyalty};
use crate::members::Members;
use crate::postings::{CheckDays, ProductDays};
use crate::recent::{Changes, RecentDays};
use chrono::NaiveDate;
use roaring::RoaringBitmap;
use rxmember_core::facts::{
    HealthCheckFact, LineFact, LoyaltyFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact,
};
use rxmember_core::health::HealthKind;
use rxmember_core::{CompanyId, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::mem::MaybeUninit;

/// Id → index maps, looked up for every fact read: foldhash instead of the DoS-resistant default
/// (the keys are the store's own ids).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A calendar day in the company's time zone: days since 0001-01-01 (chrono's day number).
pub type Day = i32;

/// "No value" for ordinal-indexed `u32` columns (store, product).
pub const NONE_U32: u32 = u32::MAX;

/// Day number of 1970-01-01.
const EPOCH_DAY: i64 = 719_163;

/// Members changed since the last [`CompanyData::take_touched`].
#[derive(Debug, Clone, Default)]
pub struct Touched {
    /// Every one: new facts, a new record, home store or loyalty state.
    pub all: RoaringBitmap,
    /// Those with a new record, home store or loyalty state (their attribute tags may differ).
    pub records: RoaringBitmap,
}

/// Members per batch handed to the recent days' thread during a seal.
const RECENT_BATCH: usize = 1024;

/// Batches the seal may hand over before it waits for the recent days' thread: enough that writing
/// the runs (the shorter job) seldom waits and the recompute starts while the upkeep goes on beside
/// it; each batch holds its members' old and new purchases and checks (about 0.5 MB at 10M members).
const RECENT_QUEUE: usize = 64;

/// The local day of an instant, by arithmetic (the offset is fixed per company): the engine does
/// this for every fact it reads.
pub fn day_of(ms: i64, offset_minutes: i32) -> Day {
    ((ms + offset_minutes as i64 * 60_000).div_euclid(86_400_000) + EPOCH_DAY) as Day
}

pub fn day_of_date(d: NaiveDate) -> Day {
    use chrono::Datelike;
    d.num_days_from_ce()
}

pub fn date_of_day(d: Day) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt(d).unwrap_or(NaiveDate::MIN)
}

/// Where a member's ticket is among its visits. Visits arrive in ticket-id order (facts are read by
/// id), so the last one or a binary search finds it; a linear search covers any other order.
fn visit_index(visits: &[Visit], ticket: i64) -> Option<usize> {
    match visits.last() {
        Some(v) if v.ticket == ticket => Some(visits.len() - 1),
        _ => match visits.binary_search_by_key(&ticket, |v| v.ticket) {
            Ok(i) => Some(i),
            Err(_) => visits.iter().rposition(|v| v.ticket == ticket),
        },
    }
}

/// A fact's amount of money in fen as the runs hold it: 4 bytes, ±21,474,836.47 yuan — over twice
/// [`Fen::LIMIT`](rxmember_core::Fen::LIMIT), which imports and the till enforce on every line and
/// ticket. Sums are worked out in `i64`; a fact's amount that would not fit (only a sum of many
/// lines of one product on one ticket could) saturates ([`fen32`]).
pub type Fen32 = i32;

/// An amount in fen as a [`Fen32`], saturating.
pub fn fen32(fen: i64) -> Fen32 {
    fen.clamp(Fen32::MIN as i64, Fen32::MAX as i64) as Fen32
}

/// A count of lines as a visit holds it (2 bytes), saturating.
fn lines16(n: u32) -> u16 {
    n.min(u16::MAX as u32) as u16
}

/// One ticket of a member, net of its returns (32 bytes: the returns are netted in as they are
/// read, so a ticket without returns — nearly all — carries no fields for them; money in 4 bytes,
/// line counts in 2). Money in fen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub ticket: i64,
    pub day: Day,
    pub store: u32,
    /// Amount paid less the amount returned.
    pub net: Fen32,
    pub discount: Fen32,
    /// Cost of the goods kept: the ticket's cost less the returned lines' cost.
    pub cost: Fen32,
    /// Lines sold (returned ones included; see `returned_lines`), at most 65,535.
    pub items: u16,
    pub returned_lines: u16,
}

/// What a member bought of one product on one ticket, net of returns (20 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// Its ticket's place among the member's visits ([`NONE_U32`] for a line or return whose
    /// ticket is not among them): runs only grow at their end and are rewritten whole, so the place
    /// stays right, and it takes 4 bytes where the ticket's id took 8.
    pub visit: u32,
    pub day: Day,
    pub product: u32,
    pub store: u32,
    pub amount: Fen32,
}

/// One health check of a member (8 bytes: its id is not kept — nothing reads it, and the watermark
/// holds the highest id read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub day: Day,
    pub kind: HealthKind,
    pub abnormal: bool,
}

/// Fills the room of run slots ([`Runs`]); never read.
impl Default for Check {
    fn default() -> Self {
        Check { day: 0, kind: HealthKind::Other, abnormal: false }
    }
}

/// Sales of all tickets (members and not) on one day, for member-contribution figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayTotals {
    pub tickets: i64,
    pub amount: i64,
    pub cost: i64,
    pub member_tickets: i64,
    pub member_amount: i64,
    pub member_cost: i64,
}

/// How far the facts go: the next refresh reads only what is newer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    pub member_updated_at: i64,
    pub ticket_id: i64,
    pub return_id: i64,
    pub check_id: i64,
    /// The last points ledger entry and tier change read into [`CompanyData::loyalty`].
    pub ledger_id: i64,
    pub tier_id: i64,
}

/// The kinds of a member's facts a loop reads ([`CompanyData::read_ahead`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kinds {
    pub visits: bool,
    pub purchases: bool,
    pub checks: bool,
    /// The member's record.
    pub record: bool,
}

/// How many members ahead [`CompanyData::read_ahead`] asks for slots (runs: half as far): a
/// member's work (0.5–2 µs) is longer than a miss, so a few members ahead cover it, and what is
/// asked for is still cached when read.
const AHEAD: usize = 8;

/// One kind of fact for every member in one arena: member `o`'s facts are one contiguous run, in
/// the order read, in a slot with some room after it ([`room`]). A member's new facts go into its
/// slot's room; a member whose slot is full gets a new, bigger slot at the end of the arena and the
/// old one becomes garbage, reclaimed by a compaction once it is a third of the arena. So a full
/// build writes the runs in member order (a columnar layout with gaps of an eighth), and an update
/// writes the touched members' new facts in place; only a member that outgrew its room is copied.
/// At most 2³² facts of one kind per company, their room and garbage included (about 2.5 billion
/// facts). Persisted as the runs' lengths and their facts in
/// member order, without room or garbage; read back with room.
#[derive(Debug, Clone)]
pub struct Runs<T> {
    start: Vec<u32>,
    len: Vec<u32>,
    /// Each member's slot: its run and the room after it.
    cap: Vec<u32>,
    items: Vec<T>,
    /// Facts held (the runs' lengths summed).
    held: usize,
    /// Slots given up (their size, in facts).
    garbage: usize,
}

impl<T> Default for Runs<T> {
    fn default() -> Self {
        Runs { start: Vec::new(), len: Vec::new(), cap: Vec::new(), items: Vec::new(), held: 0, garbage: 0 }
    }
}

/// The slot for a run of `n` facts: an eighth more and two (a day's facts of a regular customer
/// usually fit without moving the run; memory grows by about an eighth).
pub(crate) fn room(n: usize) -> usize {
    if n == 0 { 0 } else { n + n / 8 + 2 }
}

impl<T: Copy + Default> Runs<T> {
    /// Member `o`'s facts.
    pub fn of(&self, o: usize) -> &[T] {
        let s = self.start[o] as usize;
        &self.items[s..s + self.len[o] as usize]
    }

    /// Asks for member `o`'s slot to be brought into the cache ([`crate::pages::prefetch`]).
    #[inline]
    pub(crate) fn prefetch_slot(&self, o: usize) {
        crate::pages::prefetch(self.start.as_ptr().wrapping_add(o));
        crate::pages::prefetch(self.len.as_ptr().wrapping_add(o));
    }

    /// Asks for member `o`'s run (up to its first 1 KB) to be brought into the cache.
    #[inline]
    pub(crate) fn prefetch_run(&self, o: usize) {
        if let (Some(&s), Some(&n)) = (self.start.get(o), self.len.get(o)) {
            let p = self.items.as_ptr().wrapping_add(s as usize) as *const u8;
            let bytes = (n as usize * std::mem::size_of::<T>()).min(1024);
            for at in (0..bytes).step_by(64) {
                crate::pages::prefetch(p.wrapping_add(at));
            }
        }
    }

    /// Facts of every member, in ordinal order.
    pub fn iter(&self) -> impl Iterator<Item = &[T]> {
        (0..self.len.len()).map(|o| self.of(o))
    }

    /// Members with a run (empty or not).
    pub fn count(&self) -> usize {
        self.len.len()
    }

    /// Facts held.
    pub fn total(&self) -> usize {
        self.held
    }

    /// Bytes held: the arena as written (runs, room and garbage) and the per-member columns.
    pub fn bytes(&self) -> usize {
        self.items.len() * std::mem::size_of::<T>() + self.start.len() * 12
    }

    fn grow(&mut self, n: usize) {
        self.start.resize(n, 0);
        self.len.resize(n, 0);
        self.cap.resize(n, 0);
    }

    /// Makes room for `extra` more facts in member `o`'s run (emptied first if `fresh`): in its
    /// slot if they fit, else in a new slot at the arena's end with the run copied over. The arena
    /// covers every slot whole.
    fn open(&mut self, o: usize, fresh: bool, extra: usize) {
        if fresh {
            self.held -= self.len[o] as usize;
            self.len[o] = 0;
        }
        let (s, l, c) = (self.start[o] as usize, self.len[o] as usize, self.cap[o] as usize);
        if c - l >= extra {
            return;
        }
        let at = self.items.len();
        let cap = room(l + extra);
        self.items.extend_from_within(s..s + l);
        self.items.resize(at + cap, T::default());
        self.garbage += c;
        self.start[o] = u32::try_from(at).expect("fewer than 2^32 facts of one kind per company");
        self.cap[o] = cap as u32;
    }

    /// Member `o`'s slot to write its run in, after [`Runs::open`]; [`Runs::set_len`] then records
    /// what it holds.
    fn slot(&mut self, o: usize) -> Slot<'_, T> {
        let s = self.start[o] as usize;
        Slot { items: &mut self.items[s..s + self.cap[o] as usize], len: self.len[o] as usize }
    }

    fn set_len(&mut self, o: usize, len: usize) {
        self.held = self.held - self.len[o] as usize + len;
        self.len[o] = len as u32;
    }

    /// Cuts an empty arena's room and the per-member columns into stretches to be written afresh
    /// on threads of their own: the members from `firsts[k]` up to the next stretch's first, their
    /// slots `sizes[k]` facts in all.
    fn stretches(&mut self, firsts: &[usize], sizes: &[usize]) -> Vec<Stretch<'_, T>> {
        assert!(self.items.is_empty() && self.held == 0, "an arena is written afresh only when empty");
        let n = self.len.len();
        let total = sizes.iter().sum();
        crate::pages::reserve_exact(&mut self.items, total);
        let mut rest = &mut self.items.spare_capacity_mut()[..total];
        let (mut start, mut len, mut cap) = (&mut self.start[..], &mut self.len[..], &mut self.cap[..]);
        let mut stretches = Vec::new();
        let mut at = 0;
        for (k, (&first, &size)) in firsts.iter().zip(sizes).enumerate() {
            let members = firsts.get(k + 1).copied().unwrap_or(n) - first;
            let (s, l, c, r);
            (s, start) = std::mem::take(&mut start).split_at_mut(members);
            (l, len) = std::mem::take(&mut len).split_at_mut(members);
            (c, cap) = std::mem::take(&mut cap).split_at_mut(members);
            (r, rest) = std::mem::take(&mut rest).split_at_mut(size);
            stretches.push(Stretch { first, start: s, len: l, cap: c, rest: r, at, held: 0 });
            at += size;
        }
        stretches
    }

    /// Rewrites the arena in member order once garbage is a third of it.
    fn compact(&mut self) {
        if self.garbage * 3 <= self.items.len() {
            return;
        }
        let mut items = crate::pages::with_capacity(arena_for(self.held, self.len.len()));
        for o in 0..self.len.len() {
            let (s, l) = (self.start[o] as usize, self.len[o] as usize);
            self.start[o] = u32::try_from(items.len()).expect("fewer than 2^32 slots of one kind per company");
            self.cap[o] = room(l) as u32;
            items.extend_from_slice(&self.items[s..s + l]);
            items.resize(items.len() + room(l) - l, T::default());
        }
        self.items = items;
        self.garbage = 0;
    }
}

impl<T: Serialize + Copy + Default> Serialize for Runs<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeSeq, SerializeTuple};
        /// The facts of every run, in member order.
        struct Facts<'a, T>(&'a Runs<T>);
        impl<T: Serialize + Copy + Default> Serialize for Facts<'_, T> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut seq = s.serialize_seq(Some(self.0.held))?;
                for fact in self.0.iter().flatten() {
                    seq.serialize_element(fact)?;
                }
                seq.end()
            }
        }
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.len)?;
        t.serialize_element(&Facts(self))?;
        t.end()
    }
}

impl<'de, T: Deserialize<'de> + Copy + Default> Deserialize<'de> for Runs<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{DeserializeSeed, Error, SeqAccess, Visitor};
        use std::marker::PhantomData;
        struct Lengths<T>(PhantomData<T>);
        /// The facts, laid out into slots with room as they are read.
        struct Laid<T>(Vec<u32>, PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Copy + Default> Visitor<'de> for Lengths<T> {
            type Value = Runs<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("runs: their lengths, then their facts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Runs<T>, A::Error> {
                let len: Vec<u32> = a.next_element()?.ok_or_else(|| A::Error::invalid_length(0, &self))?;
                a.next_element_seed(Laid(len, PhantomData))?.ok_or_else(|| A::Error::invalid_length(1, &self))
            }
        }
        impl<'de, T: Deserialize<'de> + Copy + Default> DeserializeSeed<'de> for Laid<T> {
            type Value = Runs<T>;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Runs<T>, D::Error> {
                d.deserialize_seq(self)
            }
        }
        impl<'de, T: Deserialize<'de> + Copy + Default> Visitor<'de> for Laid<T> {
            type Value = Runs<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("as many facts as the runs' lengths add up to")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Runs<T>, A::Error> {
                let len = &self.0;
                let n = len.len();
                // The lengths are not trusted until the facts are there: slots must fit the arena's
                // u32 offsets, and room is reserved for what the lengths claim only up to a bound
                // (a damaged length must not ask for terabytes before a fact is read).
                let slots = len.iter().try_fold(0u64, |at, &l| at.checked_add(room(l as usize) as u64));
                if slots.is_none_or(|s| s > u64::from(u32::MAX)) {
                    return Err(A::Error::custom("runs longer than an arena holds"));
                }
                let held: usize = len.iter().map(|&l| l as usize).sum();
                let mut runs = Runs::default();
                runs.grow(n);
                runs.items = crate::pages::with_capacity(arena_for(held, n).min(1 << 24));
                for (o, &l) in len.iter().enumerate() {
                    runs.open(o, false, l as usize);
                    let before = runs.held;
                    let mut slot = runs.slot(o);
                    for _ in 0..l {
                        let at = before + slot.len;
                        slot.push(a.next_element()?.ok_or_else(|| A::Error::invalid_length(at, &"more facts"))?);
                    }
                    let l = slot.len;
                    runs.set_len(o, l);
                }
                if a.next_element::<T>()?.is_some() {
                    return Err(A::Error::custom("more facts than the runs' lengths add up to"));
                }
                // Room for the updates to come (on 2 MB pages where asked).
                let headroom = runs.items.len() / 8 + 1024;
                crate::pages::reserve_exact(&mut runs.items, headroom);
                Ok(runs)
            }
        }
        d.deserialize_tuple(2, Lengths(PhantomData))
    }
}

/// A member's run being written: its slot, of which the first `len` facts are the run.
struct Slot<'a, T> {
    items: &'a mut [T],
    len: usize,
}

impl<T> Slot<'_, T> {
    fn run(&self) -> &[T] {
        &self.items[..self.len]
    }

    fn run_mut(&mut self) -> &mut [T] {
        &mut self.items[..self.len]
    }

    /// Appends a fact within the slot's room, made before for every fact to come.
    fn push(&mut self, x: T) {
        self.items[self.len] = x;
        self.len += 1;
    }
}

/// One thread's stretch of an arena written afresh ([`RunsMut::write_fresh`]): the slots of
/// members `first..first + len.len()`, laid out in member order from arena offset `at` as one
/// thread writing every member would lay them out.
struct Stretch<'a, T> {
    first: usize,
    start: &'a mut [u32],
    len: &'a mut [u32],
    cap: &'a mut [u32],
    /// The stretch's room not yet given to a slot: exactly the slots still to come.
    rest: &'a mut [MaybeUninit<T>],
    at: usize,
    held: usize,
}

impl<'a, T: Copy + Default> Stretch<'a, T> {
    /// Member `o`'s slot, with [`room`] for `n` facts, off the front of the stretch. No facts, no
    /// slot (as [`Runs::open`] leaves it).
    fn slot(&mut self, o: usize, n: usize) -> Slot<'a, T> {
        if n == 0 {
            return Slot { items: &mut [], len: 0 };
        }
        let c = room(n);
        let (mine, rest) = std::mem::take(&mut self.rest).split_at_mut(c);
        self.rest = rest;
        for x in mine.iter_mut() {
            x.write(T::default());
        }
        // SAFETY: every element of `mine` was written just above.
        let items = unsafe { &mut *(mine as *mut [MaybeUninit<T>] as *mut [T]) };
        let i = o - self.first;
        self.start[i] = u32::try_from(self.at).expect("fewer than 2^32 facts of one kind per company");
        self.cap[i] = c as u32;
        self.at += c;
        Slot { items, len: 0 }
    }

    fn set_len(&mut self, o: usize, len: usize) {
        self.len[o - self.first] = len as u32;
        self.held += len;
    }
}

/// An arena for `facts` facts of `members` members laid out afresh: every slot's [`room`] (an
/// eighth and two facts more, at most), and [`with_headroom`] after them.
fn arena_for(facts: usize, members: usize) -> usize {
    with_headroom(facts + facts / 8 + 2 * members)
}

/// Room for an arena of `n` facts and the slots that updates move to its end: without it the first
/// update after a build or a compaction grows the arena by copying all of it (gigabytes at 10M
/// members). Only the pages written are ever resident.
fn with_headroom(n: usize) -> usize {
    n + n / 8 + 1024
}

/// A log entry: the member it belongs to.
trait OfMember: Copy {
    fn member(&self) -> u32;
}

impl<E: Copy> OfMember for (u32, E) {
    fn member(&self) -> u32 {
        self.0
    }
}

/// A ticket read but not yet sealed (a [`Visit`] before returns, with its member: 36 bytes, packed
/// to 4-byte alignment; its ticket is copied out, never borrowed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[repr(C, packed(4))]
struct PendingVisit {
    member: u32,
    day: Day,
    store: u32,
    items: u32,
    ticket: i64,
    amount: Fen32,
    discount: Fen32,
    cost: Fen32,
}

impl OfMember for PendingVisit {
    fn member(&self) -> u32 {
        self.member
    }
}

/// A line read but not yet sealed; its store is its visit's, looked up at the seal (24 bytes).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PendingLine {
    ticket: i64,
    member: u32,
    day: Day,
    product: u32,
    amount: Fen32,
}

impl OfMember for PendingLine {
    fn member(&self) -> u32 {
        self.member
    }
}

/// A return read but not yet netted against its member's visit and purchase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PendingReturn {
    ticket: i64,
    day: Day,
    /// Product index, [`NONE_U32`] if the product is unknown.
    product: u32,
    amount: i64,
    cost: i64,
}

/// Facts read since the last seal, each with its member's ordinal, in the order read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pending {
    visits: Vec<PendingVisit>,
    lines: Vec<PendingLine>,
    returns: Vec<(u32, PendingReturn)>,
    checks: Vec<(u32, Check)>,
    /// Members whose history is read again whole, with the log's lengths when that was decided:
    /// their old runs and earlier log entries are dropped.
    cleared: Vec<(u32, [usize; 4])>,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.visits.is_empty()
            && self.lines.is_empty()
            && self.returns.is_empty()
            && self.checks.is_empty()
            && self.cleared.is_empty()
    }

    fn lengths(&self) -> [usize; 4] {
        [self.visits.len(), self.lines.len(), self.returns.len(), self.checks.len()]
    }
}

/// A log's entries grouped by member (ascending), each member's in the order read, without the
/// entries read before their member's history was cleared (`kind` indexes the clear's lengths).
/// A small log is sorted; a big one moved by a two-pass counting sort: first by ranges of members
/// ([`range_of`]: a write stream per range), then within each range, whose entries fit in cache —
/// one scattered write per entry over the whole log would miss the cache every time. The first
/// pass gives the log's pages back as it reads them ([`crate::pages::release`]), so that its
/// writes take them (the grouped log is as big as the log).
fn group<E: OfMember>(log: Vec<E>, n: usize, cleared: &FastMap<u32, [usize; 4]>, kind: usize) -> Vec<E> {
    group_releasing(log, n, cleared, kind, crate::pages::RELEASE_STEP / size_of::<E>().max(1))
}

/// [`group`], giving the log's pages back every `step` entries read.
fn group_releasing<E: OfMember>(
    mut log: Vec<E>,
    n: usize,
    cleared: &FastMap<u32, [usize; 4]>,
    kind: usize,
    step: usize,
) -> Vec<E> {
    if !cleared.is_empty() {
        let mut i = 0;
        log.retain(|e| {
            let keep = cleared.get(&e.member()).is_none_or(|at| i >= at[kind]);
            i += 1;
            keep
        });
    }
    if log.len() < n / 8 || log.is_empty() {
        log.sort_by_key(|e| e.member());
        return log;
    }
    let range = range_of(n);
    let ranges = n.div_ceil(range);
    let mut next = vec![0usize; ranges + 1];
    for e in &log {
        next[e.member() as usize / range + 1] += 1;
    }
    for r in 0..ranges {
        next[r + 1] += next[r];
    }
    let bounds = next.clone();
    // The grouped log lives in this buffer. On 4 KB pages, like the log: written once in order and
    // read once in order, where 2 MB pages' first touches cost more than their fewer TLB misses save.
    let len = log.len();
    let mut by_range: Vec<E> = Vec::with_capacity(len);
    let out = &mut by_range.spare_capacity_mut()[..len];
    // A mutable pointer: the kernel writes (zeroes) what is given back.
    let read = log.as_mut_ptr().cast_const();
    let mut released = 0;
    while released < len {
        let end = (released + step.max(1)).min(len);
        for i in released..end {
            // SAFETY: `i < len`; the log's entries from `released` on are still its own.
            let e = unsafe { read.add(i).read() };
            let at = &mut next[e.member() as usize / range];
            out[*at].write(e);
            *at += 1;
        }
        // SAFETY: entries before `end` are read for the last time above (by value), and no
        // reference into the log is alive; the log is only freed after this.
        unsafe { crate::pages::release(read.add(released).cast(), (end - released) * size_of::<E>()) };
        released = end;
    }
    assert!((0..ranges).all(|r| next[r] == bounds[r + 1]), "every entry of the grouped log written once");
    // SAFETY: each range's cursor moved from its start to the next range's start, one entry
    // written at a time: all `len` entries are written.
    unsafe { by_range.set_len(len) };
    drop(log);
    // The second pass copies a range out to a scratch that stays in cache and writes it back
    // grouped by member.
    let mut at = vec![0usize; range + 1];
    let mut scratch: Vec<E> = Vec::new();
    for r in 0..ranges {
        let (begin, end) = (bounds[r], bounds[r + 1]);
        let base = r * range;
        scratch.clear();
        scratch.extend_from_slice(&by_range[begin..end]);
        at.iter_mut().for_each(|x| *x = 0);
        for e in &scratch {
            at[e.member() as usize - base + 1] += 1;
        }
        at[0] = begin;
        for k in 0..range {
            at[k + 1] += at[k];
        }
        for e in &scratch {
            let slot = &mut at[e.member() as usize - base];
            by_range[*slot] = *e;
            *slot += 1;
        }
    }
    by_range
}

/// Counts ticket `t` (member or not) into a day's totals.
fn count_ticket(d: &mut DayTotals, t: &TicketFact) {
    d.tickets += 1;
    d.amount += t.amount;
    d.cost += t.cost;
    if t.member.is_some() {
        d.member_tickets += 1;
        d.member_amount += t.amount;
        d.member_cost += t.cost;
    }
}

fn add_totals(d: &mut DayTotals, x: &DayTotals) {
    d.tickets += x.tickets;
    d.amount += x.amount;
    d.cost += x.cost;
    d.member_tickets += x.member_tickets;
    d.member_amount += x.member_amount;
    d.member_cost += x.member_cost;
}

/// Members per range in the first pass of [`group`]: at least [`MIN_RANGE`], and at most
/// [`MAX_RANGES`] ranges, so that the first pass's write streams stay few enough for the caches and
/// the TLB (at 10M members, 1024-member ranges made 9766 streams; now 611 of 16384 members).
fn range_of(n: usize) -> usize {
    n.div_ceil(MAX_RANGES).next_power_of_two().max(MIN_RANGE)
}

const MIN_RANGE: usize = 1024;
const MAX_RANGES: usize = 1024;

/// One seal's logs grouped by member ([`group`]), or some members' entries of them. Also a cursor:
/// [`Logs::take`] takes the first member's entries off the front.
#[derive(Clone, Copy)]
struct Logs<'a> {
    visits: &'a [PendingVisit],
    lines: &'a [PendingLine],
    returns: &'a [(u32, PendingReturn)],
    checks: &'a [(u32, Check)],
}

/// The entries of member `o` off the front of a grouped log (`o` is at or before its first member).
fn take_member<'a, E: OfMember>(log: &mut &'a [E], o: u32) -> &'a [E] {
    let k = log.iter().take_while(|e| e.member() == o).count();
    let (mine, rest) = log.split_at(k);
    *log = rest;
    mine
}

/// A grouped log's entries of members before `o`, and the rest.
fn split_log<E: OfMember>(log: &[E], o: u32) -> (&[E], &[E]) {
    log.split_at(log.partition_point(|e| e.member() < o))
}

impl<'a> Logs<'a> {
    /// The first member with entries, `u32::MAX` when none is left.
    fn head(&self) -> u32 {
        let first = |m: Option<u32>| m.unwrap_or(u32::MAX);
        first(self.visits.first().map(OfMember::member))
            .min(first(self.lines.first().map(OfMember::member)))
            .min(first(self.returns.first().map(OfMember::member)))
            .min(first(self.checks.first().map(OfMember::member)))
    }

    /// Member `o`'s entries, taken off the front (`o` is at or before the head).
    fn take(&mut self, o: u32) -> Logs<'a> {
        Logs {
            visits: take_member(&mut self.visits, o),
            lines: take_member(&mut self.lines, o),
            returns: take_member(&mut self.returns, o),
            checks: take_member(&mut self.checks, o),
        }
    }

    /// The entries of members before `o`, and the rest.
    fn split(&self, o: u32) -> (Logs<'a>, Logs<'a>) {
        let (visits, v) = split_log(self.visits, o);
        let (lines, l) = split_log(self.lines, o);
        let (returns, r) = split_log(self.returns, o);
        let (checks, c) = split_log(self.checks, o);
        (Logs { visits, lines, returns, checks }, Logs { visits: v, lines: l, returns: r, checks: c })
    }

    /// The facts one member's entries may add to each of its runs: visits, purchases (a line or a
    /// return each at most), checks.
    fn sizes(&self) -> [usize; 3] {
        [self.visits.len(), self.lines.len() + self.returns.len(), self.checks.len()]
    }
}

/// Writes a member's new entries into its runs' slots, which have room for them: tickets, lines (a
/// product twice on a ticket adds up; each purchase takes its ticket's store), returns netted
/// against their ticket and purchase, checks.
fn write_facts(
    visits: &mut Slot<'_, Visit>,
    purchases: &mut Slot<'_, Purchase>,
    checks: &mut Slot<'_, Check>,
    new: &Logs<'_>,
) {
    for v in new.visits {
        visits.push(Visit {
            ticket: v.ticket,
            day: v.day,
            store: v.store,
            net: v.amount,
            discount: v.discount,
            cost: v.cost,
            items: lines16(v.items),
            returned_lines: 0,
        });
    }
    for l in new.lines {
        let vs = visits.run();
        let (visit, store) = visit_index(vs, l.ticket).map_or((NONE_U32, NONE_U32), |i| (i as u32, vs[i].store));
        // The ticket's lines come together: an earlier line of the same product adds to its purchase
        // (a line without its ticket's visit stays a purchase of its own).
        let mut same = purchases.run_mut().iter_mut().rev().take_while(|b| b.visit == visit && visit != NONE_U32);
        match same.find(|b| b.product == l.product) {
            Some(b) => b.amount = b.amount.saturating_add(l.amount),
            None => purchases.push(Purchase { visit, day: l.day, product: l.product, store, amount: l.amount }),
        }
    }
    for &(_, r) in new.returns {
        let vs = visits.run_mut();
        let at = visit_index(vs, r.ticket);
        if let Some(i) = at {
            vs[i].net = vs[i].net.saturating_sub(fen32(r.amount));
            vs[i].cost = vs[i].cost.saturating_sub(fen32(r.cost));
            vs[i].returned_lines = vs[i].returned_lines.saturating_add(1);
        }
        if r.product == NONE_U32 {
            continue;
        }
        let visit = at.map_or(NONE_U32, |i| i as u32);
        let bought = purchases
            .run_mut()
            .iter_mut()
            .rev()
            .find(|b| b.visit == visit && visit != NONE_U32 && b.product == r.product);
        match bought {
            Some(b) => b.amount = b.amount.saturating_sub(fen32(r.amount)),
            None => purchases.push(Purchase {
                visit,
                day: r.day,
                product: r.product,
                store: NONE_U32,
                amount: fen32(-r.amount),
            }),
        }
    }
    for c in new.checks {
        checks.push(c.1);
    }
}

/// Adds member `o` to the buyers of each product in its purchases (members come in ascending order).
fn add_buyer(ever_bought: &mut [RoaringBitmap], o: u32, purchases: &[Purchase]) {
    for b in purchases {
        let e = &mut ever_bought[b.product as usize];
        if e.try_push(o).is_err() {
            e.insert(o);
        }
    }
}

/// [`Logs`] as raw parts, for a full build that gives the logs' memory back as it reads them
/// ([`RunsMut::write_fresh`]): a reference passed to a function must cover memory left as it is
/// until the function returns, so the logs cross function boundaries as raw parts and become
/// slices only inside, where the cursors move past what is given back.
#[derive(Clone, Copy)]
struct RawLogs {
    visits: (*const PendingVisit, usize),
    lines: (*const PendingLine, usize),
    returns: (*const (u32, PendingReturn), usize),
    checks: (*const (u32, Check), usize),
}

// SAFETY: raw parts of slices of plain data, which `Logs` (Send and Sync) could carry as well.
unsafe impl Send for RawLogs {}

impl RawLogs {
    fn of(logs: Logs<'_>) -> RawLogs {
        RawLogs {
            visits: (logs.visits.as_ptr(), logs.visits.len()),
            lines: (logs.lines.as_ptr(), logs.lines.len()),
            returns: (logs.returns.as_ptr(), logs.returns.len()),
            checks: (logs.checks.as_ptr(), logs.checks.len()),
        }
    }

    /// The logs as slices again.
    ///
    /// # Safety
    /// The logs these were taken from are alive for `'a` and nothing in them has been given back.
    unsafe fn logs<'a>(self) -> Logs<'a> {
        // SAFETY: the caller's.
        unsafe {
            Logs {
                visits: std::slice::from_raw_parts(self.visits.0, self.visits.1),
                lines: std::slice::from_raw_parts(self.lines.0, self.lines.1),
                returns: std::slice::from_raw_parts(self.returns.0, self.returns.1),
                checks: std::slice::from_raw_parts(self.checks.0, self.checks.1),
            }
        }
    }
}

/// How far a piece of the grouped logs has been read and given back ([`crate::pages::release`]),
/// while a full build writes it into the arenas: their first touches take the pages back.
struct Read {
    given: [usize; 4],
    /// Bytes of a log given back at a time.
    step: usize,
}

impl Read {
    fn of(piece: &Logs<'_>, step: usize) -> Read {
        Read { given: Self::starts(piece), step }
    }

    fn starts(piece: &Logs<'_>) -> [usize; 4] {
        [
            piece.visits.as_ptr() as usize,
            piece.lines.as_ptr() as usize,
            piece.returns.as_ptr() as usize,
            piece.checks.as_ptr() as usize,
        ]
    }

    /// Gives back what was taken off the piece since, once it is `step` bytes of a log.
    ///
    /// # Safety
    /// The entries taken off the piece are not read again, and no slice covering them was passed
    /// to a function that has not returned ([`RawLogs`]).
    unsafe fn release(&mut self, piece: &Logs<'_>) {
        for (given, now) in self.given.iter_mut().zip(Self::starts(piece)) {
            if now - *given >= self.step {
                // SAFETY: the caller's.
                unsafe { crate::pages::release(*given as *const u8, now - *given) };
                *given = now;
            }
        }
    }
}

/// A company's runs of each kind of fact, as a seal writes them.
struct RunsMut<'r> {
    visits: &'r mut Runs<Visit>,
    purchases: &'r mut Runs<Purchase>,
    checks: &'r mut Runs<Check>,
}

impl RunsMut<'_> {
    /// Writes member `m`'s new entries into its runs (emptied first when `fresh`), moving a run
    /// that outgrew its slot.
    fn write_member(&mut self, m: usize, fresh: bool, new: &Logs<'_>) {
        let [v, p, c] = new.sizes();
        self.visits.open(m, fresh, v);
        self.purchases.open(m, fresh, p);
        self.checks.open(m, fresh, c);
        let (mut visits, mut purchases, mut checks) =
            (self.visits.slot(m), self.purchases.slot(m), self.checks.slot(m));
        write_facts(&mut visits, &mut purchases, &mut checks, new);
        let lengths = [visits.len, purchases.len, checks.len];
        self.visits.set_len(m, lengths[0]);
        self.purchases.set_len(m, lengths[1]);
        self.checks.set_len(m, lengths[2]);
    }

    /// A full build's writing of the members in `logs` (none cleared, the arenas empty), in member
    /// order, each purchase's member added to its product's buyers; returns the members written.
    /// The members are cut into `parts` ranges of about as many lines, each written on a thread of
    /// its own into its stretch of the arenas, where the slots lie as one thread writing every
    /// member would lay them: a first pass (on the same threads) adds up each range's slots.
    ///
    /// With `give_back`, each piece's logs are given back to the kernel every that many bytes
    /// written ([`Read`]), for the arenas' first touches to take.
    ///
    /// # Safety
    /// The logs are alive until this returns; with `give_back`, their entries are not read
    /// again afterwards.
    unsafe fn write_fresh(
        &mut self,
        logs: RawLogs,
        ever_bought: &mut [RoaringBitmap],
        parts: usize,
        give_back: Option<usize>,
    ) -> Vec<u32> {
        // SAFETY: the caller's; nothing is given back yet.
        let logs = unsafe { logs.logs() };
        let n = self.visits.count();
        // Cuts between ranges: members at even steps through the lines.
        let cuts: Vec<u32> =
            (1..parts).filter_map(|k| logs.lines.get(k * logs.lines.len() / parts).map(|e| e.member)).collect();
        let mut pieces = Vec::new();
        let mut rest = logs;
        for &cut in &cuts {
            let (piece, after) = rest.split(cut);
            pieces.push(piece);
            rest = after;
        }
        pieces.push(rest);
        // Piece k's members: from `firsts[k]` up to the next piece's first.
        let firsts: Vec<usize> = std::iter::once(0).chain(cuts.iter().map(|&c| (c as usize).min(n))).collect();
        let sizes: Vec<[usize; 3]> = std::thread::scope(|s| {
            let slots = |mut piece: Logs<'_>| {
                let mut sum = [0usize; 3];
                loop {
                    let o = piece.head();
                    if o == u32::MAX {
                        return sum;
                    }
                    for (sum, wants) in sum.iter_mut().zip(piece.take(o).sizes()) {
                        *sum += room(wants);
                    }
                }
            };
            let others: Vec<_> = pieces[1..].iter().map(|&p| s.spawn(move || slots(p))).collect();
            let mut sizes = vec![slots(pieces[0])];
            sizes.extend(others.into_iter().map(|t| t.join().expect("adding up slots does not panic")));
            sizes
        });
        let totals: [usize; 3] = std::array::from_fn(|k| sizes.iter().map(|s| s[k]).sum());
        let visits = self.visits.stretches(&firsts, &sizes.iter().map(|s| s[0]).collect::<Vec<_>>());
        let purchases = self.purchases.stretches(&firsts, &sizes.iter().map(|s| s[1]).collect::<Vec<_>>());
        let checks = self.checks.stretches(&firsts, &sizes.iter().map(|s| s[2]).collect::<Vec<_>>());
        let products = ever_bought.len();
        let write = |piece: RawLogs,
                     mut v: Stretch<'_, Visit>,
                     mut p: Stretch<'_, Purchase>,
                     mut c: Stretch<'_, Check>,
                     ever_bought: &mut [RoaringBitmap]| {
            // SAFETY: the logs are alive (the caller's word), and only this piece's cursor gives
            // back, behind itself.
            let mut piece = unsafe { piece.logs() };
            let mut written = Vec::new();
            let mut read = give_back.map(|step| Read::of(&piece, step));
            loop {
                let o = piece.head();
                if o == u32::MAX {
                    break;
                }
                if let Some(read) = &mut read {
                    // SAFETY: the entries taken off the piece so far were written into runs on
                    // earlier turns and are not read again (the caller's word).
                    unsafe { read.release(&piece) };
                }
                let new = piece.take(o);
                let m = o as usize;
                let [nv, np, nc] = new.sizes();
                let (mut visits, mut purchases, mut checks) = (v.slot(m, nv), p.slot(m, np), c.slot(m, nc));
                write_facts(&mut visits, &mut purchases, &mut checks, &new);
                add_buyer(ever_bought, o, purchases.run());
                v.set_len(m, visits.len);
                p.set_len(m, purchases.len);
                c.set_len(m, checks.len);
                written.push(o);
            }
            assert!(v.rest.is_empty() && p.rest.is_empty() && c.rest.is_empty(), "every slot added up was written");
            (written, [v.held, p.held, c.held])
        };
        let (written, held) = std::thread::scope(|s| {
            let mut stretches = pieces.into_iter().map(RawLogs::of).zip(visits).zip(purchases).zip(checks);
            let (((first, v), p), c) = stretches.next().expect("one piece at least");
            let others: Vec<_> = stretches
                .map(|(((piece, v), p), c)| {
                    s.spawn(move || {
                        let mut buyers = vec![RoaringBitmap::new(); products];
                        let (written, held) = write(piece, v, p, c, &mut buyers);
                        (written, held, buyers)
                    })
                })
                .collect();
            let (mut written, mut held) = write(first, v, p, c, ever_bought);
            for t in others {
                let (more, their_held, buyers) = t.join().expect("writing runs does not panic");
                written.extend(more);
                for (held, theirs) in held.iter_mut().zip(their_held) {
                    *held += theirs;
                }
                for (e, b) in ever_bought.iter_mut().zip(buyers) {
                    *e |= b;
                }
            }
            (written, held)
        });
        // SAFETY: the stretches covered the first `totals[k]` elements of each arena's spare room,
        // and every one of them was written (each slot filled when given, none left over).
        unsafe {
            self.visits.items.set_len(totals[0]);
            self.purchases.items.set_len(totals[1]);
            self.checks.items.set_len(totals[2]);
        }
        self.visits.held = held[0];
        self.purchases.held = held[1];
        self.checks.held = held[2];
        written
    }
}

/// Tickets ahead whose member's ordinal is asked for while one ticket's is read.
const ORDINALS_AHEAD: usize = 16;

/// Member id → ordinal. The store's ids are dense per company and read in ascending order, so ids
/// from the first one seen up to four times the members are kept in a plain array (a lookup is one
/// read; at 10M members the array's 40 MB are beyond the cache, so a page of tickets asks ahead);
/// others, in a hash map.
#[derive(Debug, Clone, Default)]
struct Ordinals {
    base: i64,
    dense: Vec<u32>,
    sparse: FastMap<i64, u32>,
}

impl Ordinals {
    fn get(&self, id: i64) -> Option<u32> {
        match usize::try_from(id.wrapping_sub(self.base)) {
            // An id may have gone to the map before the array grew over it.
            Ok(i) if i < self.dense.len() && self.dense[i] != NONE_U32 => Some(self.dense[i]),
            _ => self.sparse.get(&id).copied(),
        }
    }

    /// Asks for the cache line of `id`'s slot, where the array holds it.
    #[inline]
    fn prefetch(&self, id: i64) {
        if let Ok(i) = usize::try_from(id.wrapping_sub(self.base))
            && i < self.dense.len()
        {
            crate::pages::prefetch(self.dense.as_ptr().wrapping_add(i));
        }
    }

    fn insert(&mut self, id: i64, o: u32) {
        if self.dense.is_empty() && self.sparse.is_empty() {
            self.base = id;
        }
        let Ok(i) = usize::try_from(id.wrapping_sub(self.base)) else {
            self.sparse.insert(id, o);
            return;
        };
        let limit = (o as usize + 1) * 4 + 1024;
        if i >= self.dense.len() && i < limit {
            self.dense.resize(i + 1, NONE_U32);
        }
        match self.dense.get_mut(i) {
            Some(slot) => *slot = o,
            None => {
                self.sparse.insert(id, o);
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompanyData {
    pub company: CompanyId,
    pub offset_minutes: i32,
    pub members: Members,
    /// Home store of each member as a store index, [`NONE_U32`] if none.
    pub home_store: Vec<u32>,
    /// Members whose home store was not known when their record was read, with its id: placed
    /// once the store arrives ([`CompanyData::set_stores`]).
    homes_unknown: std::collections::BTreeMap<u32, i64>,
    visits: Runs<Visit>,
    purchases: Runs<Purchase>,
    checks: Runs<Check>,
    pending: Pending,
    pub products: Vec<ProductFact>,
    pub stores: Vec<StoreFact>,
    /// Members who ever bought each product (by product index): a prefilter for `bought(...)`. It may
    /// keep a member whose purchase was later corrected away; the purchase scan decides.
    pub ever_bought: Vec<RoaringBitmap>,
    pub days: BTreeMap<Day, DayTotals>,
    /// Points, expiring points and tiers as the store has them now.
    pub loyalty: Loyalty,
    pub watermark: Watermark,
    /// Purchases by product and day, kept in step with the runs at every seal.
    #[serde(skip)]
    product_days: ProductDays,
    /// Health checks by kind and day, kept in step with the runs at every seal.
    #[serde(skip)]
    check_days: CheckDays,
    /// Members' most recent days per category and check kind, kept in step at every seal (an
    /// update's upkeep on a thread of its own until [`CompanyData::settle`]).
    #[serde(skip)]
    pub(crate) recent: Beside<RecentDays>,
    /// Members whose facts changed since [`CompanyData::take_touched`] was last called: what an
    /// incremental recompute must look at again.
    #[serde(skip)]
    touched: RoaringBitmap,
    /// Of those, the members whose record, home store or loyalty state changed.
    #[serde(skip)]
    touched_records: RoaringBitmap,
    /// Members added since [`CompanyData::take_touched`] was last called are those from this
    /// ordinal on: put into both touched sets as one range when taken. Pushed one at a time, each
    /// member cost a scan of its container for the maximum once the container was a bitmap
    /// (roaring's `push`): half of the members' reading time.
    #[serde(skip)]
    added_from: Option<u32>,
    #[serde(skip)]
    ordinal: Ordinals,
    #[serde(skip)]
    product_index: FastMap<i64, u32>,
    #[serde(skip)]
    store_index: FastMap<i64, u32>,
    /// The last ticket read (ticket id, member id, member ordinal): its lines need no member lookup.
    #[serde(skip)]
    last_ticket: Option<(i64, i64, u32)>,
    /// The last seal's phases (name, ms), for benchmarks.
    #[serde(skip)]
    pub seal_timings: Vec<(&'static str, f64)>,
    /// The member ordinals of the page being read, kept from page to page: reading a page
    /// allocates nothing (it was a vector allocated and freed per page).
    #[serde(skip)]
    page_ordinals: Vec<u32>,
}

impl CompanyData {
    pub fn new(company: CompanyId, offset_minutes: i32) -> CompanyData {
        CompanyData {
            company,
            offset_minutes,
            members: Members::default(),
            home_store: Vec::new(),
            homes_unknown: Default::default(),
            visits: Runs::default(),
            purchases: Runs::default(),
            checks: Runs::default(),
            pending: Pending::default(),
            products: Vec::new(),
            stores: Vec::new(),
            ever_bought: Vec::new(),
            days: BTreeMap::new(),
            loyalty: Loyalty::default(),
            watermark: Watermark::default(),
            product_days: ProductDays::default(),
            check_days: CheckDays::default(),
            recent: Beside::default(),
            touched: RoaringBitmap::new(),
            touched_records: RoaringBitmap::new(),
            added_from: None,
            ordinal: Ordinals::default(),
            product_index: FastMap::default(),
            store_index: FastMap::default(),
            last_ticket: None,
            seal_timings: Vec::new(),
            page_ordinals: Vec::new(),
        }
    }

    /// Rebuilds the lookup maps and the by-day indexes after deserialising.
    pub fn reindex(&mut self) {
        self.ordinal = Ordinals::default();
        self.members.reindex();
        for (i, m) in self.members.iter().enumerate() {
            self.ordinal.insert(m.id().0, i as u32);
        }
        self.product_index = self.products.iter().enumerate().map(|(i, p)| (p.id.0, i as u32)).collect();
        self.store_index = self.stores.iter().enumerate().map(|(i, s)| (s.id.0, i as u32)).collect();
        self.recent = Beside::default();
        self.recent.get_mut().sync_products(&self.products);
        self.build_by_day();
    }

    /// Builds the by-day indexes (postings by product and by check kind, recent days) from the
    /// runs, on two threads; returns how long each part took (ms; "beside": on the other thread).
    fn build_by_day(&mut self) -> Vec<(&'static str, f64)> {
        let ms = |t: std::time::Instant| t.elapsed().as_secs_f64() * 1000.0;
        let t = std::time::Instant::now();
        let spans = self.day_spans();
        let spans_ms = ms(t);
        let (products, purchases, checks) = (self.products.len(), &self.purchases, &self.checks);
        let recent = self.recent.get_mut();
        let (product_days, product_ms, check_days, check_ms, recent_ms) = std::thread::scope(|s| {
            let product_days = s.spawn(|| {
                let t = std::time::Instant::now();
                let p = ProductDays::build(products, purchases, spans[0]);
                (p, ms(t))
            });
            let t = std::time::Instant::now();
            let check_days = CheckDays::build(checks, spans[1]);
            let check_ms = ms(t);
            let t = std::time::Instant::now();
            recent.build(purchases, checks, spans);
            let recent_ms = ms(t);
            let (p, product_ms) = product_days.join().expect("building the postings does not panic");
            (p, product_ms, check_days, check_ms, recent_ms)
        });
        self.product_days = product_days;
        self.check_days = check_days;
        vec![
            ("of which days spanned", spans_ms),
            ("product days (beside)", product_ms),
            ("check days", check_ms),
            ("recent days", recent_ms),
        ]
    }

    /// The first and last days of the purchases and of the checks (`(Day::MAX, Day::MIN)` when
    /// there are none), each kind on a thread: the by-day indexes' builds share them.
    fn day_spans(&self) -> [(Day, Day); 2] {
        let span =
            |days: &mut dyn Iterator<Item = Day>| days.fold((Day::MAX, Day::MIN), |(f, l), d| (f.min(d), l.max(d)));
        std::thread::scope(|s| {
            let purchases = s.spawn(|| span(&mut self.purchases.iter().flatten().map(|p| p.day)));
            let checks = span(&mut self.checks.iter().flatten().map(|c| c.day));
            [purchases.join().expect("a span does not panic"), checks]
        })
    }

    /// Makes the facts read since the last seal visible, and returns the members touched since the
    /// last call (and forgets them).
    pub fn take_touched(&mut self) -> Touched {
        self.seal();
        if let Some(from) = self.added_from.take() {
            let added = from..self.members.len() as u32;
            self.touched.insert_range(added.clone());
            self.touched_records.insert_range(added);
        }
        Touched { all: std::mem::take(&mut self.touched), records: std::mem::take(&mut self.touched_records) }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether every per-member column (home stores, runs, loyalty) has one entry per member, as a
    /// snapshot read back must.
    pub(crate) fn covers_every_member(&self) -> bool {
        let n = self.members.len();
        self.members.is_whole()
            && self.homes_unknown.keys().next_back().is_none_or(|&o| (o as usize) < n)
            && [
                self.home_store.len(),
                self.visits.count(),
                self.purchases.count(),
                self.checks.count(),
                self.loyalty.tier.len(),
                self.loyalty.balance.len(),
            ]
            .iter()
            .all(|&l| l == n)
    }

    /// What the main structures hold, in bytes.
    pub fn footprint(&self) -> Vec<(&'static str, usize)> {
        let bitmaps = self.ever_bought.iter().map(|b| b.serialized_size()).sum();
        vec![
            ("members", self.members.bytes()),
            ("visits", self.visits.bytes()),
            ("purchases", self.purchases.bytes()),
            ("checks", self.checks.bytes()),
            ("product days", self.product_days.bytes()),
            ("check days", self.check_days.bytes()),
            ("recent days", if self.recent.pending() { 0 } else { self.recent.get().bytes() }),
            ("buyers per product", bitmaps),
        ]
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Asks for the facts of members ahead of `members[i]` to be brought into the cache, in two
    /// steps: the slots of the member [`AHEAD`] places on, the runs of the one half as far (whose
    /// slots were asked for earlier). For loops over scattered members (an update's touched ones),
    /// called once per member with the kinds of facts the loop reads. Measured at 1M members (perf
    /// samples of five updates against the phases left alone): the features' rows 30% fewer.
    #[inline]
    pub(crate) fn read_ahead(&self, members: &[u32], i: usize, kinds: Kinds) {
        if let Some(&o) = members.get(i + AHEAD) {
            self.prefetch_slots(o as usize, kinds);
        }
        if let Some(&o) = members.get(i + AHEAD / 2) {
            self.prefetch_runs(o as usize, kinds);
        }
    }

    /// Asks for member `o`'s slots (and record) of `kinds` to be brought into the cache.
    #[inline]
    fn prefetch_slots(&self, o: usize, kinds: Kinds) {
        if kinds.visits {
            self.visits.prefetch_slot(o);
        }
        if kinds.purchases {
            self.purchases.prefetch_slot(o);
        }
        if kinds.checks {
            self.checks.prefetch_slot(o);
        }
        if kinds.record {
            self.members.prefetch(o);
        }
    }

    /// Asks for member `o`'s runs of `kinds` to be brought into the cache (reads their slots).
    #[inline]
    fn prefetch_runs(&self, o: usize, kinds: Kinds) {
        if kinds.visits {
            self.visits.prefetch_run(o);
        }
        if kinds.purchases {
            self.purchases.prefetch_run(o);
        }
        if kinds.checks {
            self.checks.prefetch_run(o);
        }
    }

    /// Member `o`'s tickets, as of the last seal.
    pub fn visits(&self, o: usize) -> &[Visit] {
        self.visits.of(o)
    }

    /// Member `o`'s purchases, as of the last seal.
    pub fn purchases(&self, o: usize) -> &[Purchase] {
        self.purchases.of(o)
    }

    /// Member `o`'s health checks, as of the last seal.
    pub fn checks(&self, o: usize) -> &[Check] {
        self.checks.of(o)
    }

    /// Purchases by product and day (as of the last seal), for `bought(...)`.
    pub fn product_days(&self) -> &ProductDays {
        &self.product_days
    }

    /// Health checks by kind and day (as of the last seal), for `checked(...)`.
    pub fn check_days(&self) -> &CheckDays {
        &self.check_days
    }

    /// The purchases' and the checks' runs, for tests of what is built from them.
    #[cfg(test)]
    pub(crate) fn runs(&self) -> (&Runs<Purchase>, &Runs<Check>) {
        (&self.purchases, &self.checks)
    }

    /// Members' most recent days per category and check kind.
    pub fn recent(&self) -> &RecentDays {
        self.recent.get()
    }

    /// Purchases held, over all members.
    pub fn purchase_count(&self) -> usize {
        self.purchases.total()
    }

    pub fn ordinal(&self, id: MemberId) -> Option<u32> {
        self.ordinal.get(id.0)
    }

    pub fn store_index(&self, id: i64) -> u32 {
        self.store_index.get(&id).copied().unwrap_or(NONE_U32)
    }

    /// Adds new stores; known ones keep their index (and get their new code and name).
    pub fn set_stores(&mut self, stores: Vec<StoreFact>) {
        for s in stores {
            match self.store_index.get(&s.id.0) {
                Some(&i) => self.stores[i as usize] = s,
                None => {
                    self.store_index.insert(s.id.0, self.stores.len() as u32);
                    self.stores.push(s);
                }
            }
        }
        let store_index = &self.store_index;
        self.homes_unknown.retain(|&o, id| {
            let Some(&home) = store_index.get(id) else { return true };
            self.home_store[o as usize] = home;
            self.touched.insert(o);
            self.touched_records.insert(o);
            false
        });
    }

    /// Adds new products; known ones keep their index (and get their new attributes).
    pub fn set_products(&mut self, products: Vec<ProductFact>) {
        for p in products {
            match self.product_index.get(&p.id.0) {
                Some(&i) => self.products[i as usize] = p,
                None => {
                    self.product_index.insert(p.id.0, self.products.len() as u32);
                    self.products.push(p);
                    self.ever_bought.push(RoaringBitmap::new());
                }
            }
        }
        self.product_days.grow(self.products.len());
        self.recent.get_mut().sync_products(&self.products);
    }

    /// Adds or updates a member; returns its ordinal and whether it was new.
    pub fn apply_member(&mut self, m: &MemberFact) -> (u32, bool) {
        self.watermark.member_updated_at = self.watermark.member_updated_at.max(m.updated_at);
        let home = m.store.map_or(NONE_U32, |s| self.store_index(s.0));
        let o = self.ordinal.get(m.id.0);
        let at = o.unwrap_or(self.members.len() as u32);
        match m.store.filter(|_| home == NONE_U32) {
            Some(id) => self.homes_unknown.insert(at, id.0),
            None => self.homes_unknown.remove(&at),
        };
        match o {
            Some(o) => {
                self.members.set(o as usize, m, self.offset_minutes);
                self.home_store[o as usize] = home;
                self.touched.insert(o);
                self.touched_records.insert(o);
                (o, false)
            }
            None => {
                let o = self.members.len() as u32;
                self.ordinal.insert(m.id.0, o);
                self.members.set(o as usize, m, self.offset_minutes);
                self.home_store.push(home);
                let n = self.members.len();
                self.visits.grow(n);
                self.purchases.grow(n);
                self.checks.grow(n);
                self.loyalty.grow(n);
                // Touched as a range when taken.
                self.added_from.get_or_insert(o);
                (o, true)
            }
        }
    }

    /// Takes the loyalty rules' tier levels ([`Loyalty::set_levels`]): members whose level number
    /// moved are touched (a level's name may now be another code's). Returns whether they changed.
    pub fn set_tier_levels(&mut self, levels: Vec<rxmember_core::facts::TierLevelFact>) -> bool {
        let (touched, records) = (&mut self.touched, &mut self.touched_records);
        self.loyalty.set_levels_noting(levels, |o| {
            touched.insert(o);
            records.insert(o);
        })
    }

    /// Replaces the loyalty state of the members given (members not known yet are skipped: their
    /// state is read with them) and marks them touched.
    pub fn apply_loyalty(&mut self, facts: Vec<LoyaltyFact>) {
        let states: Vec<MemberLoyalty> = facts
            .into_iter()
            .filter_map(|f| {
                let o = self.ordinal.get(f.member.0)?;
                self.touched.insert(o);
                self.touched_records.insert(o);
                Some(MemberLoyalty { ordinal: o, balance: f.balance, expiring: f.expiring, tier: f.tier })
            })
            .collect();
        self.loyalty.apply(states);
    }

    /// Forgets a member's history before it is read again whole (from the next seal on).
    pub fn clear_history(&mut self, o: u32) {
        let at = self.pending.lengths();
        self.pending.cleared.push((o, at));
    }

    /// Counts a newly read ticket (member or not) into the day totals and advances the watermark.
    pub fn apply_ticket_totals(&mut self, t: &TicketFact) {
        self.watermark.ticket_id = self.watermark.ticket_id.max(t.id.0);
        let d = self.days.entry(day_of(t.sold_at, self.offset_minutes)).or_default();
        count_ticket(d, t);
    }

    /// Reads a page of tickets and their lines: every ticket into the day totals when `totals`
    /// ([`CompanyData::apply_ticket_totals`]), and the tickets and lines of the members `keep`
    /// keeps into their facts ([`CompanyData::apply_ticket_visit`], [`CompanyData::apply_line`]).
    /// The same as those calls one by one, faster on a big page: the day totals are added a run
    /// of same-day tickets at a time, and the members' ordinals are looked up for the whole page
    /// before any fact is written — independent loads the processor overlaps (at 10M members each
    /// is a cache miss) — and lines following their ticket take its ordinal.
    pub fn apply_sales(
        &mut self,
        tickets: &[TicketFact],
        lines: &[LineFact],
        totals: bool,
        keep: impl Fn(MemberId) -> bool,
    ) {
        if totals {
            let mut run: Option<(Day, DayTotals)> = None;
            for t in tickets {
                self.watermark.ticket_id = self.watermark.ticket_id.max(t.id.0);
                let day = day_of(t.sold_at, self.offset_minutes);
                match &mut run {
                    Some((d, sum)) if *d == day => count_ticket(sum, t),
                    _ => {
                        if let Some((d, sum)) = run.take() {
                            add_totals(self.days.entry(d).or_default(), &sum);
                        }
                        let mut sum = DayTotals::default();
                        count_ticket(&mut sum, t);
                        run = Some((day, sum));
                    }
                }
            }
            if let Some((d, sum)) = run {
                add_totals(self.days.entry(d).or_default(), &sum);
            }
        }
        // Members' ids come in no order: each ticket's ordinal is a cache miss in an array of 40 MB
        // at 10M members, asked for a few tickets ahead.
        let mut ordinals = std::mem::take(&mut self.page_ordinals);
        ordinals.clear();
        ordinals.extend(tickets.iter().enumerate().map(|(i, t)| {
            if let Some(m) = tickets.get(i + ORDINALS_AHEAD).and_then(|t| t.member) {
                self.ordinal.prefetch(m.0);
            }
            t.member.filter(|&m| keep(m)).and_then(|m| self.ordinal(m)).unwrap_or(NONE_U32)
        }));
        for (t, &o) in tickets.iter().zip(&ordinals) {
            if o != NONE_U32 {
                self.push_visit(t, o);
            }
        }
        // Lines come in their tickets' order: a cursor over the tickets finds theirs.
        let mut at = 0;
        for l in lines {
            while at < tickets.len() && tickets[at].id != l.ticket && tickets[at].id.0 <= l.ticket.0 {
                at += 1;
            }
            let o = match tickets.get(at) {
                Some(t) if t.id == l.ticket && t.member == Some(l.member) => ordinals[at],
                _ if keep(l.member) => self.ordinal(l.member).unwrap_or(NONE_U32),
                _ => NONE_U32,
            };
            if o != NONE_U32 {
                self.push_line(l, o);
            }
        }
        self.page_ordinals = ordinals;
    }

    /// Adds a member ticket to its member's visits.
    pub fn apply_ticket_visit(&mut self, t: &TicketFact) {
        let Some(m) = t.member else { return };
        let Some(o) = self.ordinal(m) else { return };
        self.push_visit(t, o);
    }

    /// Adds a ticket of member `o` to the log.
    fn push_visit(&mut self, t: &TicketFact, o: u32) {
        self.last_ticket = t.member.map(|m| (t.id.0, m.0, o));
        let store = self.store_index(t.store.0);
        crate::pages::push(
            &mut self.pending.visits,
            PendingVisit {
                member: o,
                day: day_of(t.sold_at, self.offset_minutes),
                store,
                items: t.line_count.max(0) as u32,
                ticket: t.id.0,
                amount: fen32(t.amount),
                discount: fen32(t.discount),
                cost: fen32(t.cost),
            },
        );
    }

    pub fn apply_line(&mut self, l: &LineFact) {
        let o = match self.last_ticket {
            Some((ticket, member, o)) if ticket == l.ticket.0 && member == l.member.0 => o,
            _ => match self.ordinal(l.member) {
                Some(o) => o,
                None => return,
            },
        };
        self.push_line(l, o);
    }

    /// Adds a line of member `o` to the log (a line of an unknown product is left out).
    fn push_line(&mut self, l: &LineFact, o: u32) {
        let Some(&p) = self.product_index.get(&l.product.0) else { return };
        let day = day_of(l.sold_at, self.offset_minutes);
        crate::pages::push(
            &mut self.pending.lines,
            PendingLine { ticket: l.ticket.0, member: o, day, product: p, amount: fen32(l.amount) },
        );
    }

    /// Takes a newly read return off the day totals of the ticket's day and advances the watermark.
    pub fn apply_return_totals(&mut self, r: &ReturnFact) {
        self.watermark.return_id = self.watermark.return_id.max(r.id);
        let d = self.days.entry(day_of(r.sold_at, self.offset_minutes)).or_default();
        d.amount -= r.amount;
        d.cost -= r.cost;
        if r.member.is_some() {
            d.member_amount -= r.amount;
            d.member_cost -= r.cost;
        }
    }

    /// Nets a return out of its member's visit and purchase (at the next seal).
    pub fn apply_return_member(&mut self, r: &ReturnFact) {
        let Some(o) = r.member.and_then(|m| self.ordinal(m)) else { return };
        let product = self.product_index.get(&r.product.0).copied().unwrap_or(NONE_U32);
        self.pending.returns.push((
            o,
            PendingReturn {
                ticket: r.ticket.0,
                day: day_of(r.sold_at, self.offset_minutes),
                product,
                amount: r.amount,
                cost: r.cost,
            },
        ));
    }

    pub fn advance_checks(&mut self, c: &HealthCheckFact) {
        self.watermark.check_id = self.watermark.check_id.max(c.id);
    }

    /// Reads a page of health checks: every check advances the watermark when `advance`
    /// ([`CompanyData::advance_checks`]), and the checks of the members `keep` keeps go to their
    /// facts ([`CompanyData::apply_check`]); the ordinals are looked up for the whole page first
    /// (as in [`CompanyData::apply_sales`]).
    pub fn apply_checks(&mut self, checks: &[HealthCheckFact], advance: bool, keep: impl Fn(MemberId) -> bool) {
        if advance {
            checks.iter().for_each(|c| self.advance_checks(c));
        }
        let mut ordinals = std::mem::take(&mut self.page_ordinals);
        ordinals.clear();
        ordinals.extend(
            checks.iter().map(|c| if keep(c.member) { self.ordinal(c.member) } else { None }.unwrap_or(NONE_U32)),
        );
        for (c, &o) in checks.iter().zip(&ordinals) {
            if o != NONE_U32 {
                self.push_check(c, o);
            }
        }
        self.page_ordinals = ordinals;
    }

    pub fn apply_check(&mut self, c: &HealthCheckFact) {
        if let Some(o) = self.ordinal(c.member) {
            self.push_check(c, o);
        }
    }

    /// Adds a check of member `o` to the log.
    fn push_check(&mut self, c: &HealthCheckFact, o: u32) {
        let day = day_of(c.checked_at, self.offset_minutes);
        crate::pages::push(&mut self.pending.checks, (o, Check { day, kind: c.kind, abnormal: c.abnormal }));
    }

    /// Writes the facts read since the last seal into their members' runs and the by-day indexes:
    /// each touched member's run is copied once to the arena's end with its new facts; returns are
    /// netted after the lines they return. Readers see facts only once sealed.
    pub fn seal(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let n = self.len();
        let cleared: FastMap<u32, [usize; 4]> = pending.cleared.iter().copied().collect();
        let mut cleared_order: Vec<u32> = cleared.keys().copied().collect();
        cleared_order.sort_unstable();
        // A full build: no arena holds anything yet (checks may come before the first sale).
        let fresh_build =
            self.visits.items.is_empty() && self.purchases.items.is_empty() && self.checks.items.is_empty();
        if !cleared.is_empty() {
            // A history read again whole may leave entries on days its run no longer has: the
            // recent days are built afresh below.
            self.recent.get_mut().stale = true;
        }
        if fresh_build {
            crate::pages::reserve_exact(&mut self.visits.items, arena_for(pending.visits.len(), n));
            crate::pages::reserve_exact(&mut self.purchases.items, arena_for(pending.lines.len(), n));
            crate::pages::reserve_exact(&mut self.checks.items, arena_for(pending.checks.len(), n));
        }
        let mut timings = Vec::new();
        let mut clock = std::time::Instant::now();
        let mut lap = |name: &'static str, timings: &mut Vec<(&'static str, f64)>| {
            timings.push((name, clock.elapsed().as_secs_f64() * 1000.0));
            clock = std::time::Instant::now();
        };
        // The logs are grouped on two threads: lines and checks on one, visits and returns on the
        // other (about as many bytes each).
        let (visit_log, line_log, return_log, check_log) = std::thread::scope(|s| {
            let lines = s.spawn(|| (group(pending.lines, n, &cleared, 1), group(pending.checks, n, &cleared, 3)));
            let visits = group(pending.visits, n, &cleared, 0);
            let returns = group(pending.returns, n, &cleared, 2);
            let (lines, checks) = lines.join().expect("grouping does not panic");
            (visits, lines, returns, checks)
        });
        lap("grouping by member", &mut timings);
        let logs = Logs { visits: &visit_log, lines: &line_log, returns: &return_log, checks: &check_log };
        if fresh_build && cleared.is_empty() {
            let parts = std::thread::available_parallelism().map_or(1, |n| n.get()).min(8);
            let mut runs =
                RunsMut { visits: &mut self.visits, purchases: &mut self.purchases, checks: &mut self.checks };
            // SAFETY: the grouped logs are dropped just below, unread.
            let written = unsafe {
                runs.write_fresh(RawLogs::of(logs), &mut self.ever_bought, parts, Some(crate::pages::RELEASE_STEP))
            };
            drop((visit_log, line_log, return_log, check_log));
            lap("writing runs", &mut timings);
            let parts = self.build_by_day();
            lap("by-day indexes", &mut timings);
            timings.extend(parts);
            self.seal_timings = timings;
            self.touched |= RoaringBitmap::from_sorted_iter(written).expect("members are written in order");
            return;
        }
        let mut logs = logs;
        let mut touched: Vec<u32> = Vec::new();
        // A member's runs before the seal, to tell the by-day indexes what changed.
        let mut old_purchases: Vec<Purchase> = Vec::new();
        let mut old_checks: Vec<Check> = Vec::new();
        let mut next_cleared = cleared_order.iter().peekable();
        // An update's time in the by-day indexes (not timed per member in a full build).
        let mut postings_s = 0.0;
        // An update keeps the recent days in step on a thread of its own, fed the touched members'
        // old and new runs in batches while the runs are written, and left to finish while the
        // caller goes on (see [`CompanyData::settle`]); a full build, or recent days to be built
        // afresh anyway, has none.
        let beside = !fresh_build && !self.recent.get_mut().stale;
        let (batches, feed) = std::sync::mpsc::sync_channel::<Changes>(RECENT_QUEUE);
        if beside {
            let mut recent = self.recent.take();
            self.recent = Beside::later(move || {
                for batch in feed {
                    recent.replace_all(&batch);
                }
                recent.flush();
                recent
            });
        }
        let mut batch = Changes::default();
        // The members a few ahead in the tickets' log (a member has a ticket or so a day) are
        // asked for while this one is written (see [`CompanyData::read_ahead`]).
        let every = Kinds { visits: true, purchases: true, checks: true, record: false };
        loop {
            if let Some(v) = logs.visits.get(AHEAD) {
                self.prefetch_slots(v.member as usize, every);
            }
            if let Some(v) = logs.visits.get(AHEAD / 2) {
                self.prefetch_runs(v.member as usize, every);
            }
            let o = logs.head();
            let o = next_cleared.peek().map_or(o, |&&c| c.min(o));
            if o == u32::MAX {
                break;
            }
            if next_cleared.peek().is_some_and(|&&c| c == o) {
                next_cleared.next();
            }
            touched.push(o);
            let fresh = cleared.contains_key(&o);
            let m = o as usize;
            if !fresh_build {
                old_purchases.clear();
                old_purchases.extend_from_slice(self.purchases.of(m));
                old_checks.clear();
                old_checks.extend_from_slice(self.checks.of(m));
            }
            RunsMut { visits: &mut self.visits, purchases: &mut self.purchases, checks: &mut self.checks }
                .write_member(m, fresh, &logs.take(o));

            // Only purchases new to the run can add a buyer (a cleared run is new in full).
            let kept = if fresh || fresh_build { 0 } else { old_purchases.len() };
            add_buyer(&mut self.ever_bought, o, self.purchases.of(m).get(kept..).unwrap_or_default());
            if !fresh_build {
                // A cleared member's old facts all go: the positional comparison removes them.
                let t = std::time::Instant::now();
                self.product_days.replace(o, &old_purchases, self.purchases.of(m));
                self.check_days.replace(o, &old_checks, self.checks.of(m));
                postings_s += t.elapsed().as_secs_f64();
            }
            if beside {
                batch.push(o, (&old_purchases, &old_checks), (self.purchases.of(m), self.checks.of(m)));
                if batch.len() >= RECENT_BATCH {
                    batches.send(std::mem::take(&mut batch)).expect("the recent days' thread runs");
                }
            }
        }
        if batch.len() > 0 {
            batches.send(batch).expect("the recent days' thread runs");
        }
        drop(batches);
        // The log, now in the runs, goes before the compaction and the by-day indexes allocate.
        drop((visit_log, line_log, return_log, check_log));
        lap("writing runs", &mut timings);
        if !fresh_build {
            // Of which: the by-day indexes kept in step member by member.
            timings.push(("of which postings", postings_s * 1000.0));
        }
        self.visits.compact();
        self.purchases.compact();
        self.checks.compact();
        lap("compaction", &mut timings);
        let parts = if fresh_build {
            self.build_by_day()
        } else if !beside && self.recent.get_mut().stale {
            self.rebuild_recent()
        } else {
            Vec::new()
        };
        lap("by-day indexes", &mut timings);
        timings.extend(parts);
        self.seal_timings = timings;
        self.touched |= RoaringBitmap::from_sorted_iter(touched).expect("members are visited in order");
    }

    /// Waits for the recent days' upkeep a seal left on a thread of its own, and builds them afresh
    /// if they are stale (the upkeep found too many stale entries, or a product changed category
    /// since the last seal): call it after the work that goes on beside it (an
    /// update's recompute). Until then readers of [`CompanyData::recent`] wait for the upkeep, and
    /// stale recent days answer no question (the postings do). Adds to the seal's timings how long
    /// the upkeep took and how long it was waited for here.
    pub fn settle(&mut self) {
        let t = std::time::Instant::now();
        if self.recent.pending() {
            let busy_s = self.recent.busy_s();
            self.seal_timings.push(("recent days (beside)", busy_s * 1000.0));
            self.seal_timings.push(("waiting for them", t.elapsed().as_secs_f64() * 1000.0));
        }
        if self.recent.get_mut().stale {
            let parts = self.rebuild_recent();
            self.seal_timings.extend(parts);
        }
    }

    fn rebuild_recent(&mut self) -> Vec<(&'static str, f64)> {
        let t = std::time::Instant::now();
        let spans = self.day_spans();
        self.recent.get_mut().build(&self.purchases, &self.checks, spans);
        vec![("of which recent days afresh", t.elapsed().as_secs_f64() * 1000.0)]
    }

    /// Members (ordinals) with any health check: a prefilter for `checked(...)`.
    pub fn checked_members(&self) -> RoaringBitmap {
        RoaringBitmap::from_sorted_iter(
            self.checks.len.iter().enumerate().filter(|(_, l)| **l > 0).map(|(i, _)| i as u32),
        )
        .expect("ordinals ascend")
    }

    /// The ordinals of a set of member ids (unknown ids ignored).
    pub fn ordinals_of(&self, ids: &HashSet<i64>) -> RoaringBitmap {
        ids.iter().filter_map(|id| self.ordinal.get(*id)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn day_arithmetic_agrees_with_the_calendar(ms in -2_000_000_000_000i64..4_000_000_000_000, offset in -720i32..=840) {
            let by_calendar = rxmember_core::time::local_date(ms, offset).num_days_from_ce();
            prop_assert_eq!(day_of(ms, offset), by_calendar);
        }
    }

    /// Ticket `id` of member `m` on day offset `day`, one line of product 1 per amount.
    fn sale(data: &mut CompanyData, id: i64, m: i64, day: i64, amounts: &[i64]) {
        let lines: Vec<(i64, i64)> = amounts.iter().map(|&a| (1, a)).collect();
        crate::test_support::ticket(data, id, m, 1, day * 86_400_000, &lines);
    }

    fn refund(data: &mut CompanyData, id: i64, ticket: i64, m: i64, day: i64, amount: i64) {
        use rxmember_core::{ProductId, TicketId};
        data.apply_return_member(&ReturnFact {
            id,
            ticket: TicketId(ticket),
            member: Some(MemberId(m)),
            sold_at: day * 86_400_000,
            product: ProductId(1),
            amount,
            cost: 0,
        });
    }

    fn company() -> CompanyData {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.set_stores(vec![StoreFact { id: rxmember_core::StoreId(1), code: "S1".into(), name: "一店".into() }]);
        data.set_products(vec![ProductFact {
            id: rxmember_core::ProductId(1),
            code: "P1".into(),
            name: "药".into(),
            category_code: None,
            manufacturer: None,
            brand: None,
            is_prescription: false,
        }]);
        for m in 1..=3 {
            data.apply_member(&crate::test_support::member(m));
        }
        data
    }

    /// A member whose home store is read after it gets the store once the store arrives; one
    /// whose record then names another unknown store loses it until that one arrives.
    #[test]
    fn a_home_store_read_later_is_placed() {
        use rxmember_core::StoreId;
        let store = |id: i64| StoreFact { id: StoreId(id), code: format!("S{id}"), name: "店".into() };
        let mut data = company();
        let mut m = crate::test_support::member(4);
        m.store = Some(StoreId(2));
        let (o, _) = data.apply_member(&m);
        let mut known = crate::test_support::member(5);
        known.store = Some(StoreId(1));
        let (k, _) = data.apply_member(&known);
        assert_eq!((data.home_store[o as usize], data.home_store[k as usize]), (NONE_U32, 0));
        data.take_touched();
        data.set_stores(vec![store(2)]);
        assert_eq!(data.home_store[o as usize], 1);
        assert_eq!(data.take_touched().records.iter().collect::<Vec<_>>(), vec![o]);
        m.store = Some(StoreId(3));
        data.apply_member(&m);
        assert_eq!(data.home_store[o as usize], NONE_U32);
        // Moved back to a known store before the unknown one arrives: that store's arrival changes
        // nothing.
        m.store = Some(StoreId(1));
        data.apply_member(&m);
        data.take_touched();
        data.set_stores(vec![store(3)]);
        assert_eq!(data.home_store[o as usize], 0);
        assert!(data.take_touched().all.is_empty());
    }

    /// Members read since the last take are touched, records included, whether new (a range
    /// added when taken, across containers) or read again; a take forgets them.
    #[test]
    fn members_read_are_touched_until_taken() {
        let mut data = company();
        data.take_touched();
        let before = data.len() as u32;
        let member = crate::test_support::member;
        let added: RoaringBitmap = (0..70_000).map(|i| data.apply_member(&member(1_000 + i)).0).collect();
        assert_eq!(added, RoaringBitmap::from_iter(before..before + 70_000));
        let t = data.take_touched();
        assert_eq!((t.all, t.records), (added.clone(), added));
        assert!(data.take_touched().all.is_empty());
        let again = data.apply_member(&member(1_005));
        let new = data.apply_member(&member(5_000_000));
        assert_eq!((again, new), ((before + 5, false), (before + 70_000, true)));
        let t = data.take_touched();
        let want = RoaringBitmap::from_iter([before + 5, before + 70_000]);
        assert_eq!((t.all, t.records), (want.clone(), want));
    }

    fn runs(data: &CompanyData) -> Vec<(Vec<Visit>, Vec<Purchase>)> {
        (0..data.len()).map(|o| (data.visits(o).to_vec(), data.purchases(o).to_vec())).collect()
    }

    /// Damaged run lengths are an error, never a panic or a giant allocation.
    #[test]
    fn damaged_runs_are_refused() {
        let read = |len: Vec<u32>, facts: Vec<u64>| {
            let bytes = postcard::to_allocvec(&(len, facts)).unwrap();
            postcard::from_bytes::<Runs<u64>>(&bytes)
                .map(|r| (0..r.count()).map(|o| r.of(o).to_vec()).collect::<Vec<_>>())
        };
        assert_eq!(read(vec![2, 0, 1], vec![7, 8, 9]).unwrap(), [vec![7, 8], vec![], vec![9]]);
        assert!(read(vec![u32::MAX, u32::MAX], vec![1]).is_err(), "longer than an arena");
        assert!(read(vec![1 << 30], vec![1, 2]).is_err(), "fewer facts than claimed");
        assert!(read(vec![1], vec![1, 2]).is_err(), "more facts than claimed");
    }

    /// A snapshot keeps the runs (without their room or garbage) and what follows a restore is
    /// what would have followed without one.
    #[test]
    fn a_snapshot_restores_the_runs_and_updates_go_on_from_it() {
        let mut data = company();
        let mut ticket = 0;
        for day in 0..12 {
            for m in 1..=3 {
                if (day + m) % 2 == 0 || m == 1 {
                    ticket += 1;
                    sale(&mut data, ticket, m, day, &[100 * m, 50]);
                }
            }
            if day == 5 {
                refund(&mut data, 1, 1, 1, 0, 50);
            }
            data.seal();
        }
        assert!(data.purchases.items.len() > data.purchases.total(), "slots have room");
        let bytes = crate::company::CompanyEngine::write_snapshot(&data, Vec::new()).unwrap();
        let mut back = crate::company::CompanyEngine::restore(&bytes).expect("reads back");
        assert_eq!(runs(&back), runs(&data));
        assert_eq!(back.purchases.garbage, 0);
        assert_eq!(back.purchases.total(), data.purchases.total());
        for data in [&mut data, &mut back] {
            sale(data, 100, 2, 12, &[70]);
            refund(data, 2, 3, 1, 1, 100);
            data.seal();
        }
        assert_eq!(runs(&back), runs(&data));
        let postings = |d: &CompanyData| {
            let mut seen = Vec::new();
            d.product_days().each(&[0], Day::MIN, Day::MAX, |day, p| seen.push((day, p.member, p.amount)));
            seen.sort();
            seen
        };
        assert_eq!(postings(&back), postings(&data));
        // A damaged snapshot is refused, not half-read.
        assert!(crate::company::CompanyEngine::restore(&bytes[..bytes.len() - 3]).is_none());
    }

    /// A return nets out of its ticket's amount and cost and counts as a returned line, whether it
    /// is sealed with its sale or days later.
    #[test]
    fn a_return_nets_out_of_its_visit() {
        use rxmember_core::{ProductId, StoreId, TicketId};
        let sold_at = 10 * 86_400_000;
        let ticket = TicketFact {
            id: TicketId(7),
            member: Some(MemberId(2)),
            store: StoreId(1),
            sold_at,
            line_count: 3,
            amount: 900,
            discount: 40,
            cost: 600,
        };
        let give_back = |data: &mut CompanyData, id, amount, cost| {
            data.apply_return_member(&ReturnFact {
                id,
                ticket: TicketId(7),
                member: Some(MemberId(2)),
                sold_at,
                product: ProductId(1),
                amount,
                cost,
            })
        };
        let (mut once, mut later) = (company(), company());
        for data in [&mut once, &mut later] {
            data.apply_ticket_visit(&ticket);
        }
        later.seal();
        for data in [&mut once, &mut later] {
            give_back(data, 1, 300, 200);
            give_back(data, 2, 100, 70);
            data.seal();
        }
        for data in [&once, &later] {
            let v = data.visits(1);
            assert_eq!(v.len(), 1);
            assert_eq!((v[0].net, v[0].cost, v[0].discount), (500, 330, 40), "amount and cost net of returns");
            assert_eq!((v[0].items, v[0].returned_lines), (3, 2));
        }
    }

    /// Lines of one product on one ticket make one purchase, placed at its visit; a return nets it,
    /// in the same seal or a later one. A line whose ticket is not among its member's visits is a
    /// purchase of its own (no store), as is a return of such a ticket: the day's net is the same.
    #[test]
    fn purchases_know_their_visit() {
        use rxmember_core::{ProductId, StoreId, TicketId};
        let day = 10 * 86_400_000;
        let mut data = company();
        let ticket = |id| TicketFact {
            id: TicketId(id),
            member: Some(MemberId(2)),
            store: StoreId(1),
            sold_at: day,
            line_count: 2,
            amount: 500,
            discount: 0,
            cost: 300,
        };
        let line = |ticket, amount| LineFact {
            ticket: TicketId(ticket),
            member: MemberId(2),
            sold_at: day,
            product: ProductId(1),
            amount,
        };
        let refund = |ticket, amount| ReturnFact {
            id: ticket,
            ticket: TicketId(ticket),
            member: Some(MemberId(2)),
            sold_at: day,
            product: ProductId(1),
            amount,
            cost: 0,
        };
        for t in [5, 6] {
            data.apply_ticket_visit(&ticket(t));
            data.apply_line(&line(t, 200));
            data.apply_line(&line(t, 300));
        }
        data.seal();
        // Ticket 9 was never read as a visit: its lines stand alone.
        data.apply_line(&line(9, 100));
        data.apply_line(&line(9, 50));
        data.apply_return_member(&refund(6, 120));
        data.apply_return_member(&refund(9, 40));
        data.seal();
        let got: Vec<(u32, u32, i32)> = data.purchases(1).iter().map(|p| (p.visit, p.store, p.amount)).collect();
        assert_eq!(
            got,
            vec![
                (0, 0, 500),
                (1, 0, 380),
                (NONE_U32, NONE_U32, 100),
                (NONE_U32, NONE_U32, 50),
                (NONE_U32, NONE_U32, -40)
            ]
        );
        assert_eq!(data.purchases(1).iter().map(|p| i64::from(p.amount)).sum::<i64>(), 500 + 380 + 110);
    }

    #[test]
    fn sealing_in_steps_equals_sealing_once() {
        let mut once = company();
        let mut steps = company();
        for data in [&mut once, &mut steps] {
            sale(data, 1, 1, 10, &[500, 300]);
            sale(data, 2, 2, 11, &[200]);
        }
        steps.seal();
        for data in [&mut once, &mut steps] {
            sale(data, 3, 1, 12, &[100]);
            refund(data, 1, 1, 1, 10, 300);
            refund(data, 2, 2, 2, 11, 200);
        }
        steps.seal();
        once.seal();
        assert_eq!(runs(&once), runs(&steps));
        let p = steps.purchases(0);
        assert_eq!(
            p.iter().map(|p| p.amount).collect::<Vec<_>>(),
            [500, 100],
            "lines of one ticket merge, returns net"
        );
        assert_eq!(p[0].store, 0, "a purchase takes its visit's store");
        assert_eq!(steps.visits(1)[0].net, 0);
        let mut seen = Vec::new();
        steps.product_days().each(&[0], Day::MIN, Day::MAX, |d, p| seen.push((d, p.member, p.amount)));
        seen.sort();
        assert_eq!(seen, [(719_173, 0, 500), (719_174, 1, 0), (719_175, 0, 100)], "postings follow the runs");
    }

    #[test]
    fn a_cleared_history_is_read_again_whole() {
        let mut data = company();
        sale(&mut data, 1, 1, 10, &[500]);
        sale(&mut data, 2, 2, 11, &[200]);
        data.seal();
        sale(&mut data, 3, 1, 12, &[100]);
        data.clear_history(0);
        sale(&mut data, 1, 1, 10, &[500]);
        sale(&mut data, 3, 1, 12, &[100]);
        data.take_touched();
        assert_eq!(data.visits(0).iter().map(|v| v.ticket).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(data.purchases(0).len(), 2);
        assert_eq!(data.visits(1).len(), 1);
        let mut n = 0;
        data.product_days().each(&[0], Day::MIN, Day::MAX, |_, _| n += 1);
        assert_eq!(n, 3);
    }

    proptest! {
        /// A page read at once (as two pages) equals its facts read one by one (in any order,
        /// members unknown or left out by the filter, products unknown, with and without the day
        /// totals).
        #[test]
        fn a_page_of_sales_reads_as_its_facts_one_by_one(
            page in prop::collection::vec(
                (0i64..6, 0i64..4, prop::collection::vec((1i64..3, 1i64..500), 0..3)),
                0..40,
            ),
            reversed in any::<bool>(),
            left_out in 0i64..6,
            totals in any::<bool>(),
            split in 0usize..40,
        ) {
            // Members 1–3 are known, 4 and 5 are not, 0 is no member; product 2 is unknown.
            let mut tickets = Vec::new();
            let mut lines = Vec::new();
            for (i, (m, day, ls)) in page.iter().enumerate() {
                let member = (*m > 0).then_some(MemberId(*m));
                let t = TicketFact {
                    id: rxmember_core::TicketId(i as i64 + 1),
                    member,
                    store: rxmember_core::StoreId(1),
                    sold_at: day * 86_400_000 + i as i64,
                    line_count: ls.len() as i64,
                    amount: ls.iter().map(|l| l.1).sum(),
                    discount: 3,
                    cost: 7,
                };
                tickets.push(t);
                if let Some(member) = member {
                    for &(p, amount) in ls {
                        lines.push(LineFact { ticket: t.id, member, sold_at: t.sold_at, product: rxmember_core::ProductId(p), amount });
                    }
                }
            }
            if reversed {
                tickets.reverse();
                lines.reverse();
            }
            let keep = |m: MemberId| m.0 != left_out;
            let mut one_by_one = company();
            for t in &tickets {
                if totals {
                    one_by_one.apply_ticket_totals(t);
                }
                if t.member.is_some_and(keep) {
                    one_by_one.apply_ticket_visit(t);
                }
            }
            for l in lines.iter().filter(|l| keep(l.member)) {
                one_by_one.apply_line(l);
            }
            // Read as two pages (the second reuses the first's buffers).
            let split = split.min(tickets.len());
            let cut = lines.iter().position(|l| !tickets[..split].iter().any(|t| t.id == l.ticket)).unwrap_or(lines.len());
            let mut at_once = company();
            at_once.apply_sales(&tickets[..split], &lines[..cut], totals, keep);
            at_once.apply_sales(&tickets[split..], &lines[cut..], totals, keep);
            one_by_one.seal();
            at_once.seal();
            prop_assert_eq!(&at_once.days, &one_by_one.days);
            prop_assert_eq!(at_once.watermark, one_by_one.watermark);
            prop_assert_eq!(runs(&at_once), runs(&one_by_one));
        }

        /// A page of health checks read at once (as two pages) equals its checks read one by one.
        #[test]
        fn a_page_of_checks_reads_as_its_checks_one_by_one(
            page in prop::collection::vec((0i64..6, 0i64..4, any::<bool>()), 0..30),
            left_out in 0i64..6,
            advance in any::<bool>(),
            split in 0usize..30,
        ) {
            let checks: Vec<HealthCheckFact> = page
                .iter()
                .enumerate()
                .map(|(i, &(m, day, abnormal))| HealthCheckFact {
                    id: 100 - i as i64,
                    member: MemberId(m),
                    checked_at: day * 86_400_000,
                    kind: HealthKind::BloodGlucose,
                    abnormal,
                })
                .collect();
            let keep = |m: MemberId| m.0 != left_out;
            let mut one_by_one = company();
            for c in &checks {
                if advance {
                    one_by_one.advance_checks(c);
                }
                if keep(c.member) {
                    one_by_one.apply_check(c);
                }
            }
            let (first, second) = checks.split_at(split.min(checks.len()));
            let mut at_once = company();
            at_once.apply_checks(first, advance, keep);
            at_once.apply_checks(second, advance, keep);
            one_by_one.seal();
            at_once.seal();
            prop_assert_eq!(at_once.watermark, one_by_one.watermark);
            let checks_of = |d: &CompanyData| (0..d.len()).map(|o| d.checks(o).to_vec()).collect::<Vec<_>>();
            prop_assert_eq!(checks_of(&at_once), checks_of(&one_by_one));
        }

        #[test]
        fn grouping_by_member_keeps_the_order_read(members in prop::collection::vec(0u32..5000, 0..3000)) {
            let log: Vec<(u32, usize)> = members.iter().enumerate().map(|(i, &o)| (o, i)).collect();
            let mut want = log.clone();
            want.sort_by_key(|e| e.0);
            prop_assert_eq!(group(log, 5000, &FastMap::default(), 0), want);
        }

        /// The same with logs of many pages given back a few pages at a time as they are read.
        #[test]
        fn grouping_that_gives_the_log_back_as_it_reads_keeps_the_order_read(
            members in prop::collection::vec(0u32..2000, 2000..40_000),
            pages in 1usize..4,
        ) {
            let log: Vec<(u32, usize)> = members.iter().enumerate().map(|(i, &o)| (o, i)).collect();
            let mut want = log.clone();
            want.sort_by_key(|e| e.0);
            prop_assert_eq!(group_releasing(log, 2000, &FastMap::default(), 0, pages * 256), want);
        }

        /// Runs hold what was pushed, member by member, however slots fill, move and compact;
        /// garbage and the facts held are accounted exactly.
        #[test]
        fn runs_hold_each_members_facts(steps in prop::collection::vec((0usize..6, any::<bool>(), 0usize..7), 1..120)) {
            let mut runs: Runs<u64> = Runs::default();
            let mut want: Vec<Vec<u64>> = Vec::new();
            let mut next = 0u64;
            for (o, fresh, extra) in steps {
                if o >= want.len() {
                    want.resize(o + 1, Vec::new());
                    runs.grow(o + 1);
                }
                let fresh = fresh && extra % 3 == 0;
                runs.open(o, fresh, extra);
                if fresh {
                    want[o].clear();
                }
                let mut slot = runs.slot(o);
                for _ in 0..extra {
                    next += 1;
                    slot.push(next);
                    want[o].push(next);
                }
                let l = slot.len;
                runs.set_len(o, l);
                runs.compact();
                let slots: usize = (0..runs.count()).map(|m| runs.cap[m] as usize).sum();
                prop_assert_eq!(slots + runs.garbage, runs.items.len());
                prop_assert_eq!(runs.total(), want.iter().map(Vec::len).sum::<usize>());
                for (m, facts) in want.iter().enumerate() {
                    prop_assert_eq!(runs.of(m), &facts[..]);
                    prop_assert!(runs.len[m] <= runs.cap[m]);
                }
            }
        }
    }

    /// A member's entries for [`a_full_build_on_threads_lays_out_runs_as_one_thread_does`]: its
    /// tickets (days), lines (ticket, product, amount), returns (ticket, product — 4 for unknown —,
    /// amount) and checks (days); tickets and returns may name tickets the member lacks.
    type MemberEntries = (Vec<i32>, Vec<(i64, u32, i64)>, Vec<(i64, u32, i64)>, Vec<i32>);

    fn member_entries() -> impl Strategy<Value = MemberEntries> {
        (
            prop::collection::vec(0i32..40, 0..4),
            prop::collection::vec((0i64..5, 0u32..4, 1i64..500), 0..7),
            prop::collection::vec((0i64..5, 0u32..5, 1i64..100), 0..3),
            prop::collection::vec(0i32..40, 0..3),
        )
    }

    /// The state of an arena and its per-member columns.
    fn layout<T: Copy + Default>(r: &Runs<T>) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<T>, usize, usize) {
        (r.start.clone(), r.len.clone(), r.cap.clone(), r.items.clone(), r.held, r.garbage)
    }

    proptest! {
        /// Written on several threads, each into its stretch of the arenas, a full build lays out
        /// every run, slot and buyer exactly as one thread writing member by member does.
        #[test]
        fn a_full_build_on_threads_lays_out_runs_as_one_thread_does(
            members in prop::collection::vec(member_entries(), 0..40),
            idle in 0usize..3,
            parts in 2usize..6,
        ) {
            let n = members.len() + idle;
            let (mut visits, mut lines, mut returns, mut checks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (m, (days, ls, rs, cs)) in members.iter().enumerate() {
                let member = m as u32;
                let ticket = |t: i64| m as i64 * 10 + t;
                for (t, &day) in days.iter().enumerate() {
                    visits.push(PendingVisit { member, day, store: t as u32, items: 1, ticket: ticket(t as i64), amount: 900, discount: 0, cost: 400 });
                }
                for &(t, product, amount) in ls {
                    lines.push(PendingLine { member, day: 1, product, ticket: ticket(t), amount: amount as i32 });
                }
                for &(t, product, amount) in rs {
                    let product = if product == 4 { NONE_U32 } else { product };
                    returns.push((member, PendingReturn { ticket: ticket(t), day: 2, product, amount, cost: 1 }));
                }
                for (i, &day) in cs.iter().enumerate() {
                    checks.push((member, Check { day, kind: HealthKind::Other, abnormal: i % 2 == 0 }));
                }
            }
            let logs = Logs { visits: &visits, lines: &lines, returns: &returns, checks: &checks };
            let empty = || {
                let (mut v, mut p, mut c) = (Runs::default(), Runs::default(), Runs::default());
                v.grow(n);
                p.grow(n);
                c.grow(n);
                (v, p, c, vec![RoaringBitmap::new(); 4])
            };
            let (mut v1, mut p1, mut c1, mut b1) = empty();
            let mut cursor = logs;
            let mut w1 = Vec::new();
            while cursor.head() != u32::MAX {
                let o = cursor.head();
                RunsMut { visits: &mut v1, purchases: &mut p1, checks: &mut c1 }.write_member(o as usize, false, &cursor.take(o));
                add_buyer(&mut b1, o, p1.of(o as usize));
                w1.push(o);
            }
            for parts in [1, parts] {
                let (mut v, mut p, mut c, mut b) = empty();
                // SAFETY: nothing is given back.
                let w = unsafe { RunsMut { visits: &mut v, purchases: &mut p, checks: &mut c }.write_fresh(RawLogs::of(logs), &mut b, parts, None) };
                prop_assert_eq!(&w, &w1);
                prop_assert_eq!(layout(&v), layout(&v1));
                prop_assert_eq!(layout(&p), layout(&p1));
                prop_assert_eq!(layout(&c), layout(&c1));
                prop_assert_eq!(&b, &b1);
            }
        }
    }

    /// Logs of many pages, given back a page at a time as the runs are written on threads, are
    /// written whole: the same runs, slots and buyers as one thread writing member by member.
    #[test]
    fn a_full_build_giving_its_logs_back_as_it_writes_loses_nothing() {
        let n = 3000u32;
        let mut seed = 7u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % m
        };
        let (mut visits, mut lines, mut returns, mut checks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for member in 0..n {
            for t in 0..next(6) as i64 {
                let ticket = member as i64 * 100 + t;
                let day = t as Day * 3;
                visits.push(PendingVisit {
                    member,
                    day,
                    store: 1,
                    items: 2,
                    ticket,
                    amount: 900,
                    discount: 5,
                    cost: 400,
                });
                for _ in 0..1 + next(4) {
                    let product = next(4) as u32;
                    lines.push(PendingLine { member, day, product, ticket, amount: 100 + next(900) as i32 });
                }
                if next(10) == 0 {
                    returns.push((member, PendingReturn { ticket, day: day + 1, product: 0, amount: 50, cost: 20 }));
                }
            }
            for i in 0..next(3) {
                checks.push((member, Check { day: i as Day, kind: HealthKind::Other, abnormal: false }));
            }
        }
        assert!(lines.len() * size_of::<PendingLine>() > 64 * 4096, "logs of many pages");
        let logs = Logs { visits: &visits, lines: &lines, returns: &returns, checks: &checks };
        let empty = || {
            let (mut v, mut p, mut c) = (Runs::default(), Runs::default(), Runs::default());
            v.grow(n as usize);
            p.grow(n as usize);
            c.grow(n as usize);
            (v, p, c, vec![RoaringBitmap::new(); 4])
        };
        let (mut v1, mut p1, mut c1, mut b1) = empty();
        let mut cursor = logs;
        while cursor.head() != u32::MAX {
            let o = cursor.head();
            RunsMut { visits: &mut v1, purchases: &mut p1, checks: &mut c1 }.write_member(
                o as usize,
                false,
                &cursor.take(o),
            );
            add_buyer(&mut b1, o, p1.of(o as usize));
        }
        for parts in [1, 2, 3] {
            let (visits, lines, returns, checks) = (visits.clone(), lines.clone(), returns.clone(), checks.clone());
            let logs = Logs { visits: &visits, lines: &lines, returns: &returns, checks: &checks };
            let (mut v, mut p, mut c, mut b) = empty();
            // SAFETY: these copies of the logs are dropped unread.
            unsafe {
                RunsMut { visits: &mut v, purchases: &mut p, checks: &mut c }.write_fresh(
                    RawLogs::of(logs),
                    &mut b,
                    parts,
                    Some(4096),
                )
            };
            assert_eq!(layout(&v), layout(&v1));
            assert_eq!(layout(&p), layout(&p1));
            assert_eq!(layout(&c), layout(&c1));
            assert_eq!(b, b1);
        }
    }

    #[test]
    fn member_ids_map_to_ordinals_however_they_come() {
        let mut ids = Ordinals::default();
        let order = [1000, 1001, 1003, 50, 1_000_000_000, 1002, 1500];
        for (o, id) in order.iter().enumerate() {
            ids.insert(*id, o as u32);
        }
        for (o, id) in order.iter().enumerate() {
            assert_eq!(ids.get(*id), Some(o as u32), "id {id}");
        }
        for id in [999, 1004, 49, 2_000_000_000, -5] {
            assert_eq!(ids.get(id), None, "id {id}");
        }
    }

    /// The layouts hold what they say (the arenas are sized by them).
    #[test]
    fn facts_take_their_documented_sizes() {
        assert_eq!(std::mem::size_of::<Purchase>(), 20);
        assert_eq!(std::mem::size_of::<PendingLine>(), 24);
        assert_eq!(std::mem::size_of::<Visit>(), 32);
        assert_eq!(std::mem::size_of::<PendingVisit>(), 36);
        assert_eq!(std::mem::size_of::<Check>(), 8);
        assert_eq!(std::mem::size_of::<(u32, Check)>(), 12);
    }

    #[test]
    fn amounts_beyond_four_bytes_saturate() {
        assert_eq!(fen32(1_234), 1_234);
        assert_eq!(fen32(-(1 << 40)), i32::MIN);
        assert_eq!(fen32(1 << 40), i32::MAX);
        assert_eq!(lines16(70_000), u16::MAX);
        assert_eq!(lines16(12), 12);
    }

    #[test]
    fn visits_are_found_in_any_order() {
        let v = |ticket| Visit { ticket, day: 0, store: 0, net: 0, discount: 0, cost: 0, items: 0, returned_lines: 0 };
        let sorted: Vec<Visit> = [3, 5, 9, 12].into_iter().map(v).collect();
        let shuffled: Vec<Visit> = [12, 3, 9, 5].into_iter().map(v).collect();
        for list in [&sorted, &shuffled] {
            for t in [3, 5, 9, 12] {
                assert_eq!(list[visit_index(list, t).unwrap()].ticket, t);
            }
            assert_eq!(visit_index(list, 7), None);
        }
    }

    proptest! {
        // Each case groups half a million entries: a few cases.
        #![proptest_config(ProptestConfig::with_cases(6))]
        /// Over more members than `MIN_RANGE * MAX_RANGES`, the ranges widen (2048 members at 2M):
        /// still grouped by member in the order read.
        #[test]
        fn grouping_with_wide_ranges_keeps_the_order_read(seed in any::<u64>(), spread in 1usize..8) {
            let n = 1usize << 21;
            prop_assert_eq!(range_of(n), 2048);
            // Members drawn with a multiplicative hash over a part of the range, so that some
            // ranges are empty and others crowded.
            let log: Vec<(u32, usize)> = (0..n / 4)
                .map(|i| {
                    let h = (i as u64 ^ seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                    ((h as usize % (n / spread)) as u32, i)
                })
                .collect();
            let mut want = log.clone();
            want.sort_by_key(|e| e.0);
            prop_assert_eq!(group(log, n, &FastMap::default(), 0), want);
        }
    }
}
