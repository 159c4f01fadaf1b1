//! Points (积分): how a ticket earns, how returns take points back, how points expire and how they
//! are spent. Pure rules; the ledger is stored by `store::points`, which applies these functions
//! inside one transaction per cause.
//!
//! The ledger is append-only: every entry names its cause (a ticket, a return, an expiry of one lot,
//! an operator's adjustment, a redemption request) and a cause earns, redeems or reverses at most once
//! (a unique key in the database). Each earning is a *lot* that can expire; spending, expiry and
//! take-backs consume lots first-in-first-out (the lot that expires first goes first).

use crate::money::Fen;
use chrono::{Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};

/// A company's points rules (积分规则). Defaults follow the seeds: 1 point per yuan paid, specials
/// and promotions excluded (seed 003: “特价、限量、促销药品不积分”), no expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PointsRules {
    /// Points per yuan paid (the base rate). 0 turns earning off.
    pub points_per_yuan: u32,
    /// How a ticket's fractional points round.
    pub rounding: Rounding,
    /// Categories (major or minor codes) that never earn. Products flagged `points_excluded` in the
    /// drug master never earn either.
    pub excluded_categories: Vec<String>,
    /// Product codes that never earn.
    pub excluded_products: Vec<String>,
    /// Multipliers (双倍积分 …). Where several apply to a line, the highest one counts.
    pub multipliers: Vec<Multiplier>,
    pub expiry: Expiry,
    /// What a return does when the points it takes back were already spent.
    pub return_policy: ReturnPolicy,
    pub redemption: Redemption,
}

