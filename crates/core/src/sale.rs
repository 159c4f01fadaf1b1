//! Sales: tickets (小票) with lines, and returns (退货). Member and non-member tickets alike: the
//! member share of sales is a core metric.

use crate::money::Fen;

/// One sales line as a cleaned import row (DATA.md "sales").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaleLineInput {
    pub ticket_no: String,
    /// `None`: the row's position within its ticket in the file.
    pub line_no: Option<i64>,
    /// Epoch milliseconds.
    pub sold_at: i64,
    pub store_code: String,
    /// `None` for a non-member ticket.
    pub card_no: Option<String>,
    pub clerk_code: Option<String>,
    pub product_code: String,
    pub quantity_milli: i64,
    pub unit_price: Option<Fen>,
    /// Paid for the line after discounts.
    pub amount: Fen,
    pub discount: Fen,
    /// `None`: quantity × the product's cost price.
    pub cost: Option<Fen>,
}

/// One returned line (DATA.md "returns"). Quantity and amount are magnitudes (positive).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReturnInput {
    pub ticket_no: String,
    pub return_no: String,
    pub returned_at: i64,
    pub product_code: String,
    pub quantity_milli: i64,
    pub amount: Fen,
}
