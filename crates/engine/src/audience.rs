//! Evaluating an audience expression ([`crate::lang`]) to the set of members it selects: tag values,
//! grades and classes are precomputed bitmaps combined by bitmap algebra; numeric features are column
//! scans over the candidates; purchase and health predicates scan only members whose bitmaps say they
//! could match. Missing data never satisfies a comparison.

use crate::data::{CompanyData, Day, NONE_U32, date_of_day, day_of_date};
use crate::derived::Derived;
use crate::features::{NONE_I32, YEAR_DAYS};
use crate::grades::{ActivityLevel, RfmGrade};
use crate::lang::{self, Arg, Cmp, DurationUnit, Expr, Func, Span, Value};
use chrono::Months;
use roaring::RoaringBitmap;
use rxmember_core::health::HealthKind;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use rxmember_core::taxonomy::Taxonomy;

/// An expression that parses but cannot be evaluated (unknown category, wrong value type, ...).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message_zh}")]
pub struct EvalError {
    pub span: Span,
    pub message_zh: String,
    pub message_en: String,
}

/// Parse or evaluation failure of an expression's text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AudienceError {
    #[error("{0}")]
    Parse(#[from] lang::ParseError),
    #[error("{0}")]
    Eval(#[from] EvalError),
}

impl AudienceError {
    pub fn message_en(&self) -> String {
        match self {
            AudienceError::Parse(e) => e.message_en(),
            AudienceError::Eval(e) => e.message_en.clone(),
        }
    }

    /// The text's line with a `^` under the place the error points at.
    pub fn caret(&self, text: &str) -> String {
        lang::caret_at(text, self.offset())
    }

    /// Character offset where the problem is.
    pub fn offset(&self) -> usize {
        match self {
            AudienceError::Parse(e) => e.offset,
            AudienceError::Eval(e) => e.span.start,
        }
    }
}

fn err(span: Span, zh: impl Into<String>, en: impl Into<String>) -> EvalError {
    EvalError { span, message_zh: zh.into(), message_en: en.into() }
}

pub fn evaluate_text(
    data: &CompanyData,
    taxonomy: &Taxonomy,
    d: &Derived,
    text: &str,
    universe: &RoaringBitmap,
) -> Result<RoaringBitmap, AudienceError> {
    let expr = lang::parse(text)?;
    Ok(Evaluator { data, taxonomy, d }.eval(&expr, universe)?)
}

pub fn evaluate(
    data: &CompanyData,
    taxonomy: &Taxonomy,
    d: &Derived,
    expr: &Expr,
    universe: &RoaringBitmap,
) -> Result<RoaringBitmap, EvalError> {
    Evaluator { data, taxonomy, d }.eval(expr, universe)
}

/// Members who bought any of `products` in the 12 months up to the as-of day (net of returns).
pub fn bought_within_year(data: &CompanyData, d: &Derived, products: &[u32]) -> RoaringBitmap {
    let mut candidates = RoaringBitmap::new();
    for &p in products {
        candidates |= &data.ever_bought[p as usize];
    }
    let from = d.as_of - YEAR_DAYS;
    candidates
        .iter()
        .filter(|&o| {
            purchase_days(data, o, |p| p.day > from && p.day <= d.as_of && products.binary_search(&p.product).is_ok()).0
                > 0
        })
        .collect()
}

/// Distinct days with a positive net purchase, and the net spend (fen), over a member's purchases
/// that pass `keep`.
fn purchase_days(data: &CompanyData, o: u32, keep: impl Fn(&crate::data::Purchase) -> bool) -> (i64, i64) {
    let mut per_day: Vec<(Day, i64)> = Vec::new();
    for p in data.purchases[o as usize].iter().filter(|p| keep(p)) {
        match per_day.iter_mut().find(|(d, _)| *d == p.day) {
            Some((_, a)) => *a += p.amount,
            None => per_day.push((p.day, p.amount)),
        }
    }
    (per_day.iter().filter(|(_, a)| *a > 0).count() as i64, per_day.iter().map(|(_, a)| a).sum())
}

/// The members of `u` (out of `n`) passing `keep`. A large `u` is scanned as a plain range into a
/// bit array, which is several times faster than visiting the bitmap member by member.
fn scan(u: &RoaringBitmap, n: usize, keep: impl Fn(usize) -> bool) -> RoaringBitmap {
    if (u.len() as usize) < n / 8 {
        return RoaringBitmap::from_sorted_iter(u.iter().filter(|&o| keep(o as usize))).unwrap_or_default();
    }
    let mut bytes = vec![0u8; n.div_ceil(8)];
    for (i, byte) in bytes.iter_mut().enumerate() {
        let base = i * 8;
        let mut b = 0u8;
        for k in 0..8.min(n - base) {
            b |= (keep(base + k) as u8) << k;
        }
        *byte = b;
    }
    RoaringBitmap::from_lsb0_bytes(0, &bytes) & u
}

fn cmp_f64(a: f64, cmp: Cmp, b: f64) -> bool {
    match cmp {
        Cmp::Eq => a == b,
        Cmp::Ne => a != b,
        Cmp::Lt => a < b,
        Cmp::Le => a <= b,
        Cmp::Gt => a > b,
        Cmp::Ge => a >= b,
    }
}

/// `times >= 2`, `spend < 100`: comparisons a count or an amount must all pass.
type Conditions = Vec<(Cmp, f64)>;

/// A numeric feature: the member's value in the unit the language uses.
type Numeric<'a> = Box<dyn Fn(usize) -> Option<f64> + 'a>;

struct Evaluator<'a> {
    data: &'a CompanyData,
    taxonomy: &'a Taxonomy,
    d: &'a Derived,
}

