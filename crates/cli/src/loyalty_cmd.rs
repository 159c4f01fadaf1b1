//! `rxmember jobs run ...` (the loyalty jobs, for cron or by hand) and `rxmember loyalty ...` (a
//! company's rules as TOML, coupon statistics).

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use rxmember_core::loyalty::LoyaltyRules;
use rxmember_core::org::Scope;
use rxmember_core::time::{local_date, now_ms};
use rxmember_store::Store;
use rxmember_store::companies::Company;
use std::path::Path;

/// The jobs, in the order `daily` runs them.
pub const JOBS: &[&str] =
    &["accrue-points", "expire-points", "event-coupons", "review-tiers", "opening-balances", "daily"];

async fn companies(store: &Store, scope: &Scope, code: Option<&str>) -> Result<Vec<Company>> {
    Ok(match code {
        Some(c) => vec![store.company_by_code(scope, c).await?],
        None => store.companies(scope).await?,
    })
}

/// Runs `job` for one company or all, for `date` (default: today in each company's time zone).
/// `daily` runs accrual, expiry and event coupons, and the tier review when the date is the review day.
pub async fn run_job(
    store: &Store,
    scope: &Scope,
    job: &str,
    company: Option<&str>,
    date: Option<NaiveDate>,
) -> Result<()> {
    if !JOBS.contains(&job) {
        bail!("unknown job {job}: use one of {}", JOBS.join(", "));
    }
    for c in companies(store, scope, company).await? {
        let day = date.unwrap_or_else(|| local_date(now_ms(), c.utc_offset_minutes));
        let started = std::time::Instant::now();
        let mut done = Vec::new();
        if job == "accrue-points" || job == "daily" {
            let (t, r) =
                store.accrue_points(scope, c.id).await.with_context(|| format!("{}: accrue-points", c.code))?;
            done.push(format!("积分入账: {t} 张小票, {r} 笔退货扣回"));
        }
        if job == "check-points" {
            let bad = store.check_points(scope, c.id).await?;
            if !bad.is_empty() {
                bail!(
                    "{}: {} accounts disagree with their ledger (member ids {:?})",
                    c.code,
                    bad.len(),
                    &bad[..bad.len().min(20)]
                );
            }
            done.push("每个账户余额 = 积分流水之和".to_string());
        }
        if job == "opening-balances" {
            let n = store.open_points_balances(scope, c.id).await?;
            done.push(format!("期初积分: {n} 张卡"));
        }
        if job == "expire-points" || job == "daily" {
            let (lots, points) = store.expire_points(scope, c.id, day).await?;
            done.push(format!("积分过期: {lots} 笔 共 {points} 分"));
        }
        if job == "event-coupons" || job == "daily" {
            let r = store.issue_event_coupons(scope, c.id, day).await?;
            done.push(format!(
                "事件发券: 发放 {} (已发 {}, 超限 {}, 库存不足 {})",
                r.issued, r.unchanged, r.over_limit, r.exhausted
            ));
        }
        let rules = store.loyalty_rules(scope, c.id).await?;
        if job == "review-tiers" || (job == "daily" && rules.tiers.is_review_day(day)) {
            let (reviewed, changed) = store.review_tiers(scope, c.id, day).await?;
            done.push(format!("等级复评: {reviewed} 人, 变动 {changed} 人"));
        }
        println!("{} {} ({day}, {} ms): {}", c.code, job, started.elapsed().as_millis(), done.join("; "));
    }
    Ok(())
}

/// Prints the company's rules as TOML (to `out` if given).
pub async fn export_rules(store: &Store, scope: &Scope, company: &str, out: Option<&Path>) -> Result<()> {
    let c = store.company_by_code(scope, company).await?;
    let text = store.loyalty_rules(scope, c.id).await?.to_toml();
    match out {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?,
        None => print!("{text}"),
    }
    Ok(())
}

/// Replaces the company's rules with a TOML file (validated; errors name the field).
pub async fn import_rules(store: &Store, scope: &Scope, company: &str, file: &Path) -> Result<()> {
    let c = store.company_by_code(scope, company).await?;
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let rules = LoyaltyRules::from_toml(&text).with_context(|| format!("in {}", file.display()))?;
    store.set_loyalty_rules(scope, c.id, &rules).await?;
    println!(
        "{}: 积分 {} 分/元, {} 个等级, {} 个会员日, {} 个积分倍数规则",
        c.code,
        rules.points.points_per_yuan,
        rules.tiers.levels.len(),
        rules.member_days.len(),
        rules.points.multipliers.len()
    );
    Ok(())
}

/// Prints the coupon statistics table of seed 000.
pub async fn coupon_stats(store: &Store, scope: &Scope, company: &str) -> Result<()> {
    let c = store.company_by_code(scope, company).await?;
    let today = local_date(now_ms(), c.utc_offset_minutes);
    println!(
        "优惠券名称\t编号\t券型\t状态\t最小使用金额\t优惠券额\t适用门店\t发放数\t使用数\t分享数\t分享成功数\t分享失败数\t总优惠券数"
    );
    for t in store.coupon_templates(scope, c.id, today).await? {
        let face = match t.input.kind {
            rxmember_core::coupons::CouponKind::Percentage => format!("{}折", t.input.percent as f64 / 10.0),
            _ => t.input.face_value.to_string(),
        };
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            t.input.name,
            t.input.code,
            t.input.kind.label_zh(),
            t.status_label,
            t.input.min_spend,
            face,
            if t.all_stores { "全部门店".to_string() } else { t.stores.join(",") },
            t.issued,
            t.used,
            t.shared,
            t.share_succeeded,
            t.share_failed,
            t.input.total_quantity.map_or("不限".to_string(), |q| q.to_string()),
        );
    }
    Ok(())
}
