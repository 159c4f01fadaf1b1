//! Checkout (收银): what a basket costs a member and what it earns — tier and member-day discounts,
//! coupons (with the best choice suggested), points deduction and points to earn. A quote changes
//! nothing; committing a sale applies exactly the quote the same request produces.
//!
//! Order of discounts, per line: the member price is `list × rate`, where `rate` is the tier's
//! discount, or on a member day the lower of the tier's and the member day's (items the member day
//! excludes keep the tier's), times the tier's member-day extra. Coupons then apply to the
//! discounted amounts; points deduction last, spread over the lines in proportion. Points are earned
//! on what is finally paid.

use crate::coupons::{CouponLine, CouponRules, NotApplicable, apply_in_order, best_choice};
use crate::loyalty::LoyaltyRules;
use crate::member_days::member_day_on;
use crate::money::Fen;
use crate::points::{EarnLine, Earning};
use chrono::NaiveDate;
use serde::Serialize;

/// A basket line with what the drug master says about the product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BasketLine {
    pub product_code: String,
    /// Minor and major category codes.
    pub categories: Vec<String>,
    pub quantity_milli: i64,
    pub unit_price: Fen,
    pub points_excluded: bool,
}

/// The member at the till, as the rules need them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAtTill {
    pub tier: Option<String>,
    pub birthday: Option<NaiveDate>,
    pub points_balance: i64,
}

/// A coupon the member holds (valid today at this store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldCoupon {
    pub code: String,
    pub name: String,
    pub rules: CouponRules,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotedLine {
    pub product_code: String,
    pub quantity_milli: i64,
    pub list_amount: Fen,
    pub member_discount: Fen,
    pub coupon_discount: Fen,
    pub points_deduction: Fen,
    /// What is paid for the line.
    pub amount: Fen,
    /// Points multiplier applied to the line, in percent (0: earns nothing).
    pub points_percent: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CouponOption {
    pub code: String,
    pub name: String,
    /// The discount this coupon alone would give on the basket.
    pub discount: Fen,
    pub stackable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CouponRefused {
    pub code: String,
    pub name: String,
    pub reason: String,
}

/// The outcome of a quote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Quote {
    pub lines: Vec<QuotedLine>,
    pub list_total: Fen,
    pub member_discount: Fen,
    pub coupon_discount: Fen,
    pub points_deduction: Fen,
    /// What the customer pays.
    pub total: Fen,
    pub tier: Option<String>,
    pub member_day: Option<String>,
    /// The coupons applied (as requested), and what each took off.
    pub coupons_applied: Vec<String>,
    pub coupon_discounts: Vec<Fen>,
    /// Coupons the member could use on this basket, and the best set.
    pub coupons_applicable: Vec<CouponOption>,
    pub coupons_not_applicable: Vec<CouponRefused>,
    pub suggested_coupons: Vec<String>,
    pub suggested_discount: Fen,
    pub points_balance: i64,
    pub points_usable: i64,
    pub points_used: i64,
    pub points_to_earn: i64,
    pub earning: Option<Earning>,
}

/// Why a basket cannot be quoted as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    #[error("购物篮为空")]
    EmptyBasket,
    #[error("第{line}行: 数量必须大于0")]
    BadQuantity { line: usize },
    #[error("第{line}行: 金额超出范围（绝对值不超过 {} 元）", Fen::LIMIT)]
    LineTooLarge { line: usize },
    #[error("整单金额超出范围（不超过 {} 元）", Fen::LIMIT)]
    BasketTooLarge,
    #[error("优惠券“{0}”不可用（不存在、已使用、已过期或不适用于本门店）")]
    UnknownCoupon(String),
    #[error("优惠券“{code}”不适用: {reason}")]
    CouponNotApplicable { code: String, reason: NotApplicable },
    #[error("优惠券“{0}”不可与其他优惠券同时使用")]
    NotStackable(String),
    #[error("非会员不能使用优惠券或积分")]
    NotAMember,
    #[error("本单最多可用 {usable} 积分（请求 {wanted}）")]
    TooManyPoints { wanted: i64, usable: i64 },
}

/// What to quote.
pub struct QuoteRequest<'a> {
    pub date: NaiveDate,
    pub member: Option<&'a MemberAtTill>,
    pub lines: &'a [BasketLine],
    /// The member's coupons usable at this store today.
    pub held: &'a [HeldCoupon],
    /// Codes the customer wants to use (canonical form).
    pub use_coupons: &'a [String],
    pub use_points: i64,
}

