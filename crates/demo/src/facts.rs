//! The demo chain as engine facts, without a store in between: what the store would hand the engine
//! after importing the generated files (ids assigned in arrival order, cards resolved to members,
//! ticket totals summed from their lines, a second card under the same phone merged into the first,
//! returns costed at their ticket's cost ratio). Benchmarks build the engine from this stream, so the
//! 100M-line chain need not pass through a database first. Facts are handed over in batches as they
//! are generated: besides the generator's own state, only the member cards and the tickets that will
//! see a return are held here.

use crate::generate::{CompanyPlan, Options, Sink, generate};
use rxmember_core::facts::{HealthCheckFact, LineFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact};
use rxmember_core::health::HealthCheckInput;
use rxmember_core::member::{MemberInput, MemberStatus};
use rxmember_core::org::StoreInput;
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::{Fen, MemberId, ProductId, StoreId, TicketId};
use std::collections::{HashMap, HashSet};

/// Where the facts go, one company at a time, in the order the store would return them (by id):
/// stores, products, members, then tickets in batches, then returns, then health checks.
pub trait FactStream {
    /// A company begins. Returns whether its facts are wanted (if not, none are handed over).
    fn company(&mut self, code: &str, name: &str) -> bool;
    fn stores(&mut self, stores: &[StoreFact]);
    fn products(&mut self, products: &[ProductFact]);
    fn members(&mut self, members: Vec<MemberFact>);
    /// Tickets (member or not) and the lines of the member tickets among them (the engine ignores
    /// non-member lines beyond ticket totals), both in ticket order.
    fn tickets(&mut self, tickets: &[TicketFact], lines: &[LineFact]);
    fn returns(&mut self, returns: &[ReturnFact]);
    fn checks(&mut self, checks: &[HealthCheckFact]);
    /// The wanted company's facts are complete. Returns whether to go on with the next company.
    fn end(&mut self) -> bool;
}

struct FactSink<'a> {
    out: &'a mut dyn FactStream,
    /// Whether `out` wants the current company (facts of others are made but not handed over, so
    /// ids are the same whichever company is wanted).
    wanted: bool,
    next_id: i64,
    stores: HashMap<String, StoreId>,
    products: HashMap<String, (ProductId, Fen)>,
    /// Card number → member (cards are digits; a second card maps to its first).
    cards: HashMap<u64, MemberId>,
    /// The last member's phone and id: a second card follows its first.
    last_member: Option<(Option<String>, MemberId)>,
    /// Tickets (the digits of their numbers: date, store, sequence) announced to see a return ...
    return_coming: HashSet<u64>,
    /// ... and those of them read, for the returns.
    returned: HashMap<u64, TicketFact>,
    open: Option<(String, TicketFact)>,
    open_lines: Vec<LineFact>,
    /// Tickets closed and their member lines, not yet handed over.
    tickets: Vec<TicketFact>,
    lines: Vec<LineFact>,
    /// Set when `out` asked to stop: the generator is ended at the next company.
    stop: bool,
    progress: &'a mut dyn FnMut(&str),
}

/// The digits of a card or ticket number as one key (the generator's numbers fit in 19 digits).
fn digits_key(card: &str) -> u64 {
    card.bytes().filter(u8::is_ascii_digit).fold(0u64, |a, b| a.wrapping_mul(10).wrapping_add((b - b'0') as u64))
}

impl FactSink<'_> {
    fn id(&mut self) -> i64 {
        self.next_id += 1;
        self.next_id
    }

    fn close_ticket(&mut self) {
        if let Some((no, t)) = self.open.take() {
            let key = digits_key(&no);
            if self.return_coming.remove(&key) {
                self.returned.insert(key, t);
            }
            self.tickets.push(t);
            self.lines.append(&mut self.open_lines);
        }
    }

    /// Hands over the tickets closed so far.
    fn hand_over_tickets(&mut self) {
        if self.wanted && !self.tickets.is_empty() {
            self.out.tickets(&self.tickets, &self.lines);
        }
        self.tickets.clear();
        self.lines.clear();
    }

    /// Hands over every ticket read (the sales are complete).
    fn flush_tickets(&mut self) {
        self.close_ticket();
        self.hand_over_tickets();
    }

    fn finish(&mut self) {
        self.flush_tickets();
        // Released before the consumer goes on with the company's facts.
        self.stores = HashMap::new();
        self.products = HashMap::new();
        self.cards = HashMap::new();
        self.return_coming = HashSet::new();
        self.returned = HashMap::new();
        self.last_member = None;
        if std::mem::take(&mut self.wanted) && !self.out.end() {
            self.stop = true;
        }
    }
}

