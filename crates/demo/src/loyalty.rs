//! The demo group's loyalty set-up, so points, tiers, member days and coupons show on the demo:
//! seed 003's lunar member days (农历 8/18/28, 9.5折, double points), birthday-month double points,
//! calendar-year clearing on 03-31 plus a 12-month rolling validity (seed 001), points deduction at
//! the till and a 500-point coupon exchange, and four coupon templates. Idempotent.

use chrono::{Datelike, NaiveDate};
use rxmember_core::coupons::{CouponKind, IssueEvent, Validity};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::member_days::MemberDay;
use rxmember_core::org::Scope;
use rxmember_core::points::{BirthdayWindow, CouponTier, Deduction, Expiry, Multiplier};
use rxmember_core::{CompanyId, Fen};
use rxmember_store::coupons::CouponTemplateInput;
use rxmember_store::{Store, StoreError};

pub fn demo_rules() -> LoyaltyRules {
    let mut r = LoyaltyRules::default();
    r.points.expiry = Expiry { year_end: Some("03-31".into()), same_year: false, rolling_months: Some(12) };
    r.points.multipliers = vec![Multiplier {
        name: "生日月双倍积分".into(),
        percent: 200,
        birthday: Some(BirthdayWindow::Month),
        ..Default::default()
    }];
    r.points.redemption.deduction = Some(Deduction { points_per_yuan: 100, max_share_percent: 50 });
    r.points.redemption.coupon_tiers = vec![CouponTier { points: 500, template: "JF500".into() }];
    r.member_days = vec![MemberDay {
        name: "农历会员日".into(),
        lunar_days: vec![8, 18, 28],
        discount_percent: 95,
        points_percent: 200,
        ..Default::default()
    }];
    r
}

fn template(
    code: &str,
    name: &str,
    face: i64,
    min: i64,
    validity: Validity,
    event: Option<IssueEvent>,
) -> CouponTemplateInput {
    CouponTemplateInput {
        code: code.into(),
        name: name.into(),
        kind: CouponKind::Cash,
        face_value: Fen(face),
        percent: 100,
        gift_product: None,
        min_spend: Fen(min),
        validity,
        products: vec![],
        categories: vec![],
        stackable: false,
        per_member_limit: Some(1),
        total_quantity: None,
        issue_event: event,
    }
}

/// Sets up one company's demo loyalty rules and coupon templates. The points of the demo's tickets
/// are accrued by [`accrue`] (`rxmember demo`) or by the server's background job (`serve --demo`).
pub async fn setup(store: &Store, company: CompanyId, end: NaiveDate) -> Result<(), StoreError> {
    let scope = Scope::cli();
    store.set_loyalty_rules(&scope, company, &demo_rules()).await?;
    let month_start = NaiveDate::from_ymd_opt(end.year(), end.month(), 1).unwrap_or(end);
    let templates = [
        template("XK10", "新客券 满50减10", 1_000, 5_000, Validity::Days { days: 30 }, Some(IssueEvent::Registration)),
        template("SR20", "生日券 满100减20", 2_000, 10_000, Validity::Days { days: 31 }, Some(IssueEvent::Birthday)),
        template("JF500", "积分兑换 10元券", 1_000, 0, Validity::Days { days: 90 }, Some(IssueEvent::PointsRedemption)),
        template(
            "M100J20",
            "满100减20",
            2_000,
            10_000,
            Validity::Absolute { from: month_start, to: month_start + chrono::Days::new(90) },
            None,
        ),
    ];
    let existing = store.coupon_templates(&scope, company, end).await?;
    for t in &templates {
        if !existing.iter().any(|e| e.input.code == t.code) {
            store.create_coupon_template(&scope, company, t).await?;
            store.enable_coupon_template(&scope, company, &t.code, None).await?;
        }
    }
    Ok(())
}

/// Accrues the points of every company's tickets, reporting each company's progress.
pub async fn accrue(store: &Store, progress: &mut dyn FnMut(&str)) -> Result<(), StoreError> {
    let scope = Scope::cli();
    for c in store.companies(&scope).await? {
        let started = std::time::Instant::now();
        let (tickets, returns) = store.accrue_points(&scope, c.id).await?;
        progress(&format!(
            "{}: {tickets} 张会员小票入账积分，{returns} 笔退货扣回 ({:.1}s)",
            c.code,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}
