//! Store integration tests: the same bodies on SQLite and (with RXMEMBER_TEST_PG) PostgreSQL.

use rxmember_core::member::{Gender, MemberInput};
use rxmember_core::org::{Role, Scope, StoreInput};
use rxmember_core::sale::SaleLineInput;
use rxmember_core::{Fen, StoreId};
use rxmember_store::RowOutcome;
use rxmember_store::members::MemberQuery;
use rxmember_store::staff::NewStaff;
use rxmember_store::testing::TestDb;

fn member(card: &str, phone: Option<&str>, name: &str) -> MemberInput {
    MemberInput {
        card_no: card.into(),
        name: Some(name.into()),
        phone: phone.map(Into::into),
        gender: Gender::Female,
        sms_opt_in: true,
        ..Default::default()
    }
}

fn outcomes(r: &[rxmember_store::RowResult]) -> Vec<RowOutcome> {
    r.iter().map(|x| x.outcome.clone()).collect()
}

#[tokio::test]
async fn companies_are_isolated_and_members_merge_by_phone() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let a = s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    let b = s.create_company(&cli, "B", "乙公司", None).await.unwrap();
    assert!(s.taxonomy(&cli, a.id).await.unwrap().categories.len() >= 2);

    let scope_a = Scope::company_token(a.id, "erp");
    let r = s
        .upsert_members(
            &scope_a,
            a.id,
            &Default::default(),
            &[
                member("A001", Some("13800000001"), "王芳"),
                member("A002", Some("13800000001"), "王芳"),
                member("A003", None, "李四"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        outcomes(&r),
        vec![RowOutcome::Inserted, RowOutcome::Merged { into_card: "A001".into() }, RowOutcome::Inserted]
    );
    // Re-import: nothing changes.
    let again = s
        .upsert_members(
            &scope_a,
            a.id,
            &Default::default(),
            &[
                member("A001", Some("13800000001"), "王芳"),
                member("A002", Some("13800000001"), "王芳"),
                member("A003", None, "李四"),
            ],
        )
        .await
        .unwrap();
    assert!(again.iter().all(|x| x.outcome == RowOutcome::Unchanged));
    assert_eq!(s.member_counts(&cli, a.id).await.unwrap(), (2, 3));

    // Same phone in another company is another person; company A's token cannot see or write B.
    let scope_b = Scope::company_token(b.id, "erp");
    let r = s
        .upsert_members(&scope_b, b.id, &Default::default(), &[member("B001", Some("13800000001"), "王芳")])
        .await
        .unwrap();
    assert_eq!(outcomes(&r), vec![RowOutcome::Inserted]);
    assert!(s.upsert_members(&scope_a, b.id, &Default::default(), &[member("X", None, "x")]).await.is_err());
    let page = s.search_members(&scope_a, &MemberQuery { limit: 50, ..Default::default() }).await.unwrap();
    assert_eq!(page.total, 2);
    assert!(page.members.iter().all(|m| m.company_id == a.id));
    assert!(
        s.search_members(&scope_a, &MemberQuery { company: Some(b.id), limit: 50, ..Default::default() })
            .await
            .is_err()
    );

    // Search by phone finds the merged person; the merged card is listed.
    let page = s
        .search_members(&scope_a, &MemberQuery { q: Some("138 0000 0001".into()), limit: 50, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    let m = s.member(&scope_a, a.id, page.members[0].id).await.unwrap();
    assert_eq!(m.card_no, "A001");
    assert_eq!(m.other_cards, vec!["A002".to_string()]);
    assert_eq!(m.phone.as_deref(), Some("13800000001"));
    db.cleanup().await;
}

#[tokio::test]
async fn personal_data_is_encrypted_and_masked_for_store_roles() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let a = s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    s.upsert_stores(&cli, a.id, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }])
        .await
        .unwrap();
    let stores = s.store_codes(&cli, a.id).await.unwrap();
    let mut m = member("A001", Some("13912345678"), "张三丰");
    m.store_code = Some("S1".into());
    s.upsert_members(&cli, a.id, &stores, &[m]).await.unwrap();

    // The database holds no clear phone or name.
    let raw: Vec<u8> = sqlx::query_scalar::<_, Vec<u8>>("SELECT phone_enc FROM members")
        .fetch_one(&sqlx::AnyPool::connect(&db.url).await.unwrap())
        .await
        .unwrap();
    assert!(!raw.windows(11).any(|w| w == b"13912345678"));

    let manager = s
        .create_staff(
            &cli,
            &NewStaff {
                username: "mgr".into(),
                display_name: "店长".into(),
                role: Role::StoreManager,
                company: Some(a.id),
                stores: vec![stores["S1"]],
                clerk_code: None,
                is_pharmacist: false,
                password: "correct horse".into(),
            },
        )
        .await
        .unwrap();
    let login = s.authenticate("mgr", "correct horse").await.unwrap().unwrap();
    assert_eq!(login.id, manager.id);
    assert!(s.authenticate("mgr", "wrong password").await.unwrap().is_none());
    assert!(s.authenticate("nobody", "correct horse").await.unwrap().is_none());
    let page = s.search_members(&login.scope(), &MemberQuery { limit: 10, ..Default::default() }).await.unwrap();
    assert_eq!(page.members[0].phone.as_deref(), Some("139****5678"));
    assert_eq!(page.members[0].name.as_deref(), Some("张**"));

    // A manager of another store sees nothing.
    let mut other = login.clone();
    other.stores = vec![StoreId(9999)];
    assert_eq!(
        s.search_members(&other.scope(), &MemberQuery { limit: 10, ..Default::default() }).await.unwrap().total,
        0
    );
    db.cleanup().await;
}

