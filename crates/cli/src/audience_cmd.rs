//! `rxmember audience ...`, `rxmember tags ...` and `rxmember engine ...`: the member-intelligence
//! engine from the command line, on the same code the API uses.

use anyhow::{Context, Result, bail};
use chrono::NaiveDate;
use rxmember_core::org::Scope;
use rxmember_engine::company::{CompanyEngine, DEFAULT_COLUMNS, column_headers};
use rxmember_engine::data::day_of_date;
use rxmember_engine::derived::Derived;
use rxmember_server::intelligence::{CompanyHandle, Intelligence, parse_settings};
use rxmember_server::tables::{self, TableFormat};
use rxmember_store::Store;
use rxmember_store::companies::Company;
use std::path::Path;
use std::sync::Arc;

pub struct Engine {
    pub intelligence: Arc<Intelligence>,
    pub company: Company,
}

impl Engine {
    pub async fn open(store: &Store, scope: &Scope, dir: &Path, company: Option<&str>) -> Result<Engine> {
        let company = crate::config::company(store, scope, company).await?;
        let intelligence = Intelligence::new(store.clone(), Some(dir.to_path_buf()));
        Ok(Engine { intelligence, company })
    }

    pub async fn handle(&self) -> Result<Arc<CompanyHandle>> {
        Ok(self.intelligence.company(self.company.id).await?)
    }
}

fn derived(engine: &CompanyEngine, as_of: Option<NaiveDate>) -> Arc<Derived> {
    match as_of {
        Some(d) => engine.derived_for(day_of_date(d)),
        None => engine.current(),
    }
}

/// Prints an expression error with a caret under the place it points at.
fn explain(text: &str, e: &rxmember_engine::audience::AudienceError) -> anyhow::Error {
    anyhow::anyhow!("{e}\n{}\n({})", e.caret(text), e.message_en())
}

pub async fn count(e: &Engine, scope: &Scope, text: &str, as_of: Option<NaiveDate>, json: bool) -> Result<()> {
    let h = e.handle().await?;
    let engine = h.engine.read().await;
    let d = derived(&engine, as_of);
    let mask = engine.scope_mask(&d, &scope.data)?;
    let members = engine.select_text(&d, text, &mask).map_err(|err| explain(text, &err))?;
    let count = engine.count(&d, &members, &mask);
    let breakdowns = engine.breakdowns(&d, &members);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "company": e.company.code,
                "expression": text,
                "count": count.count,
                "scope_total": count.scope_total,
                "as_of": count.as_of,
                "breakdowns": breakdowns,
            })
        );
        return Ok(());
    }
    let share = if count.scope_total > 0 { count.count as f64 * 100.0 / count.scope_total as f64 } else { 0.0 };
    println!("{} 人 / {} 人 ({share:.1}%)  截至 {}  [{}]", count.count, count.scope_total, count.as_of, e.company.code);
    for (title, buckets) in
        [("等级", &breakdowns.by_grade), ("性别", &breakdowns.by_gender), ("年龄段", &breakdowns.by_age_band)]
    {
        let parts: Vec<String> =
            buckets.iter().filter(|b| b.count > 0).map(|b| format!("{} {}", b.name, b.count)).collect();
        println!("  {title}: {}", parts.join(", "));
    }
    let stores: Vec<String> = breakdowns.by_store.iter().take(5).map(|b| format!("{} {}", b.name, b.count)).collect();
    println!("  门店(前5): {}", stores.join(", "));
    Ok(())
}

pub async fn export(
    e: &Engine,
    store: &Store,
    scope: &Scope,
    text: &str,
    columns: Option<Vec<String>>,
    out: &Path,
    as_of: Option<NaiveDate>,
) -> Result<()> {
    let columns = columns.unwrap_or_else(|| DEFAULT_COLUMNS.iter().map(|s| s.to_string()).collect());
    CompanyEngine::check_columns(&columns).map_err(anyhow::Error::msg)?;
    let h = e.handle().await?;
    let (headers, numeric, rows) = {
        let engine = h.engine.read().await;
        let d = derived(&engine, as_of);
        let mask = engine.scope_mask(&d, &scope.data)?;
        let members = engine.select_text(&d, text, &mask).map_err(|err| explain(text, &err))?;
        let rows = engine.rows(&d, &members, &columns, 0, u64::MAX);
        let (headers, numeric) = column_headers(&columns);
        (headers, numeric, rows)
    };
    let format = TableFormat::of_path(out);
    let bytes = tables::write(format, "人群", &headers, &numeric, &rows).map_err(anyhow::Error::msg)?;
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    store
        .audit(
            scope,
            Some(e.company.id),
            "audience.export",
            Some(text),
            Some(&format!("{} members to {}", rows.len(), out.display())),
        )
        .await?;
    println!("{} 人已导出到 {}", rows.len(), out.display());
    Ok(())
}

