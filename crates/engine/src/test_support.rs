//! Facts for the crate's unit tests.

use crate::data::CompanyData;
use rxmember_core::facts::{LineFact, MemberFact, TicketFact};
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use rxmember_core::{MemberId, ProductId, StoreId, TicketId};

/// A member with nothing but an id and a card number.
pub fn member(id: i64) -> MemberFact {
    MemberFact {
        id: MemberId(id),
        card_no: format!("C{id}"),
        gender: Gender::Unknown,
        birthday: None,
        store: None,
        registered_at: None,
        clerk_code: None,
        source: RegistrationSource::Store,
        referred: false,
        has_allergies: false,
        chronic_conditions: vec![],
        sms_opt_in: false,
        health_consent: false,
        status: MemberStatus::Active,
        updated_at: 0,
    }
}

/// Reads member ticket `id` of `member` at `store`, sold at `sold_at` (ms), one line per
/// (product id, amount); returns the ticket.
pub fn ticket(
    data: &mut CompanyData,
    id: i64,
    member: i64,
    store: i64,
    sold_at: i64,
    lines: &[(i64, i64)],
) -> TicketFact {
    let t = TicketFact {
        id: TicketId(id),
        member: Some(MemberId(member)),
        store: StoreId(store),
        sold_at,
        line_count: lines.len() as i64,
        amount: lines.iter().map(|l| l.1).sum(),
        discount: 0,
        cost: 0,
    };
    data.apply_ticket_visit(&t);
    for &(p, amount) in lines {
        data.apply_line(&LineFact { ticket: t.id, member: MemberId(member), sold_at, product: ProductId(p), amount });
    }
    t
}
