//! The engine's copy of one company's facts, laid out for scanning: members get a dense ordinal
//! (0, 1, 2, ... in the order first seen), and each member's visits (tickets), purchases (ticket ×
//! product) and health checks sit in per-member vectors. Returns net out against the purchase they
//! return. This is the part persisted in a snapshot; everything derived from it is recomputed.

use chrono::NaiveDate;
use roaring::RoaringBitmap;
use rxmember_core::facts::{HealthCheckFact, LineFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact};
use rxmember_core::health::HealthKind;
use rxmember_core::{CompanyId, MemberId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Id → index maps, looked up for every fact read: foldhash instead of the DoS-resistant default
/// (the keys are the store's own ids).
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A calendar day in the company's time zone: days since 0001-01-01 (chrono's day number).
pub type Day = i32;

/// "No value" for ordinal-indexed `u32` columns (store, product).
pub const NONE_U32: u32 = u32::MAX;

/// Day number of 1970-01-01.
const EPOCH_DAY: i64 = 719_163;

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

/// One ticket of a member. Money in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Visit {
    pub ticket: i64,
    pub day: Day,
    pub store: u32,
    pub amount: i64,
    pub discount: i64,
    pub cost: i64,
    pub items: u32,
    pub returned: i64,
    pub returned_cost: i64,
    pub returned_lines: u32,
}

impl Visit {
    pub fn net(&self) -> i64 {
        self.amount - self.returned
    }
}

/// What a member bought of one product on one ticket, net of returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    pub ticket: i64,
    pub day: Day,
    pub product: u32,
    pub store: u32,
    pub amount: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub id: i64,
    pub day: Day,
    pub kind: HealthKind,
    pub abnormal: bool,
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
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompanyData {
    pub company: CompanyId,
    pub offset_minutes: i32,
    pub members: Vec<MemberFact>,
    /// Home store of each member as a store index, [`NONE_U32`] if none.
    pub home_store: Vec<u32>,
    pub visits: Vec<Vec<Visit>>,
    pub purchases: Vec<Vec<Purchase>>,
    pub checks: Vec<Vec<Check>>,
    pub products: Vec<ProductFact>,
    pub stores: Vec<StoreFact>,
    /// Members who ever bought each product (by product index): a prefilter for `bought(...)`. It may
    /// keep a member whose purchase was later corrected away; the purchase scan decides.
    pub ever_bought: Vec<RoaringBitmap>,
    pub days: BTreeMap<Day, DayTotals>,
    pub watermark: Watermark,
    /// Members whose facts changed since [`CompanyData::take_touched`] was last called: what an
    /// incremental recompute must look at again.
    #[serde(skip)]
    touched: RoaringBitmap,
    #[serde(skip)]
    ordinal: FastMap<i64, u32>,
    #[serde(skip)]
    product_index: FastMap<i64, u32>,
    #[serde(skip)]
    store_index: FastMap<i64, u32>,
}

impl CompanyData {
    pub fn new(company: CompanyId, offset_minutes: i32) -> CompanyData {
        CompanyData {
            company,
            offset_minutes,
            members: Vec::new(),
            home_store: Vec::new(),
            visits: Vec::new(),
            purchases: Vec::new(),
            checks: Vec::new(),
            products: Vec::new(),
            stores: Vec::new(),
            ever_bought: Vec::new(),
            days: BTreeMap::new(),
            watermark: Watermark::default(),
            touched: RoaringBitmap::new(),
            ordinal: FastMap::default(),
            product_index: FastMap::default(),
            store_index: FastMap::default(),
        }
    }

    /// Rebuilds the lookup maps after deserialising.
    pub fn reindex(&mut self) {
        self.ordinal = self.members.iter().enumerate().map(|(i, m)| (m.id.0, i as u32)).collect();
        self.product_index = self.products.iter().enumerate().map(|(i, p)| (p.id.0, i as u32)).collect();
        self.store_index = self.stores.iter().enumerate().map(|(i, s)| (s.id.0, i as u32)).collect();
    }

