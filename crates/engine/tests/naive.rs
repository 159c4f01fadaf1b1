//! Property test: on random facts and random expressions, the engine's bitmap answer equals a
//! naive evaluation written straight from the rules, member by member, over the raw facts.

use chrono::NaiveDate;
use proptest::prelude::*;
use roaring::RoaringBitmap;
use rxmember_core::facts::{
    HealthCheckFact, LineFact, LoyaltyFact, MemberFact, ProductFact, ReturnFact, StoreFact, TicketFact, TierLevelFact,
};
use rxmember_core::health::HealthKind;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource, age_on};
use rxmember_core::taxonomy::Taxonomy;
use rxmember_core::time::local_to_epoch_ms;
use rxmember_core::{CompanyId, MemberId, ProductId, StoreId, TicketId};
use rxmember_engine::company::CompanyEngine;
use rxmember_engine::data::{CompanyData, day_of_date};
use rxmember_engine::derived::Derived;
use rxmember_engine::settings::Settings;

const OFFSET: i32 = 480;

fn as_of() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 30).unwrap()
}

fn ms(days_ago: i64) -> i64 {
    let d = as_of() - chrono::Duration::days(days_ago);
    local_to_epoch_ms(d.and_hms_opt(10, 0, 0).unwrap(), OFFSET)
}

#[derive(Debug, Clone)]
struct M {
    gender: Gender,
    birthday: Option<NaiveDate>,
    registered_days_ago: Option<i64>,
    /// Points balance, lots (days from the as-of day to their last valid day, points), tier.
    balance: i64,
    lots: Vec<(i64, i64)>,
    tier: Option<usize>,
    /// Chronic conditions (indices into [`CHRONIC`]).
    chronic: Vec<usize>,
}

const CHRONIC: [&str; 3] = ["高血压", "糖尿病", "高血脂"];

const TIERS: [(&str, &str); 3] = [("normal", "普通"), ("silver", "银卡"), ("gold", "金卡")];

#[derive(Debug, Clone)]
struct T {
    member: Option<usize>,
    days_ago: i64,
    /// (product index, amount in fen)
    lines: Vec<(usize, i64)>,
    /// Lines returned in full (by position, each at most once).
    returned: Vec<usize>,
}

#[derive(Debug, Clone)]
struct C {
    member: usize,
    days_ago: i64,
    kind: usize,
    abnormal: bool,
}

const KINDS: [HealthKind; 2] = [HealthKind::BloodGlucose, HealthKind::BloodPressure];
const KIND_NAMES: [&str; 2] = ["血糖", "血压"];
/// Product categories: two oral antidiabetics (14xx), one antihypertensive (09xx).
const PRODUCT_CATEGORIES: [&str; 3] = ["1401", "1402", "0901"];
const CATEGORY_NAMES: [(&str, &[usize]); 3] = [("口服降糖药", &[0, 1]), ("双胍类", &[0]), ("降压药", &[2])];

fn members() -> impl Strategy<Value = Vec<M>> {
    prop::collection::vec(
        (
            prop_oneof![Just(Gender::Male), Just(Gender::Female), Just(Gender::Unknown)],
            prop::option::of(0i64..30_000),
            prop::option::of(0i64..800),
            (0i64..2_000, prop::collection::vec((-10i64..400, 1i64..500), 0..4), prop::option::of(0usize..3)),
            prop::collection::vec(0usize..3, 0..3),
        )
            .prop_map(|(gender, b, r, (balance, lots, tier), chronic)| M {
                gender,
                birthday: b.map(|d| NaiveDate::from_ymd_opt(1940, 1, 1).unwrap() + chrono::Duration::days(d)),
                registered_days_ago: r,
                balance,
                lots,
                tier,
                chronic,
            }),
        1..25,
    )
}