/// Ends the generator early (the caller has what it wanted).
struct Stop;

impl Sink for FactSink<'_> {
    type Error = Stop;

    async fn company(&mut self, plan: &CompanyPlan) -> Result<(), Self::Error> {
        self.finish();
        if self.stop {
            return Err(Stop);
        }
        self.wanted = self.out.company(plan.code, plan.name);
        self.cards.reserve(plan.members);
        Ok(())
    }

    async fn stores(&mut self, rows: &[StoreInput], _clerks: &[(String, String, String)]) -> Result<(), Self::Error> {
        let mut facts = Vec::with_capacity(rows.len());
        for s in rows {
            let id = StoreId(self.id());
            self.stores.insert(s.code.clone(), id);
            facts.push(StoreFact { id, code: s.code.clone(), name: s.name.clone() });
        }
        if self.wanted {
            self.out.stores(&facts);
        }
        Ok(())
    }

    async fn products(&mut self, rows: &[ProductInput]) -> Result<(), Self::Error> {
        let mut facts = Vec::with_capacity(rows.len());
        for p in rows {
            let id = ProductId(self.id());
            self.products.insert(p.code.clone(), (id, p.cost_price.unwrap_or_default()));
            facts.push(ProductFact {
                id,
                code: p.code.clone(),
                name: p.name.clone(),
                category_code: p.category_code.clone(),
                manufacturer: p.manufacturer.clone(),
                brand: p.brand.clone(),
                is_prescription: p.is_prescription,
            });
        }
        if self.wanted {
            self.out.products(&facts);
        }
        Ok(())
    }

    async fn members(&mut self, rows: &[MemberInput]) -> Result<(), Self::Error> {
        let mut facts = Vec::with_capacity(rows.len());
        for m in rows {
            // The generator emits a second card right after the first, under the same phone: the
            // import merges them by phone (the second card becomes an alias).
            if let Some((phone, first)) = &self.last_member
                && m.phone.is_some()
                && m.phone == *phone
            {
                self.cards.insert(digits_key(&m.card_no), *first);
                continue;
            }
            let id = MemberId(self.id());
            self.last_member = Some((m.phone.clone(), id));
            self.cards.insert(digits_key(&m.card_no), id);
            facts.push(MemberFact {
                id,
                card_no: m.card_no.clone(),
                gender: m.gender,
                birthday: m.birthday,
                store: m.store_code.as_ref().and_then(|c| self.stores.get(c).copied()),
                registered_at: m.registered_at,
                clerk_code: m.clerk_code.clone(),
                source: m.source,
                referred: m.referrer_card_no.is_some(),
                has_allergies: !m.allergies.is_empty(),
                chronic_conditions: m.chronic_conditions.clone(),
                sms_opt_in: m.sms_opt_in,
                health_consent: false,
                status: MemberStatus::Active,
                updated_at: id.0,
            });
        }
        if self.wanted {
            self.out.members(facts);
        }
        Ok(())
    }

    async fn sales(&mut self, rows: &[(i64, SaleLineInput)]) -> Result<(), Self::Error> {
        for (_, l) in rows {
            if self.open.as_ref().is_none_or(|(no, _)| *no != l.ticket_no) {
                self.close_ticket();
                let ticket = TicketFact {
                    id: TicketId(self.id()),
                    member: l.card_no.as_deref().and_then(|c| self.cards.get(&digits_key(c)).copied()),
                    store: self.stores.get(&l.store_code).copied().unwrap_or(StoreId(0)),
                    sold_at: l.sold_at,
                    line_count: 0,
                    amount: 0,
                    discount: 0,
                    cost: 0,
                };
                self.open = Some((l.ticket_no.clone(), ticket));
            }
            let (product, cost_price) = self.products.get(&l.product_code).copied().unwrap_or((ProductId(0), Fen(0)));
            let (_, t) = self.open.as_mut().expect("opened above");
            t.line_count += 1;
            t.amount += l.amount.0;
            t.discount += l.discount.0;
            t.cost += l.cost.unwrap_or_else(|| cost_price.times_milli(l.quantity_milli)).0;
            if let Some(member) = t.member {
                self.open_lines.push(LineFact {
                    ticket: t.id,
                    member,
                    sold_at: l.sold_at,
                    product,
                    amount: l.amount.0,
                });
            }
        }
        // The open ticket's lines may go on in the next batch: it is handed over later.
        self.hand_over_tickets();
        Ok(())
    }

    async fn returns(&mut self, rows: &[ReturnInput]) -> Result<(), Self::Error> {
        self.flush_tickets();
        let mut facts = Vec::with_capacity(rows.len());
        for r in rows {
            let Some(&t) = self.returned.get(&digits_key(&r.ticket_no)) else { continue };
            let cost = if t.amount > 0 { (r.amount.0 as i128 * t.cost as i128 / t.amount as i128) as i64 } else { 0 };
            let id = self.id();
            facts.push(ReturnFact {
                id,
                ticket: t.id,
                member: t.member,
                sold_at: t.sold_at,
                product: self.products.get(&r.product_code).map_or(ProductId(0), |p| p.0),
                amount: r.amount.0,
                cost,
            });
        }
        if self.wanted {
            self.out.returns(&facts);
        }
        Ok(())
    }

    async fn health_checks(&mut self, rows: &[HealthCheckInput]) -> Result<(), Self::Error> {
        self.flush_tickets();
        let mut facts = Vec::with_capacity(rows.len());
        for c in rows {
            let Some(&member) = self.cards.get(&digits_key(&c.card_no)) else { continue };
            let id = self.id();
            facts.push(HealthCheckFact { id, member, checked_at: c.checked_at, kind: c.kind, abnormal: c.abnormal });
        }
        if self.wanted {
            self.out.checks(&facts);
        }
        Ok(())
    }

    fn progress(&mut self, msg: &str) {
        (self.progress)(msg);
    }

    fn return_coming(&mut self, ticket_no: &str) {
        self.return_coming.insert(digits_key(ticket_no));
    }
}