/// The day range `[from, to]` a call's window arguments select, and the rest of its arguments.
struct Window {
    from: Day,
    to: Day,
}

impl<'a> Evaluator<'a> {
    fn eval(&self, e: &Expr, u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        Ok(match e {
            Expr::All => u.clone(),
            Expr::And { args } => {
                // Cheapest first: bitmaps narrow the members that column scans and purchase scans
                // then visit. The answer is the same in any order.
                let mut order: Vec<&Expr> = args.iter().collect();
                order.sort_by_key(|a| self.cost(a));
                let mut acc = u.clone();
                for a in order {
                    if acc.is_empty() {
                        // Still check the rest for errors, cheaply: evaluate against nothing.
                        self.eval(a, &acc)?;
                        continue;
                    }
                    acc = self.eval(a, &acc)?;
                }
                acc
            }
            Expr::Or { args } => {
                let mut acc = RoaringBitmap::new();
                for a in args {
                    acc |= self.eval(a, u)?;
                }
                acc
            }
            Expr::Not { arg } => u - self.eval(arg, u)?,
            Expr::Compare { field, cmp, value, span } => {
                self.compare(field, *cmp, std::slice::from_ref(value), *span, u)?
            }
            Expr::In { field, values, span } => self.compare(field, Cmp::Eq, values, *span, u)?,
            Expr::Between { field, low, high, span } => {
                let num = self.numeric(field, *span)?;
                let (lo, hi) = (self.number(field, low, *span)?, self.number(field, high, *span)?);
                scan(u, self.data.len(), |o| num(o).is_some_and(|x| x >= lo && x <= hi))
            }
            Expr::Call { func, args, span } => match func {
                Func::Bought => self.bought(args, *span, u)?,
                Func::Checked => self.checked(args, *span, u)?,
                Func::Registered => self.registered(args, *span, u)?,
            },
        })
    }

    /// A rough rank of how much an expression costs per member in scope: bitmap lookups, column
    /// scans, health-check scans, purchase scans.
    fn cost(&self, e: &Expr) -> u8 {
        match e {
            Expr::All => 0,
            Expr::Compare { field, .. } | Expr::In { field, .. } => {
                if self.categorical(field).is_some() || Self::flag(field).is_some() { 1 } else { 2 }
            }
            Expr::Between { .. } => 2,
            Expr::Call { func: Func::Registered, .. } => 2,
            Expr::Call { func: Func::Checked, .. } => 3,
            Expr::Call { func: Func::Bought, .. } => 4,
            Expr::Not { arg } => self.cost(arg),
            Expr::And { args } | Expr::Or { args } => args.iter().map(|a| self.cost(a)).max().unwrap_or(0),
        }
    }