pub async fn tags_list(e: &Engine, scope: &Scope, json: bool) -> Result<()> {
    let h = e.handle().await?;
    let engine = h.engine.read().await;
    let d = engine.current();
    let mask = engine.scope_mask(&d, &scope.data)?;
    let catalogue = engine.catalogue(&d, &mask);
    if json {
        println!("{}", serde_json::to_string(&catalogue)?);
        return Ok(());
    }
    let mut primary = "";
    for dim in &catalogue {
        if dim.primary_name != primary {
            primary = &dim.primary_name;
            println!("{primary}");
        }
        let values: Vec<String> =
            dim.values.iter().filter(|v| v.count > 0).take(12).map(|v| format!("{} {}", v.name, v.count)).collect();
        let more = dim.values.iter().filter(|v| v.count > 0).count().saturating_sub(12);
        let more = if more > 0 { format!(" …(+{more})") } else { String::new() };
        println!("  {} [{}]: {}{more}", dim.name, dim.key, values.join(", "));
    }
    Ok(())
}

pub async fn tags_save(
    e: &Engine,
    store: &Store,
    scope: &Scope,
    name: &str,
    expr: Option<&str>,
    cards: Option<&Path>,
) -> Result<()> {
    match (expr, cards) {
        (Some(text), None) => {
            // Check it against the engine before saving, so a saved tag always evaluates.
            let h = e.handle().await?;
            {
                let engine = h.engine.read().await;
                let d = engine.current();
                engine.select_text(&d, text, &d.universe).map_err(|err| explain(text, &err))?;
            }
            store.save_expression_tag(scope, e.company.id, name, text).await?;
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let cards: Vec<String> = text
                .lines()
                .map(|l| l.split([',', '\t']).next().unwrap_or("").trim().trim_start_matches('\u{feff}').to_string())
                .filter(|c| !c.is_empty() && c != "card_no" && c != "会员卡号")
                .collect();
            let unknown = store.save_card_list_tag(scope, e.company.id, name, &cards).await?;
            if !unknown.is_empty() {
                eprintln!(
                    "{} 个卡号不存在，未加入标签: {}",
                    unknown.len(),
                    unknown.iter().take(10).cloned().collect::<Vec<_>>().join(", ")
                );
            }
        }
        _ => bail!("give either --expr or --cards"),
    }
    let h = e.handle().await?;
    let engine = h.engine.read().await;
    let d = engine.current();
    let n = d.saved.iter().find(|(n, _)| n == name).and_then(|(_, r)| r.as_ref().ok()).map_or(0, |b| b.len());
    println!("标签 {name} 已保存：{n} 人");
    Ok(())
}

pub async fn rebuild(e: &Engine) -> Result<()> {
    let report = e.intelligence.rebuild(e.company.id).await?;
    println!(
        "{}: {} 会员, {} 小票, {} 明细, {} 退货, {} 检测, 用时 {:.1}s",
        e.company.code,
        report.members,
        report.tickets,
        report.lines,
        report.returns,
        report.checks,
        report.millis as f64 / 1000.0
    );
    Ok(())
}

pub async fn grades(e: &Engine, scope: &Scope, as_of: Option<NaiveDate>, json: bool) -> Result<()> {
    let h = e.handle().await?;
    let engine = h.engine.read().await;
    let d = derived(&engine, as_of);
    let mask = engine.scope_mask(&d, &scope.data)?;
    let summary = engine.grade_summary(&d, &mask);
    if json {
        println!("{}", serde_json::json!({"thresholds": d.thresholds, "grades": summary}));
        return Ok(());
    }
    println!(
        "阈值 (thresholds): R < {} 天, F > {} 次, M > {:.2} 元",
        d.thresholds.r_days,
        d.thresholds.f_tickets,
        d.thresholds.m_fen as f64 / 100.0
    );
    println!("{:<10} {:>8} {:>7} {:>14} {:>7}", "等级", "会员", "占比", "近12月销售(元)", "占比");
    for g in summary {
        println!(
            "{:<10} {:>8} {:>6.1}% {:>14.2} {:>6.1}%",
            g.grade,
            g.members,
            g.member_share * 100.0,
            g.sales_fen as f64 / 100.0,
            g.sales_share * 100.0
        );
    }
    Ok(())
}

pub async fn settings(e: &Engine, store: &Store, scope: &Scope, set: Option<&Path>) -> Result<()> {
    if let Some(path) = set {
        let json = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let parsed = parse_settings(&json).map_err(|r| anyhow::anyhow!("{}: {r}", path.display()))?;
        store.set_engine_settings(scope, e.company.id, &serde_json::to_string(&parsed)?).await?;
        println!("已保存 {} 的引擎设置", e.company.code);
        return Ok(());
    }
    let json = store.engine_settings(scope, e.company.id).await?;
    let settings = match json {
        Some(j) => parse_settings(&j).map_err(anyhow::Error::msg)?,
        None => Default::default(),
    };
    println!("{}", serde_json::to_string_pretty(&settings)?);
    Ok(())
}
