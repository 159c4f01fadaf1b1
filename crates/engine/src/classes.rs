//! Purchase-derived classes (消费人群) over the category taxonomy, and drug groups (药品群组).
//! Rules are in [`crate::settings::ClassSettings`]; seed 002 and PRODUCT.md describe the reference
//! platform's 65 major and ~300 minor classes, which is what the default taxonomy yields.

use crate::data::{CompanyData, Day, Purchase};
use crate::settings::{DrugGroup, Settings};
use roaring::RoaringBitmap;
use rxmember_core::taxonomy::Taxonomy;
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassKind {
    Major,
    Minor,
    Custom,
}

#[derive(Debug, Clone, Serialize)]
pub struct Class {
    pub name: String,
    pub kind: ClassKind,
    /// Category code for taxonomy classes.
    pub code: Option<String>,
    /// Shared with the catalogue's value for the class (see [`crate::catalogue::TagValue`]).
    #[serde(skip)]
    pub members: Arc<RoaringBitmap>,
    #[serde(skip)]
    window_days: i64,
    #[serde(skip)]
    min_days: i64,
    #[serde(skip)]
    min_share: f64,
}

/// Product indices whose category is `code` or, for a major code, any of its minors.
pub fn products_in_category(data: &CompanyData, code: &str) -> Vec<u32> {
    data.products
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            p.category_code.as_deref().is_some_and(|c| c == code || (code.len() == 2 && c.starts_with(code)))
        })
        .map(|(i, _)| i as u32)
        .collect()
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// Product indices in a drug group: by code, category (code or name), manufacturer or brand.
pub fn products_in_group(data: &CompanyData, taxonomy: &Taxonomy, g: &DrugGroup) -> Vec<u32> {
    let codes: Vec<String> = g.categories.iter().filter_map(|c| taxonomy.resolve(c).map(|c| c.code.clone())).collect();
    let manufacturers: Vec<String> = g.manufacturers.iter().map(|m| norm(m)).collect();
    let brands: Vec<String> = g.brands.iter().map(|m| norm(m)).collect();
    data.products
        .iter()
        .enumerate()
        .filter(|(_, p)| {
            g.products.iter().any(|c| c.trim() == p.code)
                || p.category_code
                    .as_deref()
                    .is_some_and(|pc| codes.iter().any(|c| pc == c || (c.len() == 2 && pc.starts_with(c.as_str()))))
                || p.manufacturer.as_deref().is_some_and(|m| manufacturers.contains(&norm(m)))
                || p.brand.as_deref().is_some_and(|b| brands.contains(&norm(b)))
        })
        .map(|(i, _)| i as u32)
        .collect()
}

/// Every class (members not yet filled) and, per product index, the classes it counts towards.
fn index(data: &CompanyData, taxonomy: &Taxonomy, settings: &Settings) -> (Vec<Class>, Vec<Vec<u32>>) {
    let cs = &settings.classes;
    let mut classes: Vec<Class> = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut product_classes: Vec<Vec<u32>> = vec![Vec::new(); data.products.len()];
    let mut add = |classes: &mut Vec<Class>, name: String, kind, code: Option<String>, products: Vec<u32>, w, d, s| {
        let name = if used.insert(name.clone()) {
            name
        } else {
            let n = format!("{name}（{}）", code.as_deref().unwrap_or("自定义"));
            used.insert(n.clone());
            n
        };
        let id = classes.len() as u32;
        for p in products {
            product_classes[p as usize].push(id);
        }
        classes.push(Class { name, kind, code, members: Arc::default(), window_days: w, min_days: d, min_share: s });
    };
    for c in &taxonomy.categories {
        let kind = if c.is_major() { ClassKind::Major } else { ClassKind::Minor };
        let products = products_in_category(data, &c.code);
        add(
            &mut classes,
            format!("{}人群", c.name),
            kind,
            Some(c.code.clone()),
            products,
            cs.window_days,
            cs.min_days,
            cs.min_share_percent,
        );
    }
    for k in &cs.custom {
        let mut products: Vec<u32> = Vec::new();
        for c in &k.categories {
            if let Some(c) = taxonomy.resolve(c) {
                products.extend(products_in_category(data, &c.code));
            }
        }
        for g in settings.drug_groups.iter().filter(|g| k.groups.contains(&g.name)) {
            products.extend(products_in_group(data, taxonomy, g));
        }
        products.sort_unstable();
        products.dedup();
        add(
            &mut classes,
            k.name.clone(),
            ClassKind::Custom,
            None,
            products,
            k.window_days.unwrap_or(cs.window_days),
            k.min_days.unwrap_or(cs.min_days),
            k.min_share_percent.unwrap_or(cs.min_share_percent),
        );
    }
    (classes, product_classes)
}

/// Finds the classes of members, one at a time, with reusable scratch space.
struct Classifier<'a> {
    data: &'a CompanyData,
    classes: &'a [Class],
    product_classes: &'a [Vec<u32>],
    as_of: Day,
    max_window: i64,
    default_window: i64,
    /// Per class (indexed like `classes`), reset after each member.
    tallies: Vec<Tally>,
    /// The classes with a tally for the current member.
    seen: Vec<u32>,
    /// A member's purchases sorted by day, when they were not.
    sorted: Vec<Purchase>,
}

