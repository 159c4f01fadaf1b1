//! Import integration tests: real files (GBK and UTF-8 CSV, XLSX), messy data, idempotency and
//! interrupted runs, on SQLite and (with RXMEMBER_TEST_PG) PostgreSQL.

use rxmember_core::CompanyId;
use rxmember_core::org::Scope;
use rxmember_import::{ImportError, ImportReport, Kind, Source, import};
use rxmember_store::Store;
use rxmember_store::testing::TestDb;
use std::path::{Path, PathBuf};

struct Files(PathBuf);

impl Files {
    fn new() -> Files {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (std::process::id() as u8).wrapping_add(i as u8).wrapping_mul(31) ^ (fastish() as u8);
        }
        let dir = std::env::temp_dir()
            .join(format!("rxm-import-{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()));
        std::fs::create_dir_all(&dir).unwrap();
        Files(dir)
    }
    fn utf8(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn gbk(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
        assert!(!unmappable);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastish() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
}

async fn run(store: &Store, company: CompanyId, kind: Kind, path: &Path) -> ImportReport {
    import(store, &Scope::cli(), company, kind, Source::open(path).unwrap(), &mut |_, _| {}).await.unwrap()
}

const STORES_ZH: &str = "门店编码,门店名称,城市,地址,开业日期\nS01,解放路店,重庆,渝中区解放路1号,2010/5/1\nS02,观音桥店,重庆,江北区观音桥,20150601\n";
const PRODUCTS: &str = "product_code,name,generic_name,spec,manufacturer,category,is_prescription,retail_price,cost_price,days_per_pack,ingredients\n\
P1,拜新同 硝苯地平控释片,硝苯地平控释片,30mg*7片,拜耳医药保健有限公司,0901,是,￥33.00,26.40,7,硝苯地平\n\
P2,999感冒灵颗粒,感冒灵颗粒,10g*9袋,华润三九医药股份有限公司,感冒用药/复方感冒药,否,15.8,10.2,,对乙酰氨基酚;咖啡因\n\
P3,阿莫西林胶囊,阿莫西林胶囊,0.25g*24粒,石药集团,NOT-A-CATEGORY,1,\"1,234.00\",9,,阿莫西林\n";

async fn company(store: &Store, code: &str) -> CompanyId {
    store.create_company(&Scope::cli(), code, "测试公司", None).await.unwrap().id
}

#[tokio::test]
async fn gbk_and_utf8_files_with_chinese_or_english_headers() {
    let db = TestDb::new().await;
    let s = &db.store;
    let c = company(s, "A").await;
    let f = Files::new();
    let r = run(s, c, Kind::Stores, &f.gbk("stores.csv", STORES_ZH)).await;
    assert_eq!(r.encoding, "gb18030");
    assert_eq!((r.summary.rows, r.summary.inserted), (2, 2));
    let stores = s.stores(&Scope::cli(), Some(c)).await.unwrap();
    assert_eq!(stores[0].name, "解放路店");
    assert_eq!(stores[1].opened_on.as_deref(), Some("2015-06-01"));

    let r = run(s, c, Kind::Products, &f.utf8("products.csv", &format!("\u{feff}{PRODUCTS}"))).await;
    assert_eq!(r.encoding, "UTF-8");
    assert_eq!((r.summary.inserted, r.summary.rejected, r.summary.warnings), (3, 0, 1));
    assert_eq!(r.lines[0].issue.code, "unknown_category");
    assert_eq!(r.lines[0].row, 4);
    let (_, products) = s.products(&Scope::cli(), c, Some("感冒灵"), 10, 0).await.unwrap();
    assert_eq!(products[0].category_code.as_deref(), Some("0101"));
    assert_eq!(products[0].retail_price, Some(rxmember_core::Fen(1580)));
    let (_, p3) = s.products(&Scope::cli(), c, Some("阿莫西林"), 10, 0).await.unwrap();
    assert_eq!(p3[0].retail_price, Some(rxmember_core::Fen(123400)));
    assert!(p3[0].is_prescription);
    db.cleanup().await;
}

#[tokio::test]
async fn messy_members_keep_valid_rows_and_report_each_problem() {
    let db = TestDb::new().await;
    let s = &db.store;
    let c = company(s, "A").await;
    let f = Files::new();
    run(s, c, Kind::Stores, &f.gbk("stores.csv", STORES_ZH)).await;
    let members = "会员卡号,姓名,手机号,性别,出生日期,身份证号,办卡门店,办卡日期,过敏史,慢病,接收短信,积分,备注\n\
        M001,王芳,+86 138-0000-0001,女,1970/3/5,,S01,2023-01-02 10:00:00,青霉素；头孢,高血压;糖尿病,是,120,VIP\n\
        M002,李强,1380000,男,19700305,,S01,2023/1/2,,,否,,\n\
        M003,张伟,13900000003,,,110101199003074514,S99,2023-02-30,,,maybe,abc,\n\
        ,无卡号,13900000004,男,,,S01,,,,,,\n\
        M005,赵敏,13800000001,女,,110101199003074515,S02,,,,,,\n";
    let r = run(s, c, Kind::Members, &f.gbk("members.csv", members)).await;
    let sm = &r.summary;
    assert_eq!((sm.rows, sm.inserted, sm.merged, sm.rejected), (5, 3, 1, 1), "{:#?}", r.lines);
    assert_eq!(r.unknown_columns, vec!["备注".to_string()]);
    let find =
        |row: u64, field: &str| r.lines.iter().find(|l| l.row == row && l.issue.field == field).map(|l| l.issue.code);
    assert_eq!(find(3, "phone"), Some("invalid_phone"));
    assert_eq!(find(4, "registered_at"), Some("invalid_date"));
    assert_eq!(find(4, "store_code"), Some("unknown_store"));
    assert_eq!(find(4, "sms_opt_in"), Some("invalid_boolean"));
    assert_eq!(find(4, "points"), Some("invalid_points"));
    assert_eq!(find(5, "card_no"), Some("missing_value"));
    assert_eq!(find(6, "id_number"), Some("invalid_id_number"));
    assert!(r.lines.iter().any(|l| l.row == 6 && l.issue.code == "merged"));
    // ID number derived birthday and gender for M003.
    let m3 = s.member_by_card(&Scope::cli(), c, "M003").await.unwrap();
    assert_eq!(m3.birthday.map(|d| d.to_string()).as_deref(), Some("1990-03-07"));
    assert_eq!(m3.gender, rxmember_core::member::Gender::Male);
    // M005 merged into M001 (same phone): one person, two cards, allergies from M001 kept.
    let m1 = s.member_by_card(&Scope::cli(), c, "M005").await.unwrap();
    assert_eq!(m1.card_no, "M001");
    assert_eq!(m1.other_cards, vec!["M005".to_string()]);
    assert_eq!(m1.allergies, vec!["青霉素".to_string(), "头孢".to_string()]);
    assert_eq!(m1.chronic_conditions, vec!["高血压".to_string(), "糖尿病".to_string()]);

    // The same file again: nothing changes, nothing is added.
    let again = run(s, c, Kind::Members, &f.gbk("members.csv", members)).await;
    assert_eq!((again.summary.unchanged, again.summary.rejected, again.summary.inserted), (4, 1, 0));
    assert_eq!(s.member_counts(&Scope::cli(), c).await.unwrap(), (3, 4));

    // The report file opens in Excel: UTF-8 BOM and the Chinese headers.
    let report = f.0.join("report.csv");
    r.write_csv(&report).unwrap();
    let text = std::fs::read(&report).unwrap();
    assert!(text.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("行号") && text.contains("invalid_phone") && text.contains("必填字段为空"));
    db.cleanup().await;
}

const SALES_HEADER: &str = "小票号,销售时间,门店编码,会员卡号,商品编码,数量,单价,实收金额,优惠金额\n";

async fn setup_sales(s: &Store, f: &Files) -> CompanyId {
    let c = company(s, "A").await;
    run(s, c, Kind::Stores, &f.gbk("stores.csv", STORES_ZH)).await;
    run(s, c, Kind::Products, &f.utf8("products.csv", PRODUCTS)).await;
    run(s, c, Kind::Members, &f.utf8("members.csv", "card_no,name,phone\nM001,王芳,13800000001\n")).await;
    c
}

#[tokio::test]
async fn bad_sales_rows_are_rejected_with_reasons_and_reruns_change_nothing() {
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = setup_sales(s, &f).await;
    let sales = format!(
        "{SALES_HEADER}\
         T1,2024-01-02 09:30:00,S01,M001,P1,2,33,62.00,4\n\
         T1,2024-01-02 09:30:00,S01,M001,P2,1,15.8,15.80,0\n\
         T2,2024/1/3 10:00,S02,,P2,1,15.8,15.80,\n\
         T3,2024-01-03,S77,,P2,1,15.8,15.80,\n\
         T4,2024-01-03,S01,,P404,1,15.8,15.80,\n\
         T5,2024-01-03,S01,,P2,-1,15.8,-15.80,\n\
         T6,not a date,S01,,P2,1,15.8,15.80,\n\
         T7,2024-01-04,S01,M404,P2,0.5,15.8,7.90,\n\
         T8,2024-01-04,S01,,P2,1,15.8,12000000.00,\n"
    );
    let path = f.utf8("sales.csv", &sales);
    let r = run(s, c, Kind::Sales, &path).await;
    assert_eq!((r.summary.rows, r.summary.inserted, r.summary.rejected), (9, 4, 5), "{:#?}", r.lines);
    let code = |row: u64| r.lines.iter().find(|l| l.row == row).map(|l| (l.issue.field.as_str(), l.issue.code));
    assert_eq!(code(5), Some(("store_code", "unknown_store")));
    assert_eq!(code(6), Some(("product_code", "unknown_product")));
    assert_eq!(code(7), Some(("quantity", "non_positive_quantity")));
    assert_eq!(code(8), Some(("sold_at", "invalid_date")));
    assert_eq!(code(9), Some(("card_no", "unknown_card")));
    assert_eq!(code(10), Some(("amount", "money_out_of_range")));
    let (tickets, lines, amount, member_tickets) = s.sales_totals(&Scope::cli(), c).await.unwrap();
    assert_eq!((tickets, lines, amount.0, member_tickets), (3, 4, 6200 + 1580 + 1580 + 790, 1));

    let again = run(s, c, Kind::Sales, &path).await;
    assert_eq!((again.summary.unchanged, again.summary.inserted, again.summary.rejected), (4, 0, 5));
    assert_eq!(s.sales_totals(&Scope::cli(), c).await.unwrap().1, 4);

    // Duplicated explicit line numbers: the second is rejected.
    let dup = "ticket_no,line_no,sold_at,store_code,product_code,quantity,amount\nT9,1,2024-01-05,S01,P1,1,33\nT9,1,2024-01-05,S01,P2,1,15.8\n";
    let r = run(s, c, Kind::Sales, &f.utf8("dup.csv", dup)).await;
    assert_eq!(r.summary.rejected, 1);
    assert_eq!(r.lines[0].issue.code, "duplicate_line");
    db.cleanup().await;
}

#[tokio::test]
async fn returns_refer_to_tickets_and_cannot_exceed_the_sale() {
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = setup_sales(s, &f).await;
    run(
        s,
        c,
        Kind::Sales,
        &f.utf8("sales.csv", &format!("{SALES_HEADER}T1,2024-01-02 09:30:00,S01,M001,P1,2,33,66,0\n")),
    )
    .await;
    let returns = "小票号,退货单号,退货时间,商品编码,数量,金额\n\
        T1,R1,2024-01-03,P1,-1,-33\n\
        T1,R2,2024-01-03,P1,2,66\n\
        T404,R3,2024-01-03,P1,1,33\n\
        T1,R4,2024-01-03,P2,1,15.8\n";
    let path = f.gbk("returns.csv", returns);
    let r = run(s, c, Kind::Returns, &path).await;
    assert_eq!((r.summary.inserted, r.summary.rejected), (1, 3));
    let codes: Vec<_> = r.lines.iter().map(|l| (l.row, l.issue.code)).collect();
    assert_eq!(codes, vec![(3, "over_return"), (4, "unknown_ticket"), (5, "not_on_ticket")]);
    assert_eq!(run(s, c, Kind::Returns, &path).await.summary.unchanged, 1);
    let t = s.tickets(&Scope::cli(), c, None, 10, 0).await.unwrap();
    assert_eq!(t[0].lines[0].returned_quantity_milli, 1000);
    db.cleanup().await;
}

#[tokio::test]
async fn xlsx_with_numbers_and_date_cells() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = company(s, "A").await;
    run(s, c, Kind::Stores, &f.gbk("stores.csv", STORES_ZH)).await;
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (i, h) in ["卡号", "姓名", "手机", "生日", "开卡门店"].iter().enumerate() {
        ws.write_string(0, i as u16, *h).unwrap();
    }
    ws.write_number(1, 0, 20001.0).unwrap();
    ws.write_string(1, 1, "孙丽").unwrap();
    ws.write_number(1, 2, 13700000001.0).unwrap();
    ws.write_datetime_with_format(1, 3, ExcelDateTime::from_ymd(1965, 8, 9).unwrap(), &date).unwrap();
    ws.write_string(1, 4, "S02").unwrap();
    ws.write_string(2, 0, "20002").unwrap();
    ws.write_string(2, 1, "周杰").unwrap();
    let path = f.0.join("members.xlsx");
    wb.save(&path).unwrap();
    let r = run(s, c, Kind::Members, &path).await;
    assert_eq!((r.encoding.as_str(), r.summary.inserted, r.summary.warnings), ("xlsx", 2, 0), "{:#?}", r.lines);
    let m = s.member_by_card(&Scope::cli(), c, "20001").await.unwrap();
    assert_eq!(m.phone.as_deref(), Some("13700000001"));
    assert_eq!(m.birthday.map(|d| d.to_string()).as_deref(), Some("1965-08-09"));
    db.cleanup().await;
}

#[tokio::test]
async fn unreadable_files_and_missing_columns_fail_the_whole_import() {
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = company(s, "A").await;
    let e = import(
        s,
        &Scope::cli(),
        c,
        Kind::Sales,
        Source::open(&f.utf8("s.csv", "小票号,商品编码\nT1,P1\n")).unwrap(),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ImportError::MissingColumns(ref cols) if cols.len() == 4), "{e}");
    assert!(Source::open(&f.0.join("nope.csv")).is_err());
    assert!(Source::open(&f.utf8("fake.xlsx", "not a workbook")).is_err());
    let e = import(s, &Scope::cli(), c, Kind::Stores, Source::open(&f.utf8("empty.csv", "")).unwrap(), &mut |_, _| {})
        .await
        .unwrap_err();
    assert!(matches!(e, ImportError::Empty));
    // A company's token cannot import into another company.
    let other = company(s, "B").await;
    let e = import(
        s,
        &Scope::company_token(c, "erp"),
        other,
        Kind::Stores,
        Source::open(&f.gbk("st.csv", STORES_ZH)).unwrap(),
        &mut |_, _| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ImportError::Store(rxmember_store::StoreError::AccessDenied)));
    db.cleanup().await;
}

