//! Evaluating an audience expression ([`crate::lang`]) to the set of members it selects: tag values,
//! grades and classes are precomputed bitmaps combined by bitmap algebra; numeric features are column
//! scans over the candidates; purchase and health predicates scan only members whose bitmaps say they
//! could match. Missing data never satisfies a comparison.

use crate::counts::{self, Counts};
use crate::data::{CompanyData, Day, NONE_U32, date_of_day, day_of_date};
use crate::derived::Derived;
use crate::features::{NONE_I32, YEAR_DAYS};
use crate::grades::{ActivityLevel, RfmGrade};
use crate::lang::{self, Arg, Cmp, DurationUnit, Expr, Func, Span, Value};
use crate::numeric::{Column, Scale, Test, Want};
use crate::postings::{ALL_KINDS, CheckPosting, kind_index};
use chrono::Months;
use roaring::RoaringBitmap;
use rxmember_core::health::HealthKind;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use rxmember_core::taxonomy::Taxonomy;

type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

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
    let times = vec![(Cmp::Ge, 1.0)];
    bought_postings(data, products, d.as_of - YEAR_DAYS + 1, d.as_of, None, &times, &[]).0
}

/// Distinct days with a positive net purchase, and the net spend (fen), over a member's purchases
/// that pass `keep`.
fn purchase_days(data: &CompanyData, o: u32, keep: impl Fn(&crate::data::Purchase) -> bool) -> (i64, i64) {
    let mut per_day: Vec<(Day, i64)> = Vec::new();
    for p in data.purchases(o as usize).iter().filter(|p| keep(p)) {
        match per_day.iter_mut().find(|(d, _)| *d == p.day) {
            Some((_, a)) => *a += i64::from(p.amount),
            None => per_day.push((p.day, i64::from(p.amount))),
        }
    }
    (per_day.iter().filter(|(_, a)| *a > 0).count() as i64, per_day.iter().map(|(_, a)| a).sum())
}

fn pass(times: &[(Cmp, f64)], spend: &[(Cmp, f64)], days: i64, fen: i64) -> bool {
    times.iter().all(|(c, t)| cmp_f64(days as f64, *c, *t))
        && spend.iter().all(|(c, t)| cmp_f64(fen as f64 / 100.0, *c, *t))
}

/// `times >= 1` and nothing else: the question is only whether some day counts.
fn any_day(times: &[(Cmp, f64)], spend: &[(Cmp, f64)]) -> bool {
    spend.is_empty() && times.len() == 1 && times[0] == (Cmp::Ge, 1.0)
}

/// A member's running count while its postings are read day by day.
#[derive(Clone, Copy)]
struct Tally {
    day: Day,
    net: i64,
    days: u32,
    spend: i64,
}

const NO_TALLY: Tally = Tally { day: Day::MIN, net: 0, days: 0, spend: 0 };

thread_local! {
    /// Per-member tallies, reused from question to question (only the members read are reset).
    static TALLIES: std::cell::RefCell<Vec<Tally>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A set of members as bits, for members marked in any order: "any" questions, whose bit array
/// (n/8 bytes) mostly stays in the cache (see [`Counts`] for counts).
struct Bits(Vec<u8>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(8)])
    }

    /// Marks `o` if `yes` (without a branch: a mispredicted one per posting costs more than the
    /// write).
    fn set_if(&mut self, o: u32, yes: bool) {
        self.0[(o >> 3) as usize] |= (yes as u8) << (o & 7);
    }

    fn bitmap(&self) -> RoaringBitmap {
        RoaringBitmap::from_lsb0_bytes(0, &self.0)
    }
}