impl Classifier<'_> {
    /// Calls `found` with each class member `o` is in.
    fn member(&mut self, o: usize, mut found: impl FnMut(u32)) {
        let (as_of, purchases) = (self.as_of, self.data.purchases(o));
        // Purchases come in the order read, which is by day but for a return read without its sale.
        let by_day: &[Purchase] = if purchases.is_sorted_by_key(|p| p.day) {
            purchases
        } else {
            self.sorted.clear();
            self.sorted.extend_from_slice(purchases);
            self.sorted.sort_by_key(|p| p.day);
            &self.sorted
        };
        // Per class, over its window: days with a positive net and the net spend. A class's
        // purchases come day by day, so a day ends when the next one starts.
        let tallies = &mut self.tallies;
        self.seen.clear();
        for p in by_day.iter().filter(|p| p.day <= as_of && (as_of - p.day) < self.max_window as i32) {
            for &c in &self.product_classes[p.product as usize] {
                if ((as_of - p.day) as i64) < self.classes[c as usize].window_days {
                    let t = &mut tallies[c as usize];
                    if t.day != p.day {
                        if t.day == NO_DAY {
                            self.seen.push(c);
                        } else {
                            t.days += (t.net > 0) as i64;
                        }
                        t.day = p.day;
                        t.net = 0;
                    }
                    t.net += i64::from(p.amount);
                    t.spend += i64::from(p.amount);
                }
            }
        }
        // Total net spend per window length, for the share rule.
        let total_in = |w: i64| -> i64 {
            purchases
                .iter()
                .filter(|p| p.day <= as_of && ((as_of - p.day) as i64) < w)
                .map(|p| i64::from(p.amount))
                .sum()
        };
        let mut default_total: Option<i64> = None;
        for &c in &self.seen {
            let t = std::mem::replace(&mut tallies[c as usize], NO_TALLY);
            let (days, spend) = (t.days + (t.net > 0) as i64, t.spend);
            let class = &self.classes[c as usize];
            let total = if class.window_days == self.default_window {
                *default_total.get_or_insert_with(|| total_in(self.default_window))
            } else {
                total_in(class.window_days)
            };
            let share_ok = days >= 1 && total > 0 && (spend as f64) * 100.0 >= class.min_share * total as f64;
            if days >= class.min_days || share_ok {
                found(c);
            }
        }
    }
}

/// One class's running count while a member's purchases are read day by day.
#[derive(Clone, Copy)]
struct Tally {
    day: Day,
    net: i64,
    days: i64,
    spend: i64,
}

const NO_DAY: Day = Day::MIN;
const NO_TALLY: Tally = Tally { day: NO_DAY, net: 0, days: 0, spend: 0 };

fn classifier<'a>(
    data: &'a CompanyData,
    classes: &'a [Class],
    pc: &'a [Vec<u32>],
    s: &Settings,
    as_of: Day,
) -> Classifier<'a> {
    Classifier {
        data,
        classes,
        product_classes: pc,
        as_of,
        max_window: classes.iter().map(|c| c.window_days).max().unwrap_or(0),
        default_window: s.classes.window_days,
        tallies: vec![NO_TALLY; classes.len()],
        seen: Vec::new(),
        sorted: Vec::new(),
    }
}

/// Computes every class's members as of `as_of`.
pub fn compute(data: &CompanyData, taxonomy: &Taxonomy, settings: &Settings, as_of: Day) -> Vec<Class> {
    let (mut classes, product_classes) = index(data, taxonomy, settings);
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); classes.len()];
    let mut k = classifier(data, &classes, &product_classes, settings, as_of);
    for o in 0..data.len() {
        k.member(o, |c| members[c as usize].push(o as u32));
    }
    for (class, m) in classes.iter_mut().zip(members) {
        class.members = Arc::new(RoaringBitmap::from_sorted_iter(m).unwrap_or_default());
    }
    classes
}

/// The classes after `data` changed only for `touched` members (new members are always touched), as
/// of the same day and under the same settings: only those members are classified again. A class's
/// bitmap is changed in place unless something else still holds it (then it is copied).
pub fn update(
    prev: Vec<Class>,
    data: &CompanyData,
    taxonomy: &Taxonomy,
    settings: &Settings,
    as_of: Day,
    touched: &RoaringBitmap,
) -> Vec<Class> {
    let (mut classes, product_classes) = index(data, taxonomy, settings);
    let mut added: Vec<Vec<u32>> = vec![Vec::new(); classes.len()];
    let mut k = classifier(data, &classes, &product_classes, settings, as_of);
    for o in touched {
        k.member(o as usize, |c| added[c as usize].push(o));
    }
    for ((class, old), add) in classes.iter_mut().zip(prev).zip(added) {
        class.members = old.members;
        let members = Arc::make_mut(&mut class.members);
        *members -= touched;
        *members |= RoaringBitmap::from_sorted_iter(add).expect("touched members ascend");
    }
    classes
}