fn tickets(n: usize) -> impl Strategy<Value = Vec<T>> {
    prop::collection::vec(
        (
            prop::option::of(0..n),
            0i64..700,
            prop::collection::vec((0usize..3, 100i64..20_000), 1..4),
            prop::collection::vec(0usize..4, 0..2),
        )
            .prop_map(|(member, days_ago, lines, returned)| {
                let mut returned: Vec<usize> = returned.into_iter().filter(|r| *r < lines.len()).collect();
                returned.dedup();
                T { member, days_ago, lines, returned }
            }),
        0..60,
    )
}

fn checks(n: usize) -> impl Strategy<Value = Vec<C>> {
    prop::collection::vec(
        (0..n, 0i64..700, 0usize..2, any::<bool>()).prop_map(|(member, days_ago, kind, abnormal)| C {
            member,
            days_ago,
            kind,
            abnormal,
        }),
        0..20,
    )
}

/// Random expressions over the fields and predicates the naive evaluator implements.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        prop_oneof![Just("男"), Just("女"), Just("未知")].prop_map(|g| format!("gender = \"{g}\"")),
        (prop_oneof![Just("<"), Just(">="), Just("=")], 20i64..90).prop_map(|(c, n)| format!("age {c} {n}")),
        (prop_oneof![Just("<"), Just(">="), Just("=")], 0i64..6).prop_map(|(c, n)| format!("frequency_12m {c} {n}")),
        (prop_oneof![Just("<"), Just(">")], 0i64..500).prop_map(|(c, n)| format!("monetary_12m {c} {n}")),
        (prop_oneof![Just("<"), Just(">=")], 0i64..400).prop_map(|(c, n)| format!("recency_days {c} {n}")),
        // Column scans at their boundaries: `!=`, `between`, fractional thresholds on integer
        // columns (fen, days, counts), ratios.
        (prop_oneof![Just("age"), Just("frequency_12m"), Just("recency_days")], 0i64..90)
            .prop_map(|(f, n)| format!("{f} != {n}")),
        (prop_oneof![Just("age"), Just("recency_days"), Just("frequency_12m")], 0i64..400, 0i64..100)
            .prop_map(|(f, a, w)| format!("{f} between {} and {}", a / 4, a / 4 + w)),
        (prop_oneof![Just("<"), Just(">="), Just(">"), Just("<="), Just("=")], 0i64..40_000)
            .prop_map(|(c, n)| format!("monetary_12m {c} {}", n as f64 / 100.0)),
        (0i64..40_000, 0i64..20_000).prop_map(|(a, w)| format!(
            "monetary_12m between {} and {}",
            a as f64 / 100.0,
            (a + w) as f64 / 100.0
        )),
        (prop_oneof![Just("<"), Just(">="), Just("=")], 0i64..8)
            .prop_map(|(c, n)| format!("frequency_12m {c} {}", n as f64 / 2.0)),
        (prop_oneof![Just("<"), Just(">="), Just("!=")], 0i64..20_000)
            .prop_map(|(c, n)| format!("avg_ticket {c} {}", n as f64 / 100.0)),
        (prop_oneof![Just("<"), Just(">="), Just("=")], 0i64..12)
            .prop_map(|(c, n)| format!("items_per_ticket {c} {}", n as f64 / 4.0)),
        (0usize..3, 1i64..700, prop_oneof![Just(">="), Just("<"), Just("=")], 0i64..4).prop_map(|(c, w, op, k)| {
            format!("bought(category = \"{}\", within = {w}d, times {op} {k})", CATEGORY_NAMES[c].0)
        }),
        (1i64..700).prop_map(|w| format!("bought(within = {w}d)")),
        (1i64..700, prop_oneof![Just(">="), Just("<")], 0i64..4)
            .prop_map(|(w, op, k)| format!("bought(within = {w}d, times {op} {k})")),
        (0usize..2, 1i64..700, 0i64..3)
            .prop_map(|(k, w, t)| format!("checked(kind = \"{}\", within = {w}d, times >= {t})", KIND_NAMES[k])),
        (1i64..800).prop_map(|w| format!("registered(within = {w}d)")),
        (prop_oneof![Just("<"), Just(">="), Just("=")], 0i64..2_000)
            .prop_map(|(c, n)| format!("points_balance {c} {n}")),
        (prop_oneof![Just("="), Just("!=")], 0usize..3).prop_map(|(c, t)| format!("tier {c} \"{}\"", TIERS[t].1)),
        (1i64..400).prop_map(|w| format!("points_expiring(within = {w}d)")),
        (1i64..400, prop_oneof![Just(">="), Just("<")], 0i64..800)
            .prop_map(|(w, op, k)| format!("points_expiring(within = {w}d, points {op} {k})")),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