#[tokio::test]
async fn sales_are_idempotent_and_link_late_members() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let a = s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    s.upsert_stores(&cli, a.id, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }])
        .await
        .unwrap();
    s.upsert_products(
        &cli,
        a.id,
        &[rxmember_core::product::ProductInput {
            code: "P1".into(),
            name: "感冒灵".into(),
            cost_price: Some(Fen(1000)),
            ..Default::default()
        }],
    )
    .await
    .unwrap();
    let ctx = s.sales_context(&cli, a.id).await.unwrap();
    let line = |ticket: &str, card: Option<&str>, amount: i64| SaleLineInput {
        ticket_no: ticket.into(),
        sold_at: 1_700_000_000_000,
        store_code: "S1".into(),
        card_no: card.map(Into::into),
        product_code: "P1".into(),
        quantity_milli: 2000,
        amount: Fen(amount),
        ..Default::default()
    };
    let lines = [line("T1", Some("C1"), 3000), line("T1", Some("C1"), 1500), line("T2", None, 990)];
    let rows = vec![(1, &lines[0]), (2, &lines[1]), (1, &lines[2])];
    let r = s.write_sales(&cli, &ctx, &rows).await.unwrap();
    assert_eq!(outcomes(&r), vec![RowOutcome::Inserted; 3]);
    assert_eq!(r[0].warnings[0].code, "unknown_card");
    let again = s.write_sales(&cli, &ctx, &rows).await.unwrap();
    assert_eq!(outcomes(&again), vec![RowOutcome::Unchanged; 3]);
    let (tickets, lines, amount, member_tickets) = s.sales_totals(&cli, a.id).await.unwrap();
    assert_eq!((tickets, lines, amount, member_tickets), (2, 3, Fen(5490), 0));

    // The member arrives: the earlier ticket is linked.
    s.upsert_members(&cli, a.id, &Default::default(), &[member("C1", None, "赵六")]).await.unwrap();
    assert_eq!(s.sales_totals(&cli, a.id).await.unwrap().3, 1);

    // A corrected line updates the ticket's totals; cost defaults to quantity × cost price.
    let fixed_line = line("T1", Some("C1"), 2000);
    let fixed = vec![(2, &fixed_line)];
    assert_eq!(outcomes(&s.write_sales(&cli, &ctx, &fixed).await.unwrap()), vec![RowOutcome::Updated]);
    let t = s.tickets(&cli, a.id, None, 10, 0).await.unwrap();
    let t1 = t.iter().find(|t| t.ticket_no == "T1").unwrap();
    assert_eq!(t1.amount, Fen(5000));
    assert_eq!(t1.cost, Fen(4000));
    assert_eq!(t1.lines.len(), 2);
    db.cleanup().await;
}

