//! Loyalty integration tests on a real database (SQLite; PostgreSQL with RXMEMBER_TEST_PG): points
//! from imported and POS sales, returns, expiry, tiers, coupons with exactly-once redemption.

use chrono::NaiveDate;
use rxmember_core::checkout::{HeldCoupon, QuoteRequest, quote};
use rxmember_core::coupons::{CouponKind, Validity};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::member::MemberInput;
use rxmember_core::org::{Scope, StoreInput};
use rxmember_core::points::{Deduction, Expiry, ReturnPolicy};
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::time::{epoch_ms_to_local, local_to_epoch_ms};
use rxmember_core::{CompanyId, Fen, MemberId};
use rxmember_store::Store;
use rxmember_store::coupons::CouponTemplateInput;
use rxmember_store::points::LedgerQuery;
use rxmember_store::pos::{MemberKey, PosLineInput, request_hash};
use rxmember_store::testing::TestDb;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn at(y: i32, m: u32, day: u32) -> i64 {
    local_to_epoch_ms(d(y, m, day).and_hms_opt(10, 0, 0).unwrap(), 480)
}

/// A company with one store, three products (P2 flagged 不积分) and two members.
async fn setup(s: &Store) -> CompanyId {
    let cli = Scope::cli();
    let c = s.create_company(&cli, "A", "甲公司", None).await.unwrap().id;
    s.upsert_stores(&cli, c, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }])
        .await
        .unwrap();
    s.upsert_stores(&cli, c, &[StoreInput { code: "S2".into(), name: "二店".into(), ..Default::default() }])
        .await
        .unwrap();
    let p = |code: &str, name: &str, price: i64, excluded: bool, ingredients: &[&str]| ProductInput {
        code: code.into(),
        name: name.into(),
        retail_price: Some(Fen(price)),
        cost_price: Some(Fen(price / 2)),
        points_excluded: excluded,
        ingredients: ingredients.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    s.upsert_products(
        &cli,
        c,
        &[
            p("P1", "阿莫西林胶囊", 2_000, false, &["阿莫西林"]),
            p("P2", "特价口罩", 1_000, true, &[]),
            p("P3", "维生素C片", 5_000, false, &[]),
        ],
    )
    .await
    .unwrap();
    let m = |card: &str, phone: &str, allergies: &[&str]| MemberInput {
        card_no: card.into(),
        name: Some("王芳".into()),
        phone: Some(phone.into()),
        allergies: allergies.iter().map(|s| s.to_string()).collect(),
        birthday: Some(d(1970, 5, 3)),
        ..Default::default()
    };
    s.upsert_members(
        &cli,
        c,
        &Default::default(),
        &[m("C1", "13800000001", &["阿莫西林"]), m("C2", "13800000002", &[])],
    )
    .await
    .unwrap();
    c
}

async fn member_id(s: &Store, c: CompanyId, card: &str) -> MemberId {
    MemberId(s.pos_identify(&Scope::cli(), c, &MemberKey::Card(card.into())).await.unwrap().member_id)
}

fn sale(ticket: &str, card: Option<&str>, product: &str, amount: i64, when: i64) -> SaleLineInput {
    SaleLineInput {
        ticket_no: ticket.into(),
        sold_at: when,
        store_code: "S1".into(),
        card_no: card.map(Into::into),
        product_code: product.into(),
        quantity_milli: 1000,
        amount: Fen(amount),
        ..Default::default()
    }
}

