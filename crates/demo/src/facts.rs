//! The demo chain as engine facts, without a store in between: what the store would hand the engine
//! after importing the generated files (ids assigned in arrival order, cards resolved to members,
//! ticket totals summed from their lines, a second card under the same phone merged into the first,
//! returns costed at their ticket's cost ratio). Benchmarks build the engine from this stream, so the
//! 100M-line chain need not pass through a database first.

use crate::generate::{CompanyPlan, Options, Sink, generate};
use rxmember_core::facts::{HealthCheckFact, LineFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact};
use rxmember_core::health::HealthCheckInput;
use rxmember_core::member::{MemberInput, MemberStatus};
use rxmember_core::org::StoreInput;
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::{Fen, MemberId, ProductId, StoreId, TicketId};
use std::collections::HashMap;

/// One company's facts, in the order the store would return them (by id).
#[derive(Debug, Default)]
pub struct CompanyFacts {
    pub code: String,
    pub name: String,
    pub stores: Vec<StoreFact>,
    pub products: Vec<ProductFact>,
    pub members: Vec<MemberFact>,
    pub tickets: Vec<TicketFact>,
    /// Lines of member tickets only (the engine ignores non-member lines beyond ticket totals).
    pub lines: Vec<LineFact>,
    pub returns: Vec<ReturnFact>,
    pub checks: Vec<HealthCheckFact>,
    /// Sales lines of all tickets, member or not.
    pub all_lines: u64,
}

