//! The tag catalogue (标签目录): four primary dimensions — consumption, product, health and member
//! attributes (seed 002: 消费属性、商品属性、健康属性、会员属性) — with their secondary dimensions, each
//! value a bitmap of members. A value is referenced in audiences as `tag = "维度/值"`.

use crate::classes::{Class, ClassKind};
use crate::data::{CompanyData, NONE_U32};
use crate::features::{Features, NONE_I32, TRACKED_KINDS};
use crate::grades::{ActivityLevel, RfmGrade};
use crate::members::{MemberRef, Members};
use roaring::RoaringBitmap;
use rxmember_core::member::{Gender, MemberStatus, RegistrationSource};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registration sources in the order of the `source` dimension's values.
pub const SOURCES: [RegistrationSource; 5] = [
    RegistrationSource::Store,
    RegistrationSource::Wechat,
    RegistrationSource::Alipay,
    RegistrationSource::Referral,
    RegistrationSource::Import,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Primary {
    Consumption,
    Product,
    Health,
    Member,
}

impl Primary {
    pub const ALL: [Primary; 4] = [Primary::Consumption, Primary::Product, Primary::Health, Primary::Member];

    pub fn label_zh(self) -> &'static str {
        match self {
            Primary::Consumption => "消费属性",
            Primary::Product => "商品属性",
            Primary::Health => "健康属性",
            Primary::Member => "会员属性",
        }
    }
}

#[derive(Debug, Clone)]
pub struct TagValue {
    pub name: String,
    /// Shared: a class's or drug group's value is that class's or group's own bitmap, and an update
    /// changes a value in place unless a reader still holds the catalogue before (then it copies it).
    pub members: Arc<RoaringBitmap>,
}

#[derive(Debug, Clone)]
pub struct Dimension {
    pub key: &'static str,
    pub name: &'static str,
    pub primary: Primary,
    pub values: Vec<TagValue>,
}

impl Dimension {
    pub fn value(&self, name: &str) -> Option<&TagValue> {
        self.values.iter().find(|v| v.name == name)
    }
}

/// Members split by a function giving each member's value index (or none).
fn split(n: usize, names: &[String], f: impl Fn(usize) -> Option<usize>) -> Vec<TagValue> {
    let bitmaps: Vec<RoaringBitmap> = if names.len() <= FEW_VALUES {
        // A bit per member and value, set in member order, then read into bitmaps a container at a
        // time: cheaper than pushing every member into a list and the list into a bitmap (most
        // dimensions have a handful of values; each value's bits are n / 8 bytes).
        let mut bits = vec![vec![0u8; n.div_ceil(8)]; names.len()];
        for o in 0..n {
            if let Some(v) = f(o) {
                bits[v][o >> 3] |= 1 << (o & 7);
            }
        }
        bits.iter().map(|b| RoaringBitmap::from_lsb0_bytes(0, b)).collect()
    } else {
        let mut lists: Vec<Vec<u32>> = vec![Vec::new(); names.len()];
        for o in 0..n {
            if let Some(v) = f(o) {
                lists[v].push(o as u32);
            }
        }
        lists.into_iter().map(|l| RoaringBitmap::from_sorted_iter(l).expect("members ascend")).collect()
    };
    names
        .iter()
        .zip(bitmaps)
        .map(|(name, members)| TagValue { name: name.clone(), members: Arc::new(members) })
        .collect()
}

/// Above this many values, a dimension's changed members are first looked up in their new value
/// (one bitmap probe each) and only those not found there are taken out of every value; below it,
/// every changed member is taken out of each value (a pass over the changed members per value).
const FEW_VALUES: usize = 16;