struct World {
    members: Vec<M>,
    tickets: Vec<T>,
    checks: Vec<C>,
}

impl World {
    fn engine(&self) -> CompanyEngine {
        let mut data = self.members_data(self.members.len());
        self.apply_tickets(&mut data, 0..self.tickets.len());
        self.apply_returns_and_checks(&mut data);
        self.apply_loyalty(&mut data, false);
        CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), vec![], day_of_date(as_of()))
    }

    /// Built from the first `split` tickets, then brought up to date incrementally with the next
    /// `more` (members who bought nothing before `split` join then, and others' chronic conditions
    /// change, and member 0 gets tickets it never had), then with the rest while a reader holds the
    /// first update's result, which must stay as it was (member 0's history read again whole
    /// first, without those tickets).
    fn engine_updated(&self, split: usize, more: usize) -> CompanyEngine {
        let split = split.min(self.tickets.len());
        let mid = (split + more).min(self.tickets.len());
        // Only a suffix of the members joins late, so that ordinals are those of a full build.
        let known = self.tickets[..split].iter().filter_map(|t| t.member).max().map_or(0, |m| m + 1);
        let mut data = self.members_data(known);
        self.apply_members(&mut data, 0..known, true);
        self.apply_tickets(&mut data, 0..split);
        // An earlier loyalty state, replaced by the current one in the second update.
        self.apply_loyalty(&mut data, true);
        let mut engine =
            CompanyEngine::new(data, Taxonomy::default_pharmacy(), Settings::default(), vec![], day_of_date(as_of()));
        for i in (1..known).step_by(2) {
            self.apply_members(&mut engine.data, i..i + 1, false);
        }
        self.apply_members(&mut engine.data, known..self.members.len(), false);
        self.apply_tickets(&mut engine.data, split..mid);
        // Member 0 also bought what it never did (tickets the source corrects later): every
        // product on three days, which puts it in many classes.
        let wrong = !self.members.is_empty();
        if wrong {
            for (k, days_ago) in [3, 40, 200].into_iter().enumerate() {
                let lines: Vec<(usize, i64)> = (0..PRODUCT_CATEGORIES.len()).map(|p| (p, 5_000)).collect();
                let t = T { member: Some(0), days_ago, lines, returned: Vec::new() };
                Self::apply_member_ticket(&mut engine.data, 1_000_000 + k, &t);
            }
        }
        engine.update(day_of_date(as_of()));
        let held = engine.current();
        let before = Snapshot::of(&held);
        if wrong {
            // Member 0's history is read again whole, as the server reads a changed member's.
            engine.data.clear_history(0);
            for (ti, t) in self.tickets.iter().enumerate().take(mid).filter(|(_, t)| t.member == Some(0)) {
                Self::apply_member_ticket(&mut engine.data, ti, t);
            }
        }
        self.apply_tickets(&mut engine.data, mid..self.tickets.len());
        self.apply_returns_and_checks(&mut engine.data);
        self.apply_loyalty(&mut engine.data, false);
        engine.update(day_of_date(as_of()));
        assert!(Snapshot::of(&held) == before, "an update changed what a reader holds");
        engine
    }

    /// The company's stores and products, and its first `members` members.
    fn members_data(&self, members: usize) -> CompanyData {
        let mut data = CompanyData::new(CompanyId(1), OFFSET);
        data.set_stores(vec![StoreFact { id: StoreId(1), code: "S1".into(), name: "一店".into() }]);
        data.set_products(
            PRODUCT_CATEGORIES
                .iter()
                .enumerate()
                .map(|(i, c)| ProductFact {
                    id: ProductId(i as i64 + 1),
                    code: format!("P{i}"),
                    name: format!("药{i}"),
                    category_code: Some(c.to_string()),
                    manufacturer: None,
                    brand: None,
                    is_prescription: false,
                })
                .collect(),
        );
        self.apply_members(&mut data, 0..members, false);
        data
    }

    /// Members' facts (`earlier`: odd members have other chronic conditions, changed by an update).
    fn apply_members(&self, data: &mut CompanyData, range: std::ops::Range<usize>, earlier: bool) {
        for (i, m) in self.members.iter().enumerate().take(range.end).skip(range.start) {
            let chronic = m.chronic.iter().map(|&c| if earlier && i % 2 == 1 { (c + 1) % CHRONIC.len() } else { c });
            data.apply_member(&MemberFact {
                id: MemberId(i as i64 + 1),
                card_no: format!("C{i}"),
                gender: m.gender,
                birthday: m.birthday,
                store: Some(StoreId(1)),
                registered_at: m.registered_days_ago.map(ms),
                clerk_code: None,
                source: RegistrationSource::Store,
                referred: false,
                has_allergies: false,
                chronic_conditions: chronic.map(|c| CHRONIC[c].to_string()).collect(),
                sms_opt_in: true,
                health_consent: true,
                status: MemberStatus::Active,
                updated_at: 1,
            });
        }
    }

    fn apply_tickets(&self, data: &mut CompanyData, range: std::ops::Range<usize>) {
        for (ti, t) in self.tickets.iter().enumerate().take(range.end).skip(range.start) {
            data.apply_ticket_totals(&Self::ticket_fact(ti, t));
            Self::apply_member_ticket(data, ti, t);
        }
    }

    /// Ticket `ti` as the store gives it.
    fn ticket_fact(ti: usize, t: &T) -> TicketFact {
        let amount: i64 = t.lines.iter().map(|l| l.1).sum();
        TicketFact {
            id: TicketId(ti as i64 + 1),
            member: t.member.map(|m| MemberId(m as i64 + 1)),
            store: StoreId(1),
            sold_at: ms(t.days_ago),
            line_count: t.lines.len() as i64,
            amount,
            discount: 0,
            cost: amount / 2,
        }
    }

    /// Ticket `ti` into its member's history (not into the day totals).
    fn apply_member_ticket(data: &mut CompanyData, ti: usize, t: &T) {
        let fact = Self::ticket_fact(ti, t);
        data.apply_ticket_visit(&fact);
        if let Some(m) = t.member {
            for (p, a) in &t.lines {
                data.apply_line(&LineFact {
                    ticket: fact.id,
                    member: MemberId(m as i64 + 1),
                    sold_at: fact.sold_at,
                    product: ProductId(*p as i64 + 1),
                    amount: *a,
                });
            }
        }
    }

    fn apply_returns_and_checks(&self, data: &mut CompanyData) {
        let mut return_id = 0;
        // Returns after all sales, as an import of a later file would bring them.
        for (ti, t) in self.tickets.iter().enumerate() {
            for &r in &t.returned {
                return_id += 1;
                let (p, a) = t.lines[r];
                let ret = ReturnFact {
                    id: return_id,
                    ticket: TicketId(ti as i64 + 1),
                    member: t.member.map(|m| MemberId(m as i64 + 1)),
                    sold_at: ms(t.days_ago),
                    product: ProductId(p as i64 + 1),
                    amount: a,
                    cost: a / 2,
                };
                data.apply_return_totals(&ret);
                data.apply_return_member(&ret);
            }
        }
        for (i, c) in self.checks.iter().enumerate() {
            let f = HealthCheckFact {
                id: i as i64 + 1,
                member: MemberId(c.member as i64 + 1),
                checked_at: ms(c.days_ago),
                kind: KINDS[c.kind],
                abnormal: c.abnormal,
            };
            data.advance_checks(&f);
            data.apply_check(&f);
        }
    }

    /// Every member's points and tier (`earlier`: a different, older state of the same members).
    fn apply_loyalty(&self, data: &mut CompanyData, earlier: bool) {
        data.loyalty.set_levels(
            TIERS.iter().map(|(c, n)| TierLevelFact { code: c.to_string(), name: n.to_string() }).collect(),
        );
        let facts = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| LoyaltyFact {
                member: MemberId(i as i64 + 1),
                balance: if earlier { m.balance / 2 + 7 } else { m.balance },
                expiring: m
                    .lots
                    .iter()
                    .map(|(ahead, p)| (as_of() + chrono::Duration::days(if earlier { ahead + 3 } else { *ahead }), *p))
                    .collect(),
                tier: if earlier { Some("silver".into()) } else { m.tier.map(|t| TIERS[t].0.to_string()) },
            })
            .collect();
        data.apply_loyalty(facts);
    }

    /// Net amount of a ticket's line after returns.
    fn line_net(t: &T, i: usize) -> i64 {
        if t.returned.contains(&i) { 0 } else { t.lines[i].1 }
    }

    fn ticket_net(t: &T) -> i64 {
        let amount: i64 = t.lines.iter().map(|l| l.1).sum();
        let returned: i64 = t.returned.iter().map(|r| t.lines[*r].1).sum();
        amount - returned
    }
}