/// Generates the demo group and hands each company's facts to `out` as they are generated (see
/// [`FactStream`]); `out` may stop the generator after a company. Returns the generator's summary,
/// or `None` when stopped early.
pub fn facts(opts: &Options, out: &mut dyn FactStream, progress: &mut dyn FnMut(&str)) -> Option<crate::Summary> {
    let mut sink = FactSink {
        out,
        wanted: false,
        next_id: 0,
        stores: HashMap::new(),
        products: HashMap::new(),
        cards: HashMap::new(),
        last_member: None,
        return_coming: HashSet::new(),
        returned: HashMap::new(),
        open: None,
        open_lines: Vec::new(),
        tickets: Vec::new(),
        lines: Vec::new(),
        stop: false,
        progress,
    };
    // The sink never awaits anything: the generator's future completes on its first poll.
    let summary = block_on(generate(opts, &mut sink)).ok();
    if summary.is_some() {
        sink.finish();
    }
    summary
}

/// Polls a future that never waits (no I/O) to completion.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("the fact sink never waits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Size;

    /// One company's facts, collected.
    #[derive(Default)]
    struct CompanyFacts {
        code: String,
        members: Vec<MemberFact>,
        tickets: Vec<TicketFact>,
        lines: Vec<LineFact>,
        returns: Vec<ReturnFact>,
        checks: Vec<HealthCheckFact>,
    }

    /// Collects every company, or stops after the first.
    struct Collect {
        companies: Vec<CompanyFacts>,
        go_on: bool,
    }

    impl FactStream for Collect {
        fn company(&mut self, code: &str, _name: &str) -> bool {
            self.companies.push(CompanyFacts { code: code.to_string(), ..CompanyFacts::default() });
            true
        }
        fn stores(&mut self, _: &[StoreFact]) {}
        fn products(&mut self, _: &[ProductFact]) {}
        fn members(&mut self, members: Vec<MemberFact>) {
            self.companies.last_mut().unwrap().members.extend(members);
        }
        fn tickets(&mut self, tickets: &[TicketFact], lines: &[LineFact]) {
            let c = self.companies.last_mut().unwrap();
            c.tickets.extend_from_slice(tickets);
            c.lines.extend_from_slice(lines);
        }
        fn returns(&mut self, returns: &[ReturnFact]) {
            self.companies.last_mut().unwrap().returns.extend_from_slice(returns);
        }
        fn checks(&mut self, checks: &[HealthCheckFact]) {
            self.companies.last_mut().unwrap().checks.extend_from_slice(checks);
        }
        fn end(&mut self) -> bool {
            self.go_on
        }
    }

    #[test]
    fn facts_match_the_generated_summary_and_hang_together() {
        let mut out = Collect { companies: Vec::new(), go_on: true };
        let summary = facts(&Options { size: Size::Tiny, seed: 7 }, &mut out, &mut |_| {}).expect("not stopped");
        let companies = out.companies;
        assert_eq!(companies.len(), summary.companies);
        let tickets: usize = companies.iter().map(|c| c.tickets.len()).sum();
        assert_eq!(tickets as u64, summary.tickets);
        let all_lines: i64 = companies.iter().flat_map(|c| &c.tickets).map(|t| t.line_count).sum();
        assert_eq!(all_lines as u64, summary.lines);
        let member_lines: usize = companies.iter().map(|c| c.lines.len()).sum();
        assert_eq!(member_lines as u64, summary.member_lines);
        // Every return finds its ticket, which was announced and kept for it.
        assert_eq!(companies.iter().map(|c| c.returns.len()).sum::<usize>(), summary.returns);
        assert_eq!(companies.iter().map(|c| c.checks.len()).sum::<usize>(), summary.health_checks);
        for c in &companies {
            // Every member ticket's lines add up to the ticket; every line's member is the ticket's.
            let mut by_ticket: HashMap<i64, (i64, i64)> = HashMap::new();
            for l in &c.lines {
                let e = by_ticket.entry(l.ticket.0).or_default();
                e.0 += l.amount;
                e.1 += 1;
            }
            for t in c.tickets.iter().filter(|t| t.member.is_some()) {
                assert_eq!(by_ticket.get(&t.id.0), Some(&(t.amount, t.line_count)), "ticket {}", t.id.0);
            }
            // Tickets and lines come in ticket order.
            assert!(c.tickets.windows(2).all(|w| w[0].id.0 < w[1].id.0));
            assert!(c.lines.windows(2).all(|w| w[0].ticket.0 <= w[1].ticket.0));
            // Merged second cards leave fewer members than rows, never a ticket without its member.
            let ids: std::collections::HashSet<i64> = c.members.iter().map(|m| m.id.0).collect();
            assert!(c.tickets.iter().filter_map(|t| t.member).all(|m| ids.contains(&m.0)));
            // A return carries its ticket's member and sale time.
            let tickets: HashMap<i64, &TicketFact> = c.tickets.iter().map(|t| (t.id.0, t)).collect();
            for r in &c.returns {
                let t = tickets[&r.ticket.0];
                assert_eq!((r.member, r.sold_at), (t.member, t.sold_at));
                assert!(r.cost >= 0 && r.amount > 0);
            }
        }
    }

    #[test]
    fn stopping_after_the_first_company_generates_no_more() {
        let mut out = Collect { companies: Vec::new(), go_on: false };
        let summary = facts(&Options { size: Size::Tiny, seed: 7 }, &mut out, &mut |_| {});
        assert_eq!(summary, None);
        assert_eq!(out.companies.iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), ["TJG"]);
    }
}
