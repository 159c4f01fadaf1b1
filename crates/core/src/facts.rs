//! Facts: the slice of the store the member-intelligence engine is built from. The store reads them
//! (`store::facts`), the engine consumes them (`engine`); neither knows the other. Plain values, no
//! personal data beyond what audiences filter on (no names, phones or ID numbers).

use crate::health::HealthKind;
use crate::member::{Gender, MemberStatus, RegistrationSource};
use crate::{MemberId, ProductId, StoreId, TicketId};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// A member's attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberFact {
    pub id: MemberId,
    pub card_no: String,
    pub gender: Gender,
    pub birthday: Option<NaiveDate>,
    pub store: Option<StoreId>,
    /// Epoch milliseconds.
    pub registered_at: Option<i64>,
    pub clerk_code: Option<String>,
    pub source: RegistrationSource,
    pub referred: bool,
    pub has_allergies: bool,
    pub chronic_conditions: Vec<String>,
    pub sms_opt_in: bool,
    pub health_consent: bool,
    pub status: MemberStatus,
    /// Epoch milliseconds of the last change; the engine's incremental refresh watermark.
    pub updated_at: i64,
}

/// A sales ticket (member or not). Money in fen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketFact {
    pub id: TicketId,
    pub member: Option<MemberId>,
    pub store: StoreId,
    pub sold_at: i64,
    pub line_count: i64,
    /// Paid, after discount.
    pub amount: i64,
    pub discount: i64,
    pub cost: i64,
}

/// One line of a member's ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineFact {
    pub ticket: TicketId,
    pub member: MemberId,
    pub sold_at: i64,
    pub product: ProductId,
    pub amount: i64,
}

/// One returned line, with what the engine needs of its ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReturnFact {
    pub id: i64,
    pub ticket: TicketId,
    pub member: Option<MemberId>,
    /// When the returned ticket was sold: returns net out against the original purchase.
    pub sold_at: i64,
    pub product: ProductId,
    pub amount: i64,
    /// The returned share of the ticket's cost, estimated from the ticket's cost ratio.
    pub cost: i64,
}

/// One health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheckFact {
    pub id: i64,
    pub member: MemberId,
    pub checked_at: i64,
    pub kind: HealthKind,
    pub abnormal: bool,
}

/// A product as the engine groups purchases.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductFact {
    pub id: ProductId,
    pub code: String,
    pub name: String,
    pub category_code: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub is_prescription: bool,
}

/// A store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreFact {
    pub id: StoreId,
    pub code: String,
    pub name: String,
}

/// A member's loyalty state as it stands now: points balance, the unspent points that will expire
/// (by last valid day), and the tier code. Lots without an expiry date are in the balance only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyFact {
    pub member: MemberId,
    pub balance: i64,
    /// Unspent points by the last day they are valid on, one entry per lot.
    pub expiring: Vec<(NaiveDate, i64)>,
    pub tier: Option<String>,
}

/// A tier level the company's rules define, lowest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TierLevelFact {
    pub code: String,
    pub name: String,
}
