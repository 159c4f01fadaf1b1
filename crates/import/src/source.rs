//! Where rows come from: a CSV file (UTF-8 with or without BOM, or GBK/GB18030, detected), the first
//! sheet of an XLSX workbook, or JSON objects pushed over HTTP. CSV is streamed; XLSX and JSON are
//! already in memory by their nature.

use crate::ImportError;
use calamine::{Data, Reader};
use encoding_rs::{Encoding, GB18030, UTF_8};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How much of the start of a CSV file decides its encoding.
const SNIFF_BYTES: usize = 1 << 20;

/// A source of rows: a header, then records with their row numbers as the operator sees them in a
/// spreadsheet (the header is row 1).
pub struct Source {
    describe: String,
    encoding: &'static str,
    inner: Inner,
}

enum Inner {
    Csv { reader: csv::Reader<Box<dyn Read + Send>>, read: Arc<AtomicU64>, total: u64, record: csv::StringRecord },
    Rows { rows: std::vec::IntoIter<Vec<String>>, next_row: u64, total: usize, header: Option<Vec<String>> },
}

struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The rule that works for Chinese ERP exports: a BOM or valid UTF-8 means UTF-8; anything else is
/// GB18030 (a superset of GBK and GB2312).
pub fn detect_encoding(prefix: &[u8]) -> &'static Encoding {
    if let Some((enc, _)) = Encoding::for_bom(prefix) {
        return enc;
    }
    match std::str::from_utf8(prefix) {
        Ok(_) => UTF_8,
        // A multi-byte character cut off at the end of the sniffed prefix is still UTF-8.
        Err(e) if e.error_len().is_none() => UTF_8,
        Err(_) => GB18030,
    }
}

fn unreadable(path: &Path, e: impl std::fmt::Display) -> ImportError {
    ImportError::Unreadable { path: path.display().to_string(), reason: e.to_string() }
}

impl Source {
    /// Opens a file by its extension: `.xlsx`/`.xlsm`/`.xls`/`.ods` as a workbook, anything else as CSV.
    pub fn open(path: &Path) -> Result<Source, ImportError> {
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_lowercase();
        match ext.as_str() {
            "xlsx" | "xlsm" | "xls" | "ods" => Source::workbook(path),
            _ => Source::csv(path),
        }
    }

    /// Streams a CSV file, detecting its encoding from its first megabyte.
    pub fn csv(path: &Path) -> Result<Source, ImportError> {
        let mut file = File::open(path).map_err(|e| unreadable(path, e))?;
        let total = file.metadata().map(|m| m.len()).unwrap_or(0);
        let mut prefix = vec![0u8; SNIFF_BYTES.min(total as usize)];
        file.read_exact(&mut prefix).map_err(|e| unreadable(path, e))?;
        let encoding = detect_encoding(&prefix);
        let read = Arc::new(AtomicU64::new(0));
        let raw = Counting { inner: std::io::Cursor::new(prefix).chain(file), read: read.clone() };
        let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .build(BufReader::with_capacity(1 << 16, raw));
        let reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .buffer_capacity(1 << 16)
            .from_reader(Box::new(decoded) as Box<dyn Read + Send>);
        Ok(Source {
            describe: path.display().to_string(),
            encoding: encoding.name(),
            inner: Inner::Csv { reader, read, total, record: csv::StringRecord::new() },
        })
    }

    /// Reads the first sheet of a workbook. Date cells become `YYYY-MM-DD HH:MM:SS`; whole numbers
    /// lose their `.0` (phone and card numbers are often stored as numbers).
    pub fn workbook(path: &Path) -> Result<Source, ImportError> {
        let mut wb = calamine::open_workbook_auto(path).map_err(|e| unreadable(path, e))?;
        let range = wb
            .worksheet_range_at(0)
            .ok_or_else(|| unreadable(path, "the workbook has no sheet"))?
            .map_err(|e| unreadable(path, e))?;
        let rows: Vec<Vec<String>> = range.rows().map(|r| r.iter().map(cell_text).collect()).collect();
        Ok(Source::from_rows(path.display().to_string(), "xlsx", rows))
    }

