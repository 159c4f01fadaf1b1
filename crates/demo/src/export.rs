//! Writing the demo group as DATA.md files, one folder per company, the way real ERPs send them: the
//! first company in GBK with Chinese headers, the second in UTF-8 with English headers, the third in
//! UTF-8 with a BOM and Chinese headers.

use crate::generate::{CompanyPlan, Options, Sink, generate};
use rxmember_core::Fen;
use rxmember_core::health::HealthCheckInput;
use rxmember_core::member::MemberInput;
use rxmember_core::org::StoreInput;
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::time::epoch_ms_to_local;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy)]
enum Style {
    GbkChinese,
    Utf8English,
    Utf8BomChinese,
}

struct CsvSink {
    root: PathBuf,
    index: usize,
    style: Style,
    dir: PathBuf,
    files: HashMap<&'static str, BufWriter<File>>,
}

/// (English, Chinese) headers per file, in the order written.
fn headers(kind: &str) -> &'static [(&'static str, &'static str)] {
    match kind {
        "stores" => &[
            ("store_code", "门店编码"),
            ("name", "门店名称"),
            ("city", "城市"),
            ("address", "地址"),
            ("opened_on", "开业日期"),
        ],
        "products" => &[
            ("product_code", "商品编码"),
            ("name", "商品名称"),
            ("generic_name", "通用名"),
            ("spec", "规格"),
            ("manufacturer", "生产厂家"),
            ("brand", "品牌"),
            ("category", "品类"),
            ("is_prescription", "处方药"),
            ("retail_price", "零售价"),
            ("cost_price", "成本价"),
            ("days_per_pack", "每盒可用天数"),
            ("ingredients", "成分"),
            ("points_excluded", "不积分"),
        ],
        "members" => &[
            ("card_no", "会员卡号"),
            ("name", "姓名"),
            ("phone", "手机号"),
            ("gender", "性别"),
            ("birthday", "出生日期"),
            ("id_number", "身份证号"),
            ("store_code", "办卡门店"),
            ("registered_at", "办卡日期"),
            ("clerk_code", "开卡店员"),
            ("source", "注册来源"),
            ("referrer_card_no", "推荐人卡号"),
            ("allergies", "过敏史"),
            ("chronic_conditions", "慢病"),
            ("sms_opt_in", "接收短信"),
            ("points", "积分"),
        ],
        "sales" => &[
            ("ticket_no", "小票号"),
            ("line_no", "行号"),
            ("sold_at", "销售时间"),
            ("store_code", "门店编码"),
            ("card_no", "会员卡号"),
            ("clerk_code", "营业员"),
            ("product_code", "商品编码"),
            ("quantity", "数量"),
            ("unit_price", "单价"),
            ("amount", "实收金额"),
            ("discount", "优惠金额"),
        ],
        "returns" => &[
            ("ticket_no", "小票号"),
            ("return_no", "退货单号"),
            ("returned_at", "退货时间"),
            ("product_code", "商品编码"),
            ("quantity", "数量"),
            ("amount", "金额"),
        ],
        _ => &[
            ("card_no", "会员卡号"),
            ("store_code", "门店编码"),
            ("checked_at", "检测时间"),
            ("kind", "检测项目"),
            ("value", "检测值"),
            ("unit", "单位"),
        ],
    }
}

