//! From a raw record to a cleaned domain input, per kind: which values are required (missing → the
//! row is rejected), which are optional (bad → a warning, the value dropped, the row kept).

use crate::kinds::{Kind, Mapping};
use rxmember_core::clean::{self, CleanError};
use rxmember_core::health::{self, HealthCheckInput, HealthKind};
use rxmember_core::member::{Gender, MemberInput, RegistrationSource};
use rxmember_core::org::{Scope, StoreInput};
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::taxonomy::Taxonomy;
use rxmember_core::time::local_to_epoch_ms;
use rxmember_core::{CompanyId, StoreId};
use rxmember_store::companies::Company;
use rxmember_store::outcome::{Issue, RowResult};
use rxmember_store::products::ProductRef;
use rxmember_store::sales::{LineHash, SaleRow, SalesContext};
use rxmember_store::{Store, StoreError};
use std::collections::HashMap;

/// What cleaning needs to know of the company (read-only; moves to the reader thread).
pub(crate) struct CleanContext {
    company: Company,
    taxonomy: Taxonomy,
}

impl CleanContext {
    pub(crate) async fn load(
        store: &Store,
        scope: &Scope,
        company: &Company,
        kind: Kind,
    ) -> Result<CleanContext, StoreError> {
        Ok(CleanContext {
            company: company.clone(),
            taxonomy: if kind == Kind::Products {
                store.taxonomy(scope, company.id).await?
            } else {
                Taxonomy::default()
            },
        })
    }
}

/// What writing needs to resolve codes, loaded once per import.
pub(crate) struct Context {
    stores: HashMap<String, StoreId>,
    products: HashMap<String, ProductRef>,
    sales: Option<SalesContext>,
}

impl Context {
    pub(crate) async fn load(
        store: &Store,
        scope: &Scope,
        company: &Company,
        kind: Kind,
    ) -> Result<Context, StoreError> {
        let id = company.id;
        Ok(Context {
            stores: match kind {
                Kind::Members | Kind::HealthChecks => store.store_codes(scope, id).await?,
                _ => HashMap::new(),
            },
            products: if kind == Kind::Returns { store.product_refs(scope, id).await? } else { HashMap::new() },
            sales: if kind == Kind::Sales { Some(store.sales_context(scope, id).await?) } else { None },
        })
    }
}

/// A cleaned row, with the warnings cleaning raised.
pub(crate) enum Cleaned {
    Store(StoreInput, Vec<Issue>),
    Member(MemberInput, Vec<Issue>),
    Product(ProductInput, Vec<Issue>),
    /// A sales line with its line number (0 = not given) and content hash, both final once the
    /// reader has numbered the line within its ticket.
    Sale {
        line_no: i64,
        line: SaleLineInput,
        hash: LineHash,
        warnings: Vec<Issue>,
    },
    Return(ReturnInput, Vec<Issue>),
    Health(HealthCheckInput, Vec<Issue>),
}

impl Cleaned {
    pub(crate) fn into_warnings(self) -> Vec<Issue> {
        match self {
            Cleaned::Store(_, w)
            | Cleaned::Member(_, w)
            | Cleaned::Product(_, w)
            | Cleaned::Sale { warnings: w, .. }
            | Cleaned::Return(_, w)
            | Cleaned::Health(_, w) => w,
        }
    }
}

/// Reads fields of one record, collecting warnings.
struct Fields<'a> {
    mapping: &'a Mapping,
    record: &'a [String],
    warnings: Vec<Issue>,
    offset_minutes: i32,
}