struct FactSink<'a> {
    current: CompanyFacts,
    next_id: i64,
    stores: HashMap<String, StoreId>,
    products: HashMap<String, (ProductId, Fen)>,
    /// Card number → member (cards are digits; a second card maps to its first).
    cards: HashMap<u64, MemberId>,
    last_phone: Option<String>,
    /// Ticket number (its digits: date, store, sequence) → index in `tickets`, for returns.
    ticket_index: HashMap<u64, u32>,
    open: Option<(String, TicketFact)>,
    on_company: &'a mut dyn FnMut(CompanyFacts) -> bool,
    /// Set when `on_company` asked to stop: the generator is ended at the next company.
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
            self.ticket_index.insert(digits_key(&no), self.current.tickets.len() as u32);
            self.current.tickets.push(t);
        }
    }

    fn finish(&mut self) {
        self.close_ticket();
        if !self.current.code.is_empty() && !(self.on_company)(std::mem::take(&mut self.current)) {
            self.stop = true;
        }
        self.stores.clear();
        self.products.clear();
        self.cards.clear();
        self.ticket_index.clear();
        self.last_phone = None;
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
        self.current.code = plan.code.to_string();
        self.current.name = plan.name.to_string();
        Ok(())
    }

    async fn stores(&mut self, rows: &[StoreInput], _clerks: &[(String, String, String)]) -> Result<(), Self::Error> {
        for s in rows {
            let id = StoreId(self.id());
            self.stores.insert(s.code.clone(), id);
            self.current.stores.push(StoreFact { id, code: s.code.clone(), name: s.name.clone() });
        }
        Ok(())
    }

    async fn products(&mut self, rows: &[ProductInput]) -> Result<(), Self::Error> {
        for p in rows {
            let id = ProductId(self.id());
            self.products.insert(p.code.clone(), (id, p.cost_price.unwrap_or_default()));
            self.current.products.push(ProductFact {
                id,
                code: p.code.clone(),
                name: p.name.clone(),
                category_code: p.category_code.clone(),
                manufacturer: p.manufacturer.clone(),
                brand: p.brand.clone(),
                is_prescription: p.is_prescription,
            });
        }
        Ok(())
    }

    async fn members(&mut self, rows: &[MemberInput]) -> Result<(), Self::Error> {
        for m in rows {
            // The generator emits a second card right after the first, under the same phone: the
            // import merges them by phone (the second card becomes an alias).
            if m.phone.is_some() && m.phone == self.last_phone {
                let first = self.current.members.last().map(|f| f.id).expect("a first card precedes its alias");
                self.cards.insert(digits_key(&m.card_no), first);
                continue;
            }
            self.last_phone = m.phone.clone();
            let id = MemberId(self.id());
            self.cards.insert(digits_key(&m.card_no), id);
            self.current.members.push(MemberFact {
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
        Ok(())
    }

    async fn sales(&mut self, rows: &[(i64, SaleLineInput)]) -> Result<(), Self::Error> {
        for (_, l) in rows {
            self.current.all_lines += 1;
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
                let line = LineFact { ticket: t.id, member, sold_at: l.sold_at, product, amount: l.amount.0 };
                self.current.lines.push(line);
            }
        }
        Ok(())
    }

    async fn returns(&mut self, rows: &[ReturnInput]) -> Result<(), Self::Error> {
        self.close_ticket();
        for r in rows {
            let Some(&i) = self.ticket_index.get(&digits_key(&r.ticket_no)) else { continue };
            let t = self.current.tickets[i as usize];
            let cost = if t.amount > 0 { (r.amount.0 as i128 * t.cost as i128 / t.amount as i128) as i64 } else { 0 };
            let id = self.id();
            self.current.returns.push(ReturnFact {
                id,
                ticket: t.id,
                member: t.member,
                sold_at: t.sold_at,
                product: self.products.get(&r.product_code).map_or(ProductId(0), |p| p.0),
                amount: r.amount.0,
                cost,
            });
        }
        Ok(())
    }

    async fn health_checks(&mut self, rows: &[HealthCheckInput]) -> Result<(), Self::Error> {
        for c in rows {
            let Some(&member) = self.cards.get(&digits_key(&c.card_no)) else { continue };
            let id = self.id();
            self.current.checks.push(HealthCheckFact {
                id,
                member,
                checked_at: c.checked_at,
                kind: c.kind,
                abnormal: c.abnormal,
            });
        }
        Ok(())
    }

    fn progress(&mut self, msg: &str) {
        (self.progress)(msg);
    }
}

/// Generates the demo group and hands each company's facts to `on_company` as soon as it is complete
/// (one company is held in memory at a time); `on_company` returns false to stop there. Returns the
/// generator's summary, or `None` when stopped early.
pub fn facts(
    opts: &Options,
    on_company: &mut dyn FnMut(CompanyFacts) -> bool,
    progress: &mut dyn FnMut(&str),
) -> Option<crate::Summary> {
    let mut sink = FactSink {
        current: CompanyFacts::default(),
        next_id: 0,
        stores: HashMap::new(),
        products: HashMap::new(),
        cards: HashMap::new(),
        last_phone: None,
        ticket_index: HashMap::new(),
        open: None,
        on_company,
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

    #[test]
    fn facts_match_the_generated_summary_and_hang_together() {
        let mut companies = Vec::new();
        let summary = facts(
            &Options { size: Size::Tiny, seed: 7 },
            &mut |c| {
                companies.push(c);
                true
            },
            &mut |_| {},
        )
        .expect("not stopped");
        assert_eq!(companies.len(), summary.companies);
        let tickets: usize = companies.iter().map(|c| c.tickets.len()).sum();
        assert_eq!(tickets as u64, summary.tickets);
        let all_lines: u64 = companies.iter().map(|c| c.all_lines).sum();
        assert_eq!(all_lines, summary.lines);
        let member_lines: usize = companies.iter().map(|c| c.lines.len()).sum();
        assert_eq!(member_lines as u64, summary.member_lines);
        assert_eq!(companies.iter().map(|c| c.returns.len()).sum::<usize>(), summary.returns);
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
            // Merged second cards leave fewer members than rows, never a ticket without its member.
            let ids: std::collections::HashSet<i64> = c.members.iter().map(|m| m.id.0).collect();
            assert!(c.tickets.iter().filter_map(|t| t.member).all(|m| ids.contains(&m.0)));
            assert!(c.returns.iter().all(|r| r.cost >= 0 && r.amount > 0));
        }
    }

    #[test]
    fn stopping_after_the_first_company_generates_no_more() {
        let mut codes = Vec::new();
        let summary = facts(
            &Options { size: Size::Tiny, seed: 7 },
            &mut |c| {
                codes.push(c.code);
                false
            },
            &mut |_| {},
        );
        assert_eq!(summary, None);
        assert_eq!(codes, vec!["TJG".to_string()]);
    }
}