/// `bought(...)` from the purchases by product and day: the members whose days with a positive net
/// and net spend over `products` on days `from..=to` (at `store`) pass the conditions, and the
/// members with any such purchase (`None` when not needed: a member without one never passes).
fn bought_postings(
    data: &CompanyData,
    products: &[u32],
    from: Day,
    to: Day,
    store: Option<u32>,
    times: &[(Cmp, f64)],
    spend: &[(Cmp, f64)],
) -> (RoaringBitmap, Option<RoaringBitmap>) {
    let index = data.product_days();
    let (_, negative) = index.size(products, from, to);
    if any_day(times, spend) && !negative {
        // With no negative amounts, a day with any positive purchase nets positive.
        let mut bits = Bits::new(data.len());
        index
            .each(products, from, to, |_, p| bits.set_if(p.member, p.amount > 0 && store.is_none_or(|s| p.store == s)));
        return (bits.bitmap(), None);
    }
    if spend.is_empty()
        && !negative
        && let Some(cap) = counts::cap(times)
    {
        // Only days count, and a day counts when it has a positive purchase.
        let mut counts = Counts::new(data.len(), cap);
        let mut day = Day::MIN;
        index.each(products, from, to, |d, p| {
            if p.amount <= 0 || store.is_some_and(|s| p.store != s) {
                return;
            }
            if d != day {
                counts.end_day();
                day = d;
            }
            counts.once_a_day(p.member);
        });
        let (hit, seen) = counts.select(|days| pass(times, spend, days as i64, 0));
        return (hit, pass(times, spend, 0, 0).then_some(seen));
    }
    TALLIES.with_borrow_mut(|tallies| {
        tallies.resize(data.len(), NO_TALLY);
        let mut seen: Vec<u32> = Vec::new();
        index.each(products, from, to, |d, p| {
            if store.is_some_and(|s| p.store != s) {
                return;
            }
            let t = &mut tallies[p.member as usize];
            if t.day != d {
                if t.day == Day::MIN {
                    seen.push(p.member);
                } else if t.net > 0 {
                    t.days += 1;
                }
                t.day = d;
                t.net = 0;
            }
            t.net += i64::from(p.amount);
            t.spend += i64::from(p.amount);
        });
        seen.sort_unstable();
        let mut hit = Vec::new();
        for &o in &seen {
            let t = std::mem::replace(&mut tallies[o as usize], NO_TALLY);
            if pass(times, spend, t.days as i64 + (t.net > 0) as i64, t.spend) {
                hit.push(o);
            }
        }
        let hit = RoaringBitmap::from_sorted_iter(hit).expect("sorted");
        let seen = pass(times, spend, 0, 0).then(|| RoaringBitmap::from_sorted_iter(seen).expect("sorted"));
        (hit, seen)
    })
}

/// The members of `u` (out of `n`) passing `keep`. A large `u` is scanned as a plain range into a
/// bit array, 64 members a word, which is several times faster than visiting the bitmap member by
/// member; `keep` is a concrete closure, inlined into the loop.
fn scan(u: &RoaringBitmap, n: usize, keep: impl Fn(usize) -> bool) -> RoaringBitmap {
    if (u.len() as usize) < n / 8 {
        return RoaringBitmap::from_sorted_iter(u.iter().filter(|&o| keep(o as usize))).unwrap_or_default();
    }
    let mut bytes = vec![0u8; n.div_ceil(64) * 8];
    for (w, word) in bytes.chunks_exact_mut(8).enumerate() {
        let base = w * 64;
        let mut b = 0u64;
        for k in 0..64.min(n - base) {
            b |= (keep(base + k) as u64) << k;
        }
        word.copy_from_slice(&b.to_le_bytes());
    }
    RoaringBitmap::from_lsb0_bytes(0, &bytes) & u
}

fn cmp_f64(a: f64, cmp: Cmp, b: f64) -> bool {
    Want::Cmp(cmp, b).holds(a)
}

/// `times >= 2`, `spend < 100`: comparisons a count or an amount must all pass.
type Conditions = Vec<(Cmp, f64)>;

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

impl Window {
    fn between(&self) -> Want {
        Want::Between(self.from as f64, self.to as f64)
    }
}

/// Fields compared as numbers, each a feature column (see `Evaluator::numeric_test`).
const NUMERIC_FIELDS: [&str; 16] = [
    "age",
    "birthday_month",
    "tenure_days",
    "recency_days",
    "first_purchase_days",
    "frequency_12m",
    "tickets_total",
    "returns_12m",
    "checks_12m",
    "monetary_12m",
    "spend_total",
    "points_balance",
    "avg_ticket",
    "items_per_ticket",
    "margin_rate",
    "discount_share",
];