impl<'a> Fields<'a> {
    fn raw(&self, col: &str) -> &'a str {
        self.mapping.get(self.record, col).unwrap_or("")
    }

    /// A required text: missing → the row is rejected.
    fn required(&self, col: &str) -> Result<String, Issue> {
        let raw = self.raw(col);
        if raw.contains('\u{FFFD}') {
            return Err(Issue::new(col, raw, "encoding_error", "含有无法解码的字符，请检查文件编码（UTF-8或GBK）"));
        }
        clean::text(raw).ok_or_else(|| Issue::new(col, raw, "missing_value", "必填字段为空"))
    }

    /// A required value through a cleaning rule: missing or bad → the row is rejected.
    fn required_with<T>(&self, col: &str, f: impl Fn(&str) -> Result<T, CleanError>) -> Result<T, Issue> {
        let v = self.required(col)?;
        f(&v).map_err(|e| Issue::from_clean(col, &v, e))
    }

    /// An optional text.
    fn text(&mut self, col: &str) -> Option<String> {
        let raw = self.raw(col);
        if raw.contains('\u{FFFD}') {
            self.warnings.push(Issue::new(
                col,
                raw,
                "encoding_error",
                "含有无法解码的字符，已保留原样，请检查文件编码",
            ));
        }
        clean::text(raw)
    }

    /// An optional value through a cleaning rule: bad → a warning and `None`.
    fn optional<T>(&mut self, col: &str, f: impl Fn(&str) -> Result<T, CleanError>) -> Option<T> {
        let v = self.text(col)?;
        match f(&v) {
            Ok(x) => Some(x),
            Err(e) => {
                let mut issue = Issue::from_clean(col, &v, e);
                issue.message.push_str("，已忽略该值");
                self.warnings.push(issue);
                None
            }
        }
    }

    fn local_ms(&self, dt: chrono::NaiveDateTime) -> i64 {
        local_to_epoch_ms(dt, self.offset_minutes)
    }
}

