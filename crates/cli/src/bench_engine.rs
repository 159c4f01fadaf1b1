//! `rxmember bench engine`: the member-intelligence engine on the database at hand — full build
//! from the store, a catch-up with nothing new, and count latency (p50/p99) over a fixed set of
//! realistic expressions, with the process's resident memory. The DuckDB side-by-side and the
//! large chain are not in this command yet (see bench/README.md).

use anyhow::Result;
use rxmember_core::org::Scope;
use rxmember_server::intelligence::Intelligence;
use rxmember_store::Store;
use std::time::Instant;

/// Twenty-four questions an HQ marketer asks, in the audience language.
pub const EXPRESSIONS: &[&str] = &[
    "all",
    r#"grade = "重要保持""#,
    r#"grade in ("重要保持", "重要发展") and gender = "女" and age between 50 and 70"#,
    r#"activity = "沉睡" and monetary_12m > 500"#,
    r#"activity in ("新会员", "活跃") and avg_ticket >= 100"#,
    r#"bought(category = "口服降糖药", within = 365d) and not checked(kind = "血糖", within = 365d)"#,
    r#"bought(category = "降压药", within = 90d, times >= 2)"#,
    r#"bought(category = "维生素矿物质", within = 180d) or bought(category = "保健食品", within = 180d)"#,
    "registered(within = 90d) and frequency_12m < 2",
    r#"class = "口服降糖药人群" and gender = "男""#,
    r#"class = "降压药人群" and age >= 60"#,
    "recency_days between 181 and 365 and frequency_12m >= 3",
    "margin_rate < 20 and discount_share > 10",
    r#"tag = "年龄段/60-69岁" and tag = "RFM等级/重要挽留""#,
    r#"tag = "客单价/100-200元" and sms_opt_in = true"#,
    r#"checked(kind = "血压", abnormal = true, within = 365d)"#,
    r#"checked(kind = "血糖", within = 365d, times >= 3)"#,
    "not bought(within = 180d) and tickets_total >= 5",
    r#"birthday_month = 12 and grade != "无效会员""#,
    "items_per_ticket >= 3 and frequency_12m >= 6",
    r#"chronic = "高血压" and not bought(category = "降压药", within = 60d)"#,
    r#"bought(category = "感冒用药", within = 30d) and age < 40"#,
    "spend_total > 2000 and recency_days > 90",
    r#"(gender = "女" and age between 25 and 40) and bought(category = "婴幼儿奶粉", within = 365d)"#,
];

fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|k| k.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
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
    let engine = handle.engine.read().await;
    let d = engine.current();
    println!(
        "engine bench: company {} — {} members, {} tickets, {} member lines, {} returns, {} checks",
        company.code, report.members, report.tickets, report.lines, report.returns, report.checks
    );
    println!("full build from the store: {build:.2} s; catch-up with nothing new: {:.1} ms", idle * 1000.0);
    println!("resident memory: {:.0} MB (before build {:.0} MB)", rss_mb(), rss_before);
    println!("{:>9} {:>9} {:>9}  expression", "count", "p50 ms", "p99 ms");
    let mut all = Vec::new();
    for text in EXPRESSIONS {
        let mut times = Vec::with_capacity(repeat);
        let mut n = 0;
        for _ in 0..repeat {
            let t = Instant::now();
            let members = match engine.select_text(&d, text, &d.universe) {
                Ok(m) => m,
                Err(e) => {
                    println!("{:>9} {:>9} {:>9}  {text}  ({e})", "-", "-", "-");
                    break;
                }
            };
            n = members.len();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        if times.is_empty() {
            continue;
        }
        times.sort_by(f64::total_cmp);
        let p = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
        println!("{n:>9} {:>9.3} {:>9.3}  {text}", p(0.5), p(0.99));
        all.extend(times);
    }
    all.sort_by(f64::total_cmp);
    if !all.is_empty() {
        let p = |q: f64| all[((all.len() - 1) as f64 * q).round() as usize];
        println!("all expressions: p50 {:.3} ms, p99 {:.3} ms over {} counts", p(0.5), p(0.99), all.len());
    }
    Ok(())
}