/// Places the `changed` members again in a dimension where each member has at most one value (`f`
/// gives it), in place: the same values as [`split`] over every member, when only the changed
/// members' values may differ from those `values` were placed by.
fn place_again(values: &mut [TagValue], changed: &RoaringBitmap, f: impl Fn(usize) -> Option<usize>) {
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); values.len()];
    if values.len() <= FEW_VALUES {
        for o in changed {
            if let Some(v) = f(o as usize) {
                lists[v].push(o);
            }
        }
        for (v, l) in values.iter_mut().zip(lists) {
            let members = Arc::make_mut(&mut v.members);
            *members -= changed;
            *members |= RoaringBitmap::from_sorted_iter(l).expect("changed members ascend");
        }
        return;
    }
    // A member already in its new value is in no other: only the others move.
    let mut moved: Vec<u32> = Vec::new();
    for o in changed {
        match f(o as usize) {
            Some(v) if values[v].members.contains(o) => {}
            Some(v) => {
                moved.push(o);
                lists[v].push(o);
            }
            None => moved.push(o),
        }
    }
    let moved = RoaringBitmap::from_sorted_iter(moved).expect("changed members ascend");
    for (v, l) in values.iter_mut().zip(lists) {
        if l.is_empty() && v.members.is_disjoint(&moved) {
            continue;
        }
        let members = Arc::make_mut(&mut v.members);
        *members -= &moved;
        *members |= RoaringBitmap::from_sorted_iter(l).expect("changed members ascend");
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Index of the first band whose upper bound (exclusive) is above `x`; the last band is open.
fn band(x: f64, uppers: &[f64]) -> usize {
    uppers.iter().position(|u| x < *u).unwrap_or(uppers.len())
}

/// The dimensions whose values are the classes' and drug groups' own bitmaps (shared, never placed
/// again by the catalogue).
const SHARED: [&str; 4] = ["major_class", "minor_class", "custom_class", "drug_group"];

/// The catalogue without the dimensions that share the classes' and drug groups' bitmaps: what an
/// update keeps while it brings those bitmaps up to date in place.
pub fn without_shared(mut dims: Vec<Dimension>) -> Vec<Dimension> {
    dims.retain(|d| !SHARED.contains(&d.key));
    dims
}

pub struct Inputs<'a> {
    /// The catalogue before (its bitmaps are changed in place), and the members whose values may have
    /// changed since (facts, features, grades or activity): only those are placed again. `None`
    /// builds every value from scratch.
    pub prev: Option<(Vec<Dimension>, Changed<'a>)>,
    pub data: &'a CompanyData,
    pub features: &'a Features,
    pub grades: &'a [RfmGrade],
    pub activity: &'a [ActivityLevel],
    pub classes: &'a [Class],
    pub groups: &'a [(String, Arc<RoaringBitmap>)],
    /// Points expiring per member within 30 days of the as-of day.
    pub expiring_30d: &'a HashMap<u32, i64>,
}

/// The members an incremental catalogue places again.
#[derive(Debug, Clone, Copy)]
pub struct Changed<'a> {
    /// Members whose facts, features, grade, activity, record or loyalty state changed.
    pub any: &'a RoaringBitmap,
    /// Of those, the members whose record or loyalty state changed: the only ones whose values of
    /// the attribute dimensions (gender, age, home store, tier …, see [`Builder::split_record`])
    /// can differ, the as-of day being the same.
    pub records: &'a RoaringBitmap,
}

/// Builds the dimensions one by one, each incrementally from the previous catalogue when it had the
/// same values.
struct Builder<'a> {
    n: usize,
    /// The previous catalogue, shared by the builders of both halves (each takes its own dimensions).
    prev: Option<(&'a Mutex<Vec<Dimension>>, Changed<'a>)>,
    dims: Vec<Dimension>,
}

impl<'a> Builder<'a> {
    /// The previous dimension `key`'s values (taken out of it) if they satisfy `same`, and the
    /// changed members.
    fn take_previous(
        &mut self,
        key: &str,
        same: impl FnOnce(&[TagValue]) -> bool,
    ) -> Option<(Vec<TagValue>, Changed<'a>)> {
        let (dims, changed) = self.prev?;
        let mut dims = dims.lock().expect("a catalogue builder does not panic");
        let d = dims.iter_mut().find(|d| d.key == key)?;
        same(&d.values).then(|| (std::mem::take(&mut d.values), changed))
    }

    /// The previous dimension `key`'s values (taken out of it) if it had exactly these value names,
    /// and the changed members.
    fn previous(&mut self, key: &str, names: &[String]) -> Option<(Vec<TagValue>, Changed<'a>)> {
        self.take_previous(key, |values| {
            values.len() == names.len() && values.iter().zip(names).all(|(v, n)| v.name == *n)
        })
    }

    /// A dimension where each member has at most one value, given by `f` (a value index).
    fn split(
        &mut self,
        key: &'static str,
        name: &'static str,
        primary: Primary,
        names: &[String],
        f: impl Fn(usize) -> Option<usize>,
    ) {
        self.split_of(key, name, primary, names, f, |c| c.any);
    }

    /// [`Builder::split`] for a dimension whose values follow from members' records and loyalty
    /// state alone (and the as-of day): an update places again only [`Changed::records`].
    fn split_record(
        &mut self,
        key: &'static str,
        name: &'static str,
        primary: Primary,
        names: &[String],
        f: impl Fn(usize) -> Option<usize>,
    ) {
        self.split_of(key, name, primary, names, f, |c| c.records);
    }

