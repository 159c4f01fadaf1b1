//! `rxmember import`: one file, a progress bar on the terminal, a summary, an optional report.

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rxmember_core::org::Scope;
use rxmember_import::{Kind, Source};
use rxmember_store::Store;
use std::path::Path;

pub async fn run(
    store: &Store,
    scope: &Scope,
    kind: &str,
    file: &Path,
    company: Option<&str>,
    report: Option<&Path>,
    json: bool,
) -> Result<()> {
    let kind = Kind::parse(kind).with_context(|| {
        format!("unknown kind {kind}: use stores, members, products, sales, returns or health_checks")
    })?;
    let company = crate::config::company(store, scope, company).await?;
    let source = Source::open(file)?;
    let bar = ProgressBar::new(1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} 导入中 {msg} [{bar:40}] {percent}% {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    if json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut progress = |rows: u64, fraction: f64| {
        bar.set_position((fraction * 1000.0) as u64);
        bar.set_message(format!("{rows} 行"));
    };
    let result = rxmember_import::import(store, scope, company.id, kind, source, &mut progress).await;
    bar.finish_and_clear();
    let report_data = result.with_context(|| format!("importing {}", file.display()))?;
    if let Some(path) = report {
        report_data.write_csv(path).with_context(|| format!("writing report {}", path.display()))?;
    }
    if json {
        println!("{}", report_data.summary_json());
    } else {
        let s = &report_data.summary;
        println!(
            "{} {}: 共{}行 新增{} 更新{} 未变{} 合并{} 拒绝{} 警告{} ({} ms, 编码 {})",
            company.code,
            kind.as_str(),
            s.rows,
            s.inserted,
            s.updated,
            s.unchanged,
            s.merged,
            s.rejected,
            s.warnings,
            s.elapsed_ms,
            report_data.encoding
        );
        if !report_data.unknown_columns.is_empty() {
            println!("忽略的列 (ignored columns): {}", report_data.unknown_columns.join(", "));
        }
        for l in report_data.lines.iter().filter(|l| l.severity == "error").take(10) {
            println!("  第{}行 {} “{}”: {}", l.row, l.issue.field, l.issue.value, l.issue.message);
        }
        if s.rejected > 10 && report.is_none() {
            println!("  …… 用 --report FILE 导出全部问题");
        }
    }
    Ok(())
}
