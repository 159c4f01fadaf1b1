//! The generator: plans a group, then streams each company's data day by day into a [`Sink`].

use crate::catalogue::{self, Item, Season};
use crate::names::*;
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use rxmember_core::health::{HealthCheckInput, HealthKind};
use rxmember_core::member::{Gender, MemberInput, RegistrationSource};
use rxmember_core::org::StoreInput;
use rxmember_core::product::ProductInput;
use rxmember_core::sale::{ReturnInput, SaleLineInput};
use rxmember_core::time::local_to_epoch_ms;
use rxmember_core::{Fen, health};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Tiny,
    Small,
    Large,
    /// Benchmarks only: one company of 10M members and 600 stores. Members walk in a fifth as often
    /// (most of a big register is dormant), but chronic patients still refill on their pack cycle, so
    /// the company has five times the large chain's biggest: 81M tickets, 122M lines (74M of them on
    /// member tickets), 11M health checks.
    Huge,
}

impl Size {
    pub fn parse(s: &str) -> Option<Size> {
        match s {
            "tiny" => Some(Size::Tiny),
            "small" => Some(Size::Small),
            "large" => Some(Size::Large),
            "huge" => Some(Size::Huge),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub size: Size,
    pub seed: u64,
}

/// The last day of demo sales. Fixed so the same seed gives the same data on any day; audiences and
/// reports take an as-of date.
pub const DEMO_END: (i32, u32, u32) = (2026, 11, 20);

pub struct CompanyPlan {
    pub code: &'static str,
    pub name: &'static str,
    pub brand: &'static str,
    pub region: usize,
    pub stores: usize,
    pub members: usize,
    /// Days of the month that are member days (会员日).
    pub member_days: &'static [u32],
    /// Multiplies every member's purchase rate (1.0 but for the huge benchmark chain).
    pub activity: f64,
}

pub struct Plan {
    pub companies: Vec<CompanyPlan>,
    pub start: NaiveDate,
    pub days: i64,
}

pub fn plan(size: Size) -> Plan {
    let end = NaiveDate::from_ymd_opt(DEMO_END.0, DEMO_END.1, DEMO_END.2).expect("valid date");
    let (sizes, days): (&[(usize, usize)], i64) = match size {
        Size::Tiny => (&[(3, 240), (2, 140)], 150),
        Size::Small => (&[(9, 22_000), (7, 17_000), (4, 11_000)], 400),
        Size::Large => (&[(300, 1_000_000), (200, 650_000), (100, 350_000)], 365),
        Size::Huge => (&[(600, 10_000_000)], 365),
    };
    let activity = if size == Size::Huge { 0.2 } else { 1.0 };
    const NAMES: [(&str, &str, &str, &[u32]); 3] = [
        ("TJG", "重庆桐君阁大药房连锁有限责任公司", "桐君阁大药房", &[8, 18, 28]),
        ("SCTJ", "四川太极大药房连锁有限公司", "太极大药房", &[6, 16, 26]),
        ("MYTJ", "绵阳太极大药房连锁有限责任公司", "绵阳太极大药房", &[15]),
    ];
    let companies = sizes
        .iter()
        .enumerate()
        .map(|(i, (stores, members))| CompanyPlan {
            code: NAMES[i].0,
            name: NAMES[i].1,
            brand: NAMES[i].2,
            region: i,
            stores: *stores,
            members: *members,
            member_days: NAMES[i].3,
            activity,
        })
        .collect();
    Plan { companies, start: end - Duration::days(days - 1), days }
}

/// Where generated data goes: the store (load) or DATA.md files (export).
#[allow(async_fn_in_trait)]
pub trait Sink {
    type Error;
    async fn company(&mut self, plan: &CompanyPlan) -> Result<(), Self::Error>;
    async fn stores(&mut self, rows: &[StoreInput], clerks: &[(String, String, String)]) -> Result<(), Self::Error>;
    async fn products(&mut self, rows: &[ProductInput]) -> Result<(), Self::Error>;
    async fn members(&mut self, rows: &[MemberInput]) -> Result<(), Self::Error>;
    async fn sales(&mut self, rows: &[(i64, SaleLineInput)]) -> Result<(), Self::Error>;
    async fn returns(&mut self, rows: &[ReturnInput]) -> Result<(), Self::Error>;
    async fn health_checks(&mut self, rows: &[HealthCheckInput]) -> Result<(), Self::Error>;
    fn progress(&mut self, _msg: &str) {}
    /// Ticket `ticket_no`, generated now (its lines are sent with this or a later `sales`), will see
    /// a return, sent with `returns` after all of the company's sales: a sink that resolves returns
    /// against their tickets need keep only these tickets.
    fn return_coming(&mut self, _ticket_no: &str) {}
}

/// What the sales simulation needs of a member, held for every member of the company while its
/// sales are generated (10M of them in the huge chain): the card number is formatted when needed
/// ([`card_no`]), the clerk is an index.
struct MemberPlan {
    store: u32,
    /// Among the home store's clerks.
    clerk: u16,
    registered_day: i64,
    /// Expected visits per day (0 for members who never buy).
    rate: f64,
    chronic: Vec<usize>,
    condition_bp: Option<(f64, f64)>,
    condition_glucose: Option<f64>,
}

struct Ticket {
    no: String,
    store: usize,
    card: Option<String>,
    clerk: Option<String>,
    at: NaiveDateTime,
    items: Vec<(usize, i64)>,
    member_day: bool,
}

/// Generates the whole group into `sink`. Returns the summary counts.
pub async fn generate<S: Sink>(opts: &Options, sink: &mut S) -> Result<crate::Summary, S::Error> {
    let started = std::time::Instant::now();
    let plan = plan(opts.size);
    let catalogue = catalogue::items();
    let mut summary = crate::Summary { companies: plan.companies.len(), ..Default::default() };
    for (ci, company) in plan.companies.iter().enumerate() {
        let mut rng = fastrand::Rng::with_seed(opts.seed.wrapping_mul(1_000_003).wrapping_add(ci as u64));
        sink.company(company).await?;
        sink.progress(&format!("{} {}: 门店与商品", company.code, company.name));

        // Stores and clerks.
        let (city, districts, area) = REGIONS[company.region % REGIONS.len()];
        let mut stores = Vec::with_capacity(company.stores);
        let mut clerks: Vec<Vec<String>> = Vec::with_capacity(company.stores);
        let mut clerk_rows = Vec::new();
        for s in 0..company.stores {
            let code = format!("{}{:03}", company.code, s + 1);
            let district = districts[s % districts.len()];
            let street = STREETS[rng.usize(..STREETS.len())];
            stores.push(StoreInput {
                code: code.clone(),
                name: format!("{}{}{}店", company.brand, district, street),
                city: Some(city.to_string()),
                address: Some(format!("{city}市{district}{street}{}号", rng.u32(1..400))),
                opened_on: NaiveDate::from_ymd_opt(2005 + rng.i32(0..18), rng.u32(1..13), rng.u32(1..29)),
            });
            let n = 3 + rng.usize(0..4);
            let mut cs = Vec::with_capacity(n);
            for k in 0..n {
                let clerk_code = format!("{code}-{:02}", k + 1);
                let gender = if rng.f32() < 0.8 { Gender::Female } else { Gender::Male };
                let name = person_name(&mut rng, gender);
                clerk_rows.push((clerk_code.clone(), name, code.clone()));
                cs.push(clerk_code);
            }
            clerks.push(cs);
        }
        sink.stores(&stores, &clerk_rows).await?;
        summary.stores += stores.len();

        // The drug master: the catalogue with this company's codes and a little price variation.
        let products: Vec<ProductInput> = catalogue
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let f = 0.95 + rng.f64() * 0.1;
                let retail = Fen(((item.retail_price.0 as f64 * f) / 10.0).round() as i64 * 10);
                ProductInput {
                    code: format!("{}{:06}", ci + 1, i + 1),
                    name: item.product_name.clone(),
                    generic_name: Some(item.generic_name.clone()),
                    spec: Some(item.spec.clone()),
                    manufacturer: Some(item.manufacturer.clone()),
                    brand: item
                        .product_name
                        .split_whitespace()
                        .next()
                        .filter(|b| *b != item.product_name)
                        .map(String::from),
                    category_code: Some(item.minor_code.clone()),
                    is_prescription: item.is_prescription,
                    retail_price: Some(retail),
                    cost_price: Some(Fen(
                        (retail.0 as f64 * item.cost_price.0 as f64 / item.retail_price.0 as f64).round() as i64
                    )),
                    days_per_pack: item.days_per_pack,
                    ingredients: item.ingredients.clone(),
                    points_excluded: rng.f32() < 0.03,
                }
            })
            .collect();
        sink.products(&products).await?;
        summary.products += products.len();
        let prices: Vec<Fen> = products.iter().map(|p| p.retail_price.unwrap_or_default()).collect();

        // Members.
        sink.progress(&format!("{} {}: 会员", company.code, company.name));
        let chronic_by_condition = |cond: &str| -> Vec<usize> {
            catalogue
                .iter()
                .enumerate()
                .filter(|(_, it)| it.condition.as_deref() == Some(cond) && it.days_per_pack.is_some())
                .map(|(i, _)| i)
                .collect()
        };
        let conditions =
            ["高血压", "糖尿病", "高血脂", "冠心病", "痛风", "骨质疏松", "前列腺增生", "甲状腺疾病", "哮喘", "慢阻肺"];
        let condition_items: Vec<Vec<usize>> = conditions.iter().map(|c| chronic_by_condition(c)).collect();
        let mut plans: Vec<MemberPlan> = Vec::with_capacity(company.members);
        let mut batch: Vec<MemberInput> = Vec::with_capacity(5000);
        let end = plan.start + Duration::days(plan.days - 1);
        for m in 0..company.members {
            let gender = if rng.f32() < 0.62 { Gender::Female } else { Gender::Male };
            let age = sample_age(&mut rng);
            let birthday = NaiveDate::from_ymd_opt(end.year() - age, rng.u32(1..13), rng.u32(1..29)).expect("valid");
            let store = pick_store(&mut rng, company.stores);
            let clerk_index = rng.usize(..clerks[store].len());
            let clerk = clerks[store][clerk_index].clone();
            // Registered over the last three years; a tenth during the sales window's last 90 days.
            let registered_day = if rng.f32() < 0.1 { plan.days - 1 - rng.i64(0..90) } else { -rng.i64(0..1000) };
            let mut chronic_conditions = Vec::new();
            let mut chronic = Vec::new();
            if age >= 40 && rng.f32() < (age as f32 - 30.0) / 80.0 {
                let n = 1 + (rng.f32() < 0.35) as usize;
                for _ in 0..n {
                    let k = weighted(&mut rng, &[30.0, 20.0, 15.0, 8.0, 6.0, 6.0, 5.0, 4.0, 3.0, 3.0]);
                    if condition_items[k].is_empty() || chronic_conditions.contains(&conditions[k].to_string()) {
                        continue;
                    }
                    chronic_conditions.push(conditions[k].to_string());
                    chronic.push(condition_items[k][rng.usize(..condition_items[k].len())]);
                }
            }
            // Pareto-distributed purchase propensity: a few members make most of the sales.
            let never = rng.f32() < 0.12;
            let w = (1.0 - rng.f64()).powf(-1.0 / 1.08).min(120.0);
            let rate = if never { 0.0 } else { 0.0026 * w * company.activity };
            let phone = if rng.f32() < 0.95 { Some(phone_number(&mut rng)) } else { None };
            let id_number = (rng.f32() < 0.35).then(|| id_number(&mut rng, area, birthday, gender));
            let source = match rng.f32() {
                x if x < 0.68 => RegistrationSource::Store,
                x if x < 0.88 => RegistrationSource::Wechat,
                x if x < 0.94 => RegistrationSource::Alipay,
                _ => RegistrationSource::Referral,
            };
            let card_no = card_no(ci, m);
            let referrer =
                (source == RegistrationSource::Referral && m > 10).then(|| format!("{}{:08}", ci + 1, rng.usize(1..m)));
            let registered_at = local_to_epoch_ms(
                (plan.start + Duration::days(registered_day))
                    .and_hms_opt(rng.u32(9..21), rng.u32(0..60), 0)
                    .expect("valid"),
                480,
            );
            let input = MemberInput {
                card_no: card_no.clone(),
                name: Some(person_name(&mut rng, gender)),
                phone: phone.clone(),
                gender,
                birthday: if id_number.is_some() && rng.f32() < 0.5 { None } else { Some(birthday) },
                id_number,
                store_code: Some(stores[store].code.clone()),
                registered_at: Some(registered_at),
                clerk_code: Some(clerk.clone()),
                source,
                referrer_card_no: referrer,
                allergies: if rng.f32() < 0.06 {
                    vec![["青霉素", "头孢", "磺胺", "阿司匹林", "布洛芬"][rng.usize(..5)].to_string()]
                } else {
                    vec![]
                },
                chronic_conditions: chronic_conditions.clone(),
                sms_opt_in: rng.f32() < 0.92,
                points: (rng.f32() < 0.3).then(|| rng.i64(0..3000)),
            };
            // About 1% hold a second card under the same phone: the import merges them.
            let duplicate = (phone.is_some() && rng.f32() < 0.01).then(|| MemberInput {
                card_no: format!("{}9{:07}", ci + 1, m + 1),
                registered_at: Some(registered_at + 86_400_000 * rng.i64(30..400)),
                points: None,
                ..input.clone()
            });
            batch.push(input);
            if let Some(d) = duplicate {
                batch.push(d);
            }
            if batch.len() >= 5000 {
                summary.members += batch.len();
                sink.members(&batch).await?;
                batch.clear();
            }
            plans.push(MemberPlan {
                store: store as u32,
                clerk: clerk_index as u16,
                registered_day,
                rate,
                condition_bp: chronic_conditions
                    .iter()
                    .any(|c| c == "高血压")
                    .then(|| (118.0 + rng.f64() * 40.0, 72.0 + rng.f64() * 20.0)),
                condition_glucose: chronic_conditions.iter().any(|c| c == "糖尿病").then(|| 5.6 + rng.f64() * 3.4),
                chronic,
            });
        }
        summary.members += batch.len();
        sink.members(&batch).await?;

        // Sales, day by day.
        let cumulative: Vec<f64> = plans
            .iter()
            .scan(0.0, |acc, p| {
                *acc += p.rate;
                Some(*acc)
            })
            .collect();
        let total_rate = cumulative.last().copied().unwrap_or(0.0);
        let mut refills: Vec<Vec<(usize, usize)>> = vec![Vec::new(); plan.days as usize + 1];
        for (mi, p) in plans.iter().enumerate() {
            for &item in &p.chronic {
                let first = p.registered_day.max(0) + rng.i64(0..catalogue[item].days_per_pack.unwrap_or(30).max(1));
                if first < plan.days && p.rate > 0.0 {
                    refills[first as usize].push((mi, item));
                }
            }
        }
        let weights = Weights::new(&catalogue);
        let mut returns: Vec<ReturnInput> = Vec::new();
        let mut readings: Vec<Reading> = Vec::new();
        let mut lines: Vec<(i64, SaleLineInput)> = Vec::with_capacity(8000);
        let mut seq = vec![0u32; company.stores];
        for day in 0..plan.days {
            let date = plan.start + Duration::days(day);
            if day % 30 == 0 {
                sink.progress(&format!("{} 销售 {date}", company.code));
            }
            let member_day = company.member_days.contains(&date.day());
            let month = date.month();
            let winter = matches!(month, 12 | 1 | 2);
            let weekday = if matches!(date.weekday(), Weekday::Sat | Weekday::Sun) { 1.15 } else { 1.0 };
            let mult = weekday * if member_day { 2.3 } else { 1.0 } * if winter { 1.12 } else { 1.0 };
            let mut tickets: Vec<Ticket> = Vec::new();
            seq.iter_mut().for_each(|s| *s = 0);
            let new_ticket = |rng: &mut fastrand::Rng,
                              store: usize,
                              card: Option<String>,
                              clerk: Option<String>,
                              seq: &mut Vec<u32>| {
                seq[store] += 1;
                let hour = [8, 9, 9, 10, 10, 11, 12, 14, 15, 16, 17, 18, 18, 19, 19, 20, 21][rng.usize(..17)];
                Ticket {
                    no: format!("{}{}{:03}{:05}", company.code, date.format("%Y%m%d"), store + 1, seq[store]),
                    store,
                    card,
                    clerk,
                    at: date.and_hms_opt(hour, rng.u32(0..60), rng.u32(0..60)).expect("valid"),
                    items: Vec::new(),
                    member_day,
                }
            };
            // Members walking in.
            let visits = poisson(&mut rng, total_rate * mult);
            for _ in 0..visits {
                let x = rng.f64() * total_rate;
                let mi = cumulative.partition_point(|c| *c < x).min(plans.len() - 1);
                let p = &plans[mi];
                if p.registered_day > day {
                    continue;
                }
                let store = if rng.f32() < 0.82 { p.store as usize } else { rng.usize(..company.stores) };
                let clerk = clerks[store][rng.usize(..clerks[store].len())].clone();
                let mut t = new_ticket(&mut rng, store, Some(card_no(ci, mi)), Some(clerk), &mut seq);
                let n = items_per_ticket(&mut rng);
                for _ in 0..n {
                    let item = weights.pick(&mut rng, month);
                    t.items.push((item, quantity(&mut rng, &catalogue[item])));
                }
                tickets.push(t);
            }
            // Chronic patients refilling on their pack cycle.
            for (mi, item) in std::mem::take(&mut refills[day as usize]) {
                let p = &plans[mi];
                let packs = 1 + rng.i64(0..3);
                let (store, clerk) = (p.store as usize, clerks[p.store as usize][p.clerk as usize].clone());
                let mut t = new_ticket(&mut rng, store, Some(card_no(ci, mi)), Some(clerk), &mut seq);
                t.items.push((item, packs * 1000));
                if rng.f32() < 0.35 {
                    let extra = weights.pick(&mut rng, month);
                    t.items.push((extra, quantity(&mut rng, &catalogue[extra])));
                }
                tickets.push(t);
                let cycle = catalogue[item].days_per_pack.unwrap_or(30) * packs;
                let skip = if rng.f32() < 0.12 { cycle } else { 0 };
                let next = day + cycle + skip + rng.i64(-3..6);
                if next < plan.days {
                    refills[next.max(day + 1) as usize].push((mi, item));
                }
                // Health checks at refill time, about every other visit.
                if rng.f32() < 0.45 {
                    let at =
                        local_to_epoch_ms(date.and_hms_opt(rng.u32(9..20), rng.u32(0..60), 0).expect("valid"), 480);
                    let member = mi as u32;
                    if let Some((s, d)) = p.condition_bp {
                        let sys = (s + rng.f64() * 16.0 - 8.0).round();
                        let dia = (d + rng.f64() * 10.0 - 5.0).round().min(sys - 20.0);
                        readings.push(Reading { member, at, value: ReadingValue::BloodPressure(sys, dia) });
                    } else if let Some(g) = p.condition_glucose {
                        let v = ((g + rng.f64() * 1.6 - 0.8) * 10.0).round() / 10.0;
                        readings.push(Reading { member, at, value: ReadingValue::BloodGlucose(v) });
                    }
                }
            }
            // Walk-in customers without a card: about 40% of all tickets.
            let member_tickets = tickets.len();
            let non_member = poisson(&mut rng, member_tickets as f64 * 0.62 + company.stores as f64 * 2.0 * weekday);
            for _ in 0..non_member {
                let store = rng.usize(..company.stores);
                let clerk = clerks[store][rng.usize(..clerks[store].len())].clone();
                let mut t = new_ticket(&mut rng, store, None, Some(clerk), &mut seq);
                let n = 1 + (rng.f32() < 0.4) as usize + (rng.f32() < 0.15) as usize;
                for _ in 0..n {
                    let item = weights.pick(&mut rng, month);
                    t.items.push((item, quantity(&mut rng, &catalogue[item])));
                }
                tickets.push(t);
            }
            tickets.sort_by(|a, b| a.at.cmp(&b.at).then(a.no.cmp(&b.no)));
            for t in &tickets {
                summary.tickets += 1;
                let sold_at = local_to_epoch_ms(t.at, 480);
                for (k, (item, qty)) in t.items.iter().enumerate() {
                    let price = prices[*item];
                    let list = price.times_milli(*qty);
                    let rate = if t.card.is_some() && t.member_day {
                        0.92
                    } else if rng.f32() < 0.12 {
                        0.9
                    } else {
                        1.0
                    };
                    let amount = Fen((list.0 as f64 * rate).round() as i64);
                    lines.push((
                        k as i64 + 1,
                        SaleLineInput {
                            ticket_no: t.no.clone(),
                            line_no: Some(k as i64 + 1),
                            sold_at,
                            store_code: stores[t.store].code.clone(),
                            card_no: t.card.clone(),
                            clerk_code: t.clerk.clone(),
                            product_code: products[*item].code.clone(),
                            quantity_milli: *qty,
                            unit_price: Some(price),
                            amount,
                            discount: list - amount,
                            cost: None,
                        },
                    ));
                    summary.lines += 1;
                    if t.card.is_some() {
                        summary.member_lines += 1;
                    }
                }
                // About 1% of tickets see a return within a week.
                if rng.f32() < 0.01 {
                    sink.return_coming(&t.no);
                    let k = rng.usize(..t.items.len());
                    let (item, qty) = t.items[k];
                    let line_amount = lines[lines.len() - t.items.len() + k].1.amount;
                    returns.push(ReturnInput {
                        ticket_no: t.no.clone(),
                        return_no: format!("R{}", t.no),
                        returned_at: sold_at + 86_400_000 * rng.i64(0..7) + 3_600_000,
                        product_code: products[item].code.clone(),
                        quantity_milli: qty,
                        amount: line_amount,
                    });
                }
            }
            if lines.len() >= 5000 {
                sink.sales(&lines).await?;
                lines.clear();
            }
        }
        sink.sales(&lines).await?;
        summary.returns += returns.len();
        for chunk in returns.chunks(5000) {
            sink.returns(chunk).await?;
        }
        summary.health_checks += readings.len();
        for chunk in readings.chunks(5000) {
            let rows: Vec<HealthCheckInput> = chunk
                .iter()
                .map(|r| {
                    let store = &stores[plans[r.member as usize].store as usize].code;
                    r.input(card_no(ci, r.member as usize), store)
                })
                .collect();
            sink.health_checks(&rows).await?;
        }
    }
    summary.elapsed_ms = started.elapsed().as_millis();
    Ok(summary)
}