impl Default for PointsRules {
    fn default() -> Self {
        PointsRules {
            points_per_yuan: 1,
            rounding: Rounding::Floor,
            excluded_categories: Vec::new(),
            excluded_products: Vec::new(),
            multipliers: Vec::new(),
            expiry: Expiry::default(),
            return_policy: ReturnPolicy::AllowNegative,
            redemption: Redemption::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Rounding {
    /// Drop the fraction (most chains: “每消费1元积1分”, 9.9 yuan earns 9).
    #[default]
    Floor,
    /// Half up.
    Round,
    Ceil,
}

impl Rounding {
    /// `num / den` rounded, for non-negative values.
    pub fn apply(self, num: i128, den: i128) -> i64 {
        debug_assert!(den > 0);
        let v = match self {
            Rounding::Floor => num.div_euclid(den),
            Rounding::Round => (num * 2 + den).div_euclid(den * 2),
            Rounding::Ceil => (num + den - 1).div_euclid(den),
        };
        v as i64
    }
}

/// A multiplier: `percent` (200 = double, 300 = triple) for lines matching every condition given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Multiplier {
    pub name: String,
    pub percent: u32,
    /// First and last day (inclusive) of a campaign.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    /// Lines whose product is in one of these categories (major or minor codes).
    pub categories: Vec<String>,
    pub products: Vec<String>,
    /// Members of one of these tiers.
    pub tiers: Vec<String>,
    /// On the member's birthday, or in the birthday month.
    pub birthday: Option<BirthdayWindow>,
    /// Only on a member day.
    pub member_day: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthdayWindow {
    Day,
    Month,
}

impl BirthdayWindow {
    pub fn contains(self, birthday: NaiveDate, date: NaiveDate) -> bool {
        match self {
            BirthdayWindow::Day => birthday.month() == date.month() && birthday.day() == date.day(),
            BirthdayWindow::Month => birthday.month() == date.month(),
        }
    }
}

/// When points expire. Both may be set; a lot then expires at the earlier of the two.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Expiry {
    /// Calendar-year clearing: points earned in year Y are valid through this month-day of Y+1
    /// (`"03-31"`; seed 001: “当年积分次年3月清零”; `"12-31"` with `same_year = true` for seed 003's
    /// “卡内积分有效期止每年12月31日”).
    pub year_end: Option<String>,
    /// With `year_end`: clear in the same year instead of the next.
    pub same_year: bool,
    /// Rolling validity: each lot is valid for this many months from the day it was earned
    /// (seed 001: “单笔积分保留12个月”).
    pub rolling_months: Option<u32>,
}

impl Expiry {
    /// The last day on which points earned on `earned` are valid; `None`: they never expire.
    pub fn last_valid_day(&self, earned: NaiveDate) -> Result<Option<NaiveDate>, RuleError> {
        let mut last: Option<NaiveDate> = None;
        if let Some(md) = &self.year_end {
            let (m, d) = parse_month_day(md)?;
            let year = if self.same_year { earned.year() } else { earned.year() + 1 };
            let day = NaiveDate::from_ymd_opt(year, m, d)
                .or_else(|| NaiveDate::from_ymd_opt(year, m, d - 1))
                .ok_or_else(|| RuleError(format!("积分清零日期无效: {md}")))?;
            last = Some(day);
        }
        if let Some(n) = self.rolling_months {
            let day = earned
                .checked_add_months(Months::new(n))
                .and_then(|d| d.pred_opt())
                .ok_or_else(|| RuleError(format!("滚动有效期过长: {n} 个月")))?;
            last = Some(last.map_or(day, |l| l.min(day)));
        }
        Ok(last)
    }
}

/// `"03-31"` → (3, 31).
pub fn parse_month_day(s: &str) -> Result<(u32, u32), RuleError> {
    let bad = || RuleError(format!("日期应为 MM-DD 格式: {s}"));
    let (m, d) = s.trim().split_once('-').ok_or_else(bad)?;
    let (m, d): (u32, u32) = (m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || NaiveDate::from_ymd_opt(2024, m, d).is_none() {
        return Err(bad());
    }
    Ok((m, d))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReturnPolicy {
    /// Take the points back even if the balance goes below zero; later earnings fill the hole.
    #[default]
    AllowNegative,
    /// Take back what the balance holds now; the rest is a debt deducted from the next earnings.
    /// The balance never goes below zero.
    ClawbackNext,
}

/// How points are spent (积分兑换).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Redemption {
    /// Exchange points for a discount coupon (a discount on the invoice, not a gift: seed 003's tax
    /// advice). E.g. 500 → 10 yuan.
    pub coupon_tiers: Vec<CouponTier>,
    /// Deduction at the till: `points_per_yuan` points pay one yuan, for at most `max_share_percent`
    /// of what is due. `None`: no deduction at the till.
    pub deduction: Option<Deduction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CouponTier {
    pub points: i64,
    /// The coupon template issued for these points (its face value is the discount).
    pub template: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deduction {
    pub points_per_yuan: u32,
    pub max_share_percent: u32,
}

impl Deduction {
    /// The most points usable against `due`, given `balance`: whole yuan only.
    pub fn usable(&self, due: Fen, balance: i64) -> i64 {
        if self.points_per_yuan == 0 || balance <= 0 || due.0 <= 0 {
            return 0;
        }
        let max_fen = due.0 as i128 * self.max_share_percent.min(100) as i128 / 100;
        let max_yuan = (max_fen / 100) as i64;
        let by_balance = balance / self.points_per_yuan as i64;
        max_yuan.min(by_balance) * self.points_per_yuan as i64
    }

    /// What `points` pay, in fen (whole yuan).
    pub fn value(&self, points: i64) -> Fen {
        if self.points_per_yuan == 0 { Fen::ZERO } else { Fen(points / self.points_per_yuan as i64 * 100) }
    }
}

/// A rule that cannot be applied as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

/// A ticket line as points see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarnLine {
    pub product_code: String,
    /// The product's minor category code and its major code.
    pub categories: Vec<String>,
    /// Flagged in the drug master (不积分).
    pub excluded: bool,
    /// Paid for the line (after every discount).
    pub paid: Fen,
}

/// Who earns, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EarnContext {
    pub date: NaiveDate,
    pub tier: Option<String>,
    /// The tier's own multiplier (tier benefit), in percent; 100 = none.
    pub tier_percent: u32,
    pub birthday: Option<NaiveDate>,
    pub member_day: bool,
    /// A member day's own points multiplier, in percent; 100 = none.
    pub member_day_percent: u32,
}

/// What one line earns: `weight` is paid fen × percent / 100 (the basis in fen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LineEarning {
    pub product_code: String,
    pub paid: Fen,
    /// 0 for an excluded line.
    pub percent: u32,
}

impl LineEarning {
    /// The line's basis in weighted fen × 100 (paid × percent).
    pub fn weight(&self) -> i128 {
        self.paid.0 as i128 * self.percent as i128
    }
}

/// What a ticket earns, with the per-line detail kept in the ledger so a return can take back exactly
/// the points of the returned lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Earning {
    pub points: i64,
    pub lines: Vec<LineEarning>,
    /// The names of the multipliers that applied to at least one line.
    pub multipliers: Vec<String>,
}

impl PointsRules {
    fn line_excluded(&self, l: &EarnLine) -> bool {
        l.excluded
            || self.excluded_products.contains(&l.product_code)
            || l.categories.iter().any(|c| self.excluded_categories.contains(c))
    }