    fn split_of(
        &mut self,
        key: &'static str,
        name: &'static str,
        primary: Primary,
        names: &[String],
        f: impl Fn(usize) -> Option<usize>,
        members: impl Fn(Changed<'a>) -> &'a RoaringBitmap,
    ) {
        let values = match self.previous(key, names) {
            Some((mut values, changed)) => {
                place_again(&mut values, members(changed), f);
                values
            }
            None => split(self.n, names, f),
        };
        self.given(key, name, primary, values);
    }

    fn given(&mut self, key: &'static str, name: &'static str, primary: Primary, values: Vec<TagValue>) {
        self.dims.push(Dimension { key, name, primary, values });
    }
}

/// The chronic-condition values (a member may have several): placed again for the changed members
/// only, unless one of them brings a condition not seen before.
fn chronic_values(b: &mut Builder, data: &CompanyData) -> Vec<TagValue> {
    // The changed members of each known condition, in one pass over the changed members.
    let mut lists: Vec<Vec<u32>> = Vec::new();
    let changed = b.prev.map(|(_, c)| c.records);
    let known = |values: &[TagValue]| {
        let Some(changed) = changed else { return false };
        lists = vec![Vec::new(); values.len()];
        changed.iter().all(|o| {
            data.members.get(o as usize).chronic_conditions().iter().all(|c| {
                let Some(v) = values.iter().position(|v| v.name == *c) else { return false };
                if lists[v].last() != Some(&o) {
                    lists[v].push(o);
                }
                true
            })
        })
    };
    if let Some((mut values, Changed { records: changed, .. })) = b.take_previous("chronic", known) {
        for (v, l) in values.iter_mut().zip(lists) {
            let members = Arc::make_mut(&mut v.members);
            *members -= changed;
            *members |= RoaringBitmap::from_sorted_iter(l).expect("changed members ascend");
        }
        values.retain(|v| !v.members.is_empty());
        return values;
    }
    // One pass over the records, each condition's members listed under its name (borrowed).
    let mut by_name: HashMap<&str, Vec<u32>> = HashMap::new();
    for (o, m) in data.members.iter().enumerate() {
        for c in m.chronic_conditions() {
            let list = by_name.entry(c.as_str()).or_default();
            if list.last() != Some(&(o as u32)) {
                list.push(o as u32);
            }
        }
    }
    let mut chronic: Vec<(&str, Vec<u32>)> = by_name.into_iter().collect();
    chronic.sort_unstable_by_key(|&(name, _)| name);
    chronic
        .into_iter()
        .map(|(name, l)| TagValue {
            name: name.to_string(),
            members: Arc::new(RoaringBitmap::from_sorted_iter(l).expect("members ascend")),
        })
        .collect()
}

pub fn build(mut i: Inputs) -> Vec<Dimension> {
    let (prev, changed) = match i.prev.take() {
        Some((dims, changed)) => (Some(Mutex::new(dims)), Some(changed)),
        None => (None, None),
    };
    let incremental = changed.is_some();
    let builder = || Builder { n: i.data.len(), prev: prev.as_ref().zip(changed), dims: Vec::new() };
    // Each dimension is placed on its own: two halves, one thread each, in the catalogue's order.
    // Built afresh, every dimension reads every member; in an update the attribute dimensions read
    // only the changed records, so the middle part goes with them.
    let (mut dims, rest) = std::thread::scope(|s| {
        let first = s.spawn(|| {
            let mut b = builder();
            consumption_first(&i, &mut b);
            if !incremental {
                consumption_rest_and_product(&i, &mut b);
            }
            b.dims
        });
        let mut b = builder();
        if incremental {
            consumption_rest_and_product(&i, &mut b);
        }
        health_and_member(&i, &mut b);
        (first.join().expect("the catalogue's first half does not panic"), b.dims)
    });
    dims.extend(rest);
    dims
}

/// 消费属性 up to 毛利率.
fn consumption_first(i: &Inputs, b: &mut Builder) {
    let f = i.features;
    use Primary::*;

    // 消费属性
    let grade_names: Vec<String> = RfmGrade::ALL.iter().map(|g| g.label_zh().to_string()).collect();
    b.split("grade", "RFM等级", Consumption, &grade_names, |o| RfmGrade::ALL.iter().position(|g| *g == i.grades[o]));
    let rfmh: Vec<String> = RfmGrade::ALL[..6]
        .iter()
        .flat_map(|g| [format!("{}·有检测", g.label_zh()), format!("{}·无检测", g.label_zh())])
        .collect();
    b.split("rfm_h", "RFM+H", Consumption, &rfmh, |o| {
        let g = RfmGrade::ALL[..6].iter().position(|g| *g == i.grades[o])?;
        Some(g * 2 + (f.checks_12m[o] == 0) as usize)
    });
    let act: Vec<String> = ActivityLevel::ALL.iter().map(|a| a.label_zh().to_string()).collect();
    b.split("activity", "活跃度", Consumption, &act, |o| {
        ActivityLevel::ALL.iter().position(|a| *a == i.activity[o])
    });
    b.split(
        "recency",
        "最近消费",
        Consumption,
        &names(&["30天内", "31-90天", "91-180天", "181-365天", "1年以上", "从未消费"]),
        |o| {
            Some(match f.recency(o) {
                None => 5,
                Some(r) => band(r as f64, &[31.0, 91.0, 181.0, 366.0]),
            })
        },
    );
    b.split(
        "frequency",
        "年消费次数",
        Consumption,
        &names(&["0次", "1次", "2-3次", "4-6次", "7-12次", "13次及以上"]),
        |o| Some(band(f.frequency_12m[o] as f64, &[1.0, 2.0, 4.0, 7.0, 13.0])),
    );
    b.split(
        "monetary",
        "年消费金额",
        Consumption,
        &names(&["0元", "100元以下", "100-500元", "500-1000元", "1000-2000元", "2000-5000元", "5000元及以上"]),
        |o| {
            let m = f.monetary_12m[o];
            Some(if m <= 0 { 0 } else { 1 + band(m as f64 / 100.0, &[100.0, 500.0, 1000.0, 2000.0, 5000.0]) })
        },
    );
    b.split(
        "avg_ticket",
        "客单价",
        Consumption,
        &names(&["30元以下", "30-60元", "60-100元", "100-200元", "200元及以上"]),
        |o| f.avg_ticket(o).map(|a| band(a / 100.0, &[30.0, 60.0, 100.0, 200.0])),
    );
    b.split(
        "items_per_ticket",
        "客品数",
        Consumption,
        &names(&["1.5以下", "1.5-2.5", "2.5-4", "4及以上"]),
        |o| f.items_per_ticket(o).map(|a| band(a, &[1.5, 2.5, 4.0])),
    );
    b.split(
        "margin",
        "毛利率",
        Consumption,
        &names(&["10%以下", "10-20%", "20-30%", "30-40%", "40%及以上"]),
        |o| f.margin_rate(o).map(|a| band(a, &[10.0, 20.0, 30.0, 40.0])),
    );
}

/// 消费属性 from 折扣敏感度, and 商品属性.
fn consumption_rest_and_product(i: &Inputs, b: &mut Builder) {
    let (data, f) = (i.data, i.features);
    use Primary::*;

    b.split(
        "discount",
        "折扣敏感度",
        Consumption,
        &names(&["无折扣", "5%以下", "5-15%", "15%及以上"]),
        |o| f.discount_share(o).map(|a| if a <= 0.0 { 0 } else { 1 + band(a, &[5.0, 15.0]) }),
    );
    let stores: Vec<String> = data.stores.iter().map(|s| s.name.clone()).collect();
    b.split("preferred_store", "偏好门店", Consumption, &stores, |o| {
        (f.preferred_store[o] != NONE_U32).then_some(f.preferred_store[o] as usize)
    });
    b.split("returns", "退货行为", Consumption, &names(&["有退货", "无退货"]), |o| {
        (f.frequency_12m[o] > 0 || f.returns_12m[o] > 0).then_some((f.returns_12m[o] == 0) as usize)
    });

    // 商品属性
    let classes_of = |kind: ClassKind| -> Vec<TagValue> {
        i.classes
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| TagValue { name: c.name.clone(), members: Arc::clone(&c.members) })
            .collect()
    };
    b.given("major_class", "品类大类人群", Product, classes_of(ClassKind::Major));
    b.given("minor_class", "品类小类人群", Product, classes_of(ClassKind::Minor));
    b.given("custom_class", "自定义人群", Product, classes_of(ClassKind::Custom));
    b.given(
        "drug_group",
        "药品群组",
        Product,
        i.groups.iter().map(|(name, m)| TagValue { name: name.clone(), members: Arc::clone(m) }).collect(),
    );
    b.split(
        "prescription",
        "处方药购买",
        Product,
        &names(&["近一年购买处方药", "近一年未购买处方药"]),
        |o| (f.frequency_12m[o] > 0).then_some(!f.bought_rx_12m[o] as usize),
    );
}