/// Card number of member `m` (0-based) of company `ci` (0-based).
fn card_no(ci: usize, m: usize) -> String {
    format!("{}{:08}", ci + 1, m + 1)
}

/// A health check taken at a refill, held compact (a million or more per company) until the
/// company's checks are sent after its sales and returns.
struct Reading {
    /// Index among the company's members.
    member: u32,
    at: i64,
    value: ReadingValue,
}

enum ReadingValue {
    /// Systolic / diastolic, mmHg.
    BloodPressure(f64, f64),
    /// mmol/L.
    BloodGlucose(f64),
}

impl Reading {
    fn input(&self, card_no: String, store: &str) -> HealthCheckInput {
        let (kind, value, unit) = match self.value {
            ReadingValue::BloodPressure(sys, dia) => (HealthKind::BloodPressure, format!("{sys}/{dia}"), "mmHg"),
            ReadingValue::BloodGlucose(v) => (HealthKind::BloodGlucose, format!("{v}"), "mmol/L"),
        };
        let (v1, v2, abnormal) = health::assess(kind, &value).unwrap_or((None, None, false));
        HealthCheckInput {
            card_no,
            store_code: Some(store.to_string()),
            checked_at: self.at,
            kind,
            kind_name: kind.label_zh().to_string(),
            value,
            value1: v1,
            value2: v2,
            unit: Some(unit.to_string()),
            abnormal,
        }
    }
}

