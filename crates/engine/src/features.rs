//! Features per member as of a day: recency, frequency and monetary value over 12 months, average
//! ticket (客单价), items per ticket (客品数), gross margin, discount share, preferred store, returns,
//! health checks, age and tenure. Columns indexed by member ordinal. Returns net out: a ticket counts
//! towards frequency only while some of it is kept.

use crate::data::{CompanyData, Day, NONE_U32, day_of};
use crate::numeric::RatioKeys;
use rxmember_core::health::HealthKind;
use rxmember_core::member::age_on;

/// "No value" in `Day` and `i32` columns.
pub const NONE_I32: i32 = i32::MIN;

/// The 12-month window: the 365 days ending on the as-of day.
pub const YEAR_DAYS: i32 = 365;

/// The health kinds with their own tag dimension (last reading normal / abnormal).
pub const TRACKED_KINDS: [HealthKind; 4] =
    [HealthKind::BloodPressure, HealthKind::BloodGlucose, HealthKind::BloodLipids, HealthKind::UricAcid];

/// Per-member working space of [`Features::fill`], reused from member to member.
#[derive(Default)]
struct Scratch {
    by_store: Vec<(u32, i64)>,
    by_day: Vec<(Day, i64)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Features {
    pub as_of: Day,
    pub first_day: Vec<Day>,
    pub last_day: Vec<Day>,
    pub frequency_12m: Vec<u32>,
    /// Net spend (fen) over 12 months.
    pub monetary_12m: Vec<i64>,
    pub items_12m: Vec<u32>,
    pub discount_12m: Vec<i64>,
    pub cost_12m: Vec<i64>,
    pub tickets_total: Vec<u32>,
    pub spend_total: Vec<i64>,
    pub preferred_store: Vec<u32>,
    pub returns_12m: Vec<u32>,
    pub checks_12m: Vec<u32>,
    /// Last reading of each of [`TRACKED_KINDS`]: 0 none, 1 normal, 2 abnormal.
    pub last_reading: [Vec<u8>; 4],
    pub age: Vec<i32>,
    /// Month of birth 1–12, 0 if unknown (a column, so `birthday_month = …` scans no member records).
    pub birthday_month: Vec<u8>,
    pub registered_day: Vec<Day>,
    pub bought_rx_12m: Vec<bool>,
    /// The last day (up to the as-of day) whose purchases net to more than zero: answers
    /// `bought(within = …)` without a product filter as a column comparison.
    pub last_bought_day: Vec<Day>,
    /// The ratios below in the language's unit (yuan, per ticket, percent) as keys a comparison
    /// scans without dividing.
    pub avg_ticket_key: RatioKeys,
    pub items_per_ticket_key: RatioKeys,
    pub margin_rate_key: RatioKeys,
    pub discount_share_key: RatioKeys,
}

impl Features {
    pub fn compute(data: &CompanyData, as_of: Day) -> Features {
        let mut f = Features { as_of, ..Features::default() };
        f.resize(data.len());
        let mut scratch = Scratch::default();
        for o in 0..data.len() {
            f.fill(data, o, &mut scratch);
        }
        for k in [&mut f.avg_ticket_key, &mut f.items_per_ticket_key, &mut f.margin_rate_key, &mut f.discount_share_key]
        {
            k.recode();
        }
        f
    }

    /// Brings the features up to date, in place, after `data` changed only for `touched` members (new
    /// members are always touched), as of the same day: only those members are computed again.
    pub fn update(&mut self, data: &CompanyData, touched: &roaring::RoaringBitmap) {
        self.resize(data.len());
        let mut scratch = Scratch::default();
        for o in touched {
            self.fill(data, o as usize, &mut scratch);
        }
    }

    /// Every column to `n` members (values for new members are set by `fill`).
    fn resize(&mut self, n: usize) {
        for v in [
            &mut self.first_day,
            &mut self.last_day,
            &mut self.age,
            &mut self.registered_day,
            &mut self.last_bought_day,
        ] {
            v.resize(n, NONE_I32);
        }
        for v in [
            &mut self.frequency_12m,
            &mut self.items_12m,
            &mut self.tickets_total,
            &mut self.returns_12m,
            &mut self.checks_12m,
        ] {
            v.resize(n, 0);
        }
        for v in [&mut self.monetary_12m, &mut self.discount_12m, &mut self.cost_12m, &mut self.spend_total] {
            v.resize(n, 0);
        }
        self.preferred_store.resize(n, NONE_U32);
        self.last_reading.iter_mut().for_each(|v| v.resize(n, 0));
        self.bought_rx_12m.resize(n, false);
        self.birthday_month.resize(n, 0);
        for k in [
            &mut self.avg_ticket_key,
            &mut self.items_per_ticket_key,
            &mut self.margin_rate_key,
            &mut self.discount_share_key,
        ] {
            k.resize(n);
        }
    }

