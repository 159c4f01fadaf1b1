//! Property test on the real database: random sequences of POS sales (some paying with points),
//! partial returns, expiry runs and retries keep every account equal to the sum of its ledger, never
//! below the policy's floor, and a retried request never applies twice.

use chrono::NaiveDate;
use proptest::prelude::*;
use rxmember_core::checkout::{QuoteRequest, quote};
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::member::MemberInput;
use rxmember_core::org::{Scope, StoreInput};
use rxmember_core::points::{Deduction, Expiry, ReturnPolicy};
use rxmember_core::product::ProductInput;
use rxmember_core::time::{epoch_ms_to_local, local_to_epoch_ms};
use rxmember_core::{CompanyId, Fen, MemberId};
use rxmember_store::Store;
use rxmember_store::pos::{MemberKey, PosLineInput, request_hash};
use rxmember_store::testing::TestDb;

#[derive(Debug, Clone)]
enum Op {
    /// Member 0/1 buys `qty` of product 0..3, paying `points_share`% of what the till allows in points.
    Sale { member: usize, product: usize, qty: i64, points_share: i64 },
    /// Return `qty` of the nth sale's product (clamped to what is left).
    Return { sale: usize, qty: i64 },
    /// Move the clock forward this many days and run the expiry job.
    Advance { days: u64 },
    /// Retry the nth sale's commit with the same body.
    Retry { sale: usize },
    /// The ERP imports a ticket of member 0/1 and the accrual job runs (the batched path).
    Import { member: usize, product: usize, amount: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..2, 0usize..3, 1i64..4, 0i64..=100).prop_map(|(member, product, qty, points_share)| Op::Sale { member, product, qty, points_share }),
        2 => (0usize..8, 1i64..3).prop_map(|(sale, qty)| Op::Return { sale, qty }),
        1 => (1u64..200).prop_map(|days| Op::Advance { days }),
        1 => (0usize..8).prop_map(|sale| Op::Retry { sale }),
        2 => (0usize..2, 0usize..3, 1i64..50_000).prop_map(|(member, product, amount)| Op::Import { member, product, amount }),
    ]
}

async fn setup(s: &Store, policy: ReturnPolicy) -> CompanyId {
    let cli = Scope::cli();
    let c = s.create_company(&cli, "P", "性质公司", None).await.unwrap().id;
    s.upsert_stores(&cli, c, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }])
        .await
        .unwrap();
    let products: Vec<ProductInput> = [3_990, 12_800, 560]
        .iter()
        .enumerate()
        .map(|(i, p)| ProductInput {
            code: format!("P{i}"),
            name: format!("商品{i}"),
            retail_price: Some(Fen(*p)),
            ..Default::default()
        })
        .collect();
    s.upsert_products(&cli, c, &products).await.unwrap();
    let members: Vec<MemberInput> =
        (0..2).map(|i| MemberInput { card_no: format!("C{i}"), ..Default::default() }).collect();
    s.upsert_members(&cli, c, &Default::default(), &members).await.unwrap();
    let mut rules = LoyaltyRules::default();
    rules.points.return_policy = policy;
    rules.points.expiry = Expiry { rolling_months: Some(3), ..Default::default() };
    rules.points.redemption.deduction = Some(Deduction { points_per_yuan: 10, max_share_percent: 80 });
    s.set_loyalty_rules(&cli, c, &rules).await.unwrap();
    c
}

struct Sale {
    ticket: String,
    product: String,
    body: Vec<u8>,
    qty_left: i64,
    lines: Vec<PosLineInput>,
    member: usize,
    points: i64,
    at: i64,
}