    /// `field cmp v` for one value, or `field in (values)` (cmp = Eq, several values).
    fn compare(
        &self,
        field: &str,
        cmp: Cmp,
        values: &[Value],
        span: Span,
        u: &RoaringBitmap,
    ) -> Result<RoaringBitmap, EvalError> {
        if let Some(lookup) = self.categorical(field) {
            if !matches!(cmp, Cmp::Eq | Cmp::Ne) {
                return Err(err(
                    span,
                    format!("字段 {field} 只能用 =、!= 或 in 比较"),
                    format!("field {field} takes =, != or in"),
                ));
            }
            let mut hit = RoaringBitmap::new();
            for v in values {
                let Value::Str(s) = v else {
                    return Err(err(
                        span,
                        format!("字段 {field} 的值应为文字（加引号）"),
                        format!("field {field} takes a quoted text value"),
                    ));
                };
                hit |= lookup(self, s, span)?;
            }
            hit &= u;
            return Ok(if cmp == Cmp::Ne { self.present(field, u) - hit } else { hit });
        }
        if let Some(key) = Self::flag(field) {
            let mut hit = RoaringBitmap::new();
            for v in values {
                let Value::Bool(b) = v else {
                    return Err(err(
                        span,
                        format!("字段 {field} 的值应为 true 或 false"),
                        format!("field {field} takes true or false"),
                    ));
                };
                let want = if cmp == Cmp::Ne { !*b } else { *b };
                if !matches!(cmp, Cmp::Eq | Cmp::Ne) {
                    return Err(err(
                        span,
                        format!("字段 {field} 只能用 = 或 != 比较"),
                        format!("field {field} takes = or !="),
                    ));
                }
                hit |= self.dim_value(key, if want { 0 } else { 1 }) & u;
            }
            return Ok(hit);
        }
        let num = self.numeric(field, span)?;
        let targets = values.iter().map(|v| self.number(field, v, span)).collect::<Result<Vec<f64>, _>>()?;
        Ok(scan(u, self.data.len(), |o| num(o).is_some_and(|x| targets.iter().any(|t| cmp_f64(x, cmp, *t)))))
    }

    /// Members who have a value for a categorical field (for `!=`).
    fn present(&self, field: &str, u: &RoaringBitmap) -> RoaringBitmap {
        match field {
            "store" => u.iter().filter(|&o| self.data.home_store[o as usize] != NONE_U32).collect(),
            "preferred_store" => {
                u.iter().filter(|&o| self.d.features.preferred_store[o as usize] != NONE_U32).collect()
            }
            _ => u.clone(),
        }
    }

