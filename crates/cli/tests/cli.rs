//! The binary end to end: demo export, company creation, `import --json` with a report, and honest
//! exit codes — against the suite's database (SQLite, or PostgreSQL with RXMEMBER_TEST_PG).

use rxmember_store::testing::TestDb;
use std::path::Path;
use std::process::{Command, Output};

/// The key `TestDb` opens its store with ([7; 32]), so the binary and the test read the same data.
const TEST_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

fn rxmember(db: &TestDb, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rxmember"))
        .args(args)
        .env("RXMEMBER_DATABASE_URL", &db.url)
        .env("RXMEMBER_DATA_KEY", TEST_KEY)
        .env("RXMEMBER_LOG", "warn")
        .output()
        .expect("run rxmember")
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

#[tokio::test]
async fn export_create_import_report() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("rxm-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    ok(&rxmember(&db, &["demo", "--size", "tiny", "--seed", "5", "--export", d]));
    ok(&rxmember(&db, &["company", "create", "TJG", "重庆桐君阁大药房连锁有限责任公司"]));
    let tjg = Path::new(d).join("TJG");
    for kind in ["stores", "products", "members"] {
        let out = ok(&rxmember(&db, &["import", kind, tjg.join(format!("{kind}.csv")).to_str().unwrap(), "--json"]));
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        for key in ["rows", "inserted", "updated", "unchanged", "merged", "rejected", "warnings"] {
            assert!(v.get(key).is_some(), "{key} missing in {out}");
        }
        assert_eq!(v["encoding"], "gb18030");
        assert_eq!(v["rejected"], 0);
    }
    // Sales with a report file; then the same file again changes nothing.
    let report = dir.join("report.csv");
    let sales = tjg.join("sales.csv");
    let out = ok(&rxmember(
        &db,
        &[
            "import",
            "sales",
            sales.to_str().unwrap(),
            "--company",
            "TJG",
            "--json",
            "--report",
            report.to_str().unwrap(),
        ],
    ));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let rows = v["rows"].as_u64().unwrap();
    assert!(rows > 1000 && v["inserted"].as_u64() == Some(rows), "{out}");
    assert!(report.exists());
    let out = ok(&rxmember(&db, &["import", "sales", sales.to_str().unwrap(), "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["unchanged"].as_u64(), Some(rows));

    // The human summary speaks Chinese; an unreadable file or unknown kind exits non-zero.
    let out = ok(&rxmember(&db, &["import", "stores", tjg.join("stores.csv").to_str().unwrap()]));
    assert!(out.contains("未变"), "{out}");
    let bad = rxmember(&db, &["import", "sales", dir.join("missing.csv").to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing.csv"));
    assert!(!rxmember(&db, &["import", "pets", sales.to_str().unwrap()]).status.success());
    let missing_cols = dir.join("cols.csv");
    std::fs::write(&missing_cols, "小票号,商品编码\nT1,P1\n").unwrap();
    let bad = rxmember(&db, &["import", "sales", missing_cols.to_str().unwrap()]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("missing required columns"));
    std::fs::remove_dir_all(&dir).unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn a_company_overrides_its_taxonomy() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("rxm-cli-tax-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    ok(&rxmember(&db, &["company", "create", "A", "甲"]));
    ok(&rxmember(&db, &["company", "create", "B", "乙"]));
    let csv = ok(&rxmember(&db, &["taxonomy", "export", "--company", "A"]));
    assert!(csv.lines().count() > 280);
    // Company A renames a minor category and adds its own.
    let mut custom = csv.replace(",复方感冒药,", ",感冒复方制剂,");
    custom.push_str("66,院内制剂,In-house preparations,6601,院内膏方,In-house pastes\n");
    let file = dir.join("tax.csv");
    std::fs::write(&file, &custom).unwrap();
    let out = ok(&rxmember(&db, &["taxonomy", "import", file.to_str().unwrap(), "--company", "A"]));
    assert!(out.contains("66 major"), "{out}");
    let products = dir.join("p.csv");
    std::fs::write(&products, "商品编码,商品名称,品类\nP1,膏方,院内制剂/院内膏方\nP2,感冒药,感冒复方制剂\n").unwrap();
    let out = ok(&rxmember(&db, &["import", "products", products.to_str().unwrap(), "--company", "A", "--json"]));
    assert!(out.contains("\"warnings\":0"), "{out}");
    // Company B still has the default: the same file warns there.
    let out = ok(&rxmember(&db, &["import", "products", products.to_str().unwrap(), "--company", "B", "--json"]));
    assert!(out.contains("\"warnings\":2"), "{out}");
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "h\n01,a,b,0201,c,d\n").unwrap();
    assert!(!rxmember(&db, &["taxonomy", "import", bad.to_str().unwrap(), "--company", "A"]).status.success());
    std::fs::remove_dir_all(&dir).unwrap();
    db.cleanup().await;
}

#[tokio::test]
async fn audiences_from_the_command_line() {
    let db = TestDb::new().await;
    let dir = std::env::temp_dir().join(format!("rxm-cli-engine-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let engine_dir = dir.join("engine");
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["--engine-dir", engine_dir.to_str().unwrap()]);
        rxmember(&db, &all)
    };
    ok(&rxmember(&db, &["demo", "--size", "tiny", "--seed", "5"]));
    let out = ok(&run(&["audience", "count", "all", "--company", "TJG", "--json"]));
    let all: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let total = all["count"].as_u64().unwrap();
    assert!(total > 0 && total == all["scope_total"].as_u64().unwrap());
    // The first run left a snapshot; the next runs start from it.
    let snaps: Vec<_> = std::fs::read_dir(&engine_dir).unwrap().collect();
    assert_eq!(snaps.len(), 1, "one company's snapshot");
    let expr = r#"grade in ("重要保持", "重要发展") or frequency_12m >= 3"#;
    let out = ok(&run(&["audience", "count", expr, "--company", "TJG", "--as-of", "2026-11-20", "--json"]));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let n = v["count"].as_u64().unwrap();
    assert!(n > 0 && n < total, "{v}");
    assert_eq!(v["as_of"], "2026-11-20");
    let xlsx = dir.join("vip.xlsx");
    let out = ok(&run(&[
        "audience",
        "export",
        expr,
        "--company",
        "TJG",
        "--as-of",
        "2026-11-20",
        "--columns",
        "card_no,grade,monetary_12m",
        "--out",
        xlsx.to_str().unwrap(),
    ]));
    assert!(out.contains(&n.to_string()), "{out}");
    assert_eq!(&std::fs::read(&xlsx).unwrap()[..2], b"PK", "an XLSX file is a zip");
    // A bad expression fails with the position and the reason.
    let bad = run(&["audience", "count", "bought(categry = \"降压药\")", "--company", "TJG"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("第 8 个字符") && err.contains("category"), "{err}");
    let tags = ok(&run(&["tags", "list", "--company", "TJG", "--json"]));
    let dims: serde_json::Value = serde_json::from_str(tags.trim()).unwrap();
    assert!(dims.as_array().unwrap().len() >= 24);
    ok(&run(&["tags", "save", "常客", "--company", "TJG", "--expr", "frequency_12m >= 3"]));
    let out = ok(&run(&["audience", "count", r#"tag = "常客""#, "--company", "TJG", "--json"]));
    let by_tag: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let out = ok(&run(&["audience", "count", "frequency_12m >= 3", "--company", "TJG", "--json"]));
    let direct: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(by_tag["count"], direct["count"]);
    ok(&run(&["engine", "rebuild", "--company", "TJG"]));
    // Every expression of the engine benchmark evaluates (none is reported with an error).
    let bench = ok(&rxmember(&db, &["bench", "engine", "--company", "TJG", "--repeat", "1"]));
    assert!(bench.contains("all expressions: p50"), "{bench}");
    assert!(!bench.lines().any(|l| l.trim_start().starts_with('-')), "{bench}");
    let grades = ok(&run(&["engine", "grades", "--company", "TJG", "--json"]));
    let g: serde_json::Value = serde_json::from_str(grades.trim()).unwrap();
    let sum: u64 = g["grades"].as_array().unwrap().iter().map(|x| x["members"].as_u64().unwrap()).sum();
    assert_eq!(sum, total);
    let _ = std::fs::remove_dir_all(&dir);
    db.cleanup().await;
}

/// The counts of a bench's table: (count, expression) per line that has both.
fn count_table(out: &str) -> Vec<(u64, String)> {
    out.lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            let count = cols.next()?.parse().ok()?;
            // p50, p99, DuckDB p50, DuckDB p99, ratio; then the expression.
            let expression: Vec<&str> = cols.skip(5).collect();
            Some((count, expression.join(" ")))
        })
        .collect()
}

/// `bench engine --keep-snapshot` leaves the restart's snapshot in --data-dir, and
/// `--counts-from-snapshot` answers the same 24 questions from it with the same counts, without
/// generating the chain; without a kept snapshot it says how to make one.
#[test]
fn engine_bench_counts_again_from_a_kept_snapshot() {
    let dir = std::env::temp_dir().join(format!("rxm-bench-snap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bench = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rxmember"))
            .args(["bench", "engine", "--size", "tiny", "--repeat", "1", "--data-dir", dir.to_str().unwrap()])
            .args(extra)
            .output()
            .expect("run rxmember")
    };
    let missing = bench(&["--counts-from-snapshot"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(err.contains("no snapshot at") && err.contains("--keep-snapshot"), "{err}");

    let full = String::from_utf8(bench(&["--no-duckdb", "--keep-snapshot"]).stdout).unwrap();
    assert!(dir.join("engine-tiny-42.snap").exists(), "the snapshot is kept");
    let again = bench(&["--counts-from-snapshot"]);
    let again = String::from_utf8(again.stdout).unwrap();
    assert!(again.contains("engine counts on a kept snapshot"), "{again}");
    let (want, got) = (count_table(&full), count_table(&again));
    assert_eq!(want.len(), 24, "{full}");
    assert_eq!(got, want);
    assert!(want.iter().any(|(n, _)| *n > 0) && want.iter().any(|(n, e)| *n < 240 && e != "all"));
    let _ = std::fs::remove_dir_all(&dir);
}