#[tokio::test]
async fn imported_sales_earn_once_returns_take_back_and_lots_expire() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let mut rules = LoyaltyRules::default();
    rules.points.expiry = Expiry { year_end: Some("03-31".into()), ..Default::default() };
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    let ctx = s.sales_context(&cli, c).await.unwrap();
    let lines = [
        sale("T1", Some("C1"), "P1", 12_345, at(2025, 6, 1)),
        sale("T1", Some("C1"), "P2", 5_000, at(2025, 6, 1)), // 不积分
        sale("T2", Some("C1"), "P3", 10_000, at(2026, 2, 1)),
        sale("T3", None, "P3", 10_000, at(2026, 2, 1)), // non-member
    ];
    let rows: Vec<(i64, &SaleLineInput)> = vec![(1, &lines[0]), (2, &lines[1]), (1, &lines[2]), (1, &lines[3])];
    s.write_sales(&cli, &ctx, &rows).await.unwrap();
    assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (2, 0));
    let m = member_id(s, c, "C1").await;
    let today = d(2026, 3, 1);
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 123 + 100);
    // Run again, and import the same file again: nothing earns twice.
    s.write_sales(&cli, &ctx, &rows).await.unwrap();
    assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (0, 0));
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 223);
    // The 2025 lot (123 points) expires after 2026-03-31 and shows as expiring within 30 days.
    let sum = s.points_summary(&cli, c, m, today).await.unwrap();
    assert_eq!((sum.expiring_30d, sum.next_expiry.as_deref()), (123, Some("2026-03-31")));
    // The till's identify reads the same summary within its first statement.
    let till_matches_summary = || async {
        let now_day = rxmember_core::time::local_date(rxmember_core::time::now_ms(), 480);
        let at_till = s.pos_lookup(&cli, c, &MemberKey::Card("C1".into())).await.unwrap().points;
        assert_eq!(at_till, s.points_summary(&cli, c, m, now_day).await.unwrap());
        at_till
    };
    let seen = till_matches_summary().await;
    assert_eq!((seen.balance, seen.expiring_30d, seen.next_expiry.as_deref()), (223, 123, Some("2026-03-31")));

    // Half of T2 returned: 50 points back; the rest later: the other 50.
    let products = s.product_refs(&cli, c).await.unwrap();
    let ret = |no: &str, amount: i64| ReturnInput {
        ticket_no: "T2".into(),
        return_no: no.into(),
        returned_at: at(2026, 2, 10),
        product_code: "P3".into(),
        quantity_milli: 500,
        amount: Fen(amount),
    };
    s.write_returns(&cli, c, &products, &[ret("R1", 5_000)]).await.unwrap();
    assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (0, 1));
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 173);
    s.write_returns(&cli, c, &products, &[ret("R2", 5_000)]).await.unwrap();
    s.accrue_points(&cli, c).await.unwrap();
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 123);
    till_matches_summary().await;

    // Expiry job: nothing on 03-31, everything of the 2025 lot on 04-01; idempotent.
    assert_eq!(s.expire_points(&cli, c, d(2026, 3, 31)).await.unwrap(), (0, 0));
    assert_eq!(s.expire_points(&cli, c, d(2026, 4, 1)).await.unwrap(), (1, 123));
    assert_eq!(s.expire_points(&cli, c, d(2026, 4, 1)).await.unwrap(), (0, 0));
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 0);
    assert_eq!(till_matches_summary().await.next_expiry, None);
    let ledger = s.points_ledger(&cli, c, m, &LedgerQuery::latest(50)).await.unwrap();
    let kinds: Vec<&str> = ledger.iter().rev().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, vec!["earn", "earn", "reverse", "reverse", "expire"]);
    // Paging by id walks the same entries two at a time; kind and date filters narrow them.
    let mut paged = Vec::new();
    let mut q = LedgerQuery::latest(2);
    loop {
        let page = s.points_ledger(&cli, c, m, &q).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        q.before_id = Some(last.id);
        paged.extend(page.iter().map(|e| e.id));
    }
    assert_eq!(paged, ledger.iter().map(|e| e.id).collect::<Vec<_>>());
    let reverses = LedgerQuery { kind: Some("reverse".into()), ..LedgerQuery::latest(50) };
    assert_eq!(s.points_ledger(&cli, c, m, &reverses).await.unwrap().len(), 2);
    let april = LedgerQuery { from: Some(d(2026, 4, 1)), to: Some(d(2026, 4, 30)), ..LedgerQuery::latest(50) };
    let in_april: Vec<String> =
        s.points_ledger(&cli, c, m, &april).await.unwrap().into_iter().map(|e| e.kind).collect();
    assert_eq!(in_april, vec!["expire".to_string()]);
    let bad = LedgerQuery { kind: Some("bogus".into()), ..LedgerQuery::latest(5) };
    assert!(matches!(s.points_ledger(&cli, c, m, &bad).await, Err(rxmember_store::StoreError::Invalid(_))));
    assert!(s.check_points(&cli, c).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn opening_balances_adjustments_and_clawback_policy() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let mut rules = LoyaltyRules::default();
    rules.points.return_policy = ReturnPolicy::ClawbackNext;
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    let m = member_id(s, c, "C2").await;
    let today = d(2026, 3, 1);
    // An operator's adjustment is idempotent by its request id and needs a reason.
    s.adjust_points(&cli, c, m, 30, "补录积分", "req-1").await.unwrap();
    s.adjust_points(&cli, c, m, 30, "补录积分", "req-1").await.unwrap();
    assert!(s.adjust_points(&cli, c, m, 5, " ", "req-2").await.is_err());
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 30);
    // Earn 100, spend 120 at a coupon exchange-like redemption via adjustment, then return the sale.
    let ctx = s.sales_context(&cli, c).await.unwrap();
    let l = sale("T9", Some("C2"), "P3", 10_000, at(2026, 2, 1));
    s.write_sales(&cli, &ctx, &[(1, &l)]).await.unwrap();
    s.accrue_points(&cli, c).await.unwrap();
    s.adjust_points(&cli, c, m, -120, "兑换礼品", "req-3").await.unwrap();
    assert_eq!(s.points_summary(&cli, c, m, today).await.unwrap().balance, 10);
    let products = s.product_refs(&cli, c).await.unwrap();
    let r = ReturnInput {
        ticket_no: "T9".into(),
        return_no: "R9".into(),
        returned_at: at(2026, 2, 2),
        product_code: "P3".into(),
        quantity_milli: 1000,
        amount: Fen(10_000),
    };
    s.write_returns(&cli, c, &products, &[r]).await.unwrap();
    s.accrue_points(&cli, c).await.unwrap();
    // Clawback: the balance stops at zero and 90 points are owed.
    let sum = s.points_summary(&cli, c, m, today).await.unwrap();
    assert_eq!((sum.balance, sum.debt), (0, 90));
    // The next earning pays the debt first.
    let l = sale("T10", Some("C2"), "P3", 20_000, at(2026, 2, 5));
    s.write_sales(&cli, &ctx, &[(1, &l)]).await.unwrap();
    s.accrue_points(&cli, c).await.unwrap();
    let sum = s.points_summary(&cli, c, m, today).await.unwrap();
    assert_eq!((sum.balance, sum.debt), (110, 0));
    // Opening balances from the ERP card's legacy points: credited once per card.
    let legacy = MemberInput {
        card_no: "C1".into(),
        phone: Some("13800000001".into()),
        points: Some(350),
        ..Default::default()
    };
    s.upsert_members(&cli, c, &Default::default(), &[legacy]).await.unwrap();
    assert_eq!(s.open_points_balances(&cli, c).await.unwrap(), 1);
    assert_eq!(s.open_points_balances(&cli, c).await.unwrap(), 0);
    let c1 = member_id(s, c, "C1").await;
    assert_eq!(s.points_summary(&cli, c, c1, today).await.unwrap().balance, 350);
    assert!(s.check_points(&cli, c).await.unwrap().is_empty());
    db.cleanup().await;
}