/// Splits `total` over `weights` in proportion, largest remainder first; sums exactly to `total`
/// when the weights are positive.
fn split(total: i64, weights: &[i64]) -> Vec<i64> {
    let sum: i64 = weights.iter().map(|w| (*w).max(0)).sum();
    if sum <= 0 || total <= 0 {
        return vec![0; weights.len()];
    }
    let mut out = Vec::with_capacity(weights.len());
    let mut rem = Vec::with_capacity(weights.len());
    let mut given = 0;
    for (i, w) in weights.iter().enumerate() {
        let num = total as i128 * (*w).max(0) as i128;
        let v = (num / sum as i128) as i64;
        out.push(v);
        given += v;
        rem.push(((num % sum as i128) as i64, i));
    }
    rem.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, i) in rem.into_iter().take((total - given) as usize) {
        out[i] += 1;
    }
    out
}

/// Quotes a basket.
pub fn quote(rules: &LoyaltyRules, req: &QuoteRequest) -> Result<Quote, QuoteError> {
    if req.lines.is_empty() {
        return Err(QuoteError::EmptyBasket);
    }
    if let Some(i) = req.lines.iter().position(|l| l.quantity_milli <= 0) {
        return Err(QuoteError::BadQuantity { line: i + 1 });
    }
    // Lines and tickets beyond Fen::LIMIT are refused here as imports refuse them (worked out
    // wide, so no quantity or price overflows on the way).
    let list_wide = |l: &BasketLine| l.unit_price.0 as i128 * l.quantity_milli as i128 / 1000;
    if let Some(i) = req.lines.iter().position(|l| list_wide(l).abs() > Fen::LIMIT.0 as i128) {
        return Err(QuoteError::LineTooLarge { line: i + 1 });
    }
    if req.lines.iter().map(list_wide).sum::<i128>() > Fen::LIMIT.0 as i128 {
        return Err(QuoteError::BasketTooLarge);
    }
    if req.member.is_none() && (!req.use_coupons.is_empty() || req.use_points > 0) {
        return Err(QuoteError::NotAMember);
    }
    let tier =
        req.member.and_then(|m| m.tier.as_deref().and_then(|t| rules.tiers.level(t)).or_else(|| rules.tiers.base()));
    let day = req.member.and_then(|_| member_day_on(&rules.member_days, req.date));

    // 1. Member prices.
    let mut lines: Vec<QuotedLine> = Vec::with_capacity(req.lines.len());
    for l in req.lines {
        let list = l.unit_price.times_milli(l.quantity_milli);
        let mut rate: i64 = 10_000; // in 1/10000
        if let Some(t) = tier {
            rate = t.benefits.discount_percent as i64 * 100;
        }
        if let Some(d) = day
            && !d.excludes(&l.product_code, &l.categories)
        {
            rate = rate.min(d.discount_percent as i64 * 100);
            if let Some(t) = tier {
                rate = rate * t.benefits.member_day_extra_percent as i64 / 100;
            }
        }
        let pay = (list.0 as i128 * rate as i128 + 5_000).div_euclid(10_000) as i64;
        lines.push(QuotedLine {
            product_code: l.product_code.clone(),
            quantity_milli: l.quantity_milli,
            list_amount: list,
            member_discount: Fen(list.0 - pay),
            coupon_discount: Fen::ZERO,
            points_deduction: Fen::ZERO,
            amount: Fen(pay),
            points_percent: 0,
        });
    }

    // 2. Coupons.
    let coupon_lines: Vec<CouponLine> = req
        .lines
        .iter()
        .zip(&lines)
        .map(|(b, q)| CouponLine {
            product_code: b.product_code.clone(),
            categories: b.categories.clone(),
            quantity_milli: b.quantity_milli,
            amount: q.amount,
        })
        .collect();
    let all_rules: Vec<CouponRules> = req.held.iter().map(|h| h.rules.clone()).collect();
    let mut applicable = Vec::new();
    let mut refused = Vec::new();
    for h in req.held {
        match h.rules.discount(&coupon_lines) {
            Ok(d) => applicable.push(CouponOption {
                code: h.code.clone(),
                name: h.name.clone(),
                discount: Fen(d.iter().map(|f| f.0).sum()),
                stackable: h.rules.stackable,
            }),
            Err(e) => refused.push(CouponRefused { code: h.code.clone(), name: h.name.clone(), reason: e.to_string() }),
        }
    }
    let (best, best_total) = best_choice(&all_rules, &coupon_lines);
    let mut wanted: Vec<usize> = Vec::new();
    for code in req.use_coupons {
        let i = req.held.iter().position(|h| &h.code == code).ok_or_else(|| QuoteError::UnknownCoupon(code.clone()))?;
        if let Err(reason) = req.held[i].rules.discount(&coupon_lines) {
            return Err(QuoteError::CouponNotApplicable { code: code.clone(), reason });
        }
        if !wanted.contains(&i) {
            wanted.push(i);
        }
    }
    if wanted.len() > 1
        && let Some(&i) = wanted.iter().find(|&&i| !req.held[i].rules.stackable)
    {
        return Err(QuoteError::NotStackable(req.held[i].code.clone()));
    }
    let (applied, _) = apply_in_order(&all_rules, &coupon_lines, &wanted);
    if applied.len() != wanted.len() {
        // A later coupon no longer met its minimum after an earlier one.
        let i = wanted.iter().find(|i| !applied.contains(i)).copied().unwrap_or(0);
        let reason = all_rules[i].discount(&coupon_lines).err().unwrap_or(NotApplicable::NoApplicableLines);
        return Err(QuoteError::CouponNotApplicable { code: req.held[i].code.clone(), reason });
    }
    let mut work = coupon_lines.clone();
    let mut coupon_discounts = Vec::with_capacity(applied.len());
    for &i in &applied {
        if let Ok(d) = all_rules[i].discount(&work) {
            coupon_discounts.push(Fen(d.iter().map(|f| f.0).sum()));
            for ((w, q), x) in work.iter_mut().zip(lines.iter_mut()).zip(&d) {
                w.amount.0 -= x.0;
                q.coupon_discount.0 += x.0;
                q.amount.0 -= x.0;
            }
        }
    }

    // 3. Points deduction.
    let due: i64 = lines.iter().map(|l| l.amount.0).sum();
    let balance = req.member.map_or(0, |m| m.points_balance);
    let usable = match (&rules.points.redemption.deduction, req.member) {
        (Some(d), Some(_)) => d.usable(Fen(due), balance),
        _ => 0,
    };
    if req.use_points > usable {
        return Err(QuoteError::TooManyPoints { wanted: req.use_points, usable });
    }
    let (points_used, deduction) = match &rules.points.redemption.deduction {
        Some(d) if req.use_points > 0 => {
            let whole = req.use_points / d.points_per_yuan as i64 * d.points_per_yuan as i64;
            (whole, d.value(whole))
        }
        _ => (0, Fen::ZERO),
    };
    let weights: Vec<i64> = lines.iter().map(|l| l.amount.0).collect();
    for (l, x) in lines.iter_mut().zip(split(deduction.0, &weights)) {
        l.points_deduction = Fen(x);
        l.amount.0 -= x;
    }

    // 4. Points to earn on what is paid.
    let earning = req.member.map(|m| {
        let earn_lines: Vec<EarnLine> = req
            .lines
            .iter()
            .zip(&lines)
            .map(|(b, q)| EarnLine {
                product_code: b.product_code.clone(),
                categories: b.categories.clone(),
                excluded: b.points_excluded,
                paid: q.amount,
            })
            .collect();
        let cx = rules.earn_context(req.date, tier.map(|t| t.code.as_str()), m.birthday);
        rules.points.earn(&earn_lines, &cx)
    });
    if let Some(e) = &earning {
        for (q, le) in lines.iter_mut().zip(&e.lines) {
            q.points_percent = le.percent;
        }
    }

    let sum = |f: fn(&QuotedLine) -> Fen| Fen(lines.iter().map(|l| f(l).0).sum());
    Ok(Quote {
        list_total: sum(|l| l.list_amount),
        member_discount: sum(|l| l.member_discount),
        coupon_discount: sum(|l| l.coupon_discount),
        points_deduction: sum(|l| l.points_deduction),
        total: sum(|l| l.amount),
        lines,
        tier: tier.map(|t| t.code.clone()),
        member_day: day.map(|d| d.name.clone()),
        coupons_applied: applied.iter().map(|&i| req.held[i].code.clone()).collect(),
        coupon_discounts,
        coupons_applicable: applicable,
        coupons_not_applicable: refused,
        suggested_coupons: best.iter().map(|&i| req.held[i].code.clone()).collect(),
        suggested_discount: best_total,
        points_balance: balance,
        points_usable: usable,
        points_used,
        points_to_earn: earning.as_ref().map_or(0, |e| e.points),
        earning,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coupons::CouponKind;
    use crate::member_days::MemberDay;
    use crate::points::Deduction;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn bl(code: &str, cat: &str, qty: i64, price: i64) -> BasketLine {
        BasketLine {
            product_code: code.into(),
            categories: vec![cat.into()],
            quantity_milli: qty,
            unit_price: Fen(price),
            points_excluded: false,
        }
    }

    fn coupon(code: &str, face: i64, min: i64, stackable: bool) -> HeldCoupon {
        HeldCoupon {
            code: code.into(),
            name: format!("满{}减{}", min / 100, face / 100),
            rules: CouponRules {
                kind: CouponKind::Cash,
                face_value: Fen(face),
                percent: 100,
                gift_product: None,
                min_spend: Fen(min),
                products: vec![],
                categories: vec![],
                stackable,
            },
        }
    }

    fn rules() -> LoyaltyRules {
        let mut r = LoyaltyRules {
            member_days: vec![MemberDay {
                name: "农历会员日".into(),
                lunar_days: vec![8, 18, 28],
                discount_percent: 95,
                points_percent: 200,
                excluded_categories: vec!["PROMO".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        r.points.redemption.deduction = Some(Deduction { points_per_yuan: 100, max_share_percent: 50 });
        r
    }

    fn member(tier: &str, balance: i64) -> MemberAtTill {
        MemberAtTill { tier: Some(tier.into()), birthday: None, points_balance: balance }
    }

    #[test]
    fn seed_003_member_day_discount_except_promotions() {
        // 腊八 2026-01-26 is a lunar 8th: 9.5折 for a normal member, promotions excluded; double points.
        let m = member("normal", 0);
        let lines = [bl("A", "X", 2_000, 5_000), bl("S", "PROMO", 1_000, 1_000)];
        let req = QuoteRequest {
            date: d(2026, 1, 26),
            member: Some(&m),
            lines: &lines,
            held: &[],
            use_coupons: &[],
            use_points: 0,
        };
        let q = quote(&rules(), &req).unwrap();
        assert_eq!(q.member_day.as_deref(), Some("农历会员日"));
        assert_eq!(q.lines[0].amount, Fen(9_500));
        assert_eq!(q.lines[1].amount, Fen(1_000));
        assert_eq!(q.total, Fen(10_500));
        assert_eq!(q.points_to_earn, 95 * 2 + 10 * 2);
        // The next day: list price, base points.
        let req = QuoteRequest { date: d(2026, 1, 27), ..req };
        let q = quote(&rules(), &req).unwrap();
        assert_eq!((q.total, q.points_to_earn), (Fen(11_000), 110));
    }

    #[test]
    fn tier_discount_coupon_and_points_deduction() {
        let m = member("gold", 3_000); // 9折, 1.5× points
        let lines = [bl("A", "X", 1_000, 20_000)];
        let held = [coupon("C1", 2_000, 10_000, false), coupon("C2", 5_000, 50_000, false)];
        let codes = vec!["C1".to_string()];
        let req = QuoteRequest {
            date: d(2026, 3, 3),
            member: Some(&m),
            lines: &lines,
            held: &held,
            use_coupons: &codes,
            use_points: 3_000,
        };
        let q = quote(&rules(), &req).unwrap();
        assert_eq!(q.member_discount, Fen(2_000));
        assert_eq!(q.coupon_discount, Fen(2_000));
        assert_eq!(q.points_deduction, Fen(3_000));
        assert_eq!(q.total, Fen(13_000));
        assert_eq!(q.points_to_earn, 130 * 3 / 2);
        assert_eq!(q.suggested_coupons, vec!["C1".to_string()]);
        assert_eq!(q.coupons_not_applicable.len(), 1);
        // More points than the 50% share allows.
        let req = QuoteRequest { use_points: 9_000, ..req };
        assert!(matches!(quote(&rules(), &req), Err(QuoteError::TooManyPoints { usable: 3_000, .. })));
    }

    #[test]
    fn refuses_lines_and_baskets_beyond_the_limit() {
        let quote_of = |lines: &[BasketLine]| {
            let req =
                QuoteRequest { date: d(2026, 3, 3), member: None, lines, held: &[], use_coupons: &[], use_points: 0 };
            quote(&LoyaltyRules::default(), &req)
        };
        // 10,000,000.00 yuan exactly is one line's limit; a fen more is refused, as is a quantity
        // whose amount would overflow 64 bits.
        assert!(quote_of(&[bl("A", "X", 1_000, Fen::LIMIT.0)]).is_ok());
        assert!(matches!(
            quote_of(&[bl("A", "X", 1_000, 1), bl("B", "X", 1_000, Fen::LIMIT.0 + 1)]),
            Err(QuoteError::LineTooLarge { line: 2 })
        ));
        assert!(matches!(quote_of(&[bl("A", "X", i64::MAX, 1_000)]), Err(QuoteError::LineTooLarge { line: 1 })));
        // Two lines within the limit whose sum is not.
        let half = Fen::LIMIT.0 / 2 + 1;
        assert!(matches!(
            quote_of(&[bl("A", "X", 1_000, half), bl("B", "X", 1_000, half)]),
            Err(QuoteError::BasketTooLarge)
        ));
    }

    #[test]
    fn refuses_what_cannot_apply() {
        let m = member("normal", 0);
        let lines = [bl("A", "X", 1_000, 1_000)];
        let held = [coupon("C1", 2_000, 10_000, false), coupon("C2", 100, 0, false), coupon("C3", 100, 0, true)];
        let base = QuoteRequest {
            date: d(2026, 3, 3),
            member: Some(&m),
            lines: &lines,
            held: &held,
            use_coupons: &[],
            use_points: 0,
        };
        let c1 = vec!["C1".to_string()];
        assert!(matches!(
            quote(&rules(), &QuoteRequest { use_coupons: &c1, ..base }),
            Err(QuoteError::CouponNotApplicable { .. })
        ));
        let two = vec!["C2".to_string(), "C3".to_string()];
        assert_eq!(
            quote(&rules(), &QuoteRequest { use_coupons: &two, ..base }),
            Err(QuoteError::NotStackable("C2".into()))
        );
        let unknown = vec!["NOPE".to_string()];
        assert!(matches!(
            quote(&rules(), &QuoteRequest { use_coupons: &unknown, ..base }),
            Err(QuoteError::UnknownCoupon(_))
        ));
        let none = QuoteRequest { member: None, use_coupons: &two, ..base };
        assert_eq!(quote(&rules(), &none), Err(QuoteError::NotAMember));
    }

    proptest! {
        /// The lines always add up: list − discounts = paid, nothing negative, totals consistent.
        #[test]
        fn quotes_add_up(
            items in proptest::collection::vec((1i64..5_000, 1i64..30_000), 1..6),
            day in 0u64..365,
            face in 0i64..20_000,
            points in 0i64..50_000,
        ) {
            let lines: Vec<BasketLine> = items.iter().enumerate().map(|(i, (q, p))| bl(&format!("P{i}"), "X", *q, *p)).collect();
            let m = member("silver", points);
            let held = [coupon("C", face.max(1), 0, true)];
            let date = d(2026, 1, 1) + chrono::Days::new(day);
            let codes = vec!["C".to_string()];
            let probe = QuoteRequest { date, member: Some(&m), lines: &lines, held: &held, use_coupons: &codes, use_points: 0 };
            let usable = quote(&rules(), &probe).unwrap().points_usable;
            let req = QuoteRequest { use_points: usable, ..probe };
            let q = quote(&rules(), &req).unwrap();
            for l in &q.lines {
                prop_assert!(l.amount.0 >= 0);
                prop_assert_eq!(l.list_amount.0 - l.member_discount.0 - l.coupon_discount.0 - l.points_deduction.0, l.amount.0);
            }
            prop_assert_eq!(q.list_total.0 - q.member_discount.0 - q.coupon_discount.0 - q.points_deduction.0, q.total.0);
            prop_assert!(q.points_used <= points);
        }
    }
}