    /// The multiplier of one line, in percent (the highest applying), and its name.
    fn line_percent<'a>(&'a self, l: &EarnLine, cx: &EarnContext) -> (u32, Option<&'a str>) {
        let mut best: (u32, Option<&str>) = (100, None);
        for m in &self.multipliers {
            let dates = m.from.is_none_or(|f| cx.date >= f) && m.to.is_none_or(|t| cx.date <= t);
            let cats = m.categories.is_empty() || l.categories.iter().any(|c| m.categories.contains(c));
            let prods = m.products.is_empty() || m.products.contains(&l.product_code);
            let tier = m.tiers.is_empty() || cx.tier.as_ref().is_some_and(|t| m.tiers.contains(t));
            let bday = m.birthday.is_none_or(|w| cx.birthday.is_some_and(|b| w.contains(b, cx.date)));
            let mday = !m.member_day || cx.member_day;
            if dates && cats && prods && tier && bday && mday && m.percent > best.0 {
                best = (m.percent, Some(m.name.as_str()));
            }
        }
        let mut pct = best.0;
        if cx.tier_percent > pct {
            pct = cx.tier_percent;
        }
        if cx.member_day && cx.member_day_percent > pct {
            pct = cx.member_day_percent;
        }
        (pct, best.1)
    }

    /// Points a ticket earns. Lines with a non-positive paid amount earn nothing.
    pub fn earn(&self, lines: &[EarnLine], cx: &EarnContext) -> Earning {
        let mut out = Vec::with_capacity(lines.len());
        let mut names: Vec<String> = Vec::new();
        for l in lines {
            let percent = if self.line_excluded(l) || l.paid.0 <= 0 {
                0
            } else {
                let (p, name) = self.line_percent(l, cx);
                if let Some(n) = name
                    && !names.iter().any(|x| x == n)
                {
                    names.push(n.to_string());
                }
                p
            };
            out.push(LineEarning { product_code: l.product_code.clone(), paid: l.paid, percent });
        }
        let weight: i128 = out.iter().map(LineEarning::weight).sum();
        // points = weight / 100 (percent) / 100 (fen per yuan) × rate
        let points = self.rounding.apply(weight * self.points_per_yuan as i128, 100 * 100);
        Earning { points, lines: out, multipliers: names }
    }
}

/// Points to take back for a return, given the ticket's earning and what earlier returns already took.
/// `returned` lists (product code, amount refunded). The cumulative share is rounded down, so the sum of
/// all take-backs never exceeds what the ticket earned and a full return takes back exactly all of it.
pub fn take_back(earning: &Earning, already_returned_weight: i128, returned: &[(String, Fen)]) -> (i64, i128) {
    let total: i128 = earning.lines.iter().map(LineEarning::weight).sum();
    if total <= 0 || earning.points <= 0 {
        return (0, already_returned_weight);
    }
    let mut weight = 0i128;
    for (code, amount) in returned {
        // The percent the product earned at on this ticket (the first matching line).
        if let Some(l) = earning.lines.iter().find(|l| &l.product_code == code) {
            weight += amount.0.max(0) as i128 * l.percent as i128;
        }
    }
    let after = (already_returned_weight + weight).min(total);
    let before = already_returned_weight.min(total);
    let taken_after = (earning.points as i128 * after / total) as i64;
    let taken_before = (earning.points as i128 * before / total) as i64;
    (taken_after - taken_before, after)
}