/// Invariant: however an ERP file is cut into batches (tickets split across batches included), the
/// stored tickets and totals equal a naive sum over the file, and writing it all again changes
/// nothing. Runs on the suite's backend; each case uses a company of its own.
#[test]
fn any_batching_of_sales_gives_the_naive_totals_and_reruns_change_nothing() {
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new());
    let case = std::sync::atomic::AtomicUsize::new(0);
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(lines in proptest::collection::vec((0..15usize, 0..3usize, 1..4i64, 0..50_000i64), 1..80),
                        cuts in proptest::collection::vec(1..25usize, 1..6))| {
        let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        rt.block_on(async {
            let s = &db.store;
            let cli = Scope::cli();
            let company = s.create_company(&cli, &format!("P{n}"), "性质测试", None).await.unwrap();
            s.upsert_stores(&cli, company.id, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }]).await.unwrap();
            let products: Vec<_> = (0..3)
                .map(|p| rxmember_core::product::ProductInput { code: format!("P{p}"), name: format!("药{p}"), cost_price: Some(Fen(100 * (p + 1))), ..Default::default() })
                .collect();
            s.upsert_products(&cli, company.id, &products).await.unwrap();
            let ctx = s.sales_context(&cli, company.id).await.unwrap();
            // Line numbers by position within each ticket, as the importer assigns them.
            let mut seen: HashMap<usize, i64> = HashMap::new();
            let inputs: Vec<(i64, SaleLineInput)> = lines
                .iter()
                .map(|(t, p, q, amount)| {
                    let k = seen.entry(*t).or_insert(0);
                    *k += 1;
                    (*k, SaleLineInput {
                        ticket_no: format!("T{t}"),
                        sold_at: 1_700_000_000_000 + *t as i64 * 60_000,
                        store_code: "S1".into(),
                        product_code: format!("P{p}"),
                        quantity_milli: q * 1000,
                        amount: Fen(*amount),
                        ..Default::default()
                    })
                })
                .collect();
            let refs: Vec<(i64, &SaleLineInput)> = inputs.iter().map(|(k, l)| (*k, l)).collect();
            let mut start = 0;
            let mut cut_iter = cuts.iter().cycle();
            while start < refs.len() {
                let end = (start + cut_iter.next().unwrap()).min(refs.len());
                let r = s.write_sales(&cli, &ctx, &refs[start..end]).await.unwrap();
                assert!(r.iter().all(|x| x.outcome == RowOutcome::Inserted));
                start = end;
            }
            let tickets: HashSet<usize> = lines.iter().map(|l| l.0).collect();
            let amount: i64 = lines.iter().map(|l| l.3).sum();
            let (t, l, a, _) = s.sales_totals(&cli, company.id).await.unwrap();
            assert_eq!((t as usize, l as usize, a.0), (tickets.len(), lines.len(), amount));
            // Each ticket's stored totals are its lines' sums, cost defaulting to quantity × cost price.
            for ticket in s.tickets(&cli, company.id, None, 500, 0).await.unwrap() {
                let mine: Vec<_> = lines.iter().filter(|x| format!("T{}", x.0) == ticket.ticket_no).collect();
                assert_eq!(ticket.line_count as usize, mine.len());
                assert_eq!(ticket.amount.0, mine.iter().map(|x| x.3).sum::<i64>());
                assert_eq!(ticket.cost.0, mine.iter().map(|x| 100 * (x.1 as i64 + 1) * x.2).sum::<i64>());
            }
            let again = s.write_sales(&cli, &ctx, &refs).await.unwrap();
            assert!(again.iter().all(|x| x.outcome == RowOutcome::Unchanged));
            assert_eq!(s.sales_totals(&cli, company.id).await.unwrap(), (t, l, a, 0));
        });
    });
    rt.block_on(db.cleanup());
}