    #[allow(clippy::type_complexity)]
    fn categorical(&self, field: &str) -> Option<fn(&Self, &str, Span) -> Result<RoaringBitmap, EvalError>> {
        Some(match field {
            "gender" => |s: &Self, v: &str, span| {
                let g = match v.trim() {
                    "男" | "male" | "m" => Gender::Male,
                    "女" | "female" | "f" => Gender::Female,
                    "未知" | "unknown" => Gender::Unknown,
                    _ => {
                        return Err(err(
                            span,
                            format!("性别应为 男、女 或 未知，而不是 \"{v}\""),
                            format!("gender is 男, 女 or 未知, not \"{v}\""),
                        ));
                    }
                };
                Ok(s.dim_value(
                    "gender",
                    match g {
                        Gender::Male => 0,
                        Gender::Female => 1,
                        Gender::Unknown => 2,
                    },
                ))
            },
            "grade" => |s: &Self, v: &str, span| {
                let g = RfmGrade::parse(v).ok_or_else(|| {
                    err(
                        span,
                        format!("未知的 RFM 等级 \"{v}\"（可选：重要保持、重要发展、重要挽留、一般重要、一般、无价值、无效会员）"),
                        format!("unknown RFM grade \"{v}\""),
                    )
                })?;
                Ok(s.dim_value("grade", RfmGrade::ALL.iter().position(|x| *x == g).unwrap_or(usize::MAX)))
            },
            "activity" => |s: &Self, v: &str, span| {
                let a = ActivityLevel::parse(v).ok_or_else(|| {
                    err(
                        span,
                        format!("未知的活跃度 \"{v}\"（可选：新会员、活跃、核心、沉睡、流失、未消费）"),
                        format!("unknown activity level \"{v}\""),
                    )
                })?;
                Ok(s.dim_value("activity", ActivityLevel::ALL.iter().position(|x| *x == a).unwrap_or(usize::MAX)))
            },
            "class" => |s: &Self, v: &str, span| {
                let v = v.trim();
                let with = format!("{v}人群");
                s.d.classes
                    .iter()
                    .find(|c| c.name == v || c.name == with)
                    .map(|c| c.members.clone())
                    .ok_or_else(|| err(span, format!("未知的人群分类 \"{v}\""), format!("unknown class \"{v}\"")))
            },
            "tag" => |s: &Self, v: &str, span| s.tag(v, span),
            "source" => |s: &Self, v: &str, span| {
                let src = RegistrationSource::parse(v).ok_or_else(|| {
                    err(span, format!("未知的注册来源 \"{v}\""), format!("unknown registration source \"{v}\""))
                })?;
                Ok(s.dim_value(
                    "source",
                    crate::catalogue::SOURCES.iter().position(|x| *x == src).unwrap_or(usize::MAX),
                ))
            },
            "store" => |s: &Self, v: &str, span| {
                let i = s.store(v, span)?;
                Ok(s.dim_value("home_store", i as usize))
            },
            "preferred_store" => |s: &Self, v: &str, span| {
                let i = s.store(v, span)?;
                Ok(s.dim_value("preferred_store", i as usize))
            },
            "status" => |s: &Self, v: &str, span| {
                let st = match v.trim() {
                    "正常" | "active" => MemberStatus::Active,
                    "已注销" | "注销" | "cancelled" => MemberStatus::Cancelled,
                    _ => {
                        return Err(err(
                            span,
                            format!("会员状态应为 正常 或 已注销，而不是 \"{v}\""),
                            format!("status is active or cancelled, not \"{v}\""),
                        ));
                    }
                };
                Ok(s.dim_value(
                    "status",
                    match st {
                        MemberStatus::Active => 0,
                        MemberStatus::Cancelled => 1,
                    },
                ))
            },
            "chronic" => |s: &Self, v: &str, _| {
                let v = v.trim();
                Ok(s.dim("chronic").and_then(|d| d.value(v)).map(|t| t.members.clone()).unwrap_or_default())
            },
            _ => return None,
        })
    }