/// The naive evaluator: a tiny parser for exactly the shapes `expr()` generates, and the rules
/// applied to one member at a time.
/// What a reader sees of a [`Derived`], deeply copied.
#[derive(PartialEq)]
struct Snapshot {
    features: rxmember_engine::features::Features,
    grades: Vec<rxmember_engine::grades::RfmGrade>,
    activity: Vec<rxmember_engine::grades::ActivityLevel>,
    bitmaps: Vec<(String, RoaringBitmap)>,
}

impl Snapshot {
    fn of(d: &Derived) -> Snapshot {
        let mut bitmaps =
            vec![("universe".to_string(), d.universe.clone()), ("checked".to_string(), d.checked.clone())];
        bitmaps.extend(d.classes.iter().map(|c| (c.name.clone(), RoaringBitmap::clone(&c.members))));
        bitmaps.extend(d.groups.iter().map(|g| (g.name.clone(), RoaringBitmap::clone(&g.members))));
        for dim in &d.catalogue {
            bitmaps.extend(
                dim.values.iter().map(|v| (format!("{}/{}", dim.key, v.name), RoaringBitmap::clone(&v.members))),
            );
        }
        Snapshot { features: d.features.clone(), grades: d.grades.clone(), activity: d.activity.clone(), bitmaps }
    }
}

