//! `rxmember bench import`: how fast ERP sales files go into the store, on the demo chain's own
//! exported files, into SQLite and (with `--pg`) PostgreSQL in the same run. Prints a table; the
//! peers (raw PostgreSQL COPY, DuckDB read_csv) are run by `bench/import.sh` on the same files.

use anyhow::{Context, Result};
use rxmember_core::org::Scope;
use rxmember_import::{Kind, Source};
use rxmember_store::Store;
use rxmember_store::crypto::Crypto;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub struct Row {
    pub target: String,
    pub what: String,
    pub lines: u64,
    pub seconds: f64,
}

impl Row {
    pub fn rate(&self) -> f64 {
        self.lines as f64 / self.seconds.max(1e-9)
    }
}

/// Runs the import benchmark. `files` is a demo export (created if missing).
pub async fn import(files: &Path, size: rxmember_demo::Size, pg_admin: Option<&str>) -> Result<Vec<Row>> {
    if !files.join("SCTJ").join("sales.csv").exists() {
        eprintln!("generating the demo files in {} ...", files.display());
        rxmember_demo::export(&rxmember_demo::Options { size, seed: 42 }, files)?;
    }
    let mut rows = Vec::new();
    let tmp = std::env::temp_dir().join(format!("rxmember-bench-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let sqlite_url = format!("sqlite://{}", tmp.join("bench.db").display());
    let store = Store::open(&sqlite_url, Crypto::from_base64(&Crypto::generate_base64())?).await?;
    run_target(&store, "SQLite", files, &mut rows).await?;
    store.close().await;
    std::fs::remove_dir_all(&tmp).ok();

    if let Some(admin) = pg_admin {
        let name = format!("rxm_bench_{}", std::process::id());
        let url = rxmember_store::db::create_pg_database(admin, &name)
            .await
            .context("creating a scratch database with --pg")?;
        let store = Store::open(&url, Crypto::from_base64(&Crypto::generate_base64())?).await?;
        run_target(&store, "PostgreSQL", files, &mut rows).await?;
        store.close().await;
        rxmember_store::db::drop_pg_database(admin, &name).await?;
    }
    Ok(rows)
}

async fn run_target(store: &Store, target: &str, files: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let scope = Scope::cli();
    let mut companies: Vec<PathBuf> =
        std::fs::read_dir(files)?.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect();
    companies.sort();
    let mut totals = [(0u64, 0f64), (0u64, 0f64), (0u64, 0f64)];
    for dir in &companies {
        let code = dir.file_name().and_then(|n| n.to_str()).unwrap_or("X").to_string();
        let company = store.create_company(&scope, &code, &code, None).await?;
        for kind in [Kind::Stores, Kind::Products] {
            timed(store, &scope, company.id, kind, &dir.join(format!("{}.csv", kind.as_str()))).await?;
        }
        let (n, s) = timed(store, &scope, company.id, Kind::Members, &dir.join("members.csv")).await?;
        totals[0].0 += n;
        totals[0].1 += s;
        let (n, s) = timed(store, &scope, company.id, Kind::Sales, &dir.join("sales.csv")).await?;
        totals[1].0 += n;
        totals[1].1 += s;
        let (n, s) = timed(store, &scope, company.id, Kind::Sales, &dir.join("sales.csv")).await?;
        totals[2].0 += n;
        totals[2].1 += s;
    }
    for ((lines, seconds), what) in
        totals.into_iter().zip(["members (new)", "sales lines (new)", "sales lines (re-import, unchanged)"])
    {
        rows.push(Row { target: format!("rxmember → {target}"), what: what.into(), lines, seconds });
    }
    Ok(())
}

async fn timed(
    store: &Store,
    scope: &Scope,
    company: rxmember_core::CompanyId,
    kind: Kind,
    path: &Path,
) -> Result<(u64, f64)> {
    let started = Instant::now();
    let report = rxmember_import::import(store, scope, company, kind, Source::open(path)?, &mut |_, _| {}).await?;
    anyhow::ensure!(report.summary.rejected == 0, "{} rows of {} rejected", report.summary.rejected, path.display());
    Ok((report.summary.rows, started.elapsed().as_secs_f64()))
}

pub fn print(rows: &[Row]) {
    println!("| target | data | rows | seconds | rows/s |");
    println!("|---|---|---:|---:|---:|");
    for r in rows {
        println!("| {} | {} | {} | {:.2} | {:.0} |", r.target, r.what, r.lines, r.seconds, r.rate());
    }
}