async fn run(ops: Vec<Op>, policy: ReturnPolicy) -> Result<(), TestCaseError> {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let c = setup(s, policy).await;
    let mut day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let mut sales: Vec<Sale> = Vec::new();
    let mut returns = 0;
    let mut imports = 0;
    for op in ops {
        match op {
            Op::Sale { member, product, qty, points_share } => {
                let at = local_to_epoch_ms(day.and_hms_opt(12, 0, 0).unwrap(), 480);
                let m = s.pos_identify(&cli, c, &MemberKey::Card(format!("C{member}"))).await.unwrap();
                let lines = vec![PosLineInput {
                    product_code: format!("P{product}"),
                    quantity_milli: qty * 1000,
                    unit_price: None,
                }];
                let ctx = s
                    .pos_context(
                        &cli,
                        c,
                        "S1",
                        Some(&MemberKey::Card(format!("C{member}"))),
                        &lines,
                        Some(epoch_ms_to_local(at, 480)),
                    )
                    .await
                    .unwrap();
                let till = m.at_till();
                let probe = QuoteRequest {
                    date: ctx.day,
                    member: Some(&till),
                    lines: &ctx.basket,
                    held: &[],
                    use_coupons: &[],
                    use_points: 0,
                };
                let usable = quote(&ctx.rules, &probe).unwrap().points_usable;
                let points = usable * points_share / 100 / 10 * 10;
                let q = quote(&ctx.rules, &QuoteRequest { use_points: points, ..probe }).unwrap();
                let ticket = format!("T{}", sales.len());
                let body = format!("{ticket}|{member}|{product}|{qty}|{points}").into_bytes();
                let r = s.pos_commit_sale(&cli, &ctx, &ticket, at, None, &q, &request_hash(&body)).await.unwrap();
                prop_assert_eq!(r.points_used, points);
                sales.push(Sale {
                    ticket,
                    product: format!("P{product}"),
                    body,
                    qty_left: qty,
                    lines,
                    member,
                    points,
                    at,
                });
            }
            Op::Return { sale, qty } => {
                if sales.is_empty() {
                    continue;
                }
                let i = sale % sales.len();
                let q = qty.min(sales[i].qty_left);
                if q == 0 {
                    continue;
                }
                sales[i].qty_left -= q;
                returns += 1;
                let at = local_to_epoch_ms(day.and_hms_opt(13, 0, 0).unwrap(), 480);
                let no = format!("R{returns}");
                let body = format!("{no}|{}|{q}", sales[i].ticket);
                let lines = vec![(sales[i].product.clone(), q * 1000)];
                let first =
                    s.pos_commit_return(&cli, c, &no, &sales[i].ticket, &lines, at, body.as_bytes()).await.unwrap();
                // A retry of the return answers the same and takes nothing more.
                let again =
                    s.pos_commit_return(&cli, c, &no, &sales[i].ticket, &lines, at, body.as_bytes()).await.unwrap();
                prop_assert_eq!(first, again);
            }
            Op::Advance { days } => {
                day = day + chrono::Days::new(days);
                s.expire_points(&cli, c, day).await.unwrap();
            }
            Op::Import { member, product, amount } => {
                let ctx = s.sales_context(&cli, c).await.unwrap();
                let line = rxmember_core::sale::SaleLineInput {
                    ticket_no: format!("ERP{imports}"),
                    sold_at: local_to_epoch_ms(day.and_hms_opt(9, 0, 0).unwrap(), 480),
                    store_code: "S1".into(),
                    card_no: Some(format!("C{member}")),
                    product_code: format!("P{product}"),
                    quantity_milli: 1000,
                    amount: Fen(amount),
                    ..Default::default()
                };
                imports += 1;
                s.write_sales(&cli, &ctx, &[(1, &line)]).await.unwrap();
                let before = balances(s, c).await;
                // The ticket earns at the tier the member holds before it (a rise applies after):
                // 1 point a yuan times the tier's percent, rounded down (silver turns 0.94 yuan into 1).
                let tier = s.pos_identify(&cli, c, &MemberKey::Card(format!("C{member}"))).await.unwrap().tier;
                let rules = LoyaltyRules::default();
                let percent = tier
                    .as_deref()
                    .and_then(|t| rules.tiers.level(t))
                    .or_else(|| rules.tiers.base())
                    .map_or(100, |l| i64::from(l.benefits.points_percent));
                let (earned, _) = s.accrue_points(&cli, c).await.unwrap();
                prop_assert_eq!(earned, u64::from(amount * percent / 10_000 > 0), "tier {:?}", tier);
                let after = balances(s, c).await;
                prop_assert!(after[member] >= before[member]);
                // Importing the same file again and re-running changes nothing.
                s.write_sales(&cli, &ctx, &[(1, &line)]).await.unwrap();
                prop_assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (0, 0));
                prop_assert_eq!(balances(s, c).await, after);
            }
            Op::Retry { sale } => {
                if sales.is_empty() {
                    continue;
                }
                let sl = &sales[sale % sales.len()];
                let before: Vec<i64> = balances(s, c).await;
                let m = s.pos_identify(&cli, c, &MemberKey::Card(format!("C{}", sl.member))).await.unwrap();
                let ctx = s
                    .pos_context(
                        &cli,
                        c,
                        "S1",
                        Some(&MemberKey::Card(format!("C{}", sl.member))),
                        &sl.lines,
                        Some(epoch_ms_to_local(sl.at, 480)),
                    )
                    .await
                    .unwrap();
                let till = m.at_till();
                let req = QuoteRequest {
                    date: ctx.day,
                    member: Some(&till),
                    lines: &ctx.basket,
                    held: &[],
                    use_coupons: &[],
                    use_points: 0,
                };
                let q = quote(&ctx.rules, &req).unwrap();
                // The recorded answer comes back whatever the quote now says; nothing is applied again.
                let r =
                    s.pos_commit_sale(&cli, &ctx, &sl.ticket, sl.at, None, &q, &request_hash(&sl.body)).await.unwrap();
                prop_assert_eq!(r.points_used, sl.points);
                prop_assert_eq!(balances(s, c).await, before);
            }
        }
        prop_assert!(s.check_points(&cli, c).await.unwrap().is_empty(), "balance != sum(ledger)");
        if policy == ReturnPolicy::ClawbackNext {
            for b in balances(s, c).await {
                prop_assert!(b >= 0, "clawback policy went below zero: {}", b);
            }
        }
    }
    // The accrual job finds nothing to do: POS tickets earned once, returns were taken back once.
    prop_assert_eq!(s.accrue_points(&cli, c).await.unwrap(), (0, 0));
    db.cleanup().await;
    Ok(())
}

async fn balances(s: &Store, c: CompanyId) -> Vec<i64> {
    let mut out = Vec::new();
    for i in 0..2 {
        let m = s.pos_identify(&Scope::cli(), c, &MemberKey::Card(format!("C{i}"))).await.unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        out.push(s.points_summary(&Scope::cli(), c, MemberId(m.member_id), day).await.unwrap().balance);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_till_sequences_keep_the_ledger_exact(ops in proptest::collection::vec(op(), 1..25), clawback in any::<bool>()) {
        let policy = if clawback { ReturnPolicy::ClawbackNext } else { ReturnPolicy::AllowNegative };
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run(ops, policy))?;
    }
}