/// Pooled connections are not pinged before every statement (a round trip each), but one idle for
/// over a second is: on PostgreSQL, connections the server dropped (a restart, an idle timeout in a
/// proxy) are replaced without a failed request.
#[tokio::test]
async fn connections_dropped_by_the_server_are_replaced() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    // Several connections in the pool.
    for r in count_companies_at_once(s, 6).await {
        assert_eq!(r.unwrap(), 1);
    }
    if TestDb::backend() == rxmember_store::Backend::Postgres {
        let other = sqlx::AnyPool::connect(&db.url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_all(&other)
        .await
        .unwrap();
        assert!(!killed.is_empty(), "the store's connections were there to drop");
        other.close().await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    for r in count_companies_at_once(s, 6).await {
        assert_eq!(r.expect("a dropped connection is replaced, not used"), 1);
    }
    db.cleanup().await;
}

/// Counts the companies from `n` tasks at once, so that they hold several pool connections.
async fn count_companies_at_once(s: &rxmember_store::Store, n: usize) -> Vec<rxmember_store::Result<usize>> {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..n {
        let s = s.clone();
        set.spawn(async move { s.companies(&Scope::cli()).await.map(|c| c.len()) });
    }
    set.join_all().await
}

/// Changed members page by (update time, id) after a watermark, two at a time: each member changed
/// after it comes once, in that order, and none from before it.
#[tokio::test]
async fn changed_members_page_by_update_time_and_id() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let a = s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    let cards: Vec<String> = (0..7).map(|i| format!("P{i:03}")).collect();
    let rows: Vec<MemberInput> = cards.iter().map(|c| member(c, None, "张三")).collect();
    s.upsert_members(&cli, a.id, &Default::default(), &rows).await.unwrap();
    let all = s.fact_members(&cli, a.id, 0, 100).await.unwrap();
    assert_eq!(all.len(), 7);
    assert!(all.windows(2).all(|w| w[0].id.0 < w[1].id.0), "the first read goes by id");
    let watermark = all.iter().map(|m| m.updated_at).max().unwrap();
    // Later changes to three of them (in separate writes, so their times differ or tie by id).
    let mut changed = Vec::new();
    for c in ["P005", "P001", "P003"] {
        std::thread::sleep(std::time::Duration::from_millis(2));
        let mut m = member(c, None, "张三");
        m.gender = Gender::Male;
        s.upsert_members(&cli, a.id, &Default::default(), &[m]).await.unwrap();
        changed.push(c.to_string());
    }
    let (mut after, mut seen) = ((watermark, i64::MAX), Vec::new());
    loop {
        let page = s.fact_members_changed(&cli, a.id, after, 2).await.unwrap();
        let Some(last) = page.last() else { break };
        after = (last.updated_at, last.id.0);
        seen.extend(page.iter().map(|m| (m.updated_at, m.id.0, m.card_no.clone())));
    }
    assert!(seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)), "{seen:?}");
    assert_eq!(seen.iter().map(|x| x.2.clone()).collect::<Vec<_>>(), changed);
    assert!(s.fact_members_changed(&cli, a.id, after, 2).await.unwrap().is_empty());
    db.cleanup().await;
}