fn naive(w: &World, text: &str, m: usize) -> bool {
    let text = text.trim();
    if let Some(inner) = strip_not(text) {
        return !naive(w, inner, m);
    }
    if let Some((a, op, b)) = split_top(text) {
        return if op == "and" { naive(w, a, m) && naive(w, b, m) } else { naive(w, a, m) || naive(w, b, m) };
    }
    let member = &w.members[m];
    let mine: Vec<&T> = w.tickets.iter().filter(|t| t.member == Some(m) && t.days_ago >= 0).collect();
    let kept: Vec<&&T> = mine.iter().filter(|t| World::ticket_net(t) > 0).collect();
    let year: Vec<&&&T> = kept.iter().filter(|t| t.days_ago < 365).collect();
    let num = |s: &str| s.trim().parse::<f64>().unwrap();
    let cmp = |x: f64, op: &str, y: f64| match op {
        "<" => x < y,
        ">=" => x >= y,
        "<=" => x <= y,
        ">" => x > y,
        "=" => x == y,
        "!=" => x != y,
        _ => unreachable!("{op}"),
    };
    // `between a and b` as "op" and "value".
    let holds = |x: f64, op: &str, value: &str| match op {
        "between" => {
            let (a, b) = value.split_once(" and ").unwrap();
            x >= num(a) && x <= num(b)
        }
        _ => cmp(x, op, num(value)),
    };
    let year_net: i64 = year.iter().map(|t| World::ticket_net(t)).sum();
    let year_items: usize = year.iter().map(|t| t.lines.len() - t.returned.len()).sum();
    let (field, rest) = text.split_once(' ').unwrap_or((text, ""));
    if let Some(args) = text.strip_prefix("bought(").and_then(|s| s.strip_suffix(')')) {
        let products: &[usize] = match args.strip_prefix("category = ") {
            Some(_) => {
                let cat = args.split('"').nth(1).unwrap();
                CATEGORY_NAMES.iter().find(|c| c.0 == cat).unwrap().1
            }
            None => &[0, 1, 2],
        };
        let within = num(args.split("within = ").nth(1).unwrap().split('d').next().unwrap()) as i64;
        let (op, k) = args.split("times ").nth(1).map_or((">=", "1"), |t| t.split_once(' ').unwrap());
        let mut days: Vec<(i64, i64)> = Vec::new();
        for t in &mine {
            if t.days_ago >= within {
                continue;
            }
            for (i, (p, _)) in t.lines.iter().enumerate() {
                if products.contains(p) {
                    let net = World::line_net(t, i);
                    match days.iter_mut().find(|d| d.0 == t.days_ago) {
                        Some(d) => d.1 += net,
                        None => days.push((t.days_ago, net)),
                    }
                }
            }
        }
        let n = days.iter().filter(|d| d.1 > 0).count() as f64;
        return cmp(n, op, num(k.trim_end_matches(')')));
    }
    if let Some(args) = text.strip_prefix("checked(").and_then(|s| s.strip_suffix(')')) {
        let kind = KIND_NAMES.iter().position(|k| *k == args.split('"').nth(1).unwrap()).unwrap();
        let within = num(args.split("within = ").nth(1).unwrap().split('d').next().unwrap()) as i64;
        let t = num(args.split(">= ").nth(1).unwrap());
        let n = w.checks.iter().filter(|c| c.member == m && c.kind == kind && c.days_ago < within).count() as f64;
        return n >= t;
    }
    if let Some(args) = text.strip_prefix("registered(within = ").and_then(|s| s.strip_suffix("d)")) {
        return member.registered_days_ago.is_some_and(|r| r < num(args) as i64);
    }
    if let Some(args) = text.strip_prefix("points_expiring(within = ").and_then(|s| s.strip_suffix(')')) {
        let (within, cond) = args.split_once("d").unwrap();
        let within = num(within) as i64;
        let (op, k) = cond.strip_prefix(", points ").map_or((">=", "1"), |c| c.split_once(' ').unwrap());
        let expiring: i64 = member.lots.iter().filter(|(ahead, _)| (0..within).contains(ahead)).map(|l| l.1).sum();
        return cmp(expiring as f64, op, num(k));
    }
    let (op, value) = rest.split_once(' ').unwrap();
    match field {
        "gender" => {
            let g = match value.trim_matches('"') {
                "男" => Gender::Male,
                "女" => Gender::Female,
                _ => Gender::Unknown,
            };
            member.gender == g
        }
        "age" => member.birthday.is_some_and(|b| holds(age_on(b, as_of()) as f64, op, value)),
        "frequency_12m" => holds(year.len() as f64, op, value),
        "monetary_12m" => holds(year_net as f64 / 100.0, op, value),
        "recency_days" => kept.iter().map(|t| t.days_ago).min().is_some_and(|r| holds(r as f64, op, value)),
        "avg_ticket" => !year.is_empty() && holds(year_net as f64 / year.len() as f64 / 100.0, op, value),
        "items_per_ticket" => !year.is_empty() && holds(year_items as f64 / year.len() as f64, op, value),
        "points_balance" => cmp(member.balance as f64, op, num(value)),
        "tier" => {
            // No recorded tier is the base (lowest) level, as at the till.
            let want = TIERS.iter().position(|t| t.1 == value.trim_matches('"')).unwrap();
            let level = member.tier.unwrap_or(0);
            if op == "=" { level == want } else { level != want }
        }
        other => panic!("naive evaluator does not know {other}"),
    }
}