/// A sales file large enough to span several batches, with tickets whose lines are not contiguous
/// and have no line numbers.
fn big_sales(n_tickets: usize) -> String {
    let mut s = String::from(SALES_HEADER);
    for t in 0..n_tickets {
        let card = if t % 3 == 0 { "M001" } else { "" };
        s.push_str(&format!("T{t},2024-02-01 10:00:00,S01,{card},P1,1,33,33,0\n"));
        s.push_str(&format!("T{t},2024-02-01 10:00:00,S01,{card},P2,2,15.8,31.6,0\n"));
    }
    // A late line for ticket T5, far from its other lines.
    s.push_str("T5,2024-02-01 10:00:00,S01,,P2,1,15.8,15.8,0\n");
    s
}

#[tokio::test]
async fn an_interrupted_import_run_again_ends_as_one_clean_run() {
    let f = Files::new();
    // Two lines per ticket: a bit over two batches, the late line of T5 in the last one.
    let tickets = rxmember_import::BATCH_ROWS + 500;
    let lines = 2 * tickets as u64 + 1;
    let full = big_sales(tickets);
    let full_path = f.utf8("full.csv", &full);

    // Reference: one clean run.
    let clean = TestDb::new().await;
    let c1 = setup_sales(&clean.store, &f).await;
    let r = run(&clean.store, c1, Kind::Sales, &full_path).await;
    assert_eq!((r.summary.inserted, r.summary.rejected), (lines, 0));
    let expected = clean.store.sales_totals(&Scope::cli(), c1).await.unwrap();
    assert_eq!(expected.1 as u64, lines);
    let t5 = clean.store.tickets(&Scope::cli(), c1, None, 500, 0).await.unwrap();
    assert!(t5.iter().all(|t| t.line_count == 2 || (t.ticket_no == "T5" && t.line_count == 3)));

    // Crash after some batches committed: the prefix landed, then the whole file is run again.
    let crashed = TestDb::new().await;
    let c2 = setup_sales(&crashed.store, &f).await;
    let cut: String = full.lines().take(rxmember_import::BATCH_ROWS + 300).map(|l| format!("{l}\n")).collect();
    run(&crashed.store, c2, Kind::Sales, &f.utf8("prefix.csv", &cut)).await;
    // And a run killed at an arbitrary moment.
    let store = crashed.store.clone();
    let p = full_path.clone();
    let task = tokio::spawn(async move {
        import(&store, &Scope::cli(), c2, Kind::Sales, Source::open(&p).unwrap(), &mut |_, _| {}).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    task.abort();
    let _ = task.await;
    let r = run(&crashed.store, c2, Kind::Sales, &full_path).await;
    assert_eq!(r.summary.rejected, 0);
    assert_eq!(r.summary.inserted + r.summary.unchanged, lines);
    assert_eq!(crashed.store.sales_totals(&Scope::cli(), c2).await.unwrap(), expected);
    assert_eq!(run(&crashed.store, c2, Kind::Sales, &full_path).await.summary.unchanged, lines);
    clean.cleanup().await;
    crashed.cleanup().await;
}

#[tokio::test]
async fn json_rows_import_like_files() {
    let db = TestDb::new().await;
    let s = &db.store;
    let c = company(s, "A").await;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(
        r#"[{"store_code":"S1","name":"一店","opened_on":"2020-01-01"},{"门店编码":"S2","门店名称":"二店"}]"#,
    )
    .unwrap();
    // Mixed key languages in one push: each object maps its own keys.
    let r = import(s, &Scope::cli(), c, Kind::Stores, Source::json("api".into(), &rows[..1]), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(r.summary.inserted, 1);
    let r = import(s, &Scope::cli(), c, Kind::Stores, Source::json("api".into(), &rows[1..]), &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(r.summary.inserted, 1);
    assert_eq!(s.stores(&Scope::cli(), Some(c)).await.unwrap().len(), 2);
    db.cleanup().await;
}

#[tokio::test]
async fn health_checks_are_parsed_flagged_and_tied_to_members() {
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = setup_sales(s, &f).await;
    let checks = "会员卡号,门店编码,检测时间,检测项目,检测值,单位\n\
        M001,S01,2024-03-01 09:00,血压,135/85,mmHg\n\
        M001,S01,2024-03-08 09:00,血压,150/95,mmHg\n\
        M001,S01,2024-03-08 09:05,空腹血糖,7.4,mmol/L\n\
        M001,S01,2024-03-09 09:00,血压,135,mmHg\n\
        M404,S01,2024-03-09 09:00,血糖,5.1,mmol/L\n\
        M001,S99,2024-03-10 09:00,体重,68.5,kg\n";
    let path = f.gbk("health.csv", checks);
    let r = run(s, c, Kind::HealthChecks, &path).await;
    assert_eq!((r.summary.inserted, r.summary.rejected, r.summary.warnings), (4, 2, 1), "{:#?}", r.lines);
    let codes: Vec<_> = r.lines.iter().map(|l| (l.row, l.issue.code)).collect();
    assert_eq!(codes, vec![(5, "invalid_reading"), (6, "unknown_card"), (7, "unknown_store")]);
    let m = s.member_by_card(&Scope::cli(), c, "M001").await.unwrap();
    let checks = s.health_checks(&Scope::cli(), c, m.id).await.unwrap();
    let flags: Vec<(&str, &str, bool)> =
        checks.iter().map(|h| (h.kind.as_str(), h.value.as_str(), h.abnormal)).collect();
    assert_eq!(
        flags,
        vec![("体重", "68.5", false), ("血糖", "7.4", true), ("血压", "150/95", true), ("血压", "135/85", false)]
    );
    assert_eq!(run(s, c, Kind::HealthChecks, &path).await.summary.unchanged, 4);
    // Health data is for roles that may see personal data only.
    let manager = Scope {
        staff: None,
        role: rxmember_core::org::Role::StoreManager,
        data: rxmember_core::org::DataScope::Stores { company: c, stores: vec![] },
        actor: "t".into(),
    };
    assert!(s.health_checks(&manager, c, m.id).await.is_err());
    db.cleanup().await;
}

#[tokio::test]
async fn an_unclosed_quote_is_reported_with_the_lines_it_swallowed() {
    let db = TestDb::new().await;
    let s = &db.store;
    let f = Files::new();
    let c = company(s, "A").await;
    let text = "store_code,name,city\nS1,一店,重庆\nS2,\"二店,重庆\nS3,三店,重庆\nS4,四店,重庆\n";
    let r = run(s, c, Kind::Stores, &f.utf8("stores.csv", text)).await;
    assert_eq!((r.summary.inserted, r.summary.rejected), (1, 1), "{:#?}", r.lines);
    assert_eq!(r.lines[0].row, 3);
    assert_eq!(r.lines[0].issue.code, "unbalanced_quote");
    assert!(r.lines[0].issue.message.contains("其后的2行"), "{}", r.lines[0].issue.message);
    // A short row without quotes is read by position, with a warning.
    let r = run(s, c, Kind::Stores, &f.utf8("short.csv", "store_code,name,city\nS5,五店\n")).await;
    assert_eq!((r.summary.inserted, r.summary.warnings), (1, 1));
    assert_eq!(r.lines[0].issue.code, "field_count");
    db.cleanup().await;
}