/// The engine's pages of sales (natively read on SQLite): tickets in id order after a watermark,
/// members' and others' alike, with the lines of the member tickets only, line by line in order.
#[tokio::test]
async fn sales_facts_page_by_ticket_id_with_member_lines() {
    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let a = s.create_company(&cli, "A", "甲公司", None).await.unwrap();
    s.upsert_stores(&cli, a.id, &[StoreInput { code: "S1".into(), name: "一店".into(), ..Default::default() }])
        .await
        .unwrap();
    let products: Vec<rxmember_core::product::ProductInput> = ["P1", "P2"]
        .iter()
        .map(|c| rxmember_core::product::ProductInput {
            code: (*c).into(),
            name: format!("药{c}"),
            ..Default::default()
        })
        .collect();
    s.upsert_products(&cli, a.id, &products).await.unwrap();
    s.upsert_members(&cli, a.id, &Default::default(), &[member("C1", None, "赵六")]).await.unwrap();
    let ctx = s.sales_context(&cli, a.id).await.unwrap();
    let line = |ticket: &str, card: Option<&str>, product: &str, amount: i64, minute: i64| SaleLineInput {
        ticket_no: ticket.into(),
        sold_at: 1_700_000_000_000 + minute * 60_000,
        store_code: "S1".into(),
        card_no: card.map(Into::into),
        product_code: product.into(),
        quantity_milli: 1000,
        amount: Fen(amount),
        ..Default::default()
    };
    let lines = [
        line("T1", Some("C1"), "P1", 3000, 1),
        line("T1", Some("C1"), "P2", 1500, 1),
        line("T2", None, "P1", 990, 2),
        line("T3", Some("C1"), "P2", 700, 3),
    ];
    let rows: Vec<(i64, &SaleLineInput)> = lines.iter().enumerate().map(|(i, l)| (i as i64 + 1, l)).collect();
    s.write_sales(&cli, &ctx, &rows).await.unwrap();
    let facts = s.fact_products(&cli, a.id).await.unwrap();
    let product_id = |code: &str| facts.iter().find(|p| p.code == code).unwrap().id;
    let (p1, p2) = (product_id("P1"), product_id("P2"));
    let member_id = s.fact_members(&cli, a.id, 0, 10).await.unwrap()[0].id;

    let first = s.fact_sales(&cli, a.id, 0, 2).await.unwrap();
    assert_eq!(first.tickets.len(), 2);
    let (t1, t2) = (&first.tickets[0], &first.tickets[1]);
    assert!(t1.id.0 < t2.id.0);
    assert_eq!((t1.member, t1.amount, t1.line_count), (Some(member_id), 4500, 2));
    assert_eq!((t2.member, t2.amount), (None, 990));
    assert_eq!(t2.sold_at - t1.sold_at, 60_000);
    let got: Vec<_> = first.lines.iter().map(|l| (l.ticket, l.member, l.product, l.amount, l.sold_at)).collect();
    assert_eq!(got, vec![(t1.id, member_id, p1, 3000, t1.sold_at), (t1.id, member_id, p2, 1500, t1.sold_at)]);

    let second = s.fact_sales(&cli, a.id, t2.id.0, 2).await.unwrap();
    assert_eq!(second.tickets.len(), 1);
    let t3 = &second.tickets[0];
    assert_eq!((t3.member, t3.amount), (Some(member_id), 700));
    assert_eq!(
        second.lines.iter().map(|l| (l.ticket, l.product, l.amount)).collect::<Vec<_>>(),
        vec![(t3.id, p2, 700)]
    );
    let rest = s.fact_sales(&cli, a.id, t3.id.0, 2).await.unwrap();
    assert!(rest.tickets.is_empty() && rest.lines.is_empty());
    // Another company's scope reads none of it.
    let b = s.create_company(&cli, "B", "乙公司", None).await.unwrap();
    assert!(s.fact_sales(&cli, b.id, 0, 10).await.unwrap().tickets.is_empty());
    db.cleanup().await;
}