fn strip_not(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("not (")?.strip_suffix(')')?;
    balanced(inner).then_some(inner)
}

fn balanced(s: &str) -> bool {
    let mut depth = 0i32;
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            _ => {}
        }
    }
    depth == 0
}

/// `(a) and (b)` / `(a) or (b)` at the top level.
fn split_top(s: &str) -> Option<(&str, &'static str, &str)> {
    if !s.starts_with('(') {
        return None;
    }
    let mut depth = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    let rest = &s[i + 1..];
                    for op in ["and", "or"] {
                        if let Some(b) = rest.strip_prefix(&format!(" {op} (")) {
                            return Some((&s[1..i], op, &b[..b.len() - 1]));
                        }
                    }
                    return None;
                }
            }
            _ => {}
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn bitmap_answers_equal_naive_evaluation(
        (ms, ts, cs) in members().prop_flat_map(|m| { let n = m.len(); (Just(m), tickets(n), checks(n)) }),
        exprs in prop::collection::vec(expr(), 1..6),
    ) {
        let world = World { members: ms, tickets: ts, checks: cs };
        let engine = world.engine();
        let d = engine.current();
        for e in &exprs {
            let got = engine.select_text(&d, e, &d.universe).unwrap();
            let want: Vec<u32> = (0..world.members.len()).filter(|&m| naive(&world, e, m)).map(|m| m as u32).collect();
            prop_assert_eq!(got.iter().collect::<Vec<u32>>(), want, "{}", e);
        }
    }

    #[test]
    fn incremental_update_equals_a_full_build(
        (ms, ts, cs) in members().prop_flat_map(|m| { let n = m.len(); (Just(m), tickets(n), checks(n)) }),
        split in 0usize..40,
        more in 0usize..30,
        exprs in prop::collection::vec(expr(), 1..4),
    ) {
        let world = World { members: ms, tickets: ts, checks: cs };
        let full = world.engine();
        let updated = world.engine_updated(split, more);
        let (a, b) = (full.current(), updated.current());
        prop_assert_eq!(&a.features, &b.features);
        prop_assert_eq!(&a.grades, &b.grades);
        prop_assert_eq!(&a.activity, &b.activity);
        prop_assert_eq!(a.thresholds, b.thresholds);
        prop_assert_eq!(&a.universe, &b.universe);
        prop_assert_eq!(&a.checked, &b.checked);
        prop_assert_eq!(a.classes.len(), b.classes.len());
        for (x, y) in a.classes.iter().zip(&b.classes) {
            prop_assert_eq!(&x.members, &y.members, "class {}", x.name);
        }
        let keys = |d: &Derived| -> Vec<(&str, Vec<String>)> {
            d.catalogue.iter().map(|x| (x.key, x.values.iter().map(|v| v.name.clone()).collect())).collect()
        };
        prop_assert_eq!(keys(&a), keys(&b));
        for (x, y) in a.catalogue.iter().zip(&b.catalogue) {
            for (v, w) in x.values.iter().zip(&y.values) {
                prop_assert_eq!(&v.members, &w.members, "tag {}/{}", x.name, v.name);
            }
        }
        for e in &exprs {
            prop_assert_eq!(full.select_text(&a, e, &a.universe).unwrap(), updated.select_text(&b, e, &b.universe).unwrap(), "{}", e);
        }
    }
}