/// Product choice weights: cheap everyday items sell most; seasonal items follow their season.
struct Weights {
    base: Vec<f64>,
    season: Vec<Season>,
}

impl Weights {
    fn new(items: &[Item]) -> Weights {
        let base = items
            .iter()
            .map(|it| {
                let price = it.retail_price.0 as f64 / 100.0;
                let w = 30.0 / (price + 10.0);
                if it.condition.is_some() { w * 0.5 } else { w }
            })
            .collect();
        Weights { base, season: items.iter().map(|i| i.season).collect() }
    }

    fn pick(&self, rng: &mut fastrand::Rng, month: u32) -> usize {
        let factor = |s: Season| match (s, month) {
            (Season::Flu, 12 | 1 | 2) => 4.0,
            (Season::Flu, 11 | 3) => 2.2,
            (Season::Flu, 6..=8) => 0.5,
            (Season::Summer, 6..=8) => 3.5,
            (Season::Summer, 12 | 1 | 2) => 0.3,
            (Season::Spring, 3..=5) => 3.0,
            _ => 1.0,
        };
        // Rejection sampling against the largest possible weight keeps picks O(1) on average.
        loop {
            let i = rng.usize(..self.base.len());
            if rng.f64() * 12.0 < self.base[i] * factor(self.season[i]) {
                return i;
            }
        }
    }
}

