//! Coupons (优惠券): templates, what a coupon is worth on a basket, the best choice among a member's
//! coupons, and the codes printed on them. Seed 000's coupon pages: face value, minimum spend,
//! validity, issue and usage rules; a company enables a template and chooses its stores; statistics
//! of issued, used, shared, share succeeded and share failed.

use crate::money::Fen;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CouponKind {
    /// 代金券: a fixed amount off.
    Cash,
    /// 折扣券: pay `percent` of the applicable lines (90 = 9折).
    Percentage,
    /// 赠品券: one unit of a gift product free.
    Gift,
}

impl CouponKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CouponKind::Cash => "cash",
            CouponKind::Percentage => "percentage",
            CouponKind::Gift => "gift",
        }
    }
    pub fn parse(s: &str) -> Option<CouponKind> {
        Some(match s {
            "cash" => CouponKind::Cash,
            "percentage" => CouponKind::Percentage,
            "gift" => CouponKind::Gift,
            _ => return None,
        })
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            CouponKind::Cash => "代金券",
            CouponKind::Percentage => "折扣券",
            CouponKind::Gift => "赠品券",
        }
    }
}

/// When a coupon of a template is issued automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum IssueEvent {
    Registration,
    Birthday,
    ReferralSuccess,
    PointsRedemption,
}

impl IssueEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            IssueEvent::Registration => "registration",
            IssueEvent::Birthday => "birthday",
            IssueEvent::ReferralSuccess => "referral_success",
            IssueEvent::PointsRedemption => "points_redemption",
        }
    }
    pub fn parse(s: &str) -> Option<IssueEvent> {
        Some(match s {
            "registration" => IssueEvent::Registration,
            "birthday" => IssueEvent::Birthday,
            "referral_success" => IssueEvent::ReferralSuccess,
            "points_redemption" => IssueEvent::PointsRedemption,
            _ => return None,
        })
    }
}

/// How long a coupon is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Validity {
    /// Fixed first and last day.
    Absolute { from: NaiveDate, to: NaiveDate },
    /// `days` days from the day of issue (the day of issue counts as the first).
    Days { days: u32 },
}

impl Validity {
    /// First and last valid day of a coupon issued on `issued`.
    pub fn window(&self, issued: NaiveDate) -> (NaiveDate, NaiveDate) {
        match *self {
            Validity::Absolute { from, to } => (from, to),
            Validity::Days { days } => (issued, issued + Days::new(days.saturating_sub(1) as u64)),
        }
    }
}

/// The usage rules of a template, as checkout needs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponRules {
    pub kind: CouponKind,
    /// Cash: the amount off. Gift: the gift's value cap (0 = the gift line's price).
    pub face_value: Fen,
    /// Percentage: price paid in percent.
    pub percent: u32,
    /// Gift: the product given.
    pub gift_product: Option<String>,
    /// The applicable lines must add up to at least this (满…可用).
    pub min_spend: Fen,
    /// Applicable products and categories; both empty: the whole basket.
    pub products: Vec<String>,
    pub categories: Vec<String>,
    /// May be combined with other stackable coupons on one ticket.
    pub stackable: bool,
}

/// A line as coupons see it: its amount after member discounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CouponLine {
    pub product_code: String,
    pub categories: Vec<String>,
    pub quantity_milli: i64,
    pub amount: Fen,
}

/// Why a coupon does not apply (shown to the cashier).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotApplicable {
    #[error("未满最低消费 {min} 元（适用商品合计 {have} 元）")]
    MinSpend { min: Fen, have: Fen },
    #[error("购物篮中没有适用商品")]
    NoApplicableLines,
    #[error("购物篮中没有赠品“{0}”")]
    NoGiftLine(String),
}

impl CouponRules {
    fn applies_to(&self, l: &CouponLine) -> bool {
        (self.products.is_empty() && self.categories.is_empty())
            || self.products.contains(&l.product_code)
            || l.categories.iter().any(|c| self.categories.contains(c))
    }