pub(crate) fn clean(mapping: &Mapping, ctx: &CleanContext, record: &[String]) -> Result<Cleaned, Issue> {
    let mut f = Fields { mapping, record, warnings: Vec::new(), offset_minutes: ctx.company.utc_offset_minutes };
    if record.len() != mapping.width {
        // An unclosed quote makes a CSV parser read on across line ends into one field: say so, with
        // how many lines went into it, instead of losing them silently.
        if let Some(swallowed) = record.iter().find(|v| v.contains('\n')) {
            let lines = swallowed.trim_end_matches(['\n', '\r']).matches('\n').count();
            return Err(Issue::new(
                "",
                &swallowed.chars().take(40).collect::<String>(),
                "unbalanced_quote",
                format!("引号未闭合：本行与其后的{lines}行被读成了一行，请修正引号后重新导入"),
            ));
        }
        f.warnings.push(Issue::new(
            "",
            "",
            "field_count",
            format!("本行有{}列，表头有{}列；按列位置读取", record.len(), mapping.width),
        ));
    }
    match mapping.kind {
        Kind::Stores => {
            let code = f.required("store_code")?;
            let name = f.required("name")?;
            if let Some(cc) = f.text("company_code")
                && cc != ctx.company.code
            {
                return Err(Issue::new(
                    "company_code",
                    &cc,
                    "other_company",
                    format!("该门店属于公司“{cc}”，不是本次导入的公司“{}”", ctx.company.code),
                ));
            }
            let s = StoreInput {
                code,
                name,
                city: f.text("city"),
                address: f.text("address"),
                opened_on: f.optional("opened_on", clean::date),
            };
            Ok(Cleaned::Store(s, f.warnings))
        }
        Kind::Members => {
            let card_no = f.required("card_no")?;
            let mut m = MemberInput {
                card_no,
                name: f.text("name"),
                phone: f.optional("phone", clean::phone),
                gender: f.optional("gender", clean::gender).unwrap_or(Gender::Unknown),
                birthday: f.optional("birthday", clean::date),
                store_code: f.text("store_code"),
                registered_at: f.optional("registered_at", clean::datetime).map(|d| f.local_ms(d)),
                clerk_code: f.text("clerk_code"),
                referrer_card_no: f.text("referrer_card_no"),
                allergies: f.text("allergies").map(|s| clean::list(&s)).unwrap_or_default(),
                chronic_conditions: f.text("chronic_conditions").map(|s| clean::list(&s)).unwrap_or_default(),
                sms_opt_in: f.optional("sms_opt_in", clean::boolean).unwrap_or(true),
                points: f.optional("points", |s| {
                    clean::quantity_milli(s)
                        .map(|m| (m + 500).div_euclid(1000))
                        .map_err(|_| CleanError::new("invalid_points", format!("无法识别的积分“{s}”")))
                }),
                ..Default::default()
            };
            if let Some(src) = f.text("source") {
                match RegistrationSource::parse(&src) {
                    Some(s) => m.source = s,
                    None => f.warnings.push(Issue::new(
                        "source",
                        &src,
                        "invalid_source",
                        "注册来源应为 store/wechat/alipay/referral/import（或门店/微信/支付宝/推荐/导入），已按导入处理",
                    )),
                }
            }
            if let Some(id) = f.optional("id_number", clean::id_number) {
                match m.birthday {
                    None => m.birthday = Some(id.birthday),
                    Some(b) if b != id.birthday => f.warnings.push(Issue::new(
                        "birthday",
                        &b.to_string(),
                        "birthday_mismatch",
                        "出生日期与身份证号不一致，保留出生日期列的值",
                    )),
                    Some(_) => {}
                }
                if m.gender == Gender::Unknown {
                    m.gender = id.gender;
                }
                m.id_number = Some(id.number);
            }
            Ok(Cleaned::Member(m, f.warnings))
        }
        Kind::Products => {
            let code = f.required("product_code")?;
            let name = f.required("name")?;
            let category_code = match f.text("category") {
                Some(c) => match ctx.taxonomy.resolve(&c) {
                    Some(cat) => Some(cat.code.clone()),
                    None => {
                        f.warnings.push(Issue::new(
                            "category",
                            &c,
                            "unknown_category",
                            "品类在分类体系中不存在（可用编码或“大类/小类”），已留空",
                        ));
                        None
                    }
                },
                None => None,
            };
            let non_negative = |s: &str| {
                clean::money(s).and_then(|m| {
                    if m.0 < 0 {
                        Err(CleanError::new("negative_price", format!("价格“{s}”不能为负")))
                    } else {
                        Ok(m)
                    }
                })
            };
            let p = ProductInput {
                code,
                name,
                generic_name: f.text("generic_name"),
                spec: f.text("spec"),
                manufacturer: f.text("manufacturer"),
                brand: f.text("brand"),
                category_code,
                is_prescription: f.optional("is_prescription", clean::boolean).unwrap_or(false),
                retail_price: f.optional("retail_price", non_negative),
                cost_price: f.optional("cost_price", non_negative),
                days_per_pack: f.optional("days_per_pack", |s| {
                    s.parse::<i64>()
                        .ok()
                        .filter(|d| (1..=365).contains(d))
                        .ok_or_else(|| CleanError::new("invalid_days", format!("每盒可用天数“{s}”应为1-365的整数")))
                }),
                ingredients: f.text("ingredients").map(|s| clean::list(&s)).unwrap_or_default(),
                points_excluded: f.optional("points_excluded", clean::boolean).unwrap_or(false),
            };
            Ok(Cleaned::Product(p, f.warnings))
        }
        Kind::Sales => {
            let ticket_no = f.required("ticket_no")?;
            let sold_at = f.required_with("sold_at", clean::datetime)?;
            let store_code = f.required("store_code")?;
            let product_code = f.required("product_code")?;
            let quantity_milli = f.required_with("quantity", clean::quantity_milli)?;
            let amount = f.required_with("amount", clean::money)?;
            let line_no = match f.text("line_no") {
                Some(s) => s
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| Issue::new("line_no", &s, "invalid_line_no", "行号应为正整数"))?,
                None => 0,
            };
            let line = SaleLineInput {
                ticket_no,
                line_no: (line_no > 0).then_some(line_no),
                sold_at: f.local_ms(sold_at),
                store_code,
                card_no: f.text("card_no"),
                clerk_code: f.text("clerk_code"),
                product_code,
                quantity_milli,
                unit_price: f.optional("unit_price", clean::money),
                amount,
                discount: f.optional("discount", clean::money).unwrap_or_default(),
                cost: f.optional("cost", clean::money),
            };
            Ok(Cleaned::Sale { line_no, line, hash: LineHash::default(), warnings: f.warnings })
        }
        Kind::Returns => {
            let r = ReturnInput {
                ticket_no: f.required("ticket_no")?,
                return_no: f.required("return_no")?,
                returned_at: {
                    let d = f.required_with("returned_at", clean::datetime)?;
                    f.local_ms(d)
                },
                product_code: f.required("product_code")?,
                // ERPs write returned quantities and amounts as negative or positive numbers alike.
                quantity_milli: f.required_with("quantity", clean::quantity_milli)?.abs(),
                amount: rxmember_core::Fen(f.required_with("amount", clean::money)?.0.abs()),
            };
            Ok(Cleaned::Return(r, f.warnings))
        }
        Kind::HealthChecks => {
            let card_no = f.required("card_no")?;
            let checked_at = f.required_with("checked_at", clean::datetime)?;
            let kind_raw = f.required("kind")?;
            let value = f.required("value")?;
            let kind = HealthKind::parse(&kind_raw);
            let (value1, value2, abnormal) =
                health::assess(kind, &value).map_err(|e| Issue::new("value", &value, "invalid_reading", e.0))?;
            let h = HealthCheckInput {
                card_no,
                store_code: f.text("store_code"),
                checked_at: f.local_ms(checked_at),
                kind,
                kind_name: if kind == HealthKind::Other { kind_raw } else { kind.label_zh().to_string() },
                value,
                value1,
                value2,
                unit: f.text("unit"),
                abnormal,
            };
            Ok(Cleaned::Health(h, f.warnings))
        }
    }
}

