//! The import report: a summary (DATA.md keys: rows, inserted, updated, unchanged, merged, rejected,
//! warnings) and one line per problem (row, column, value, reason), written as a CSV that opens
//! cleanly in Excel (UTF-8 with BOM).

use crate::Kind;
use rxmember_store::outcome::{Issue, RowOutcome, RowResult};
use serde::Serialize;
use std::io::Write;
use std::path::Path;

/// How many problem lines are kept for the report file; beyond this only counts grow.
const MAX_LINES: usize = 200_000;

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub merged: u64,
    pub rejected: u64,
    pub warnings: u64,
    pub elapsed_ms: u64,
}

/// One problem found in one row.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReportLine {
    pub row: u64,
    /// `error` (the row was rejected) or `warning` (the row was kept).
    pub severity: &'static str,
    #[serde(flatten)]
    pub issue: Issue,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub kind: Kind,
    pub source: String,
    pub encoding: String,
    pub unknown_columns: Vec<String>,
    pub summary: Summary,
    pub lines: Vec<ReportLine>,
    /// Problem lines not kept because the report reached its limit.
    pub lines_dropped: u64,
}

impl ImportReport {
    pub fn new(kind: Kind, source: String, encoding: String, unknown_columns: Vec<String>) -> ImportReport {
        ImportReport {
            kind,
            source,
            encoding,
            unknown_columns,
            summary: Summary::default(),
            lines: vec![],
            lines_dropped: 0,
        }
    }

    fn push(&mut self, line: ReportLine) {
        if self.lines.len() < MAX_LINES {
            self.lines.push(line);
        } else {
            self.lines_dropped += 1;
        }
    }

    /// Counts one row's fate.
    pub fn record(&mut self, row: u64, result: RowResult) {
        let s = &mut self.summary;
        s.rows += 1;
        match result.outcome {
            RowOutcome::Inserted => s.inserted += 1,
            RowOutcome::Updated => s.updated += 1,
            RowOutcome::Unchanged => s.unchanged += 1,
            RowOutcome::Merged { into_card } => {
                s.merged += 1;
                self.push(ReportLine {
                    row,
                    severity: "info",
                    issue: Issue::new(
                        "card_no",
                        "",
                        "merged",
                        format!("与会员卡“{into_card}”手机号相同，已合并为同一会员"),
                    ),
                });
            }
            RowOutcome::Rejected { issue } => {
                s.rejected += 1;
                self.push(ReportLine { row, severity: "error", issue });
            }
        }
        self.summary.warnings += result.warnings.len() as u64;
        for w in result.warnings {
            self.push(ReportLine { row, severity: "warning", issue: w });
        }
    }

    /// The summary as one JSON object (`--json`): DATA.md's keys plus kind, source, encoding and the
    /// columns that were ignored.
    pub fn summary_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.summary).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("kind".into(), self.kind.as_str().into());
            o.insert("source".into(), self.source.clone().into());
            o.insert("encoding".into(), self.encoding.clone().into());
            o.insert("unknown_columns".into(), self.unknown_columns.clone().into());
        }
        v
    }

    /// Writes the per-row report: 行号, 级别, 列, 值, 代码, 原因.
    pub fn write_csv(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
        f.write_all(b"\xEF\xBB\xBF")?;
        let mut w = csv::Writer::from_writer(f);
        w.write_record(["行号 row", "级别 severity", "列 column", "值 value", "代码 code", "原因 reason"])?;
        for l in &self.lines {
            let severity = match l.severity {
                "error" => "错误 error",
                "warning" => "警告 warning",
                _ => "提示 info",
            };
            w.write_record([
                &l.row.to_string(),
                severity,
                &l.issue.field,
                &l.issue.value,
                l.issue.code,
                &l.issue.message,
            ])?;
        }
        if self.lines_dropped > 0 {
            w.write_record(["", "", "", "", "truncated", &format!("另有{}条问题未列出", self.lines_dropped)])?;
        }
        w.flush()?;
        Ok(())
    }
}