    /// Rows already in memory, the first being the header.
    pub fn from_rows(describe: String, encoding: &'static str, rows: Vec<Vec<String>>) -> Source {
        let total = rows.len();
        let mut it = rows.into_iter();
        let header = it.next();
        Source { describe, encoding, inner: Inner::Rows { rows: it, next_row: 2, total, header } }
    }

    /// JSON objects as pushed to the HTTP API: the header is every key in order of first appearance.
    pub fn json(describe: String, objects: &[serde_json::Map<String, serde_json::Value>]) -> Source {
        let mut header: Vec<String> = Vec::new();
        for o in objects {
            for k in o.keys() {
                if !header.contains(k) {
                    header.push(k.clone());
                }
            }
        }
        let mut rows = vec![header.clone()];
        for o in objects {
            rows.push(
                header
                    .iter()
                    .map(|k| match o.get(k) {
                        None | Some(serde_json::Value::Null) => String::new(),
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                    })
                    .collect(),
            );
        }
        Source::from_rows(describe, "json", rows)
    }

    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    pub fn encoding(&self) -> &'static str {
        self.encoding
    }

    /// The header row, or `None` for an empty input.
    pub fn header(&mut self) -> Result<Option<Vec<String>>, ImportError> {
        match &mut self.inner {
            Inner::Csv { .. } => Ok(self.next_record()?.map(|(_, r)| r)),
            Inner::Rows { header, .. } => Ok(header.take()),
        }
    }

    /// The next record and its row number; `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Result<Option<(u64, Vec<String>)>, ImportError> {
        loop {
            let (row_no, rec) = match &mut self.inner {
                Inner::Csv { reader, record, .. } => {
                    let more = reader
                        .read_record(record)
                        .map_err(|e| ImportError::Unreadable { path: self.describe.clone(), reason: e.to_string() })?;
                    if !more {
                        return Ok(None);
                    }
                    let line = record.position().map(|p| p.line()).unwrap_or(0);
                    (line, record.iter().map(String::from).collect::<Vec<_>>())
                }
                Inner::Rows { rows, next_row, .. } => {
                    let Some(r) = rows.next() else { return Ok(None) };
                    *next_row += 1;
                    (*next_row - 1, r)
                }
            };
            if rec.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            return Ok(Some((row_no, rec)));
        }
    }

    /// How far through the input we are, 0.0–1.0.
    pub fn fraction_read(&self) -> f64 {
        match &self.inner {
            Inner::Csv { read, total, .. } if *total > 0 => {
                (read.load(Ordering::Relaxed) as f64 / *total as f64).min(1.0)
            }
            Inner::Rows { next_row, total, .. } if *total > 0 => (*next_row as f64 / *total as f64).min(1.0),
            _ => 1.0,
        }
    }
}

fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => s.clone(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => format!("{f}"),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => if *b { "1" } else { "0" }.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => dt.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#ERROR {e:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_rule() {
        assert_eq!(detect_encoding("会员卡号,姓名".as_bytes()), UTF_8);
        assert_eq!(detect_encoding(b"\xEF\xBB\xBFcard_no"), UTF_8);
        let (gbk, _, _) = GB18030.encode("会员卡号,姓名");
        assert_eq!(detect_encoding(&gbk), GB18030);
        // A UTF-8 character cut by the sniff window is still UTF-8.
        let s = "会员".as_bytes();
        assert_eq!(detect_encoding(&s[..4]), UTF_8);
        assert_eq!(detect_encoding(b"plain ascii"), UTF_8);
    }

    #[test]
    fn json_rows_take_the_union_of_keys() {
        let a: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"card_no":"C1","points":12}"#).unwrap();
        let b: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"card_no":"C2","name":"王"}"#).unwrap();
        let mut s = Source::json("json".into(), &[a, b]);
        assert_eq!(s.header().unwrap().unwrap(), vec!["card_no", "points", "name"]);
        assert_eq!(s.next_record().unwrap().unwrap(), (2, vec!["C1".into(), "12".into(), "".into()]));
        assert_eq!(s.next_record().unwrap().unwrap(), (3, vec!["C2".into(), "".into(), "王".into()]));
        assert!(s.next_record().unwrap().is_none());
    }
}
