//! The demo chain: deterministic, realistic in shape, idempotent to load, and importable from its
//! own exported files with the same result as loading it directly.

use rxmember_core::org::Scope;
use rxmember_demo::{Options, Size};
use rxmember_import::{Kind, Source};
use rxmember_store::testing::TestDb;

fn tiny() -> Options {
    Options { size: Size::Tiny, seed: 7 }
}

#[tokio::test]
async fn loads_deterministically_and_idempotently() {
    let db = TestDb::new().await;
    let s = &db.store;
    let first = rxmember_demo::load(s, &tiny(), &mut |_| {}).await.unwrap();
    assert_eq!(first.companies, 2);
    assert!(first.lines > 3_000, "{first}");
    // ~40% of tickets are non-member tickets (seed 000/001: member share of traffic is a core metric).
    let companies = s.companies(&Scope::cli()).await.unwrap();
    let (mut tickets, mut member_tickets, mut lines) = (0, 0, 0);
    for c in &companies {
        let (t, l, _, m) = s.sales_totals(&Scope::cli(), c.id).await.unwrap();
        tickets += t;
        member_tickets += m;
        lines += l;
    }
    assert_eq!(lines as u64, first.lines);
    let member_share = member_tickets as f64 / tickets as f64;
    assert!((0.35..0.8).contains(&member_share), "member ticket share {member_share}");

    // Loading again changes nothing; the same seed gives the same numbers.
    let again = rxmember_demo::load(s, &tiny(), &mut |_| {}).await.unwrap();
    assert_eq!((again.tickets, again.lines, again.members), (first.tickets, first.lines, first.members));
    let mut lines_after = 0;
    for c in &companies {
        lines_after += s.sales_totals(&Scope::cli(), c.id).await.unwrap().1;
    }
    assert_eq!(lines_after, lines);
    // Duplicate cards were merged by phone: fewer people than cards.
    let (people, cards) = s.member_counts(&Scope::cli(), companies[0].id).await.unwrap();
    assert!(people <= cards);

    let logins = rxmember_demo::ensure_demo_logins(s).await.unwrap();
    assert_eq!(logins.len(), 4);
    assert!(s.authenticate("admin", rxmember_demo::DEMO_PASSWORD).await.unwrap().is_some());
    db.cleanup().await;
}

#[tokio::test]
async fn demo_logins_never_reach_real_data() {
    let db = TestDb::new().await;
    db.store.init_group("某某医药集团").await.unwrap();
    db.store.create_company(&Scope::cli(), "REAL", "真实公司", None).await.unwrap();
    assert!(rxmember_demo::ensure_demo_logins(&db.store).await.is_err());
    assert!(db.store.staff_list(&Scope::cli()).await.unwrap().is_empty());
    db.cleanup().await;
}

#[tokio::test]
async fn exported_files_import_to_the_same_chain() {
    let dir = std::env::temp_dir().join(format!("rxm-demo-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let summary = rxmember_demo::export(&tiny(), &dir).unwrap();

    // Direct load for reference.
    let direct = TestDb::new().await;
    rxmember_demo::load(&direct.store, &tiny(), &mut |_| {}).await.unwrap();

    let db = TestDb::new().await;
    let s = &db.store;
    let cli = Scope::cli();
    let mut encodings = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let folder = entry.unwrap().path();
        let text = std::fs::read_to_string(folder.join("company.txt")).unwrap();
        let mut lines = text.lines();
        let (code, name) = (lines.next().unwrap(), lines.next().unwrap());
        let company = s.create_company(&cli, code, name, None).await.unwrap();
        for kind in [Kind::Stores, Kind::Products, Kind::Members, Kind::Sales, Kind::Returns, Kind::HealthChecks] {
            let path = folder.join(format!("{}.csv", kind.as_str()));
            let report =
                rxmember_import::import(s, &cli, company.id, kind, Source::open(&path).unwrap(), &mut |_, _| {})
                    .await
                    .unwrap();
            assert_eq!(
                report.summary.rejected,
                0,
                "{code} {kind:?}: {:#?}",
                &report.lines[..report.lines.len().min(5)]
            );
            assert!(report.unknown_columns.is_empty());
            encodings.push(report.encoding.clone());
        }
        let reference = direct.store.company_by_code(&cli, code).await.unwrap();
        assert_eq!(
            s.sales_totals(&cli, company.id).await.unwrap(),
            direct.store.sales_totals(&cli, reference.id).await.unwrap(),
            "{code}"
        );
        assert_eq!(
            s.member_counts(&cli, company.id).await.unwrap(),
            direct.store.member_counts(&cli, reference.id).await.unwrap()
        );
    }
    assert!(encodings.iter().any(|e| e == "gb18030") && encodings.iter().any(|e| e == "UTF-8"), "{encodings:?}");
    let total_lines: i64 = {
        let mut n = 0;
        for c in s.companies(&cli).await.unwrap() {
            n += s.sales_totals(&cli, c.id).await.unwrap().1;
        }
        n
    };
    assert_eq!(total_lines as u64, summary.lines);
    std::fs::remove_dir_all(&dir).unwrap();
    direct.cleanup().await;
    db.cleanup().await;
}