    /// A catalogue dimension by key (every dimension the catalogue builds exists).
    fn dim(&self, key: &str) -> Option<&'a crate::catalogue::Dimension> {
        self.d.catalogue.iter().find(|x| x.key == key)
    }

    /// The members of a catalogue dimension's value, by the value's position: categorical fields
    /// are answered from the catalogue's bitmaps instead of a pass over every member.
    fn dim_value(&self, key: &str, index: usize) -> RoaringBitmap {
        self.dim(key).and_then(|d| d.values.get(index)).map(|t| t.members.clone()).unwrap_or_default()
    }

    /// Yes/no fields: the catalogue dimension holding them (value 0 yes, value 1 no).
    fn flag(field: &str) -> Option<&'static str> {
        Some(match field {
            "referred" => "referred",
            "sms_opt_in" => "sms",
            "health_consent" => "health_consent",
            "has_allergies" => "allergies",
            _ => return None,
        })
    }

    fn numeric(&self, field: &str, span: Span) -> Result<Numeric<'a>, EvalError> {
        let f = &self.d.features;
        let data = self.data;
        let yuan = |x: i64| x as f64 / 100.0;
        Ok(match field {
            "age" => Box::new(move |o| (f.age[o] != NONE_I32).then(|| f.age[o] as f64)),
            "birthday_month" => Box::new(move |o| {
                use chrono::Datelike;
                data.members[o].birthday.map(|b| b.month() as f64)
            }),
            "tenure_days" => Box::new(move |o| f.tenure(o).map(f64::from)),
            "recency_days" => Box::new(move |o| f.recency(o).map(f64::from)),
            "frequency_12m" => Box::new(move |o| Some(f.frequency_12m[o] as f64)),
            "monetary_12m" => Box::new(move |o| Some(yuan(f.monetary_12m[o]))),
            "avg_ticket" => Box::new(move |o| f.avg_ticket(o).map(|a| a / 100.0)),
            "items_per_ticket" => Box::new(move |o| f.items_per_ticket(o)),
            "margin_rate" => Box::new(move |o| f.margin_rate(o)),
            "discount_share" => Box::new(move |o| f.discount_share(o)),
            "tickets_total" => Box::new(move |o| Some(f.tickets_total[o] as f64)),
            "spend_total" => Box::new(move |o| Some(yuan(f.spend_total[o]))),
            "first_purchase_days" => Box::new(move |o| f.first_purchase_days(o).map(f64::from)),
            "returns_12m" => Box::new(move |o| Some(f.returns_12m[o] as f64)),
            "checks_12m" => Box::new(move |o| Some(f.checks_12m[o] as f64)),
            _ => {
                return Err(err(
                    span,
                    format!("字段 {field} 不能用于数值比较"),
                    format!("field {field} is not numeric"),
                ));
            }
        })
    }

    /// A numeric value; durations in days or weeks are accepted for day-valued fields.
    fn number(&self, field: &str, v: &Value, span: Span) -> Result<f64, EvalError> {
        match v {
            Value::Num(x) => Ok(*x),
            Value::Duration { amount, unit: DurationUnit::Day } if field.ends_with("_days") => Ok(*amount as f64),
            Value::Duration { amount, unit: DurationUnit::Week } if field.ends_with("_days") => {
                Ok(*amount as f64 * 7.0)
            }
            _ => Err(err(
                span,
                format!("字段 {field} 的值应为数字，而不是 {v}"),
                format!("field {field} takes a number, not {v}"),
            )),
        }
    }

    fn store(&self, v: &str, span: Span) -> Result<u32, EvalError> {
        let v = v.trim();
        self.data.stores.iter().position(|s| s.code == v || s.name == v).map(|i| i as u32).ok_or_else(|| {
            err(
                span,
                format!("未知的门店 \"{v}\"（用门店编码或名称）"),
                format!("unknown store \"{v}\" (use its code or name)"),
            )
        })
    }

    fn tag(&self, v: &str, span: Span) -> Result<RoaringBitmap, EvalError> {
        let v = v.trim();
        if let Some((_, r)) = self.d.saved.iter().find(|(n, _)| n == v) {
            return r.clone().map_err(|e| {
                err(
                    span,
                    format!("标签 \"{v}\" 的表达式无效：{e}"),
                    format!("saved tag \"{v}\" has an invalid expression: {e}"),
                )
            });
        }
        if let Some((dim, value)) = v.split_once(['/', '／']) {
            let (dim, value) = (dim.trim(), value.trim());
            if let Some(d) = self.d.catalogue.iter().find(|d| d.name == dim || d.key == dim) {
                return d.value(value).map(|t| t.members.clone()).ok_or_else(|| {
                    let some: Vec<&str> = d.values.iter().take(8).map(|t| t.name.as_str()).collect();
                    err(
                        span,
                        format!("维度 {} 没有值 \"{value}\"（例如：{}）", d.name, some.join("、")),
                        format!("dimension {} has no value \"{value}\" (e.g. {})", d.key, some.join(", ")),
                    )
                });
            }
        }
        Err(err(
            span,
            format!("未知的标签 \"{v}\"：应为已保存标签的名称，或 \"维度/值\"（如 \"年龄段/50-59岁\"）"),
            format!("unknown tag \"{v}\": a saved tag's name or \"dimension/value\" such as \"年龄段/50-59岁\""),
        ))
    }

    /// Reads the window arguments (`within`, `since`, `before`) of a call.
    fn window(&self, args: &[Arg]) -> Result<Window, EvalError> {
        let mut w = Window { from: i32::MIN, to: self.d.as_of };
        for a in args {
            let bad = || err(a.span, format!("参数 {} 的值不对", a.name), format!("bad value for {}", a.name));
            match a.name.as_str() {
                "within" => {
                    if a.cmp != Cmp::Eq && a.cmp != Cmp::Le {
                        return Err(err(a.span, "within 只能用 =".to_string(), "within takes =".to_string()));
                    }
                    let as_of = date_of_day(self.d.as_of);
                    let from = match &a.value {
                        Value::Duration { amount, unit } if *amount >= 0 => match unit {
                            DurationUnit::Day => self.d.as_of - *amount as i32 + 1,
                            DurationUnit::Week => self.d.as_of - *amount as i32 * 7 + 1,
                            DurationUnit::Month => day_of_date(as_of - Months::new(*amount as u32)) + 1,
                            DurationUnit::Year => day_of_date(as_of - Months::new(*amount as u32 * 12)) + 1,
                        },
                        Value::Num(n) if *n >= 0.0 => self.d.as_of - *n as i32 + 1,
                        _ => return Err(bad()),
                    };
                    w.from = w.from.max(from);
                }
                "since" => match &a.value {
                    Value::Date(d) => w.from = w.from.max(day_of_date(*d)),
                    _ => return Err(bad()),
                },
                "before" => match &a.value {
                    Value::Date(d) => w.to = w.to.min(day_of_date(*d) - 1),
                    _ => return Err(bad()),
                },
                _ => {}
            }
        }
        Ok(w)
    }

    fn text_arg<'b>(&self, a: &'b Arg) -> Result<&'b str, EvalError> {
        match (&a.value, a.cmp) {
            (Value::Str(s), Cmp::Eq) => Ok(s.as_str()),
            _ => Err(err(
                a.span,
                format!("参数 {} 应写成 {} = \"…\"", a.name, a.name),
                format!("argument {} takes = \"text\"", a.name),
            )),
        }
    }

    /// `times` and `spend` conditions: (cmp, value) each; defaults to `times >= 1`.
    fn counts(&self, args: &[Arg]) -> Result<(Conditions, Conditions), EvalError> {
        let mut times = Vec::new();
        let mut spend = Vec::new();
        for a in args {
            let target = match a.name.as_str() {
                "times" => &mut times,
                "spend" => &mut spend,
                _ => continue,
            };
            match a.value {
                Value::Num(n) => target.push((a.cmp, n)),
                _ => {
                    return Err(err(
                        a.span,
                        format!("参数 {} 的值应为数字", a.name),
                        format!("{} takes a number", a.name),
                    ));
                }
            }
        }
        if times.is_empty() && spend.is_empty() {
            times.push((Cmp::Ge, 1.0));
        }
        Ok((times, spend))
    }

    fn bought(&self, args: &[Arg], _span: Span, u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        let data = self.data;
        let mut products: Option<Vec<u32>> = None;
        let mut store: Option<u32> = None;
        // Several product selectors narrow each other: a purchase must match them all.
        let mut narrow = |list: Vec<u32>| {
            products = Some(match products.take() {
                None => list,
                Some(prev) => prev.into_iter().filter(|p| list.binary_search(p).is_ok()).collect(),
            });
        };
        for a in args {
            match a.name.as_str() {
                "category" => {
                    let v = self.text_arg(a)?;
                    let c = self.taxonomy.resolve(v).ok_or_else(|| {
                        err(
                            a.span,
                            format!("未知的品类 \"{v}\"（用品类名称或编码）"),
                            format!("unknown category \"{v}\" (use a category name or code)"),
                        )
                    })?;
                    narrow(crate::classes::products_in_category(data, &c.code));
                }
                "product" => {
                    let v = self.text_arg(a)?.trim();
                    let i = data.products.iter().position(|p| p.code == v).ok_or_else(|| {
                        err(a.span, format!("未知的商品编码 \"{v}\""), format!("unknown product code \"{v}\""))
                    })?;
                    narrow(vec![i as u32]);
                }
                "group" => {
                    let v = self.text_arg(a)?.trim();
                    let g = self.d.groups.iter().find(|g| g.name == v).ok_or_else(|| {
                        err(a.span, format!("未知的药品群组 \"{v}\""), format!("unknown drug group \"{v}\""))
                    })?;
                    narrow(g.products.clone());
                }
                "manufacturer" | "brand" => {
                    let v = self.text_arg(a)?.trim().to_lowercase();
                    let list: Vec<u32> = data
                        .products
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| {
                            let field = if a.name == "brand" { &p.brand } else { &p.manufacturer };
                            field.as_deref().is_some_and(|x| x.trim().to_lowercase() == v)
                        })
                        .map(|(i, _)| i as u32)
                        .collect();
                    if list.is_empty() {
                        let what = if a.name == "brand" { "品牌" } else { "生产厂家" };
                        return Err(err(
                            a.span,
                            format!("没有{what}为 \"{v}\" 的商品"),
                            format!("no product has {} \"{v}\"", a.name),
                        ));
                    }
                    narrow(list);
                }
                "store" => store = Some(self.store(self.text_arg(a)?, a.span)?),
                _ => {}
            }
        }
        let w = self.window(args)?;
        let (times, spend) = self.counts(args)?;
        let candidates: RoaringBitmap = match &products {
            Some(list) => {
                let mut c = RoaringBitmap::new();
                for &p in list {
                    c |= &data.ever_bought[p as usize];
                }
                c & u
            }
            None => u.iter().filter(|&o| !data.purchases[o as usize].is_empty()).collect(),
        };
        let pass = |days: i64, fen: i64| {
            times.iter().all(|(c, t)| cmp_f64(days as f64, *c, *t))
                && spend.iter().all(|(c, t)| cmp_f64(fen as f64 / 100.0, *c, *t))
        };
        let mut out: RoaringBitmap = candidates
            .iter()
            .filter(|&o| {
                let (days, fen) = purchase_days(data, o, |p| {
                    p.day >= w.from
                        && p.day <= w.to
                        && products.as_ref().is_none_or(|l| l.binary_search(&p.product).is_ok())
                        && store.is_none_or(|s| p.store == s)
                });
                pass(days, fen)
            })
            .collect();
        if pass(0, 0) {
            out |= u - &candidates;
        }
        Ok(out)
    }

    fn checked(&self, args: &[Arg], _span: Span, u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        let mut kind: Option<HealthKind> = None;
        let mut abnormal: Option<bool> = None;
        for a in args {
            match a.name.as_str() {
                "kind" => {
                    let v = self.text_arg(a)?;
                    let k = HealthKind::parse(v);
                    if k == HealthKind::Other && v.trim() != "其他" {
                        return Err(err(
                            a.span,
                            format!("未知的检测项目 \"{v}\"（可选：血压、血糖、血脂、尿酸、体重、BMI、骨密度、其他）"),
                            format!("unknown health check kind \"{v}\""),
                        ));
                    }
                    kind = Some(k);
                }
                "abnormal" => match (&a.value, a.cmp) {
                    (Value::Bool(b), Cmp::Eq) => abnormal = Some(*b),
                    (Value::Bool(b), Cmp::Ne) => abnormal = Some(!*b),
                    _ => return Err(err(a.span, "abnormal 的值应为 true 或 false", "abnormal takes true or false")),
                },
                _ => {}
            }
        }
        let w = self.window(args)?;
        let (times, spend) = self.counts(args)?;
        if !spend.is_empty() {
            return Err(err(_span, "checked(...) 没有 spend 参数", "checked(...) has no spend argument"));
        }
        let pass = |n: i64| times.iter().all(|(c, t)| cmp_f64(n as f64, *c, *t));
        let candidates = &self.d.checked & u;
        let mut out: RoaringBitmap = candidates
            .iter()
            .filter(|&o| {
                let n = self.data.checks[o as usize]
                    .iter()
                    .filter(|c| {
                        c.day >= w.from
                            && c.day <= w.to
                            && kind.is_none_or(|k| c.kind == k)
                            && abnormal.is_none_or(|a| c.abnormal == a)
                    })
                    .count() as i64;
                pass(n)
            })
            .collect();
        if pass(0) {
            out |= u - &candidates;
        }
        Ok(out)
    }

    fn registered(&self, args: &[Arg], _span: Span, u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        let mut source = None;
        let mut store = None;
        for a in args {
            match a.name.as_str() {
                "source" => {
                    let v = self.text_arg(a)?;
                    source = Some(RegistrationSource::parse(v).ok_or_else(|| {
                        err(a.span, format!("未知的注册来源 \"{v}\""), format!("unknown registration source \"{v}\""))
                    })?);
                }
                "store" => store = Some(self.store(self.text_arg(a)?, a.span)?),
                _ => {}
            }
        }
        let w = self.window(args)?;
        let f = &self.d.features;
        Ok(scan(u, self.data.len(), |o| {
            let day = f.registered_day[o];
            day != NONE_I32
                && day >= w.from
                && day <= w.to
                && source.is_none_or(|s| self.data.members[o].source == s)
                && store.is_none_or(|s| self.data.home_store[o] == s)
        }))
    }
}
