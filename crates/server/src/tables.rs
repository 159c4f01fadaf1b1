//! Writing a table (headers and rows of text) as CSV for Excel (UTF-8 with BOM) or as XLSX: the
//! format of audience exports, chosen by the file's extension.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    Csv,
    Xlsx,
}

impl TableFormat {
    /// By file name: `.xlsx` is XLSX, anything else CSV.
    pub fn of_path(path: &std::path::Path) -> TableFormat {
        match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("xlsx") => TableFormat::Xlsx,
            _ => TableFormat::Csv,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            TableFormat::Csv => "text/csv; charset=utf-8",
            TableFormat::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            TableFormat::Csv => "csv",
            TableFormat::Xlsx => "xlsx",
        }
    }
}

/// `numeric[c]`: column `c` holds numbers (written as numbers in XLSX; others always as text, so
/// card numbers keep their digits).
pub fn write(
    format: TableFormat,
    sheet: &str,
    headers: &[&str],
    numeric: &[bool],
    rows: &[Vec<String>],
) -> Result<Vec<u8>, String> {
    match format {
        TableFormat::Csv => {
            let mut w = csv::Writer::from_writer(b"\xEF\xBB\xBF".to_vec());
            w.write_record(headers).map_err(|e| e.to_string())?;
            for r in rows {
                w.write_record(r).map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
        TableFormat::Xlsx => {
            let mut book = rust_xlsxwriter::Workbook::new();
            let ws = book.add_worksheet();
            ws.set_name(sheet).map_err(|e| e.to_string())?;
            let bold = rust_xlsxwriter::Format::new().set_bold();
            for (c, h) in headers.iter().enumerate() {
                ws.write_string_with_format(0, c as u16, *h, &bold).map_err(|e| e.to_string())?;
                ws.set_column_width(c as u16, 14).map_err(|e| e.to_string())?;
            }
            for (i, r) in rows.iter().enumerate() {
                for (c, v) in r.iter().enumerate() {
                    let row = i as u32 + 1;
                    match v.parse::<f64>() {
                        Ok(x) if numeric.get(c).copied().unwrap_or(false) => {
                            ws.write_number(row, c as u16, x).map_err(|e| e.to_string())?
                        }
                        _ => ws.write_string(row, c as u16, v).map_err(|e| e.to_string())?,
                    };
                }
            }
            book.save_to_buffer().map_err(|e| e.to_string())
        }
    }
}