    /// The members touched since the last call (and forgets them).
    pub fn take_touched(&mut self) -> RoaringBitmap {
        std::mem::take(&mut self.touched)
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn ordinal(&self, id: MemberId) -> Option<u32> {
        self.ordinal.get(&id.0).copied()
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
        for (i, m) in self.members.iter().enumerate() {
            self.home_store[i] = m.store.map(|s| self.store_index(s.0)).unwrap_or(NONE_U32);
        }
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
    }

    /// Adds or updates a member; returns its ordinal and whether it was new.
    pub fn apply_member(&mut self, m: MemberFact) -> (u32, bool) {
        self.watermark.member_updated_at = self.watermark.member_updated_at.max(m.updated_at);
        let home = m.store.map(|s| self.store_index(s.0)).unwrap_or(NONE_U32);
        match self.ordinal.get(&m.id.0) {
            Some(&o) => {
                self.members[o as usize] = m;
                self.home_store[o as usize] = home;
                self.touched.insert(o);
                (o, false)
            }
            None => {
                let o = self.members.len() as u32;
                self.ordinal.insert(m.id.0, o);
                self.members.push(m);
                self.home_store.push(home);
                self.visits.push(Vec::new());
                self.purchases.push(Vec::new());
                self.checks.push(Vec::new());
                self.touched.insert(o);
                (o, true)
            }
        }
    }

    /// Forgets a member's history before it is read again whole.
    pub fn clear_history(&mut self, o: u32) {
        self.touched.insert(o);
        let o = o as usize;
        self.visits[o].clear();
        self.purchases[o].clear();
        self.checks[o].clear();
    }

    /// Counts a newly read ticket (member or not) into the day totals and advances the watermark.
    pub fn apply_ticket_totals(&mut self, t: &TicketFact) {
        self.watermark.ticket_id = self.watermark.ticket_id.max(t.id.0);
        let d = self.days.entry(day_of(t.sold_at, self.offset_minutes)).or_default();
        d.tickets += 1;
        d.amount += t.amount;
        d.cost += t.cost;
        if t.member.is_some() {
            d.member_tickets += 1;
            d.member_amount += t.amount;
            d.member_cost += t.cost;
        }
    }

    /// Adds a member ticket to its member's visits.
    pub fn apply_ticket_visit(&mut self, t: &TicketFact) {
        let Some(o) = t.member.and_then(|m| self.ordinal(m)) else { return };
        self.touched.insert(o);
        let store = self.store_index(t.store.0);
        self.visits[o as usize].push(Visit {
            ticket: t.id.0,
            day: day_of(t.sold_at, self.offset_minutes),
            store,
            amount: t.amount,
            discount: t.discount,
            cost: t.cost,
            items: t.line_count.max(0) as u32,
            returned: 0,
            returned_cost: 0,
            returned_lines: 0,
        });
    }

    pub fn apply_line(&mut self, l: &LineFact) {
        let Some(o) = self.ordinal(l.member) else { return };
        let Some(&p) = self.product_index.get(&l.product.0) else { return };
        self.touched.insert(o);
        let day = day_of(l.sold_at, self.offset_minutes);
        let visits = &self.visits[o as usize];
        let store = visit_index(visits, l.ticket.0).map_or(NONE_U32, |i| visits[i].store);
        let purchases = &mut self.purchases[o as usize];
        match purchases.iter_mut().rev().take(8).find(|b| b.ticket == l.ticket.0 && b.product == p) {
            Some(b) => b.amount += l.amount,
            None => purchases.push(Purchase { ticket: l.ticket.0, day, product: p, store, amount: l.amount }),
        }
        self.ever_bought[p as usize].insert(o);
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

    /// Nets a return out of its member's visit and purchase.
    pub fn apply_return_member(&mut self, r: &ReturnFact) {
        let Some(o) = r.member.and_then(|m| self.ordinal(m)) else { return };
        self.touched.insert(o);
        let day = day_of(r.sold_at, self.offset_minutes);
        if let Some(i) = visit_index(&self.visits[o as usize], r.ticket.0) {
            let v = &mut self.visits[o as usize][i];
            v.returned += r.amount;
            v.returned_cost += r.cost;
            v.returned_lines += 1;
        }
        let p = self.product_index.get(&r.product.0).copied().unwrap_or(NONE_U32);
        if p == NONE_U32 {
            return;
        }
        let purchases = &mut self.purchases[o as usize];
        match purchases.iter_mut().rev().find(|b| b.ticket == r.ticket.0 && b.product == p) {
            Some(b) => b.amount -= r.amount,
            None => {
                purchases.push(Purchase { ticket: r.ticket.0, day, product: p, store: NONE_U32, amount: -r.amount })
            }
        }
    }

    pub fn advance_checks(&mut self, c: &HealthCheckFact) {
        self.watermark.check_id = self.watermark.check_id.max(c.id);
    }

    pub fn apply_check(&mut self, c: &HealthCheckFact) {
        let Some(o) = self.ordinal(c.member) else { return };
        self.touched.insert(o);
        let day = day_of(c.checked_at, self.offset_minutes);
        self.checks[o as usize].push(Check { id: c.id, day, kind: c.kind, abnormal: c.abnormal });
    }

    /// Members (ordinals) with any health check: a prefilter for `checked(...)`.
    pub fn checked_members(&self) -> RoaringBitmap {
        self.checks.iter().enumerate().filter(|(_, c)| !c.is_empty()).map(|(i, _)| i as u32).collect()
    }

    /// The ordinals of a set of member ids (unknown ids ignored).
    pub fn ordinals_of(&self, ids: &HashSet<i64>) -> RoaringBitmap {
        ids.iter().filter_map(|id| self.ordinal.get(id).copied()).collect()
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

    #[test]
    fn visits_are_found_in_any_order() {
        let v = |ticket| Visit {
            ticket,
            day: 0,
            store: 0,
            amount: 0,
            discount: 0,
            cost: 0,
            items: 0,
            returned: 0,
            returned_cost: 0,
            returned_lines: 0,
        };
        let sorted: Vec<Visit> = [3, 5, 9, 12].into_iter().map(v).collect();
        let shuffled: Vec<Visit> = [12, 3, 9, 5].into_iter().map(v).collect();
        for list in [&sorted, &shuffled] {
            for t in [3, 5, 9, 12] {
                assert_eq!(list[visit_index(list, t).unwrap()].ticket, t);
            }
            assert_eq!(visit_index(list, 7), None);
        }
    }
}