fn items_per_ticket(rng: &mut fastrand::Rng) -> usize {
    let mut n = 1;
    while n < 8 && rng.f32() < 0.52 {
        n += 1;
    }
    n
}

fn quantity(rng: &mut fastrand::Rng, item: &Item) -> i64 {
    if item.is_prescription && rng.f32() < 0.03 {
        // 拆零: a split pack.
        return [250, 500][rng.usize(..2)];
    }
    match rng.f32() {
        x if x < 0.72 => 1000,
        x if x < 0.92 => 2000,
        _ => 3000,
    }
}

fn poisson(rng: &mut fastrand::Rng, lambda: f64) -> usize {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 30.0 {
        // Normal approximation for large means.
        let u1 = rng.f64().max(1e-12);
        let u2 = rng.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        return (lambda + z * lambda.sqrt()).round().max(0.0) as usize;
    }
    let l = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.f64();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

fn weighted(rng: &mut fastrand::Rng, w: &[f64]) -> usize {
    let total: f64 = w.iter().sum();
    let mut x = rng.f64() * total;
    for (i, v) in w.iter().enumerate() {
        if x < *v {
            return i;
        }
        x -= v;
    }
    w.len() - 1
}

/// Adult members skew older: pharmacy loyalty is strongest from 45 on.
fn sample_age(rng: &mut fastrand::Rng) -> i32 {
    let bands = [(18, 29, 10.0), (30, 39, 16.0), (40, 49, 20.0), (50, 59, 22.0), (60, 69, 19.0), (70, 85, 13.0)];
    let k = weighted(rng, &bands.iter().map(|b| b.2).collect::<Vec<_>>());
    rng.i32(bands[k].0..=bands[k].1)
}

/// Flagship stores get more members than corner stores.
fn pick_store(rng: &mut fastrand::Rng, stores: usize) -> usize {
    let x = rng.f64();
    ((x * x) * stores as f64) as usize % stores
}

fn person_name(rng: &mut fastrand::Rng, gender: Gender) -> String {
    let s = SURNAMES[(rng.f64().powi(2) * SURNAMES.len() as f64) as usize];
    let g = if gender == Gender::Male { GIVEN_MALE } else { GIVEN_FEMALE };
    format!("{s}{}", g[rng.usize(..g.len())])
}

fn phone_number(rng: &mut fastrand::Rng) -> String {
    format!("{}{:08}", PHONE_PREFIXES[rng.usize(..PHONE_PREFIXES.len())], rng.u32(0..100_000_000))
}

/// A valid 18-digit resident ID number (GB 11643 checksum) for a birthday and gender.
fn id_number(rng: &mut fastrand::Rng, area: &str, birthday: NaiveDate, gender: Gender) -> String {
    let seq = rng.u32(0..100) * 10 + if gender == Gender::Male { 2 * rng.u32(0..5) + 1 } else { 2 * rng.u32(0..5) };
    let first17 = format!("{area}{}{:03}", birthday.format("%Y%m%d"), seq % 1000);
    const W: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = first17.bytes().zip(W).map(|(d, w)| (d - b'0') as u32 * w).sum();
    format!("{first17}{}", b"10X98765432"[(sum % 11) as usize] as char)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_id_numbers_pass_the_checksum() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..200 {
            let b = NaiveDate::from_ymd_opt(1960 + rng.i32(0..40), rng.u32(1..13), rng.u32(1..29)).unwrap();
            let g = if rng.bool() { Gender::Male } else { Gender::Female };
            let id = rxmember_core::clean::id_number(&id_number(&mut rng, "500103", b, g)).unwrap();
            assert_eq!((id.birthday, id.gender), (b, g));
        }
    }

    #[test]
    fn phones_are_valid_mobiles() {
        let mut rng = fastrand::Rng::with_seed(2);
        for _ in 0..200 {
            let p = phone_number(&mut rng);
            assert_eq!(rxmember_core::clean::phone(&p).unwrap(), p);
        }
    }
}