/// The kinds of ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// 期初: the balance carried over from the ERP (member_cards.legacy_points).
    Opening,
    Earn,
    Redeem,
    Expire,
    Adjust,
    /// Points taken back (a return), or a debt paid from new earnings.
    Reverse,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Opening => "opening",
            EntryKind::Earn => "earn",
            EntryKind::Redeem => "redeem",
            EntryKind::Expire => "expire",
            EntryKind::Adjust => "adjust",
            EntryKind::Reverse => "reverse",
        }
    }
    pub fn parse(s: &str) -> Option<EntryKind> {
        Some(match s {
            "opening" => EntryKind::Opening,
            "earn" => EntryKind::Earn,
            "redeem" => EntryKind::Redeem,
            "expire" => EntryKind::Expire,
            "adjust" => EntryKind::Adjust,
            "reverse" => EntryKind::Reverse,
            _ => return None,
        })
    }
    pub fn label_zh(self) -> &'static str {
        match self {
            EntryKind::Opening => "期初",
            EntryKind::Earn => "消费积分",
            EntryKind::Redeem => "积分兑换",
            EntryKind::Expire => "积分过期",
            EntryKind::Adjust => "人工调整",
            EntryKind::Reverse => "退货扣回",
        }
    }
}

/// A lot: points from one positive entry that are still unspent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lot {
    /// The ledger entry that created it (assigned by the store; any unique number in tests).
    pub entry: i64,
    pub earned_on: NaiveDate,
    /// Last valid day; `None`: never expires.
    pub expires_on: Option<NaiveDate>,
    pub remaining: i64,
}

/// One ledger entry to append. `consumed` lists the lots it drew from (lot entry, points).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: EntryKind,
    /// Signed: positive adds to the balance.
    pub points: i64,
    pub expires_on: Option<NaiveDate>,
    pub consumed: Vec<(i64, i64)>,
}

/// A member's points as the rules see them: balance, live lots (FIFO by expiry) and debt.
///
/// Invariants (property-tested): `balance` = the sum of every entry ever appended; lots hold
/// `balance` points when it is positive and nothing otherwise; under [`ReturnPolicy::ClawbackNext`]
/// the balance never goes below zero.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Account {
    pub balance: i64,
    /// Points still owed from returns under [`ReturnPolicy::ClawbackNext`].
    pub debt: i64,
    pub lots: Vec<Lot>,
}

/// Spending more than the balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("积分不足: 需要 {wanted}，可用 {available}")]
pub struct InsufficientPoints {
    pub wanted: i64,
    pub available: i64,
}

impl Account {
    fn sort_lots(&mut self) {
        // Earliest expiry first; never-expiring lots last; then oldest first.
        self.lots.sort_by_key(|l| (l.expires_on.is_none(), l.expires_on, l.earned_on, l.entry));
    }

    /// Draws up to `points` from the lots, FIFO; returns what was drawn from each.
    fn draw(&mut self, points: i64) -> Vec<(i64, i64)> {
        self.draw_preferring(points, None)
    }

    /// Draws from lot `prefer` first (a return takes back its own ticket's points), then FIFO.
    fn draw_preferring(&mut self, mut points: i64, prefer: Option<i64>) -> Vec<(i64, i64)> {
        let mut used = Vec::new();
        if let Some(lot) = prefer.and_then(|p| self.lots.iter_mut().find(|l| l.entry == p)) {
            let n = lot.remaining.min(points);
            if n > 0 {
                lot.remaining -= n;
                points -= n;
                used.push((lot.entry, n));
            }
        }
        for lot in self.lots.iter_mut() {
            if points == 0 {
                break;
            }
            let n = lot.remaining.min(points);
            if n > 0 {
                lot.remaining -= n;
                points -= n;
                used.push((lot.entry, n));
            }
        }
        self.lots.retain(|l| l.remaining > 0);
        used
    }

