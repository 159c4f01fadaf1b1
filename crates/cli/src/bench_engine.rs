//! `rxmember bench engine`: the member-intelligence engine on the database at hand — full build
//! from the store, a catch-up with nothing new, and count latency (p50/p99) over a fixed set of
//! realistic expressions, with the process's resident memory. With `--size`, the same on a generated
//! chain side by side with DuckDB ([`crate::bench_chain`]).

use anyhow::Result;
use rxmember_core::org::Scope;
use rxmember_engine::company::CompanyEngine;
use rxmember_engine::derived::Derived;
use rxmember_server::intelligence::Intelligence;
use rxmember_store::Store;
use std::time::Instant;

/// Twenty-four questions an HQ marketer asks, in the audience language, each with the same question
/// in SQL for DuckDB (templates expanded by [`crate::bench_chain::expand_sql`]) over the table `g` of
/// features and grades that DuckDB computes from the same facts (`bench/engine_duckdb.py`).
pub const QUERIES: &[(&str, &str)] = &[
    ("all", "TRUE"),
    (r#"grade = "重要保持""#, "grade = '重要保持'"),
    (
        r#"grade in ("重要保持", "重要发展") and gender = "女" and age between 50 and 70"#,
        "grade IN ('重要保持', '重要发展') AND gender = '女' AND age BETWEEN 50 AND 70",
    ),
    (r#"activity = "沉睡" and monetary_12m > 500"#, "activity = '沉睡' AND monetary_12m / 100.0 > 500"),
    (
        r#"activity in ("新会员", "活跃") and avg_ticket >= 100"#,
        "activity IN ('新会员', '活跃') AND frequency_12m > 0 AND monetary_12m::DOUBLE / frequency_12m / 100.0 >= 100",
    ),
    (
        r#"bought(category = "口服降糖药", within = 365d) and not checked(kind = "血糖", within = 365d)"#,
        "{bought:口服降糖药:365:1} AND NOT {checked:血糖:365:1}",
    ),
    (r#"bought(category = "降压药", within = 90d, times >= 2)"#, "{bought:降压药:90:2}"),
    (
        r#"bought(category = "维生素矿物质", within = 180d) or bought(category = "保健食品", within = 180d)"#,
        "{bought:维生素矿物质:180:1} OR {bought:保健食品:180:1}",
    ),
    ("registered(within = 90d) and frequency_12m < 2", "registered_day BETWEEN {A} - 89 AND {A} AND frequency_12m < 2"),
    (r#"class = "口服降糖药人群" and gender = "男""#, "{class:口服降糖药} AND gender = '男'"),
    (r#"class = "降压药人群" and age >= 60"#, "{class:降压药} AND age >= 60"),
    (
        "recency_days between 181 and 365 and frequency_12m >= 3",
        "recency_days BETWEEN 181 AND 365 AND frequency_12m >= 3",
    ),
    (
        "margin_rate < 20 and discount_share > 10",
        "monetary_12m > 0 AND (monetary_12m - cost_12m)::DOUBLE * 100.0 / monetary_12m < 20 \
         AND frequency_12m > 0 AND monetary_12m + discount_12m > 0 \
         AND discount_12m::DOUBLE * 100.0 / (monetary_12m + discount_12m) > 10",
    ),
    (r#"tag = "年龄段/60-69岁" and tag = "RFM等级/重要挽留""#, "age BETWEEN 60 AND 69 AND grade = '重要挽留'"),
    (
        r#"tag = "客单价/100-200元" and sms_opt_in = true"#,
        "frequency_12m > 0 AND monetary_12m::DOUBLE / frequency_12m / 100.0 >= 100 \
         AND monetary_12m::DOUBLE / frequency_12m / 100.0 < 200 AND sms = 1",
    ),
    (r#"checked(kind = "血压", abnormal = true, within = 365d)"#, "{checked_abnormal:血压:365}"),
    (r#"checked(kind = "血糖", within = 365d, times >= 3)"#, "{checked:血糖:365:3}"),
    ("not bought(within = 180d) and tickets_total >= 5", "NOT {bought_any:180} AND tickets_total >= 5"),
    (r#"birthday_month = 12 and grade != "无效会员""#, "month(birthday) = 12 AND grade <> '无效会员'"),
    (
        "items_per_ticket >= 3 and frequency_12m >= 6",
        "frequency_12m > 0 AND items_12m::DOUBLE / frequency_12m >= 3 AND frequency_12m >= 6",
    ),
    (
        r#"chronic = "高血压" and not bought(category = "降压药", within = 60d)"#,
        "list_contains(string_split(chronic, '|'), '高血压') AND NOT {bought:降压药:60:1}",
    ),
    (r#"bought(category = "感冒用药", within = 30d) and age < 40"#, "{bought:感冒用药:30:1} AND age < 40"),
    ("spend_total > 2000 and recency_days > 90", "spend_total / 100.0 > 2000 AND recency_days > 90"),
    (
        r#"(gender = "女" and age between 25 and 40) and bought(category = "婴幼儿奶粉", within = 365d)"#,
        "gender = '女' AND age BETWEEN 25 AND 40 AND {bought:婴幼儿奶粉:365:1}",
    ),
];

/// The `q` quantile (0..=1) of unsorted times; 0 when there are none.
pub fn percentile(times: &[f64], q: f64) -> f64 {
    if times.is_empty() {
        return 0.0;
    }
    let mut t = times.to_vec();
    t.sort_by(f64::total_cmp);
    t[((t.len() - 1) as f64 * q).round() as usize]
}

/// Counts each of [`QUERIES`] `repeat` times: (count, milliseconds per run).
pub fn time_counts(engine: &CompanyEngine, d: &Derived, repeat: usize) -> Vec<(u64, Vec<f64>)> {
    QUERIES
        .iter()
        .map(|(text, _)| {
            let mut times = Vec::with_capacity(repeat);
            let mut n = 0;
            for _ in 0..repeat {
                let t = Instant::now();
                match engine.select_text(d, text, &d.universe) {
                    Ok(m) => n = m.len(),
                    Err(e) => panic!("benchmark expression {text} fails: {e}"),
                }
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (n, times)
        })
        .collect()
}

/// CPU time used by the process so far (all threads, user + system), seconds, at the kernel's 10 ms
/// resolution: on a shared machine wall time includes waiting for a core, CPU time does not.
pub fn cpu_s() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which is in parentheses and may hold spaces).
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU time used by the calling thread so far, seconds, at nanosecond resolution (the scheduler's
/// own account): for phases too short for [`cpu_s`]'s 10 ms ticks.
pub fn thread_cpu_s() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(0.0, |ns| ns / 1e9)
}

/// A field of /proc/self/status in MB.
fn status_mb(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resident memory now.
pub fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

/// The process's peak resident memory so far.
pub fn peak_rss_mb() -> f64 {
    status_mb("VmHWM:")
}

pub async fn run(store: &Store, company: Option<&str>, repeat: usize) -> Result<()> {
    let scope = Scope::cli();
    let company = crate::config::company(store, &scope, company).await?;
    let intelligence = Intelligence::new(store.clone(), None);
    let rss_before = rss_mb();
    let started = Instant::now();
    let report = intelligence.rebuild(company.id).await?;
    let build = started.elapsed().as_secs_f64();
    let handle = intelligence.company(company.id).await?;
    let started = Instant::now();
    intelligence.catch_up(&handle).await?;
    let idle = started.elapsed().as_secs_f64();
    // What each request pays before its question with nothing new in the store.
    let started = Instant::now();
    intelligence.company(company.id).await?;
    let request = started.elapsed().as_secs_f64();
    let engine = handle.engine.read().await;
    let d = engine.current();
    println!(
        "engine bench: company {} — {} members, {} tickets, {} member lines, {} returns, {} checks",
        company.code, report.members, report.tickets, report.lines, report.returns, report.checks
    );
    println!(
        "full build from the store: {build:.2} s; catch-up with nothing new: {:.1} ms in full, {:.2} ms as a request's",
        idle * 1000.0,
        request * 1000.0
    );
    println!("resident memory: {:.0} MB (before build {:.0} MB)", rss_mb(), rss_before);
    println!("{:>9} {:>9} {:>9}  expression", "count", "p50 ms", "p99 ms");
    let timed = time_counts(&engine, &d, repeat);
    let mut all = Vec::new();
    for ((text, _), (n, times)) in QUERIES.iter().zip(&timed) {
        println!("{n:>9} {:>9.3} {:>9.3}  {text}", percentile(times, 0.5), percentile(times, 0.99));
        all.extend(times.iter().copied());
    }
    println!(
        "all expressions: p50 {:.3} ms, p99 {:.3} ms over {} counts",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.len()
    );
    Ok(())
}