impl<'a> Evaluator<'a> {
    fn eval(&self, e: &Expr, u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        if let Some(test) = self.column_test(e) {
            return Ok(crate::numeric::select(&mut [test?], u, self.data.len()));
        }
        Ok(match e {
            Expr::All => u.clone(),
            Expr::And { args } => {
                // Cheapest first: bitmaps narrow the members that column scans and purchase scans
                // then visit. The answer is the same in any order. All column comparisons are
                // decided in one pass, after the bitmaps.
                let mut tests = Vec::new();
                let mut order: Vec<&Expr> = Vec::new();
                for a in args {
                    match self.column_test(a) {
                        Some(t) => tests.push(t?),
                        None => order.push(a),
                    }
                }
                order.sort_by_key(|a| self.cost(a));
                let mut acc = u.clone();
                let fused = order.iter().position(|a| self.cost(a) > 1).unwrap_or(order.len());
                for (i, a) in order.iter().enumerate() {
                    if i == fused && !tests.is_empty() && !acc.is_empty() {
                        acc = crate::numeric::select(&mut tests, &acc, self.data.len());
                    }
                    if acc.is_empty() {
                        // Still check the rest for errors, cheaply: evaluate against nothing.
                        self.eval(a, &acc)?;
                        continue;
                    }
                    acc = self.eval(a, &acc)?;
                }
                if fused == order.len() && !tests.is_empty() && !acc.is_empty() {
                    acc = crate::numeric::select(&mut tests, &acc, self.data.len());
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
                let want = Want::Between(self.number(field, low, *span)?, self.number(field, high, *span)?);
                crate::numeric::select(&mut [self.numeric_test(field, want, *span)?], u, self.data.len())
            }
            Expr::Call { func, args, span } => match func {
                Func::Bought => self.bought(args, *span, u)?,
                Func::Checked => self.checked(args, *span, u)?,
                Func::Registered => self.registered(args, *span, u)?,
                Func::PointsExpiring => self.points_expiring(args, u)?,
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
            Expr::Call { func: Func::Registered | Func::PointsExpiring, .. } => 2,
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
        // Numeric: one scan per value (`age in (30, 40)`), usually one.
        let mut hit = RoaringBitmap::new();
        for v in values {
            let want = Want::Cmp(cmp, self.number(field, v, span)?);
            hit |= crate::numeric::select(&mut [self.numeric_test(field, want, span)?], u, self.data.len());
        }
        Ok(hit)
    }

    /// An expression answered by one comparison on one column (numeric fields; `registered(...)`
    /// and `bought(...)` with only a window), possibly negated; `None` for anything else.
    fn column_test(&self, e: &Expr) -> Option<Result<Test<'a>, EvalError>> {
        let only_window = |args: &[Arg]| args.iter().all(|a| matches!(a.name.as_str(), "within" | "since" | "before"));
        match e {
            Expr::Compare { field, cmp, value, span } if self.is_numeric(field) => {
                Some(self.number(field, value, *span).and_then(|t| self.numeric_test(field, Want::Cmp(*cmp, t), *span)))
            }
            Expr::In { field, values, span } if values.len() == 1 && self.is_numeric(field) => Some(
                self.number(field, &values[0], *span)
                    .and_then(|t| self.numeric_test(field, Want::Cmp(Cmp::Eq, t), *span)),
            ),
            Expr::Between { field, low, high, span } if self.is_numeric(field) => Some((|| {
                let want = Want::Between(self.number(field, low, *span)?, self.number(field, high, *span)?);
                self.numeric_test(field, want, *span)
            })()),
            Expr::Not { arg } => self.column_test(arg).map(|t| t.map(Test::negated)),
            Expr::Call { func: Func::Registered, args, .. } if only_window(args) => Some(self.window(args).map(|w| {
                let registered = Column::I32(&self.d.features.registered_day);
                Test::new(registered, (NONE_I32 as i64 + 1, i32::MAX as i64), Scale::Plain, w.between())
            })),
            Expr::Call { func: Func::Bought, args, .. } if only_window(args) => {
                let w = match self.window(args) {
                    Ok(w) => w,
                    Err(e) => return Some(Err(e)),
                };
                (w.to == self.d.as_of).then(|| Ok(self.bought_since(w.from)))
            }
            _ => None,
        }
    }

    /// Whether `field` is compared as a number (not a categorical field, flag or unknown name).
    fn is_numeric(&self, field: &str) -> bool {
        NUMERIC_FIELDS.contains(&field)
    }

    /// Members with a day of positive net purchases from `from` up to the as-of day: the last such
    /// day (a feature column) says it.
    fn bought_since(&self, from: Day) -> Test<'a> {
        let last = Column::I32(&self.d.features.last_bought_day);
        Test::new(last, (NONE_I32 as i64 + 1, i32::MAX as i64), Scale::Plain, Want::Cmp(Cmp::Ge, from as f64))
    }

    /// Members who have a value for a categorical field (for `!=`).
    fn present(&self, field: &str, u: &RoaringBitmap) -> RoaringBitmap {
        match field {
            "store" => u.iter().filter(|&o| self.data.home_store[o as usize] != NONE_U32).collect(),
            "preferred_store" => {
                u.iter().filter(|&o| self.d.features.preferred_store[o as usize] != NONE_U32).collect()
            }
            "tier" => u.iter().filter(|&o| self.data.loyalty.level(o as usize).is_some()).collect(),
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
                    .map(|c| RoaringBitmap::clone(&c.members))
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
            "tier" => |s: &Self, v: &str, span| {
                let levels = &s.data.loyalty.levels;
                let i = s.data.loyalty.level_named(v).ok_or_else(|| {
                    let known: Vec<&str> = levels.iter().map(|l| l.name.as_str()).collect();
                    err(
                        span,
                        format!("未知的会员等级 \"{v}\"（可选：{}）", known.join("、")),
                        format!("unknown tier \"{v}\" (known: {})", known.join(", ")),
                    )
                })?;
                Ok(s.dim_value("tier", i))
            },
            "chronic" => |s: &Self, v: &str, _| {
                let v = v.trim();
                Ok(s.dim("chronic")
                    .and_then(|d| d.value(v))
                    .map(|t| RoaringBitmap::clone(&t.members))
                    .unwrap_or_default())
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
        self.dim(key).and_then(|d| d.values.get(index)).map(|t| RoaringBitmap::clone(&t.members)).unwrap_or_default()
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

    /// `field want` (in the unit the language uses) as a test on the field's column; missing
    /// values never pass.
    fn numeric_test(&self, field: &str, want: Want, span: Span) -> Result<Test<'a>, EvalError> {
        let f: &'a crate::features::Features = &self.d.features;
        let as_of = self.d.as_of as i64;
        // Valid stored values: days and ages (`NONE_I32` is none), counts, money.
        let present = (NONE_I32 as i64 + 1, i32::MAX as i64);
        let count = (0, u32::MAX as i64);
        let money = (i64::MIN, i64::MAX);
        let since = Scale::DaysSince(as_of);
        Ok(match field {
            "age" => Test::new(Column::I32(&f.age), present, Scale::Plain, want),
            "birthday_month" => Test::new(Column::U8(&f.birthday_month), (1, u8::MAX as i64), Scale::Plain, want),
            "tenure_days" => Test::new(Column::I32(&f.registered_day), (present.0, as_of), since, want),
            "recency_days" => Test::new(Column::I32(&f.last_day), present, since, want),
            "first_purchase_days" => Test::new(Column::I32(&f.first_day), present, since, want),
            "frequency_12m" => Test::new(Column::U32(&f.frequency_12m), count, Scale::Plain, want),
            "tickets_total" => Test::new(Column::U32(&f.tickets_total), count, Scale::Plain, want),
            "returns_12m" => Test::new(Column::U32(&f.returns_12m), count, Scale::Plain, want),
            "checks_12m" => Test::new(Column::U32(&f.checks_12m), count, Scale::Plain, want),
            "monetary_12m" => Test::new(Column::I64(&f.monetary_12m), money, Scale::Hundredths, want),
            "spend_total" => Test::new(Column::I64(&f.spend_total), money, Scale::Hundredths, want),
            "points_balance" => Test::new(Column::I64(&self.data.loyalty.balance), money, Scale::Plain, want),
            "avg_ticket" => Test::ratio(&f.avg_ticket_key, want),
            "items_per_ticket" => Test::ratio(&f.items_per_ticket_key, want),
            "margin_rate" => Test::ratio(&f.margin_rate_key, want),
            "discount_share" => Test::ratio(&f.discount_share_key, want),
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
                return d.value(value).map(|t| RoaringBitmap::clone(&t.members)).ok_or_else(|| {
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
        // A lone category selector may be answered from the recent days per category.
        let mut category: Option<String> = None;
        let mut selectors = 0;
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
                    selectors += 1;
                    category = Some(c.code.clone());
                    narrow(crate::classes::products_in_category(data, &c.code));
                }
                "product" => {
                    let v = self.text_arg(a)?.trim();
                    let i = data.products.iter().position(|p| p.code == v).ok_or_else(|| {
                        err(a.span, format!("未知的商品编码 \"{v}\""), format!("unknown product code \"{v}\""))
                    })?;
                    selectors += 1;
                    narrow(vec![i as u32]);
                }
                "group" => {
                    let v = self.text_arg(a)?.trim();
                    let g = self.d.groups.iter().find(|g| g.name == v).ok_or_else(|| {
                        err(a.span, format!("未知的药品群组 \"{v}\""), format!("unknown drug group \"{v}\""))
                    })?;
                    selectors += 1;
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
                    selectors += 1;
                    narrow(list);
                }
                "store" => store = Some(self.store(self.text_arg(a)?, a.span)?),
                _ => {}
            }
        }
        let w = self.window(args)?;
        let (times, spend) = self.counts(args)?;
        let n = data.len();
        if products.is_none() && store.is_none() && w.to == self.d.as_of && any_day(&times, &spend) {
            return Ok(crate::numeric::select(&mut [self.bought_since(w.from)], u, n));
        }
        let all: Vec<u32>;
        let list = match &products {
            Some(list) => list,
            None => {
                all = (0..data.products.len() as u32).collect();
                &all
            }
        };
        // Read the window's postings, or scan the candidates' own purchases when they are few.
        let (postings, _) = data.product_days().size(list, w.from, w.to);
        let candidates = || {
            let mut c = RoaringBitmap::new();
            for &p in list {
                c |= &data.ever_bought[p as usize];
            }
            c & u
        };
        let per_member = (data.purchase_count() / n.max(1)).max(1) as u64;
        let small = (u.len() as usize) < n / 64;
        if small {
            let candidates = candidates();
            if candidates.len() * per_member < postings as u64 {
                let mut out: RoaringBitmap = candidates
                    .iter()
                    .filter(|&o| {
                        let (days, fen) = purchase_days(data, o, |p| {
                            p.day >= w.from
                                && p.day <= w.to
                                && list.binary_search(&p.product).is_ok()
                                && store.is_none_or(|s| p.store == s)
                        });
                        pass(&times, &spend, days, fen)
                    })
                    .collect();
                if pass(&times, &spend, 0, 0) {
                    out |= u - &candidates;
                }
                return Ok(out);
            }
        }
        let recent = data.recent();
        if selectors == 1
            && store.is_none()
            && spend.is_empty()
            && let Some(key) = category.as_deref().and_then(|c| recent.category(c))
            && let Some(cap) = counts::cap(&times)
            && recent.products(key) == *list
            && let Some((hit, seen)) = recent.passing(
                crate::recent::Side::Purchases,
                key,
                &(1..=cap as i64).map(|days| pass(&times, &spend, days, 0)).collect::<Vec<_>>(),
                pass(&times, &spend, 0, 0),
                (w.from, w.to),
                n,
            )
        {
            return Ok(match seen {
                Some(seen) => (hit & u) | (u - seen),
                None => hit & u,
            });
        }
        let (hit, seen) = bought_postings(data, list, w.from, w.to, store, &times, &spend);
        Ok(match seen {
            // Members without a purchase in the window pass too.
            Some(seen) => (hit & u) | (u - seen),
            None => hit & u,
        })
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
        let one = [kind.map_or(0, kind_index)];
        let kinds: &[u32] = if kind.is_some() { &one } else { &ALL_KINDS };
        let index = self.data.check_days();
        let n = self.data.len();
        let keep = |c: &CheckPosting| abnormal.is_none_or(|a| c.abnormal == a);
        if (u.len() as usize) < n / 64 && ((&self.d.checked & u).len() as usize) * 4 < index.size(kinds, w.from, w.to) {
            // Few members in question: their own checks.
            let candidates = &self.d.checked & u;
            let mut out: RoaringBitmap = candidates
                .iter()
                .filter(|&o| {
                    let n = self
                        .data
                        .checks(o as usize)
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
            return Ok(out);
        }
        if let Some(cap) = counts::cap(&times)
            && let Some((hit, seen)) = self.data.recent().passing(
                crate::recent::Side::Checks,
                crate::recent::check_key(kind.map(kind_index), abnormal),
                &(1..=cap as i64).map(pass).collect::<Vec<_>>(),
                pass(0),
                (w.from, w.to),
                n,
            )
        {
            return Ok(match seen {
                Some(seen) => (hit & u) | (u - seen),
                None => hit & u,
            });
        }
        if times.len() == 1 && times[0] == (Cmp::Ge, 1.0) {
            let mut bits = Bits::new(n);
            index.each(kinds, w.from, w.to, |c| bits.set_if(c.member, keep(c)));
            return Ok(bits.bitmap() & u);
        }
        if let Some(cap) = counts::cap(&times) {
            let mut counts = Counts::new(n, cap);
            index.each(kinds, w.from, w.to, |c| counts.add_if(c.member, keep(c)));
            let (hit, seen) = counts.select(|k| pass(k as i64));
            return Ok(if pass(0) { (hit & u) | (u - seen) } else { hit & u });
        }
        let mut counts: FastMap<u32, u32> = FastMap::default();
        index.each(kinds, w.from, w.to, |c| {
            if keep(c) {
                *counts.entry(c.member).or_default() += 1;
            }
        });
        let mut hit: Vec<u32> = counts.iter().filter(|(_, k)| pass(**k as i64)).map(|(o, _)| *o).collect();
        hit.sort_unstable();
        let hit = RoaringBitmap::from_sorted_iter(hit).expect("sorted");
        Ok(if pass(0) {
            let seen: RoaringBitmap = counts.keys().copied().collect();
            (hit & u) | (u - seen)
        } else {
            hit & u
        })
    }

    /// `points_expiring(within = 30d, points >= 100)`: unspent points whose last valid day falls in
    /// the window starting on the as-of day (lots already past their day are expired, whether or not
    /// the expiry job has run). A member with nothing expiring has 0 points in the window.
    fn points_expiring(&self, args: &[Arg], u: &RoaringBitmap) -> Result<RoaringBitmap, EvalError> {
        let as_of = self.d.as_of;
        let mut to = Day::MAX;
        let mut points: Conditions = Vec::new();
        for a in args {
            let bad = || err(a.span, format!("参数 {} 的值不对", a.name), format!("bad value for {}", a.name));
            match a.name.as_str() {
                "within" => {
                    if a.cmp != Cmp::Eq && a.cmp != Cmp::Le {
                        return Err(err(a.span, "within 只能用 =".to_string(), "within takes =".to_string()));
                    }
                    let date = date_of_day(as_of);
                    let last = match &a.value {
                        Value::Duration { amount, unit } if *amount > 0 => match unit {
                            DurationUnit::Day => as_of + *amount as i32 - 1,
                            DurationUnit::Week => as_of + *amount as i32 * 7 - 1,
                            DurationUnit::Month => day_of_date(date + Months::new(*amount as u32)) - 1,
                            DurationUnit::Year => day_of_date(date + Months::new(*amount as u32 * 12)) - 1,
                        },
                        Value::Num(n) if *n >= 1.0 => as_of + *n as i32 - 1,
                        _ => return Err(bad()),
                    };
                    to = to.min(last);
                }
                "before" => match &a.value {
                    Value::Date(d) => to = to.min(day_of_date(*d) - 1),
                    _ => return Err(bad()),
                },
                "points" => match a.value {
                    Value::Num(x) => points.push((a.cmp, x)),
                    _ => {
                        return Err(err(
                            a.span,
                            "参数 points 的值应为数字".to_string(),
                            "points takes a number".to_string(),
                        ));
                    }
                },
                _ => {}
            }
        }
        if points.is_empty() {
            points.push((Cmp::Ge, 1.0));
        }
        let keep = |x: i64| points.iter().all(|(c, t)| cmp_f64(x as f64, *c, *t));
        let expiring = self.data.loyalty.expiring_between(as_of, to);
        if keep(0) {
            // Members with nothing expiring pass too: take away those whose amount fails.
            let fail: RoaringBitmap = expiring.iter().filter(|(_, p)| !keep(**p)).map(|(o, _)| *o).collect();
            Ok(u - fail)
        } else {
            let hit: RoaringBitmap = expiring.iter().filter(|(_, p)| keep(**p)).map(|(o, _)| *o).collect();
            Ok(hit & u)
        }
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
                && source.is_none_or(|s| self.data.members.get(o).source() == s)
                && store.is_none_or(|s| self.data.home_store[o] == s)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rxmember_core::facts::{ProductFact, ReturnFact, StoreFact};
    use rxmember_core::{CompanyId, MemberId, ProductId, StoreId};

    const MEMBERS: u32 = 12;
    const PRODUCTS: u32 = 4;

    /// One ticket: member, day, store, lines (product, amount), then returns (product, amount) —
    /// a returned product not on the ticket leaves a negative purchase.
    type Sale = (u32, i32, u32, Vec<(u32, i64)>, Vec<(u32, i64)>);

    fn company(sales: &[Sale]) -> CompanyData {
        let mut data = CompanyData::new(CompanyId(1), 0);
        data.set_stores(
            (1..=2).map(|i| StoreFact { id: StoreId(i), code: format!("S{i}"), name: format!("店{i}") }).collect(),
        );
        data.set_products(
            (1..=PRODUCTS as i64)
                .map(|i| ProductFact {
                    id: ProductId(i),
                    code: format!("P{i}"),
                    name: format!("药{i}"),
                    category_code: None,
                    manufacturer: None,
                    brand: None,
                    is_prescription: false,
                })
                .collect(),
        );
        for m in 1..=MEMBERS as i64 {
            data.apply_member(&crate::test_support::member(m));
        }
        let mut returns = 0;
        for (i, (m, day, store, lines, back)) in sales.iter().enumerate() {
            let member = MemberId(*m as i64 + 1);
            let sold_at = *day as i64 * 86_400_000;
            let ids: Vec<(i64, i64)> = lines.iter().map(|&(p, a)| (p as i64 + 1, a)).collect();
            let t = crate::test_support::ticket(&mut data, i as i64 + 1, member.0, *store as i64 + 1, sold_at, &ids);
            for (p, amount) in back {
                returns += 1;
                let product = ProductId(*p as i64 + 1);
                let r = ReturnFact {
                    id: returns,
                    ticket: t.id,
                    member: Some(member),
                    sold_at,
                    product,
                    amount: *amount,
                    cost: 0,
                };
                data.apply_return_member(&r);
            }
        }
        data.seal();
        data
    }

    fn sales() -> impl Strategy<Value = Vec<Sale>> {
        let line = (0..PRODUCTS, 0i64..500);
        prop::collection::vec(
            (
                0..MEMBERS,
                0i32..30,
                0u32..2,
                prop::collection::vec(line.clone(), 1..4),
                prop::collection::vec(line, 0..2),
            ),
            0..80,
        )
    }

    fn conditions() -> impl Strategy<Value = Vec<(Cmp, f64)>> {
        prop::collection::vec(
            (prop_oneof![Just(Cmp::Ge), Just(Cmp::Lt), Just(Cmp::Eq), Just(Cmp::Gt)], 0i32..4)
                .prop_map(|(c, k)| (c, k as f64)),
            0..2,
        )
    }

    proptest! {
        /// The posting lists answer `bought(...)` as each member's own purchases do.
        #[test]
        fn postings_answer_as_each_members_purchases(
            sales in sales(),
            products in prop::collection::btree_set(0..PRODUCTS, 1..=PRODUCTS as usize),
            from in 0i32..30,
            span in 0i32..30,
            store in prop::option::of(0u32..2),
            times in conditions(),
            spend in conditions().prop_map(|c| c.into_iter().map(|(c, k)| (c, k * 3.0)).collect::<Vec<_>>()),
            plain in any::<bool>(),
        ) {
            let data = company(&sales);
            let products: Vec<u32> = products.into_iter().collect();
            let (times, spend) = if plain { (vec![(Cmp::Ge, 1.0)], vec![]) } else { (times, spend) };
            // Sales are on days 0..30 after 1970-01-01.
            let from = day_of_date(chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()) + from;
            let to = from + span;
            let all: RoaringBitmap = (0..MEMBERS).collect();
            let (hit, seen) = bought_postings(&data, &products, from, to, store, &times, &spend);
            let got = match seen {
                Some(seen) => hit | (&all - seen),
                None => hit,
            };
            let want: RoaringBitmap = all
                .iter()
                .filter(|&o| {
                    let (days, fen) = purchase_days(&data, o, |p| {
                        p.day >= from && p.day <= to && products.contains(&p.product) && store.is_none_or(|s| p.store == s)
                    });
                    pass(&times, &spend, days, fen)
                })
                .collect();
            prop_assert_eq!(got, want);
        }
    }
}