    /// Adds a positive entry (earn, opening, positive adjustment) as lot `entry`. A negative balance
    /// is filled first; under the clawback policy an outstanding debt is paid from it (a second,
    /// [`EntryKind::Reverse`] entry).
    pub fn credit(
        &mut self,
        kind: EntryKind,
        entry: i64,
        points: i64,
        on: NaiveDate,
        expires_on: Option<NaiveDate>,
    ) -> Vec<Entry> {
        if points <= 0 {
            return Vec::new();
        }
        let mut out = vec![Entry { kind, points, expires_on, consumed: Vec::new() }];
        let hole = (-self.balance).max(0);
        self.balance += points;
        let lot_points = points - hole.min(points);
        if lot_points > 0 {
            self.lots.push(Lot { entry, earned_on: on, expires_on, remaining: lot_points });
            self.sort_lots();
        }
        if self.debt > 0 {
            let pay = self.debt.min(self.balance.max(0));
            if pay > 0 {
                let consumed = self.draw(pay);
                self.balance -= pay;
                self.debt -= pay;
                out.push(Entry { kind: EntryKind::Reverse, points: -pay, expires_on: None, consumed });
            }
        }
        out
    }

    /// Spends `points` (redemption at the till or for a coupon). Never below zero.
    pub fn redeem(&mut self, points: i64) -> Result<Entry, InsufficientPoints> {
        if points <= 0 || points > self.balance {
            return Err(InsufficientPoints { wanted: points, available: self.balance.max(0) });
        }
        let consumed = self.draw(points);
        self.balance -= points;
        Ok(Entry { kind: EntryKind::Redeem, points: -points, expires_on: None, consumed })
    }

    /// Takes back `points` for a return, by the company's policy, from the ticket's own lot `from`
    /// first (so a return does not leave older, sooner-expiring points in place of the ticket's).
    pub fn take_back(&mut self, points: i64, policy: ReturnPolicy, from: Option<i64>) -> Vec<Entry> {
        if points <= 0 {
            return Vec::new();
        }
        let now = match policy {
            ReturnPolicy::AllowNegative => points,
            ReturnPolicy::ClawbackNext => points.min(self.balance.max(0)),
        };
        if policy == ReturnPolicy::ClawbackNext {
            self.debt += points - now;
        }
        if now == 0 {
            return Vec::new();
        }
        let consumed = self.draw_preferring(now.min(self.balance.max(0)), from);
        self.balance -= now;
        vec![Entry { kind: EntryKind::Reverse, points: -now, expires_on: None, consumed }]
    }

    /// A negative adjustment by an operator: like a take-back that may go below zero.
    pub fn debit(&mut self, points: i64) -> Option<Entry> {
        if points <= 0 {
            return None;
        }
        let consumed = self.draw(points.min(self.balance.max(0)));
        self.balance -= points;
        Some(Entry { kind: EntryKind::Adjust, points: -points, expires_on: None, consumed })
    }

    /// Lots whose last valid day is before `today`, each with what it still holds. The store expires
    /// each one as its own cause (idempotent per lot).
    pub fn expired(&self, today: NaiveDate) -> Vec<(i64, i64)> {
        self.lots
            .iter()
            .filter(|l| l.expires_on.is_some_and(|d| d < today) && l.remaining > 0)
            .map(|l| (l.entry, l.remaining))
            .collect()
    }

    /// Expires one lot entirely.
    pub fn expire(&mut self, lot: i64) -> Option<Entry> {
        let i = self.lots.iter().position(|l| l.entry == lot)?;
        let l = self.lots.remove(i);
        self.balance -= l.remaining;
        Some(Entry {
            kind: EntryKind::Expire,
            points: -l.remaining,
            expires_on: None,
            consumed: vec![(lot, l.remaining)],
        })
    }