    /// The discount this coupon gives on `lines`, split across the lines it applies to (largest
    /// remainder first, so the split adds up exactly). Never more than those lines' amount.
    pub fn discount(&self, lines: &[CouponLine]) -> Result<Vec<Fen>, NotApplicable> {
        let mut split = vec![Fen::ZERO; lines.len()];
        let applicable: Vec<usize> = (0..lines.len()).filter(|&i| self.applies_to(&lines[i])).collect();
        let base: i64 = applicable.iter().map(|&i| lines[i].amount.0).sum();
        if applicable.is_empty() || base <= 0 {
            return Err(NotApplicable::NoApplicableLines);
        }
        if base < self.min_spend.0 {
            return Err(NotApplicable::MinSpend { min: self.min_spend, have: Fen(base) });
        }
        let total = match self.kind {
            CouponKind::Cash => self.face_value.0.min(base),
            CouponKind::Percentage => {
                let pct = self.percent.min(100) as i64;
                base - (base * pct + 50) / 100
            }
            CouponKind::Gift => {
                let code = self.gift_product.clone().unwrap_or_default();
                let Some(i) = (0..lines.len()).find(|&i| lines[i].product_code == code) else {
                    return Err(NotApplicable::NoGiftLine(code));
                };
                let l = &lines[i];
                let unit = if l.quantity_milli > 0 {
                    (l.amount.0 as i128 * 1000 / l.quantity_milli.max(1000) as i128) as i64
                } else {
                    0
                };
                let v = if self.face_value.0 > 0 { unit.min(self.face_value.0) } else { unit };
                split[i] = Fen(v.min(l.amount.0));
                return Ok(split);
            }
        };
        // Proportional split over applicable lines.
        let mut given = 0i64;
        let mut rema: Vec<(i64, usize)> = Vec::new();
        for &i in &applicable {
            let num = total as i128 * lines[i].amount.0 as i128;
            let share = (num / base as i128) as i64;
            split[i] = Fen(share);
            given += share;
            rema.push(((num % base as i128) as i64, i));
        }
        rema.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in rema.into_iter().take((total - given) as usize) {
            split[i].0 += 1;
        }
        Ok(split)
    }
}

/// The best set of coupons for a basket: either one coupon alone, or several stackable ones applied
/// one after another. Returns the chosen indexes into `coupons` and the total discount.
pub fn best_choice(coupons: &[CouponRules], lines: &[CouponLine]) -> (Vec<usize>, Fen) {
    let mut best: (Vec<usize>, Fen) = (Vec::new(), Fen::ZERO);
    for (i, c) in coupons.iter().enumerate() {
        if let Ok(d) = c.discount(lines) {
            let t = Fen(d.iter().map(|f| f.0).sum());
            if t > best.1 {
                best = (vec![i], t);
            }
        }
    }
    // Stackable ones, most valuable first, each on what the previous left.
    let mut order: Vec<(usize, i64)> = coupons
        .iter()
        .enumerate()
        .filter(|(_, c)| c.stackable)
        .filter_map(|(i, c)| c.discount(lines).ok().map(|d| (i, d.iter().map(|f| f.0).sum())))
        .collect();
    order.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (chosen, total) = apply_in_order(coupons, lines, &order.iter().map(|o| o.0).collect::<Vec<_>>());
    if total > best.1 {
        best = (chosen, total);
    }
    best
}

/// Applies coupons in order, each on the amounts the previous ones left; skips any that no longer
/// apply. Returns the ones applied and the total.
pub fn apply_in_order(coupons: &[CouponRules], lines: &[CouponLine], order: &[usize]) -> (Vec<usize>, Fen) {
    let mut work: Vec<CouponLine> = lines.to_vec();
    let mut chosen = Vec::new();
    let mut total = 0;
    for &i in order {
        if let Ok(d) = coupons[i].discount(&work) {
            for (l, x) in work.iter_mut().zip(&d) {
                l.amount.0 -= x.0;
            }
            total += d.iter().map(|f| f.0).sum::<i64>();
            chosen.push(i);
        }
    }
    (chosen, Fen(total))
}

/// Crockford base32 without I, L, O, U: easy to read aloud and type at the till.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A coupon code from 10 random bytes (80 bits: unguessable): 16 characters.
pub fn code_from_random(bytes: [u8; 10]) -> String {
    let mut v: u128 = 0;
    for b in bytes {
        v = (v << 8) | b as u128;
    }
    (0..16).rev().map(|i| ALPHABET[((v >> (i * 5)) & 31) as usize] as char).collect()
}