    /// Computes member `o`'s features from scratch.
    fn fill(&mut self, data: &CompanyData, o: usize, scratch: &mut Scratch) {
        let f = self;
        let by_store = &mut scratch.by_store;
        let as_of = f.as_of;
        let from = as_of - YEAR_DAYS;
        let as_of_date = crate::data::date_of_day(as_of);
        f.first_day[o] = NONE_I32;
        f.last_day[o] = NONE_I32;
        f.frequency_12m[o] = 0;
        f.monetary_12m[o] = 0;
        f.items_12m[o] = 0;
        f.discount_12m[o] = 0;
        f.cost_12m[o] = 0;
        f.tickets_total[o] = 0;
        f.spend_total[o] = 0;
        f.preferred_store[o] = NONE_U32;
        f.returns_12m[o] = 0;
        f.checks_12m[o] = 0;
        for k in 0..TRACKED_KINDS.len() {
            f.last_reading[k][o] = 0;
        }
        f.age[o] = NONE_I32;
        f.registered_day[o] = NONE_I32;
        by_store.clear();
        for v in data.visits(o).iter().filter(|v| v.day <= as_of) {
            let net = v.net();
            if net <= 0 {
                continue;
            }
            f.tickets_total[o] += 1;
            f.spend_total[o] += net;
            if f.first_day[o] == NONE_I32 || v.day < f.first_day[o] {
                f.first_day[o] = v.day;
            }
            f.last_day[o] = f.last_day[o].max(v.day);
            if v.day > from {
                f.frequency_12m[o] += 1;
                f.monetary_12m[o] += net;
                f.items_12m[o] += v.items.saturating_sub(v.returned_lines);
                f.discount_12m[o] += v.discount;
                f.cost_12m[o] += v.cost - v.returned_cost;
                f.returns_12m[o] += v.returned_lines;
                if v.store != NONE_U32 {
                    match by_store.iter_mut().find(|(s, _)| *s == v.store) {
                        Some((_, a)) => *a += net,
                        None => by_store.push((v.store, net)),
                    }
                }
            }
        }
        // Tickets returned in full still count as returns.
        f.returns_12m[o] += data
            .visits(o)
            .iter()
            .filter(|v| v.day > from && v.day <= as_of && v.net() <= 0)
            .map(|v| v.returned_lines)
            .sum::<u32>();
        // Most spend wins; ties go to the lower store index, so the answer is stable.
        if let Some(&(s, _)) = by_store.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))) {
            f.preferred_store[o] = s;
        }
        let avg_ticket = f.avg_ticket(o).map(|a| a / 100.0);
        f.avg_ticket_key.set(o, avg_ticket);
        let items_per_ticket = f.items_per_ticket(o);
        f.items_per_ticket_key.set(o, items_per_ticket);
        let margin_rate = f.margin_rate(o);
        f.margin_rate_key.set(o, margin_rate);
        let discount_share = f.discount_share(o);
        f.discount_share_key.set(o, discount_share);
        f.bought_rx_12m[o] = data.purchases(o).iter().any(|p| {
            p.day > from && p.day <= as_of && p.amount > 0 && data.products[p.product as usize].is_prescription
        });
        // Net per day, for the last day bought.
        let by_day = &mut scratch.by_day;
        by_day.clear();
        for p in data.purchases(o).iter().filter(|p| p.day <= as_of) {
            match by_day.iter_mut().rev().find(|(d, _)| *d == p.day) {
                Some((_, a)) => *a += p.amount,
                None => by_day.push((p.day, p.amount)),
            }
        }
        f.last_bought_day[o] = by_day.iter().filter(|(_, a)| *a > 0).map(|(d, _)| *d).max().unwrap_or(NONE_I32);
        let mut last = [NONE_I32; 4];
        for c in data.checks(o).iter().filter(|c| c.day <= as_of) {
            if c.day > from {
                f.checks_12m[o] += 1;
            }
            if let Some(k) = TRACKED_KINDS.iter().position(|k| *k == c.kind)
                && c.day >= last[k]
            {
                last[k] = c.day;
                f.last_reading[k][o] = if c.abnormal { 2 } else { 1 };
            }
        }
        let m = &data.members[o];
        f.birthday_month[o] = m.birthday.map_or(0, |b| chrono::Datelike::month(&b) as u8);
        if let Some(b) = m.birthday
            && b <= as_of_date
        {
            f.age[o] = age_on(b, as_of_date);
        }
        if let Some(r) = m.registered_at {
            f.registered_day[o] = day_of(r, data.offset_minutes);
        }
    }

    pub fn recency(&self, o: usize) -> Option<i32> {
        (self.last_day[o] != NONE_I32).then(|| self.as_of - self.last_day[o])
    }

    pub fn tenure(&self, o: usize) -> Option<i32> {
        (self.registered_day[o] != NONE_I32 && self.registered_day[o] <= self.as_of)
            .then(|| self.as_of - self.registered_day[o])
    }

    /// Average net spend per ticket over 12 months (fen).
    pub fn avg_ticket(&self, o: usize) -> Option<f64> {
        (self.frequency_12m[o] > 0).then(|| self.monetary_12m[o] as f64 / self.frequency_12m[o] as f64)
    }

    pub fn items_per_ticket(&self, o: usize) -> Option<f64> {
        (self.frequency_12m[o] > 0).then(|| self.items_12m[o] as f64 / self.frequency_12m[o] as f64)
    }

    /// Gross margin over 12 months, percent.
    pub fn margin_rate(&self, o: usize) -> Option<f64> {
        (self.monetary_12m[o] > 0)
            .then(|| (self.monetary_12m[o] - self.cost_12m[o]) as f64 * 100.0 / self.monetary_12m[o] as f64)
    }

    /// Discount as a share of the undiscounted price over 12 months, percent.
    pub fn discount_share(&self, o: usize) -> Option<f64> {
        let gross = self.monetary_12m[o] + self.discount_12m[o];
        (self.frequency_12m[o] > 0 && gross > 0).then(|| self.discount_12m[o] as f64 * 100.0 / gross as f64)
    }

    pub fn first_purchase_days(&self, o: usize) -> Option<i32> {
        (self.first_day[o] != NONE_I32).then(|| self.as_of - self.first_day[o])
    }
}