    /// Points that expire on or before `until` (for “积分即将过期” reminders and audiences).
    pub fn expiring_by(&self, until: NaiveDate) -> i64 {
        self.lots.iter().filter(|l| l.expires_on.is_some_and(|d| d <= until)).map(|l| l.remaining).sum()
    }

    /// The points held in lots.
    pub fn in_lots(&self) -> i64 {
        self.lots.iter().map(|l| l.remaining).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn line(code: &str, cat: &str, paid: i64) -> EarnLine {
        EarnLine { product_code: code.into(), categories: vec![cat.into()], excluded: false, paid: Fen(paid) }
    }

    fn cx(date: NaiveDate) -> EarnContext {
        EarnContext { date, tier: None, tier_percent: 100, birthday: None, member_day: false, member_day_percent: 100 }
    }

    #[test]
    fn one_point_per_yuan_rounded_down_excluding_specials() {
        // Seed 003 (王曲同心大药店): “每消费1元积1分(特价、限量、促销药品不积分)”.
        let rules = PointsRules { excluded_categories: vec!["PROMO".into()], ..Default::default() };
        let mut special = line("P2", "PROMO", 5_000);
        let e = rules.earn(&[line("P1", "A01", 12_345), special.clone()], &cx(d(2026, 3, 2)));
        assert_eq!(e.points, 123);
        special.categories = vec!["A02".into()];
        special.excluded = true; // flagged 不积分 in the drug master
        assert_eq!(rules.earn(&[special], &cx(d(2026, 3, 2))).points, 0);
    }

    #[test]
    fn the_highest_multiplier_applies_per_line() {
        let rules = PointsRules {
            multipliers: vec![
                Multiplier {
                    name: "生日双倍".into(),
                    percent: 200,
                    birthday: Some(BirthdayWindow::Day),
                    ..Default::default()
                },
                Multiplier {
                    name: "保健品三倍".into(),
                    percent: 300,
                    categories: vec!["H".into()],
                    from: Some(d(2026, 5, 1)),
                    to: Some(d(2026, 5, 7)),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let mut c = cx(d(2026, 5, 3));
        c.birthday = Some(d(1970, 5, 3));
        let e = rules.earn(&[line("P1", "A", 10_000), line("P2", "H", 10_000)], &c);
        assert_eq!(e.points, 100 * 2 + 100 * 3);
        assert_eq!(e.multipliers, vec!["生日双倍".to_string(), "保健品三倍".to_string()]);
        // Outside the campaign and not the birthday: base rate.
        assert_eq!(rules.earn(&[line("P2", "H", 10_000)], &cx(d(2026, 5, 8))).points, 100);
    }

    #[test]
    fn rounding_modes() {
        assert_eq!(Rounding::Floor.apply(199, 100), 1);
        assert_eq!(Rounding::Round.apply(150, 100), 2);
        assert_eq!(Rounding::Round.apply(149, 100), 1);
        assert_eq!(Rounding::Ceil.apply(101, 100), 2);
        assert_eq!(Rounding::Ceil.apply(100, 100), 1);
    }

    #[test]
    fn expiry_by_calendar_year_and_rolling_months() {
        let year = Expiry { year_end: Some("03-31".into()), ..Default::default() };
        assert_eq!(year.last_valid_day(d(2026, 7, 1)).unwrap(), Some(d(2027, 3, 31)));
        let same = Expiry { year_end: Some("12-31".into()), same_year: true, ..Default::default() };
        assert_eq!(same.last_valid_day(d(2026, 7, 1)).unwrap(), Some(d(2026, 12, 31)));
        let rolling = Expiry { rolling_months: Some(12), ..Default::default() };
        assert_eq!(rolling.last_valid_day(d(2026, 2, 15)).unwrap(), Some(d(2027, 2, 14)));
        // Seed 001's “自然年清零+滚动有效期”: the earlier of the two.
        let both = Expiry { year_end: Some("03-31".into()), rolling_months: Some(12), same_year: false };
        assert_eq!(both.last_valid_day(d(2026, 2, 15)).unwrap(), Some(d(2027, 2, 14)));
        assert_eq!(both.last_valid_day(d(2026, 11, 15)).unwrap(), Some(d(2027, 3, 31)));
        assert_eq!(Expiry::default().last_valid_day(d(2026, 1, 1)).unwrap(), None);
        assert!(Expiry { year_end: Some("13-01".into()), ..Default::default() }.last_valid_day(d(2026, 1, 1)).is_err());
    }

    #[test]
    fn returns_take_back_the_points_of_the_returned_lines() {
        let rules = PointsRules {
            multipliers: vec![Multiplier {
                name: "x2".into(),
                percent: 200,
                products: vec!["B".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = rules.earn(&[line("A", "c", 10_000), line("B", "c", 5_000)], &cx(d(2026, 1, 1)));
        assert_eq!(e.points, 200);
        // Return B (50 yuan at double): 100 points.
        let (p, w) = take_back(&e, 0, &[("B".into(), Fen(5_000))]);
        assert_eq!(p, 100);
        // Then half of A: 50 points; then the rest of A: 50; never more than earned.
        let (p2, w2) = take_back(&e, w, &[("A".into(), Fen(5_000))]);
        assert_eq!(p2, 50);
        let (p3, w3) = take_back(&e, w2, &[("A".into(), Fen(5_000))]);
        assert_eq!(p3, 50);
        assert_eq!(take_back(&e, w3, &[("A".into(), Fen(5_000))]).0, 0);
    }

    #[test]
    fn deduction_at_the_till_in_whole_yuan_within_the_share() {
        let d = Deduction { points_per_yuan: 100, max_share_percent: 50 };
        assert_eq!(d.usable(Fen(10_050), 100_000), 5_000); // 50% of 100.50 → 50 yuan
        assert_eq!(d.usable(Fen(10_000), 250), 200); // balance allows 2 yuan
        assert_eq!(d.value(200), Fen(200));
    }

    #[test]
    fn clawback_policy_keeps_the_balance_at_zero_and_collects_later() {
        let mut a = Account::default();
        a.credit(EntryKind::Earn, 1, 100, d(2026, 1, 1), None);
        a.redeem(80).unwrap();
        let e = a.take_back(100, ReturnPolicy::ClawbackNext, None);
        assert_eq!(e[0].points, -20);
        assert_eq!((a.balance, a.debt), (0, 80));
        let e = a.credit(EntryKind::Earn, 2, 50, d(2026, 2, 1), None);
        assert_eq!(e.iter().map(|e| e.points).collect::<Vec<_>>(), vec![50, -50]);
        assert_eq!((a.balance, a.debt), (0, 30));
        let mut b = Account::default();
        b.credit(EntryKind::Earn, 1, 100, d(2026, 1, 1), None);
        b.redeem(80).unwrap();
        b.take_back(100, ReturnPolicy::AllowNegative, Some(1));
        assert_eq!((b.balance, b.debt), (-80, 0));
        b.credit(EntryKind::Earn, 2, 50, d(2026, 2, 1), None);
        assert_eq!((b.balance, b.in_lots()), (-30, 0));
    }

    #[test]
    fn spending_consumes_the_lot_that_expires_first() {
        let mut a = Account::default();
        a.credit(EntryKind::Earn, 1, 100, d(2026, 1, 1), Some(d(2027, 3, 31)));
        a.credit(EntryKind::Earn, 2, 100, d(2025, 6, 1), Some(d(2026, 3, 31)));
        let e = a.redeem(150).unwrap();
        assert_eq!(e.consumed, vec![(2, 100), (1, 50)]);
        assert_eq!(a.expired(d(2027, 4, 1)), vec![(1, 50)]);
        assert_eq!(a.expiring_by(d(2027, 3, 31)), 50);
        a.expire(1).unwrap();
        assert_eq!(a.balance, 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Earn(i64, u32),
        Redeem(i64),
        TakeBack(i64),
        Debit(i64),
        Expire(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1i64..500, 0u32..400).prop_map(|(p, day)| Op::Earn(p, day)),
            (1i64..600).prop_map(Op::Redeem),
            (1i64..600).prop_map(Op::TakeBack),
            (1i64..100).prop_map(Op::Debit),
            (0u32..800).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Balance = sum of the ledger; lots hold exactly the positive balance; the clawback policy
        /// never goes below zero; redemption never overdraws.
        #[test]
        fn ledger_invariants(ops in proptest::collection::vec(op(), 1..60), clawback in any::<bool>()) {
            let policy = if clawback { ReturnPolicy::ClawbackNext } else { ReturnPolicy::AllowNegative };
            let start = d(2025, 1, 1);
            let expiry = Expiry { rolling_months: Some(6), ..Default::default() };
            let mut a = Account::default();
            let mut ledger: Vec<Entry> = Vec::new();
            let mut next = 1;
            for op in ops {
                match op {
                    Op::Earn(p, day) => {
                        let on = start + chrono::Days::new(day as u64);
                        let exp = expiry.last_valid_day(on).unwrap();
                        ledger.extend(a.credit(EntryKind::Earn, next, p, on, exp));
                        next += 1;
                    }
                    Op::Redeem(p) => {
                        let before = a.balance;
                        match a.redeem(p) {
                            Ok(e) => { prop_assert!(p <= before); ledger.push(e) }
                            Err(_) => prop_assert!(p > before),
                        }
                    }
                    Op::TakeBack(p) => ledger.extend(a.take_back(p, policy, Some(next / 2))),
                    Op::Debit(p) => if !clawback { ledger.extend(a.debit(p)) },
                    Op::Expire(day) => {
                        let today = start + chrono::Days::new(day as u64);
                        for (lot, _) in a.expired(today) {
                            ledger.extend(a.expire(lot));
                        }
                    }
                }
                let sum: i64 = ledger.iter().map(|e| e.points).sum();
                prop_assert_eq!(a.balance, sum);
                prop_assert_eq!(a.in_lots(), a.balance.max(0));
                prop_assert!(a.lots.iter().all(|l| l.remaining > 0));
                if clawback {
                    prop_assert!(a.balance >= 0);
                    prop_assert!(a.debt >= 0);
                } else {
                    prop_assert_eq!(a.debt, 0);
                }
                for e in &ledger {
                    let drawn: i64 = e.consumed.iter().map(|c| c.1).sum();
                    if e.points < 0 { prop_assert!(drawn <= -e.points) }
                }
            }
        }

        /// However a ticket is returned in parts, the take-backs sum to at most what it earned, and
        /// returning every line in full takes back exactly that.
        #[test]
        fn partial_returns_never_take_back_more_than_earned(
            paid in proptest::collection::vec(1i64..50_000, 1..6),
            parts in proptest::collection::vec((0usize..6, 1u32..=100), 0..12),
        ) {
            let lines: Vec<EarnLine> = paid.iter().enumerate().map(|(i, p)| line(&format!("P{i}"), "c", *p)).collect();
            let e = PointsRules::default().earn(&lines, &cx(d(2026, 1, 1)));
            let mut left: Vec<i64> = paid.clone();
            let mut w = 0i128;
            let mut taken = 0;
            for (i, pct) in parts {
                let i = i % paid.len();
                let amt = (paid[i] * pct as i64 / 100).min(left[i]);
                left[i] -= amt;
                let (p, nw) = take_back(&e, w, &[(format!("P{i}"), Fen(amt))]);
                w = nw;
                taken += p;
                prop_assert!(taken <= e.points);
            }
            let rest: Vec<(String, Fen)> = left.iter().enumerate().map(|(i, a)| (format!("P{i}"), Fen(*a))).collect();
            taken += take_back(&e, w, &rest).0;
            prop_assert_eq!(taken, e.points);
        }
    }
}