fn cash_template(code: &str, face: i64, min: i64) -> CouponTemplateInput {
    CouponTemplateInput {
        code: code.into(),
        name: format!("满{}减{}", min / 100, face / 100),
        kind: CouponKind::Cash,
        face_value: Fen(face),
        percent: 100,
        gift_product: None,
        min_spend: Fen(min),
        validity: Validity::Days { days: 30 },
        products: vec![],
        categories: vec![],
        stackable: false,
        per_member_limit: Some(2),
        total_quantity: Some(3),
        issue_event: None,
    }
}

#[tokio::test]
async fn pos_quote_and_commit_with_coupon_points_and_allergy_warning() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let mut rules = LoyaltyRules::default();
    rules.points.redemption.deduction = Some(Deduction { points_per_yuan: 100, max_share_percent: 50 });
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    let pos = Scope::company_token(c, "pos");
    let m = member_id(s, c, "C1").await;
    s.adjust_points(&cli, c, m, 500, "期初", "open-1").await.unwrap();

    // Templates: draft cannot issue; enabled for S1 only; limits hold.
    s.create_coupon_template(&cli, c, &cash_template("M100J20", 2_000, 10_000)).await.unwrap();
    let today = d(2026, 3, 3);
    assert!(s.issue_coupons(&cli, c, "M100J20", &[m], "manual:1", today).await.is_err());
    s.enable_coupon_template(&cli, c, "M100J20", Some(&["S1".to_string()])).await.unwrap();
    let r = s.issue_coupons(&cli, c, "M100J20", &[m], "manual:1", today).await.unwrap();
    assert_eq!(r.issued, 1);
    let code = r.codes[0].clone();
    assert_eq!(s.issue_coupons(&cli, c, "M100J20", &[m], "manual:1", today).await.unwrap().unchanged, 1);
    s.issue_coupons(&cli, c, "M100J20", &[m], "manual:2", today).await.unwrap();
    assert_eq!(s.issue_coupons(&cli, c, "M100J20", &[m], "manual:3", today).await.unwrap().over_limit, 1);

    // Identify by phone and by e-card code; a forged code is refused.
    let by_phone = s.pos_identify(&pos, c, &MemberKey::Phone("138-0000-0001".into())).await.unwrap();
    assert_eq!(by_phone.member_id, m.0);
    assert_eq!(by_phone.name_masked.as_deref(), Some("王*"));
    let now = rxmember_core::time::now_ms();
    let ecard = s.ecard_code(c, m, now);
    assert_eq!(s.pos_identify(&pos, c, &MemberKey::ECard(ecard.clone())).await.unwrap().member_id, m.0);
    let last = if ecard.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &ecard[..ecard.len() - 1]);
    assert!(s.pos_identify(&pos, c, &MemberKey::ECard(forged)).await.is_err());

    // Quote: 2 × P1 (40 yuan) + 1 × P3 (50 yuan) + P2 (10 yuan, no points) = 100 yuan.
    let member = s.pos_identify(&pos, c, &MemberKey::Card("C1".into())).await.unwrap();
    let lines = vec![
        PosLineInput { product_code: "P1".into(), quantity_milli: 2_000, unit_price: None },
        PosLineInput { product_code: "P3".into(), quantity_milli: 1_000, unit_price: None },
        PosLineInput { product_code: "P2".into(), quantity_milli: 1_000, unit_price: None },
    ];
    let sold_at = at(2026, 3, 3);
    let ctx = s
        .pos_context(&pos, c, "S1", Some(&MemberKey::Card("C1".into())), &lines, Some(epoch_ms_to_local(sold_at, 480)))
        .await
        .unwrap();
    assert_eq!(ctx.allergy_warnings.len(), 1, "{:?}", ctx.allergy_warnings);
    assert!(ctx.allergy_warnings[0].contains("阿莫西林"));
    let held: Vec<HeldCoupon> = ctx
        .held
        .iter()
        .map(|h| HeldCoupon { code: h.code.clone(), name: h.name.clone(), rules: h.rules.clone() })
        .collect();
    assert_eq!(held.len(), 2);
    let use_coupons = vec![code.clone()];
    let at_till = member.at_till();
    let req = QuoteRequest {
        date: ctx.day,
        member: Some(&at_till),
        lines: &ctx.basket,
        held: &held,
        use_coupons: &use_coupons,
        use_points: 300,
    };
    let q = quote(&ctx.rules, &req).unwrap();
    assert_eq!(q.list_total, Fen(10_000));
    assert_eq!(q.coupon_discount, Fen(2_000));
    assert_eq!(q.points_deduction, Fen(300));
    assert_eq!(q.total, Fen(7_700));
    // Points on what is paid, excluding P2's share.
    let p2_paid = q.lines[2].amount.0;
    assert_eq!(q.points_to_earn, (7_700 - p2_paid) / 100);

    // In S2 the coupon is not usable.
    let ctx2 = s
        .pos_context(&pos, c, "S2", Some(&MemberKey::Card("C1".into())), &lines, Some(epoch_ms_to_local(sold_at, 480)))
        .await
        .unwrap();
    assert!(ctx2.held.is_empty());

    let hash = request_hash(b"body-1");
    let receipt = s.pos_commit_sale(&pos, &ctx, "POS-0001", sold_at, Some("E01"), &q, &hash).await.unwrap();
    assert_eq!(receipt.points_earned, q.points_to_earn);
    assert_eq!(receipt.points_balance, Some(500 - 300 + q.points_to_earn));
    // A retry gets the same receipt and changes nothing; another body under the same number is refused.
    assert_eq!(s.pos_commit_sale(&pos, &ctx, "POS-0001", sold_at, Some("E01"), &q, &hash).await.unwrap(), receipt);
    assert!(s.pos_commit_sale(&pos, &ctx, "POS-0001", sold_at, None, &q, &request_hash(b"other")).await.is_err());
    // The coupon is spent: a second sale with it fails and rolls back entirely.
    assert!(s.pos_commit_sale(&pos, &ctx, "POS-0002", sold_at, None, &q, &request_hash(b"b2")).await.is_err());
    let t = s.tickets(&cli, c, None, 10, 0).await.unwrap();
    assert_eq!(t.len(), 1);
    assert_eq!(t[0].amount, Fen(7_700));
    // The accrual later sees the POS ticket and does not earn again.
    assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (0, 0));
    let stats = s.coupon_templates(&cli, c, today).await.unwrap();
    assert_eq!((stats[0].issued, stats[0].used, stats[0].discount_total), (2, 1, Fen(2_000)));
    assert_eq!(stats[0].stores, vec!["S1".to_string()]);

    // Return one P1 at the till: its points come back out, idempotently.
    let before = s.points_summary(&cli, c, m, today).await.unwrap().balance;
    let rr = s
        .pos_commit_return(&pos, c, "RET-1", "POS-0001", &[("P1".into(), 1_000)], sold_at + 3_600_000, b"r1")
        .await
        .unwrap();
    assert!(rr.points_taken_back > 0);
    assert_eq!(rr.points_balance, Some(before - rr.points_taken_back));
    assert_eq!(
        s.pos_commit_return(&pos, c, "RET-1", "POS-0001", &[("P1".into(), 1_000)], sold_at, b"r1").await.unwrap(),
        rr
    );
    // Returning more than was sold is refused.
    assert!(s.pos_commit_return(&pos, c, "RET-2", "POS-0001", &[("P1".into(), 2_000)], sold_at, b"r2").await.is_err());
    assert!(s.check_points(&cli, c).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn a_coupon_is_redeemed_exactly_once_under_concurrency() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let m = member_id(s, c, "C2").await;
    let mut t = cash_template("ONCE", 500, 0);
    t.per_member_limit = None;
    t.total_quantity = None;
    s.create_coupon_template(&cli, c, &t).await.unwrap();
    s.enable_coupon_template(&cli, c, "ONCE", None).await.unwrap();
    let code =
        s.issue_coupons(&cli, c, "ONCE", &[m], "manual:x", chrono::Local::now().date_naive()).await.unwrap().codes[0]
            .clone();
    let store = s.store_codes(&cli, c).await.unwrap()["S1"];
    let mut tasks = Vec::new();
    for i in 0..100 {
        let s = s.clone();
        let code = code.clone();
        tasks.push(tokio::spawn(async move {
            s.redeem_coupon(&Scope::company_token(c, "pos"), c, &code, store, &format!("T{i}")).await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    let stats = s.coupon_templates(&cli, c, chrono::Local::now().date_naive()).await.unwrap();
    assert_eq!(stats[0].used, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn sharing_a_coupon_moves_it_to_the_friend_or_back() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let (a, b) = (member_id(s, c, "C1").await, member_id(s, c, "C2").await);
    let mut t = cash_template("SHARE", 500, 0);
    t.per_member_limit = None;
    s.create_coupon_template(&cli, c, &t).await.unwrap();
    s.enable_coupon_template(&cli, c, "SHARE", None).await.unwrap();
    let today = d(2026, 3, 3);
    let c1 = s.issue_coupons(&cli, c, "SHARE", &[a], "m:1", today).await.unwrap().codes[0].clone();
    let c2 = s.issue_coupons(&cli, c, "SHARE", &[a], "m:2", today).await.unwrap().codes[0].clone();
    let s1 = s.share_coupon(&cli, c, a, &c1).await.unwrap();
    assert!(s.share_coupon(&cli, c, a, &c1).await.is_err(), "already being shared");
    s.resolve_share(&cli, c, s1, Some(b)).await.unwrap();
    let s2 = s.share_coupon(&cli, c, a, &c2).await.unwrap();
    s.resolve_share(&cli, c, s2, None).await.unwrap();
    assert!(s.resolve_share(&cli, c, s2, None).await.is_err());
    let held_b = s.member_coupons(&cli, c, b, None).await.unwrap();
    assert_eq!(held_b.iter().map(|h| h.code.clone()).collect::<Vec<_>>(), vec![c1]);
    let held_a = s.member_coupons(&cli, c, a, None).await.unwrap();
    assert_eq!(
        held_a.iter().map(|h| (h.code.clone(), h.status.clone())).collect::<Vec<_>>(),
        vec![(c2, "issued".into())]
    );
    // The template's quantity (3) runs out.
    let r = s.issue_coupons(&cli, c, "SHARE", &[a, b], "m:3", today).await.unwrap();
    assert_eq!((r.issued, r.exhausted), (1, 1));
    let st = &s.coupon_templates(&cli, c, today).await.unwrap()[0];
    assert_eq!((st.issued, st.shared, st.share_succeeded, st.share_failed), (3, 2, 1, 1));
    db.cleanup().await;
}

#[tokio::test]
async fn tiers_rise_at_a_sale_and_fall_at_the_review() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let m = member_id(s, c, "C1").await;
    let ctx = s.sales_context(&cli, c).await.unwrap();
    // 600 yuan in 2025-06: silver (entry 500/year).
    let l = sale("T1", Some("C1"), "P3", 60_000, at(2025, 6, 1));
    s.write_sales(&cli, &ctx, &[(1, &l)]).await.unwrap();
    s.accrue_points(&cli, c).await.unwrap();
    let (tier, history) = s.member_tier(&cli, c, m).await.unwrap();
    assert_eq!(tier.as_deref(), Some("silver"));
    assert!(history[0].reason.contains("银卡"), "{}", history[0].reason);
    // Review on 2027-01-01: nothing bought in 2026 → back to normal, with the reason.
    assert_eq!(s.review_tiers(&cli, c, d(2027, 1, 1)).await.unwrap(), (2, 2));
    let (tier, history) = s.member_tier(&cli, c, m).await.unwrap();
    assert_eq!(tier.as_deref(), Some("normal"));
    assert!(history[0].reason.contains("未达到保级条件"), "{}", history[0].reason);
    // The review of a year runs once.
    assert_eq!(s.review_tiers(&cli, c, d(2027, 1, 1)).await.unwrap(), (2, 0));
    db.cleanup().await;
}

#[tokio::test]
async fn a_company_token_cannot_touch_another_company() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let other = s.create_company(&cli, "B", "乙公司", None).await.unwrap().id;
    let b = Scope::company_token(other, "pos");
    assert!(s.pos_identify(&b, c, &MemberKey::Card("C1".into())).await.is_err());
    assert!(s.set_loyalty_rules(&b, c, &LoyaltyRules::default()).await.is_err());
    assert!(s.create_coupon_template(&b, c, &cash_template("X", 100, 0)).await.is_err());
    let m = member_id(s, c, "C1").await;
    assert!(s.points_ledger(&b, c, m, &LedgerQuery::latest(10)).await.is_err());
    // Rules are per company.
    let mut r = LoyaltyRules::default();
    r.points.points_per_yuan = 2;
    s.set_loyalty_rules(&cli, c, &r).await.unwrap();
    assert_eq!(s.loyalty_rules(&cli, other).await.unwrap().points.points_per_yuan, 1);
    db.cleanup().await;
}

#[tokio::test]
async fn points_are_exchanged_for_a_coupon_once() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let m = member_id(s, c, "C1").await;
    let mut t = cash_template("JF500", 1_000, 0);
    t.per_member_limit = None;
    t.total_quantity = None;
    s.create_coupon_template(&cli, c, &t).await.unwrap();
    s.enable_coupon_template(&cli, c, "JF500", None).await.unwrap();
    // Not an exchange tier yet.
    assert!(s.exchange_points(&cli, c, m, "JF500", "x1").await.is_err());
    let mut rules = LoyaltyRules::default();
    rules.points.redemption.coupon_tiers =
        vec![rxmember_core::points::CouponTier { points: 500, template: "JF500".into() }];
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    // Not enough points: refused, nothing issued.
    assert!(s.exchange_points(&cli, c, m, "JF500", "x1").await.is_err());
    assert!(s.member_coupons(&cli, c, m, None).await.unwrap().is_empty());
    s.adjust_points(&cli, c, m, 700, "活动赠送", "gift").await.unwrap();
    let (code, balance) = s.exchange_points(&cli, c, m, "JF500", "x1").await.unwrap();
    assert_eq!(balance, 200);
    // The same request again: the same coupon, no second deduction.
    assert_eq!(s.exchange_points(&cli, c, m, "JF500", "x1").await.unwrap(), (code, 200));
    assert!(s.exchange_points(&cli, c, m, "JF500", "x2").await.is_err());
    assert_eq!(s.member_coupons(&cli, c, m, None).await.unwrap().len(), 1);
    assert!(s.check_points(&cli, c).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn event_coupons_for_birthdays_registrations_referrals_and_tier_gifts() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    // A new member registers on 2026-05-03, referred by C2.
    let newcomer = MemberInput {
        card_no: "C3".into(),
        registered_at: Some(at(2026, 5, 3)),
        referrer_card_no: Some("C2".into()),
        ..Default::default()
    };
    s.upsert_members(&cli, c, &Default::default(), &[newcomer]).await.unwrap();
    let make = |code: &str, event: Option<rxmember_core::coupons::IssueEvent>| {
        let mut t = cash_template(code, 1_000, 0);
        t.issue_event = event;
        t.total_quantity = None;
        t
    };
    use rxmember_core::coupons::IssueEvent;
    for (code, ev) in [
        ("BDAY", Some(IssueEvent::Birthday)),
        ("NEW", Some(IssueEvent::Registration)),
        ("REF", Some(IssueEvent::ReferralSuccess)),
        ("GOLD", None),
    ] {
        s.create_coupon_template(&cli, c, &make(code, ev)).await.unwrap();
        s.enable_coupon_template(&cli, c, code, None).await.unwrap();
    }
    // The base level's benefit: a birthday coupon.
    let mut rules = LoyaltyRules::default();
    rules.tiers.levels[0].benefits.birthday_coupon = Some("GOLD".into());
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    let day = d(2026, 5, 3); // C1 and C2 were born on 05-03
    let r = s.issue_event_coupons(&cli, c, day).await.unwrap();
    // 2 birthday + 2 tier-birthday + 1 registration + 1 referral.
    assert_eq!(r.issued, 6, "{r:?}");
    assert_eq!(s.issue_event_coupons(&cli, c, day).await.unwrap().issued, 0, "once per occasion");
    let (c1, c2, c3) = (member_id(s, c, "C1").await, member_id(s, c, "C2").await, member_id(s, c, "C3").await);
    let names = |v: Vec<rxmember_store::coupons::HeldCouponRow>| {
        let mut n: Vec<String> = v.into_iter().map(|h| h.template_code).collect();
        n.sort();
        n
    };
    assert_eq!(names(s.member_coupons(&cli, c, c1, None).await.unwrap()), vec!["BDAY", "GOLD"]);
    assert_eq!(names(s.member_coupons(&cli, c, c2, None).await.unwrap()), vec!["BDAY", "GOLD", "REF"]);
    assert_eq!(names(s.member_coupons(&cli, c, c3, None).await.unwrap()), vec!["NEW"]);
    // Next year's birthday is another occasion (the per-member limit of 2 allows it); the year after,
    // the limit stops it.
    assert_eq!(s.issue_event_coupons(&cli, c, d(2027, 5, 3)).await.unwrap().issued, 4);
    let r = s.issue_event_coupons(&cli, c, d(2028, 5, 3)).await.unwrap();
    assert_eq!((r.issued, r.over_limit), (0, 4));
    db.cleanup().await;
}

/// The till's one-statement member read keeps the caller's data scope (a store's staff find only
/// their stores' members, as the member pages do), and a rules edit reaches the next quote although
/// parsed rules are kept between quotes.
#[tokio::test]
async fn till_reads_keep_scope_and_see_rule_edits_at_once() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    let member = |card: &str, phone: &str, store: &str| MemberInput {
        card_no: card.into(),
        phone: Some(phone.into()),
        store_code: Some(store.into()),
        ..Default::default()
    };
    let stores: std::collections::HashMap<String, rxmember_core::StoreId> =
        s.stores(&cli, Some(c)).await.unwrap().into_iter().map(|x| (x.code, x.id)).collect();
    s.upsert_members(&cli, c, &stores, &[member("C3", "13900000003", "S1"), member("C4", "13900000004", "S2")])
        .await
        .unwrap();
    let s1 = stores["S1"];
    let staff = Scope {
        staff: None,
        role: rxmember_core::org::Role::StoreManager,
        data: rxmember_core::org::DataScope::Stores { company: c, stores: vec![s1] },
        actor: "staff:s1".into(),
    };
    let found = s.pos_identify(&staff, c, &MemberKey::Card("C3".into())).await.unwrap();
    assert_eq!(found.card_no, "C3");
    let other_store = s.pos_identify(&staff, c, &MemberKey::Card("C4".into())).await;
    assert!(matches!(other_store, Err(rxmember_store::StoreError::NotFound { .. })), "{other_store:?}");
    let by_phone = s.pos_identify(&staff, c, &MemberKey::Phone("13900000004".into())).await;
    assert!(matches!(by_phone, Err(rxmember_store::StoreError::NotFound { .. })), "{by_phone:?}");
    assert_eq!(s.pos_identify(&staff, c, &MemberKey::Phone("13900000003".into())).await.unwrap().card_no, "C3");
    let unknown = s.pos_identify(&cli, c, &MemberKey::Card("NO-SUCH".into())).await;
    assert!(matches!(unknown, Err(rxmember_store::StoreError::NotFound { .. })), "{unknown:?}");
    // Another company's token finds nothing of this company.
    let other = s.create_company(&cli, "B", "乙公司", None).await.unwrap().id;
    let foreign = Scope::company_token(other, "pos");
    assert!(s.pos_identify(&foreign, c, &MemberKey::Card("C3".into())).await.is_err());

    // Two cards with one phone are one member (merged on import): the phone finds that member.
    s.upsert_members(&cli, c, &stores, &[member("C5", "13900000009", "S1")]).await.unwrap();
    s.upsert_members(&cli, c, &stores, &[member("C6", "13900000009", "S1")]).await.unwrap();
    let by_shared = s.pos_identify(&staff, c, &MemberKey::Phone("13900000009".into())).await.unwrap();
    assert_eq!(member_id(s, c, "C5").await.0, by_shared.member_id);
    assert_eq!(member_id(s, c, "C6").await.0, by_shared.member_id);

    // Identified at the till: the coupons usable today at some store; a disabled template's are not.
    let c3 = member_id(s, c, "C3").await;
    let today = rxmember_core::time::local_date(rxmember_core::time::now_ms(), 480);
    for code in ["KEEP", "STOP"] {
        s.create_coupon_template(&cli, c, &cash_template(code, 500, 0)).await.unwrap();
        s.enable_coupon_template(&cli, c, code, Some(&["S2".to_string()])).await.unwrap();
        s.issue_coupons(&cli, c, code, &[c3], "manual:till", today).await.unwrap();
    }
    s.disable_coupon_template(&cli, c, "STOP").await.unwrap();
    let seen = s.pos_lookup(&staff, c, &MemberKey::Card("C3".into())).await.unwrap();
    assert_eq!(seen.member.card_no, "C3");
    assert_eq!(seen.coupons.iter().map(|h| h.template_code.as_str()).collect::<Vec<_>>(), ["KEEP"]);
    assert_eq!(s.member_coupons(&cli, c, c3, None).await.unwrap().len(), 2, "the member's page lists both");

    // Rules: the quote's context follows every edit.
    let lines = vec![PosLineInput { product_code: "P3".into(), quantity_milli: 1_000, unit_price: None }];
    let when = Some(d(2026, 3, 3).and_hms_opt(10, 0, 0).unwrap());
    for rate in [1, 3, 2] {
        let mut rules = LoyaltyRules::default();
        rules.points.points_per_yuan = rate;
        s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
        for _ in 0..2 {
            let ctx = s.pos_context(&cli, c, "S1", None, &lines, when).await.unwrap();
            assert_eq!(ctx.rules.points.points_per_yuan, rate);
            assert_eq!(ctx.day, d(2026, 3, 3));
        }
    }
    let bad_store = s.pos_context(&cli, c, "S9", None, &lines, when).await;
    assert!(
        matches!(bad_store, Err(rxmember_store::StoreError::Invalid(ref m)) if m.contains("S9")),
        "{:?}",
        bad_store.err()
    );
    db.cleanup().await;
}

/// The quote's context comes from one statement (products as a JSON array inside it) plus one for
/// the coupons only when the member holds any: every product field the quote and the warnings use
/// arrives intact on both backends, repeated and unknown codes are handled, and a member holding no
/// coupon gets none while one holding a coupon usable here gets it.
#[tokio::test]
async fn pos_context_reads_products_and_held_coupons_exactly() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s).await;
    s.upsert_products(
        &cli,
        c,
        &[ProductInput {
            code: "P4".into(),
            name: "二甲双胍缓释片".into(),
            generic_name: Some("盐酸二甲双胍".into()),
            category_code: Some("1401".into()),
            retail_price: Some(Fen(3_250)),
            cost_price: None,
            points_excluded: true,
            ingredients: vec!["二甲双胍".into(), "羟丙甲纤维素".into()],
            ..Default::default()
        }],
    )
    .await
    .unwrap();
    let pos = Scope::company_token(c, "pos");
    let line = |code: &str| PosLineInput { product_code: code.into(), quantity_milli: 1_000, unit_price: None };
    let when = Some(d(2026, 3, 3).and_hms_opt(10, 0, 0).unwrap());
    let lines = [line("P4"), line("P1"), line("P4")];
    let ctx = s.pos_context(&pos, c, "S1", Some(&MemberKey::Card("C2".into())), &lines, when).await.unwrap();
    assert_eq!(ctx.products.len(), 3, "one per line, repeated codes included");
    let p4 = &ctx.products[0];
    assert_eq!((p4.code.as_str(), p4.name.as_str()), ("P4", "二甲双胍缓释片"));
    assert_eq!(p4.generic_name.as_deref(), Some("盐酸二甲双胍"));
    assert_eq!(p4.categories, ["1401", "14"], "the minor category, then its major");
    assert_eq!((p4.retail_price, p4.cost_price), (Some(Fen(3_250)), None));
    assert!(p4.points_excluded);
    assert_eq!(p4.ingredients, ["二甲双胍", "羟丙甲纤维素"]);
    let p1 = &ctx.products[1];
    assert_eq!((p1.code.as_str(), p1.generic_name.as_deref()), ("P1", None));
    assert!(p1.categories.is_empty());
    assert!(!p1.points_excluded);
    assert_eq!((p1.retail_price, p1.cost_price), (Some(Fen(2_000)), Some(Fen(1_000))));
    assert_eq!(ctx.products[2], *p4);
    assert_eq!(ctx.basket.iter().map(|b| b.unit_price).collect::<Vec<_>>(), [Fen(3_250), Fen(2_000), Fen(3_250)]);
    assert!(ctx.basket[0].points_excluded && !ctx.basket[1].points_excluded);
    assert!(ctx.held.is_empty(), "C2 holds no coupon");
    assert_eq!(ctx.member.as_ref().map(|m| m.card_no.as_str()), Some("C2"));

    // An unknown code names its line; without a member, no member and no coupons.
    let bad = s.pos_context(&pos, c, "S1", None, &[line("P1"), line("NOPE")], when).await;
    assert!(
        matches!(bad, Err(rxmember_store::StoreError::Invalid(ref m)) if m.contains("第2行") && m.contains("NOPE")),
        "{:?}",
        bad.err()
    );
    let anonymous = s.pos_context(&pos, c, "S1", None, &[line("P3")], when).await.unwrap();
    assert!(anonymous.member.is_none() && anonymous.held.is_empty());
    assert_eq!(anonymous.products[0].name, "维生素C片");

    // A coupon usable at S1 only (issued 2026-03-01, valid 30 days): held there on 03-03, not at S2.
    s.create_coupon_template(&cli, c, &cash_template("S1ONLY", 500, 0)).await.unwrap();
    s.enable_coupon_template(&cli, c, "S1ONLY", Some(&["S1".to_string()])).await.unwrap();
    let c2 = member_id(s, c, "C2").await;
    s.issue_coupons(&cli, c, "S1ONLY", &[c2], "manual:ctx", d(2026, 3, 1)).await.unwrap();
    let key = MemberKey::Card("C2".into());
    let here = s.pos_context(&pos, c, "S1", Some(&key), &[line("P3")], when).await.unwrap();
    assert_eq!(here.held.iter().map(|h| h.template_code.as_str()).collect::<Vec<_>>(), ["S1ONLY"]);
    let there = s.pos_context(&pos, c, "S2", Some(&key), &[line("P3")], when).await.unwrap();
    assert!(there.held.is_empty());
    // Identified today, the member still holds it but it has expired: the till lists none.
    let seen = s.pos_lookup(&pos, c, &key).await.unwrap();
    assert!(seen.coupons.is_empty());
    assert_eq!(s.member_coupons(&cli, c, c2, None).await.unwrap().len(), 1);

    // The till's coupons (from the head statement's JSON) equal the member page's usable coupons
    // (their own statement) at every store and day: terms, flags, lists and order included.
    let mut pct = cash_template("PCT88", 0, 1_000);
    pct.kind = CouponKind::Percentage;
    pct.percent = 88;
    pct.products = vec!["P3".into()];
    pct.categories = vec!["14".into()];
    pct.stackable = true;
    pct.validity = Validity::Absolute { from: d(2026, 3, 2), to: d(2026, 3, 20) };
    s.create_coupon_template(&cli, c, &pct).await.unwrap();
    s.enable_coupon_template(&cli, c, "PCT88", None).await.unwrap();
    s.create_coupon_template(&cli, c, &cash_template("OFF", 300, 0)).await.unwrap();
    s.enable_coupon_template(&cli, c, "OFF", None).await.unwrap();
    for (code, cause) in [("PCT88", "m:1"), ("S1ONLY", "manual:ctx2"), ("OFF", "m:2")] {
        s.issue_coupons(&cli, c, code, &[c2], cause, d(2026, 3, 2)).await.unwrap();
    }
    s.disable_coupon_template(&cli, c, "OFF").await.unwrap();
    let stores = s.stores(&cli, Some(c)).await.unwrap();
    for day in [d(2026, 3, 1), d(2026, 3, 2), d(2026, 3, 21), d(2026, 3, 31), d(2026, 4, 1)] {
        for st in &stores {
            let when = Some(day.and_hms_opt(9, 0, 0).unwrap());
            let till = s.pos_context(&pos, c, &st.code, Some(&key), &[line("P3")], when).await.unwrap().held;
            let page = s.member_coupons(&cli, c, c2, Some((Some(st.id), day))).await.unwrap();
            assert_eq!(till, page, "{} on {day}", st.code);
        }
    }
    let on_0303 = s
        .pos_context(&pos, c, "S1", Some(&key), &[line("P3")], Some(d(2026, 3, 3).and_hms_opt(9, 0, 0).unwrap()))
        .await
        .unwrap()
        .held;
    let templates: Vec<&str> = on_0303.iter().map(|h| h.template_code.as_str()).collect();
    assert_eq!(templates, ["PCT88", "S1ONLY", "S1ONLY"], "soonest-expiring first; the disabled OFF not offered");
    let p = &on_0303[0].rules;
    assert_eq!((p.kind, p.percent, p.stackable), (CouponKind::Percentage, 88, true));
    assert_eq!((p.products.as_slice(), p.categories.as_slice()), (&["P3".to_string()][..], &["14".to_string()][..]));
    db.cleanup().await;
}
