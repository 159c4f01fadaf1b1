//! Products: a company's drug master (商品档案).

use crate::money::Fen;

/// A product as a cleaned import row (DATA.md "products").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProductInput {
    pub code: String,
    pub name: String,
    pub generic_name: Option<String>,
    pub spec: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    /// A minor or major category code of the company's taxonomy.
    pub category_code: Option<String>,
    pub is_prescription: bool,
    pub retail_price: Option<Fen>,
    pub cost_price: Option<Fen>,
    pub days_per_pack: Option<i64>,
    pub ingredients: Vec<String>,
    pub points_excluded: bool,
}