/// The record fields the attribute dimensions read, one byte each (the value's index in its
/// dimension, [`NO_VALUE`] for none).
#[derive(Debug, Clone, Copy)]
enum Attr {
    Allergies,
    Consent,
    Gender,
    Source,
    Referred,
    Sms,
    BirthdayMonth,
    Status,
}

const ATTRS: usize = 8;
const NO_VALUE: u8 = u8::MAX;

fn attrs_of(m: MemberRef<'_>) -> [u8; ATTRS] {
    use chrono::Datelike;
    let mut a = [NO_VALUE; ATTRS];
    a[Attr::Allergies as usize] = !m.has_allergies() as u8;
    a[Attr::Consent as usize] = !m.health_consent() as u8;
    a[Attr::Gender as usize] = match m.gender() {
        Gender::Male => 0,
        Gender::Female => 1,
        Gender::Unknown => 2,
    };
    a[Attr::Source as usize] = SOURCES.iter().position(|s| *s == m.source()).map_or(NO_VALUE, |p| p as u8);
    a[Attr::Referred as usize] = !m.referred() as u8;
    a[Attr::Sms as usize] = !m.sms_opt_in() as u8;
    a[Attr::BirthdayMonth as usize] = m.birthday().map_or(NO_VALUE, |b| b.month0() as u8);
    a[Attr::Status as usize] = match m.status() {
        MemberStatus::Active => 0,
        MemberStatus::Cancelled => 1,
    };
    a
}