fn datetime(ms: i64) -> String {
    epoch_ms_to_local(ms, 480).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn qty(milli: i64) -> String {
    if milli % 1000 == 0 { (milli / 1000).to_string() } else { format!("{}", milli as f64 / 1000.0) }
}

fn money(f: Option<Fen>) -> String {
    f.map(|f| f.to_string()).unwrap_or_default()
}

impl CsvSink {
    fn write(&mut self, kind: &'static str, rows: Vec<Vec<String>>) -> std::io::Result<()> {
        if !self.files.contains_key(kind) {
            let mut f = BufWriter::new(File::create(self.dir.join(format!("{kind}.csv")))?);
            if matches!(self.style, Style::Utf8BomChinese) {
                f.write_all(b"\xEF\xBB\xBF")?;
            }
            let header: Vec<String> = headers(kind)
                .iter()
                .map(|(en, zh)| if matches!(self.style, Style::Utf8English) { en.to_string() } else { zh.to_string() })
                .collect();
            self.files.insert(kind, f);
            self.write_rows(kind, vec![header])?;
        }
        self.write_rows(kind, rows)
    }

    fn write_rows(&mut self, kind: &'static str, rows: Vec<Vec<String>>) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in rows {
            w.write_record(&r)?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        let f = self.files.get_mut(kind).expect("opened above");
        match self.style {
            Style::GbkChinese => {
                let text = String::from_utf8_lossy(&bytes);
                let (encoded, _, _) = encoding_rs::GBK.encode(&text);
                f.write_all(&encoded)
            }
            _ => f.write_all(&bytes),
        }
    }
}

impl Sink for CsvSink {
    type Error = std::io::Error;

    async fn company(&mut self, plan: &CompanyPlan) -> std::io::Result<()> {
        for f in self.files.values_mut() {
            f.flush()?;
        }
        self.files.clear();
        self.style = [Style::GbkChinese, Style::Utf8English, Style::Utf8BomChinese][self.index % 3];
        self.index += 1;
        self.dir = self.root.join(plan.code);
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join("company.txt"), format!("{}\n{}\n", plan.code, plan.name))
    }

    async fn stores(&mut self, rows: &[StoreInput], _clerks: &[(String, String, String)]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|s| {
                vec![
                    s.code.clone(),
                    s.name.clone(),
                    s.city.clone().unwrap_or_default(),
                    s.address.clone().unwrap_or_default(),
                    s.opened_on.map(|d| d.format("%Y/%m/%d").to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        self.write("stores", rows)
    }

    async fn products(&mut self, rows: &[ProductInput]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|p| {
                vec![
                    p.code.clone(),
                    p.name.clone(),
                    p.generic_name.clone().unwrap_or_default(),
                    p.spec.clone().unwrap_or_default(),
                    p.manufacturer.clone().unwrap_or_default(),
                    p.brand.clone().unwrap_or_default(),
                    p.category_code.clone().unwrap_or_default(),
                    if p.is_prescription { "是" } else { "否" }.into(),
                    money(p.retail_price),
                    money(p.cost_price),
                    p.days_per_pack.map(|d| d.to_string()).unwrap_or_default(),
                    p.ingredients.join(";"),
                    if p.points_excluded { "1" } else { "0" }.into(),
                ]
            })
            .collect();
        self.write("products", rows)
    }

    async fn members(&mut self, rows: &[MemberInput]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|m| {
                vec![
                    m.card_no.clone(),
                    m.name.clone().unwrap_or_default(),
                    m.phone.clone().unwrap_or_default(),
                    m.gender.label_zh().into(),
                    m.birthday.map(|d| d.to_string()).unwrap_or_default(),
                    m.id_number.clone().unwrap_or_default(),
                    m.store_code.clone().unwrap_or_default(),
                    m.registered_at.map(datetime).unwrap_or_default(),
                    m.clerk_code.clone().unwrap_or_default(),
                    m.source.as_str().into(),
                    m.referrer_card_no.clone().unwrap_or_default(),
                    m.allergies.join(";"),
                    m.chronic_conditions.join(";"),
                    if m.sms_opt_in { "是" } else { "否" }.into(),
                    m.points.map(|p| p.to_string()).unwrap_or_default(),
                ]
            })
            .collect();
        self.write("members", rows)
    }

    async fn sales(&mut self, rows: &[(i64, SaleLineInput)]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|(n, l)| {
                vec![
                    l.ticket_no.clone(),
                    n.to_string(),
                    datetime(l.sold_at),
                    l.store_code.clone(),
                    l.card_no.clone().unwrap_or_default(),
                    l.clerk_code.clone().unwrap_or_default(),
                    l.product_code.clone(),
                    qty(l.quantity_milli),
                    money(l.unit_price),
                    l.amount.to_string(),
                    l.discount.to_string(),
                ]
            })
            .collect();
        self.write("sales", rows)
    }

    async fn returns(&mut self, rows: &[ReturnInput]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|r| {
                vec![
                    r.ticket_no.clone(),
                    r.return_no.clone(),
                    datetime(r.returned_at),
                    r.product_code.clone(),
                    format!("-{}", qty(r.quantity_milli)),
                    format!("-{}", r.amount),
                ]
            })
            .collect();
        self.write("returns", rows)
    }

    async fn health_checks(&mut self, rows: &[HealthCheckInput]) -> std::io::Result<()> {
        let rows = rows
            .iter()
            .map(|h| {
                vec![
                    h.card_no.clone(),
                    h.store_code.clone().unwrap_or_default(),
                    datetime(h.checked_at),
                    h.kind_name.clone(),
                    h.value.clone(),
                    h.unit.clone().unwrap_or_default(),
                ]
            })
            .collect();
        self.write("health_checks", rows)
    }
}

/// Writes the demo group as DATA.md files under `dir/<company code>/`.
pub fn export(opts: &Options, dir: &Path) -> std::io::Result<crate::Summary> {
    let mut sink = CsvSink {
        root: dir.to_path_buf(),
        index: 0,
        style: Style::GbkChinese,
        dir: dir.to_path_buf(),
        files: HashMap::new(),
    };
    // The generator is async only for the store; for files a minimal executor suffices.
    let summary = block_on(generate(opts, &mut sink))?;
    for f in sink.files.values_mut() {
        f.flush()?;
    }
    Ok(summary)
}

/// Runs a future that never waits (file writes are synchronous) to completion.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}