/// Writes a batch of cleaned rows of one kind through the store.
pub(crate) async fn write(
    store: &Store,
    scope: &Scope,
    company: CompanyId,
    ctx: &mut Context,
    batch: &[(u64, Cleaned)],
) -> Result<Vec<RowResult>, StoreError> {
    macro_rules! collect {
        ($variant:ident) => {
            batch
                .iter()
                .filter_map(|(_, c)| if let Cleaned::$variant(x, _) = c { Some(x.clone()) } else { None })
                .collect::<Vec<_>>()
        };
    }
    match batch.first().map(|(_, c)| c) {
        None => Ok(vec![]),
        Some(Cleaned::Store(..)) => {
            let r = store.upsert_stores(scope, company, &collect!(Store)).await?;
            ctx.stores = store.store_codes(scope, company).await?;
            Ok(r)
        }
        Some(Cleaned::Member(..)) => store.upsert_members(scope, company, &ctx.stores, &collect!(Member)).await,
        Some(Cleaned::Product(..)) => store.upsert_products(scope, company, &collect!(Product)).await,
        Some(Cleaned::Sale { .. }) => {
            let rows: Vec<SaleRow> = batch
                .iter()
                .filter_map(|(_, c)| match c {
                    Cleaned::Sale { line_no, line, hash, .. } => Some(SaleRow { line_no: *line_no, line, hash: *hash }),
                    _ => None,
                })
                .collect();
            let sales = ctx.sales.as_ref().expect("sales context loaded for sales imports");
            store.write_sale_rows(scope, sales, &rows).await
        }
        Some(Cleaned::Return(..)) => store.write_returns(scope, company, &ctx.products, &collect!(Return)).await,
        Some(Cleaned::Health(..)) => store.write_health_checks(scope, company, &ctx.stores, &collect!(Health)).await,
    }
}