/// A code as typed or scanned → its canonical form: upper case, separators dropped, the look-alikes
/// O→0, I/L→1.
pub fn normalize_code(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '-' | ' ' | '_'))
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// A code grouped for printing: `ABCD-EFGH-JKMN-PQRS`.
pub fn display_code(code: &str) -> String {
    code.as_bytes().chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cl(code: &str, cat: &str, amount: i64) -> CouponLine {
        CouponLine {
            product_code: code.into(),
            categories: vec![cat.into()],
            quantity_milli: 1000,
            amount: Fen(amount),
        }
    }

    fn cash(face: i64, min: i64, stackable: bool) -> CouponRules {
        CouponRules {
            kind: CouponKind::Cash,
            face_value: Fen(face),
            percent: 100,
            gift_product: None,
            min_spend: Fen(min),
            products: vec![],
            categories: vec![],
            stackable,
        }
    }

    #[test]
    fn seed_000_minimum_spend() {
        // “通用 … 最小使用金额 100, 优惠券额 50”.
        let c = cash(5_000, 10_000, false);
        assert_eq!(
            c.discount(&[cl("A", "x", 9_999)]),
            Err(NotApplicable::MinSpend { min: Fen(10_000), have: Fen(9_999) })
        );
        let d = c.discount(&[cl("A", "x", 6_000), cl("B", "x", 4_000)]).unwrap();
        assert_eq!(d, vec![Fen(3_000), Fen(2_000)]);
    }

    #[test]
    fn category_percentage_and_gift_coupons() {
        let mut p = cash(0, 0, false);
        p.kind = CouponKind::Percentage;
        p.percent = 90;
        p.categories = vec!["H".into()];
        let d = p.discount(&[cl("A", "x", 10_000), cl("B", "H", 3_333)]).unwrap();
        assert_eq!(d, vec![Fen(0), Fen(333)]);
        let mut g = cash(0, 0, false);
        g.kind = CouponKind::Gift;
        g.gift_product = Some("G".into());
        let mut gl = cl("G", "x", 2_400);
        gl.quantity_milli = 2_000;
        assert_eq!(g.discount(&[cl("A", "x", 100), gl]).unwrap(), vec![Fen(0), Fen(1_200)]);
        assert_eq!(g.discount(&[cl("A", "x", 100)]), Err(NotApplicable::NoGiftLine("G".into())));
    }

    #[test]
    fn best_choice_compares_one_coupon_with_a_stack() {
        let coupons =
            vec![cash(3_000, 0, false), cash(2_000, 0, true), cash(1_500, 0, true), cash(9_000, 50_000, false)];
        let (chosen, total) = best_choice(&coupons, &[cl("A", "x", 10_000)]);
        assert_eq!((chosen, total), (vec![1, 2], Fen(3_500)));
        let (chosen, total) = best_choice(&coupons, &[cl("A", "x", 60_000)]);
        assert_eq!((chosen, total), (vec![3], Fen(9_000)));
    }

    #[test]
    fn codes_are_sixteen_unambiguous_characters() {
        let c = code_from_random([0xFF; 10]);
        assert_eq!(c, "ZZZZZZZZZZZZZZZZ");
        let c = code_from_random([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        assert_eq!(c.len(), 16);
        assert_eq!(normalize_code(&display_code(&c).to_lowercase()), c);
        assert_eq!(normalize_code("ab0o-il1"), "AB00111");
    }

    proptest! {
        /// A coupon's split adds up to its discount and never exceeds a line's amount.
        #[test]
        fn split_adds_up(amounts in proptest::collection::vec(1i64..100_000, 1..8), face in 1i64..200_000, pct in 1u32..100) {
            let lines: Vec<CouponLine> = amounts.iter().enumerate().map(|(i, a)| cl(&format!("P{i}"), "x", *a)).collect();
            let base: i64 = amounts.iter().sum();
            let mut c = cash(face, 0, false);
            let d = c.discount(&lines).unwrap();
            prop_assert_eq!(d.iter().map(|f| f.0).sum::<i64>(), face.min(base));
            c.kind = CouponKind::Percentage;
            c.percent = pct;
            let d = c.discount(&lines).unwrap();
            for (x, l) in d.iter().zip(&lines) {
                prop_assert!(x.0 >= 0 && x.0 <= l.amount.0);
            }
        }
    }
}
