//! Features per member as of a day: recency, frequency and monetary value over 12 months, average
//! ticket (客单价), items per ticket (客品数), gross margin, discount share, preferred store, returns,
//! health checks, age and tenure. Columns indexed by member ordinal. Returns net out: a ticket counts
//! towards frequency only while some of it is kept.

use crate::data::{CompanyData, Day, NONE_U32};
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
    /// Every member's features, on this thread alone.
    pub fn compute(data: &CompanyData, as_of: Day) -> Features {
        let (_, none) = std::sync::mpsc::channel();
        Features::compute_shared(&Work::all(data, as_of), none)
    }

    /// Every member's features, the work shared with another thread that hands over rows of the
    /// chunks it takes once free ([`Work::rows`], over `work` made by [`Work::all`]).
    pub fn compute_shared(work: &Work, rows: Rows) -> Features {
        let mut f = Features { as_of: work.as_of, ..Features::default() };
        f.share(work, rows);
        // Each ratio's codes over every member, two ratios a thread.
        let [a, b, c, d] =
            [&mut f.avg_ticket_key, &mut f.items_per_ticket_key, &mut f.margin_rate_key, &mut f.discount_share_key];
        std::thread::scope(|s| {
            s.spawn(|| {
                a.recode();
                b.recode();
            });
            c.recode();
            d.recode();
        });
        f
    }

    /// Brings the features up to date, in place, for the members of `work` (every member, or
    /// those `data` changed for, new members always among them — then as of the same day), sharing
    /// the work with another thread: this one computes and writes the chunks of members it takes,
    /// and writes the rows the other computes of the chunks it takes once free ([`Work::rows`]),
    /// between its own chunks and, once none is left, until the other is done.
    pub fn share(&mut self, work: &Work, rows: Rows) {
        self.resize(work.data.len());
        let mut scratch = Scratch::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        while work.take(&mut chunk) {
            for (i, &o) in chunk.iter().enumerate() {
                work.read_ahead(&chunk, i);
                self.fill(work.data, o as usize, &mut scratch);
            }
            for done in rows.try_iter() {
                self.write_rows(done);
            }
        }
        for done in rows {
            self.write_rows(done);
        }
    }

    /// Writes a chunk of rows another thread computed.
    fn write_rows(&mut self, rows: Vec<(u32, Row)>) {
        for (o, row) in rows {
            self.write(o as usize, &row);
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
        let row = Row::of(data, self.as_of, o, scratch);
        self.write(o, &row);
    }

    /// Writes member `o`'s row into the columns.
    fn write(&mut self, o: usize, r: &Row) {
        let f = self;
        (f.first_day[o], f.last_day[o], f.tickets_total[o], f.spend_total[o]) =
            (r.first_day, r.last_day, r.tickets_total, r.spend_total);
        (f.frequency_12m[o], f.monetary_12m[o], f.items_12m[o]) = (r.frequency, r.monetary, r.items);
        (f.discount_12m[o], f.cost_12m[o], f.returns_12m[o]) = (r.discount, r.cost, r.returns);
        f.preferred_store[o] = r.preferred_store;
        let avg_ticket = f.avg_ticket(o).map(|a| a / 100.0);
        f.avg_ticket_key.set(o, avg_ticket);
        let items_per_ticket = f.items_per_ticket(o);
        f.items_per_ticket_key.set(o, items_per_ticket);
        let margin_rate = f.margin_rate(o);
        f.margin_rate_key.set(o, margin_rate);
        let discount_share = f.discount_share(o);
        f.discount_share_key.set(o, discount_share);
        f.bought_rx_12m[o] = r.bought_rx;
        f.last_bought_day[o] = r.last_bought_day;
        f.checks_12m[o] = r.checks;
        for k in 0..TRACKED_KINDS.len() {
            f.last_reading[k][o] = r.last_reading[k];
        }
        f.birthday_month[o] = r.birthday_month;
        f.age[o] = r.age;
        f.registered_day[o] = r.registered_day;
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

/// The members whose features are to be worked out — every member in a full build, the touched
/// ones in an update — handed out in chunks to the threads that compute them.
pub struct Work<'a> {
    data: &'a CompanyData,
    as_of: Day,
    /// The members listed, or (none) every member.
    members: Option<Vec<u32>>,
    len: usize,
    next: std::sync::atomic::AtomicUsize,
}

/// Where a helper thread's rows arrive, a chunk at a time ([`Work::rows`], [`Features::share`]).
pub type Rows = std::sync::mpsc::Receiver<Vec<(u32, Row)>>;

/// Members per chunk of [`Work`].
const CHUNK: usize = 1024;

impl<'a> Work<'a> {
    /// The members of `touched` (an update).
    pub fn new(data: &'a CompanyData, as_of: Day, touched: &roaring::RoaringBitmap) -> Work<'a> {
        let members: Vec<u32> = touched.iter().collect();
        Work { data, as_of, len: members.len(), members: Some(members), next: Default::default() }
    }

    /// Every member (a full build).
    pub fn all(data: &'a CompanyData, as_of: Day) -> Work<'a> {
        Work { data, as_of, members: None, len: data.len(), next: Default::default() }
    }

    /// What a member's features are worked out from.
    const KINDS: crate::data::Kinds = crate::data::Kinds { visits: true, purchases: true, checks: true, record: true };

    /// The next chunk of members into `chunk`; false once none is left.
    fn take(&self, chunk: &mut Vec<u32>) -> bool {
        let i = self.next.fetch_add(CHUNK, std::sync::atomic::Ordering::Relaxed);
        if i >= self.len {
            return false;
        }
        let end = (i + CHUNK).min(self.len);
        chunk.clear();
        match &self.members {
            Some(m) => chunk.extend_from_slice(&m[i..end]),
            None => chunk.extend(i as u32..end as u32),
        }
        true
    }

    /// Asks for the facts of members ahead of `chunk[i]` where they are scattered (an update's);
    /// every member's lie in order in the arenas, where the processor reads ahead by itself.
    #[inline]
    fn read_ahead(&self, chunk: &[u32], i: usize) {
        if self.members.is_some() {
            self.data.read_ahead(chunk, i, Work::KINDS);
        }
    }

    /// On a helper thread: computes the rows of the chunks left and sends each chunk's to `out`
    /// (the thread writing the columns, [`Features::share`]).
    pub fn rows(&self, out: std::sync::mpsc::Sender<Vec<(u32, Row)>>) {
        let mut scratch = Scratch::default();
        let mut chunk = Vec::with_capacity(CHUNK);
        while self.take(&mut chunk) {
            let rows = chunk
                .iter()
                .enumerate()
                .map(|(i, &o)| {
                    self.read_ahead(&chunk, i);
                    (o, Row::of(self.data, self.as_of, o as usize, &mut scratch))
                })
                .collect();
            if out.send(rows).is_err() {
                // The writer is gone (it panicked): nothing left to do.
                return;
            }
        }
    }
}

/// One member's features, worked out from its facts apart from the columns (so that members can
/// be worked out on two threads and written by one).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    first_day: Day,
    last_day: Day,
    tickets_total: u32,
    spend_total: i64,
    frequency: u32,
    monetary: i64,
    items: u32,
    discount: i64,
    cost: i64,
    returns: u32,
    preferred_store: u32,
    bought_rx: bool,
    last_bought_day: Day,
    checks: u32,
    last_reading: [u8; 4],
    birthday_month: u8,
    age: i32,
    registered_day: Day,
}

impl Row {
    fn of(data: &CompanyData, as_of: Day, o: usize, scratch: &mut Scratch) -> Row {
        let from = as_of - YEAR_DAYS;
        let as_of_date = crate::data::date_of_day(as_of);
        let by_store = &mut scratch.by_store;
        by_store.clear();
        let (mut first_day, mut last_day) = (NONE_I32, NONE_I32);
        let (mut tickets_total, mut spend_total) = (0u32, 0i64);
        let (mut frequency, mut monetary, mut items, mut discount, mut cost, mut returns) =
            (0u32, 0i64, 0u32, 0i64, 0i64, 0u32);
        for v in data.visits(o).iter().filter(|v| v.day <= as_of) {
            let net = i64::from(v.net);
            if net <= 0 {
                // Tickets returned in full still count as returns.
                if v.day > from {
                    returns += u32::from(v.returned_lines);
                }
                continue;
            }
            tickets_total += 1;
            spend_total += net;
            if first_day == NONE_I32 || v.day < first_day {
                first_day = v.day;
            }
            last_day = last_day.max(v.day);
            if v.day > from {
                frequency += 1;
                monetary += net;
                items += u32::from(v.items.saturating_sub(v.returned_lines));
                discount += i64::from(v.discount);
                cost += i64::from(v.cost);
                returns += u32::from(v.returned_lines);
                if v.store != NONE_U32 {
                    match by_store.iter_mut().find(|(s, _)| *s == v.store) {
                        Some((_, a)) => *a += net,
                        None => by_store.push((v.store, net)),
                    }
                }
            }
        }
        // Most spend wins; ties go to the lower store index, so the answer is stable.
        let preferred_store =
            by_store.iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).map_or(NONE_U32, |&(s, _)| s);
        // Net per day, for the last day bought (purchases come by day but for a return read
        // without its sale: then the days are sorted and merged after).
        let by_day = &mut scratch.by_day;
        by_day.clear();
        let (mut bought_rx, mut in_order) = (false, true);
        for p in data.purchases(o).iter().filter(|p| p.day <= as_of) {
            bought_rx =
                bought_rx || (p.day > from && p.amount > 0 && data.products[p.product as usize].is_prescription);
            match by_day.last_mut() {
                Some((d, a)) if *d == p.day => *a += i64::from(p.amount),
                last => {
                    in_order &= last.is_none_or(|(d, _)| *d < p.day);
                    by_day.push((p.day, i64::from(p.amount)));
                }
            }
        }
        if !in_order {
            by_day.sort_by_key(|e| e.0);
            by_day.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    kept.1 += later.1;
                }
                same
            });
        }
        let last_bought_day = by_day.iter().filter(|(_, a)| *a > 0).map(|(d, _)| *d).max().unwrap_or(NONE_I32);
        let (mut checks, mut last_reading, mut last) = (0u32, [0u8; 4], [NONE_I32; 4]);
        for c in data.checks(o).iter().filter(|c| c.day <= as_of) {
            if c.day > from {
                checks += 1;
            }
            if let Some(k) = TRACKED_KINDS.iter().position(|k| *k == c.kind)
                && c.day >= last[k]
            {
                last[k] = c.day;
                last_reading[k] = if c.abnormal { 2 } else { 1 };
            }
        }
        let m = data.members.get(o);
        let birthday = m.birthday();
        let age = match birthday {
            Some(b) if b <= as_of_date => age_on(b, as_of_date),
            _ => NONE_I32,
        };
        Row {
            first_day,
            last_day,
            tickets_total,
            spend_total,
            frequency,
            monetary,
            items,
            discount,
            cost,
            returns,
            preferred_store,
            bought_rx,
            last_bought_day,
            checks,
            last_reading,
            birthday_month: birthday.map_or(0, |b| chrono::Datelike::month(&b) as u8),
            age,
            registered_day: m.registered_day().unwrap_or(NONE_I32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::day_of;
    use rxmember_core::facts::{ProductFact, ReturnFact, StoreFact};
    use rxmember_core::{CompanyId, MemberId, ProductId, StoreId, TicketId};

    const DAY: i64 = 86_400_000;

    /// Returns of tickets never read land after the sales, on earlier days: the last day bought
    /// nets each day whatever the order the facts came in.
    #[test]
    fn the_last_day_bought_nets_days_read_out_of_order() {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.set_stores(vec![StoreFact { id: StoreId(1), code: "S1".into(), name: "一店".into() }]);
        data.set_products(vec![ProductFact {
            id: ProductId(1),
            code: "P1".into(),
            name: "药".into(),
            category_code: Some("0101".into()),
            manufacturer: None,
            brand: None,
            is_prescription: true,
        }]);
        data.apply_member(&crate::test_support::member(1));
        crate::test_support::ticket(&mut data, 1, 1, 1, 10 * DAY, &[(1, 100)]);
        crate::test_support::ticket(&mut data, 2, 1, 1, 12 * DAY, &[(1, 50)]);
        let unread_return = |id: i64, ticket: i64, day: i64, amount: i64| ReturnFact {
            id,
            ticket: TicketId(ticket),
            member: Some(MemberId(1)),
            sold_at: day * DAY,
            product: ProductId(1),
            amount,
            cost: 0,
        };
        data.apply_return_member(&unread_return(1, 9, 11, 30));
        data.apply_return_member(&unread_return(2, 8, 12, 60));
        data.seal();
        let as_of = day_of(20 * DAY, 0);
        let f = Features::compute(&data, as_of);
        // Day 12 nets to 50 − 60 < 0, day 11 to −30: the last day with a positive net is day 10.
        assert_eq!(f.last_bought_day[0], day_of(10 * DAY, 0));
        assert!(f.bought_rx_12m[0]);
        assert_eq!((f.frequency_12m[0], f.monetary_12m[0]), (2, 150));
        assert_eq!(f.last_day[0], day_of(12 * DAY, 0));
    }
}

#[cfg(test)]
mod shared_tests {
    use super::*;
    use crate::data::day_of;
    use rxmember_core::CompanyId;
    use rxmember_core::facts::{ProductFact, StoreFact};
    use rxmember_core::{ProductId, StoreId};

    const DAY: i64 = 86_400_000;

    /// Members enough for several chunks, with tickets at two stores on scattered days.
    fn company(members: i64) -> CompanyData {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.set_stores(
            (1..=2).map(|i| StoreFact { id: StoreId(i), code: format!("S{i}"), name: format!("{i}店") }).collect(),
        );
        data.set_products(vec![ProductFact {
            id: ProductId(1),
            code: "P1".into(),
            name: "药".into(),
            category_code: Some("0101".into()),
            manufacturer: None,
            brand: None,
            is_prescription: true,
        }]);
        for m in 1..=members {
            data.apply_member(&crate::test_support::member(m));
        }
        let mut id = 0;
        for m in 1..=members {
            for k in 0..(m % 4) {
                id += 1;
                let day = 300 + (m * 7 + k * 31) % 400;
                crate::test_support::ticket(&mut data, id, m, 1 + (m + k) % 2, day * DAY, &[(1, 100 + m % 97)]);
            }
        }
        data.seal();
        data
    }

    /// The features of every member are the same whichever thread computed a chunk's rows: all by
    /// one thread, all by the helper (this one writing only), or both at once.
    #[test]
    fn a_helpers_rows_give_the_features_one_thread_computes() {
        let data = company(3 * CHUNK as i64 + 17);
        let as_of = day_of(700 * DAY, 0);
        let one = Features::compute(&data, as_of);
        assert!(one.frequency_12m.iter().any(|&f| f > 0));

        let work = Work::all(&data, as_of);
        let (out, rows) = std::sync::mpsc::channel();
        work.rows(out);
        assert_eq!(Features::compute_shared(&work, rows), one, "every row by the helper");

        let work = Work::all(&data, as_of);
        let (out, rows) = std::sync::mpsc::channel();
        let both = std::thread::scope(|s| {
            s.spawn(|| work.rows(out));
            Features::compute_shared(&work, rows)
        });
        assert_eq!(both, one, "rows by both threads");
    }
}