/// The attribute dimensions' values of members' records. Built afresh, every record is read once
/// for all of them (when records were ~150 bytes apart, a pass over 10M of them per dimension cost
/// more than the rest of the catalogue; they are 32 now, and one pass is still the fewest reads); in
/// an update the changed records only, each when asked.
struct Attrs<'a> {
    members: &'a Members,
    packed: Option<Vec<[u8; ATTRS]>>,
}

impl<'a> Attrs<'a> {
    fn new(members: &'a Members, every: bool) -> Self {
        Attrs { members, packed: every.then(|| members.iter().map(attrs_of).collect()) }
    }

    fn get(&self, o: usize, attr: Attr) -> Option<usize> {
        let v = match &self.packed {
            Some(p) => p[o][attr as usize],
            None => attrs_of(self.members.get(o))[attr as usize],
        };
        (v != NO_VALUE).then_some(v as usize)
    }
}

/// 健康属性 and 会员属性.
fn health_and_member(i: &Inputs, b: &mut Builder) {
    let (data, f) = (i.data, i.features);
    use Primary::*;

    // 健康属性
    b.split("checks", "年检测次数", Health, &names(&["未检测", "1次", "2次", "3次及以上"]), |o| {
        Some(band(f.checks_12m[o] as f64, &[1.0, 2.0, 3.0]))
    });
    // In the order of TRACKED_KINDS (the array's length says so).
    let reading_dims: [(&str, &str); TRACKED_KINDS.len()] = [
        ("blood_pressure", "血压状态"),
        ("blood_glucose", "血糖状态"),
        ("blood_lipids", "血脂状态"),
        ("uric_acid", "尿酸状态"),
    ];
    for (k, (key, name)) in reading_dims.into_iter().enumerate() {
        b.split(key, name, Health, &names(&["正常", "异常", "未检测"]), |o| {
            Some(match f.last_reading[k][o] {
                1 => 0,
                2 => 1,
                _ => 2,
            })
        });
    }
    let chronic = chronic_values(b, data);
    b.given("chronic", "慢病档案", Health, chronic);
    let attrs = Attrs::new(&data.members, b.prev.is_none());
    b.split_record("allergies", "过敏史", Health, &names(&["有过敏史", "无记录"]), |o| {
        attrs.get(o, Attr::Allergies)
    });
    b.split_record("health_consent", "健康数据授权", Health, &names(&["已授权", "未授权"]), |o| {
        attrs.get(o, Attr::Consent)
    });

    // 会员属性
    let stores: Vec<String> = data.stores.iter().map(|s| s.name.clone()).collect();
    b.split_record("gender", "性别", Member, &names(&["男", "女", "未知"]), |o| attrs.get(o, Attr::Gender));
    b.split_record(
        "age_band",
        "年龄段",
        Member,
        &names(&["20岁以下", "20-29岁", "30-39岁", "40-49岁", "50-59岁", "60-69岁", "70岁及以上", "未知"]),
        |o| Some(if f.age[o] == NONE_I32 { 7 } else { band(f.age[o] as f64, &[20.0, 30.0, 40.0, 50.0, 60.0, 70.0]) }),
    );
    b.split_record(
        "tenure",
        "入会时长",
        Member,
        &names(&["3个月以内", "3-12个月", "1-3年", "3年及以上", "未知"]),
        |o| {
            Some(match f.tenure(o) {
                None => 4,
                Some(t) => band(t as f64, &[91.0, 366.0, 1096.0]),
            })
        },
    );
    b.split(
        "new_card",
        "新办卡",
        Member,
        &names(&["近30天办卡未消费", "近90天办卡未消费", "近90天办卡已消费"]),
        |o| {
            let t = f.tenure(o)?;
            match (t < 30, t < 90, f.last_day[o] >= f.registered_day[o] && f.last_day[o] != NONE_I32) {
                (true, _, false) => Some(0),
                (false, true, false) => Some(1),
                (_, true, true) => Some(2),
                _ => None,
            }
        },
    );
    b.split_record(
        "source",
        "注册来源",
        Member,
        &names(&["门店", "微信", "支付宝", "推荐", "导入"]),
        |o| attrs.get(o, Attr::Source),
    );
    b.split_record("home_store", "所属门店", Member, &stores, |o| {
        (data.home_store[o] != NONE_U32).then_some(data.home_store[o] as usize)
    });
    b.split_record("referred", "推荐入会", Member, &names(&["有推荐人", "无推荐人"]), |o| {
        attrs.get(o, Attr::Referred)
    });
    b.split_record("sms", "短信许可", Member, &names(&["接收短信", "拒收短信"]), |o| {
        attrs.get(o, Attr::Sms)
    });
    let months: Vec<String> = (1..=12).map(|m| format!("{m}月")).collect();
    b.split_record("birthday_month", "生日月份", Member, &months, |o| attrs.get(o, Attr::BirthdayMonth));
    b.split_record("status", "会员状态", Member, &names(&["正常", "已注销"]), |o| attrs.get(o, Attr::Status));
    let loyalty = &data.loyalty;
    let levels: Vec<String> = loyalty.levels.iter().map(|l| l.name.clone()).collect();
    b.split_record("tier", "会员等级", Member, &levels, |o| loyalty.level(o));
    b.split_record(
        "points_band",
        "积分余额",
        Member,
        &names(&["无积分", "1-99分", "100-499分", "500-999分", "1000-4999分", "5000分及以上"]),
        |o| {
            Some(if loyalty.balance[o] <= 0 {
                0
            } else {
                1 + band(loyalty.balance[o] as f64, &[100.0, 500.0, 1000.0, 5000.0])
            })
        },
    );
    b.split_record("points_expiring", "积分到期", Member, &names(&["30天内有积分到期"]), |o| {
        i.expiring_30d.contains_key(&(o as u32)).then_some(0)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bitmaps(values: &[TagValue]) -> Vec<RoaringBitmap> {
        values.iter().map(|v| RoaringBitmap::clone(&v.members)).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Few and many values, array and bitmap containers; a reader's copy of the values before
        /// keeps them.
        #[test]
        fn placing_changed_members_again_equals_splitting_anew(
            (k, before, after, changed) in (1usize..40, 0usize..10_000).prop_flat_map(|(k, n)| (
                Just(k),
                prop::collection::vec(prop::option::weighted(0.9, 0..k), n),
                prop::collection::vec(prop::option::weighted(0.9, 0..k), n),
                prop::collection::vec(prop::bool::weighted(0.2), n),
            )),
        ) {
            let names: Vec<String> = (0..k).map(|v| v.to_string()).collect();
            let n = before.len();
            let now = |o: usize| if changed[o] { after[o] } else { before[o] };
            let mut values = split(n, &names, |o| before[o]);
            let held = values.clone();
            let changed = RoaringBitmap::from_sorted_iter((0..n as u32).filter(|&o| changed[o as usize])).unwrap();
            place_again(&mut values, &changed, now);
            prop_assert_eq!(bitmaps(&values), bitmaps(&split(n, &names, now)));
            prop_assert_eq!(bitmaps(&held), bitmaps(&split(n, &names, |o| before[o])));
        }
    }
}
